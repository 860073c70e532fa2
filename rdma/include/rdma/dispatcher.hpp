// Dispatcher: routes received frames to the handler registered for their
// frame-type range. The transport knows no frame types but its own
// (< kFirstUserType); each layer above it (the DSM, the machine, a test)
// claims a range here and decodes its frames' generic arguments itself.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "base/result.hpp"
#include "rdma/frame.hpp"

namespace ssi::rdma {

struct FrameRange {
  FrameType first = 0;
  FrameType last = 0;  // inclusive
  bool contains(FrameType t) const { return t >= first && t <= last; }
};

class Dispatcher {
 public:
  using Handler = std::function<void(Frame&& frame)>;
  using HandlerPtr = std::shared_ptr<const Handler>;

  // kInvalidArgument if the range is empty or reversed, reaches into the
  // transport-internal types, or overlaps a range already registered.
  Result<void> add(FrameRange range, Handler handler);
  // Forgets the range registered as exactly `range` (no-op if none).
  void remove(FrameRange range);
  // For frames no range claims (empty: they are dropped).
  void set_fallback(Handler handler);
  // The handler for type t, kept alive by the pointer even if it is removed
  // while it runs; null if none.
  HandlerPtr find(FrameType t) const;

 private:
  struct Entry {
    FrameRange range;
    HandlerPtr handler;
  };
  std::vector<Entry> entries_;  // a few ranges: a linear scan beats a map
  HandlerPtr fallback_;
};

}  // namespace ssi::rdma
