#include "rdma/dispatcher.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "rdma/codec.hpp"

namespace ssi::rdma {

Result<void> Dispatcher::add(FrameRange range, Handler handler) {
  if (range.first > range.last || range.first < kFirstUserType)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("frame-type range {:#06x}-{:#06x} is empty or transport-internal",
                                  range.first, range.last));
  for (const auto& e : entries_)
    if (range.first <= e.range.last && e.range.first <= range.last)
      return make_error(Errc::kInvalidArgument,
                        fmt::format("frame-type range {:#06x}-{:#06x} overlaps {:#06x}-{:#06x}",
                                    range.first, range.last, e.range.first, e.range.last));
  entries_.push_back({range, std::make_shared<const Handler>(std::move(handler))});
  return ok();
}

void Dispatcher::remove(FrameRange range) {
  std::erase_if(entries_, [&](const Entry& e) {
    return e.range.first == range.first && e.range.last == range.last;
  });
}

void Dispatcher::set_fallback(Handler handler) {
  fallback_ = handler ? std::make_shared<const Handler>(std::move(handler)) : nullptr;
}

Dispatcher::HandlerPtr Dispatcher::find(FrameType t) const {
  for (const auto& e : entries_)
    if (e.range.contains(t)) return e.handler;
  return fallback_;
}

}  // namespace ssi::rdma
