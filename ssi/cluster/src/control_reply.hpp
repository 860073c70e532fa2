// What the control commands served on --metrics share (ssi move, ssi
// checkpoint): a QMP-style error reply, and a caller that blocks until the
// coordinator's thread answers its order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "base/result.hpp"

namespace ssi::cluster {

// {"error":{"class":CLS,"desc":DESC}} on one line.
inline std::string qmp_error(const std::string& desc, const std::string& cls = "GenericError") {
  std::string d;
  for (char c : desc) {
    if (c == '"' || c == '\\') d += '\\';
    d += (c == '\n' ? ' ' : c);
  }
  return fmt::format("{{\"error\":{{\"class\":\"{}\",\"desc\":\"{}\"}}}}", cls, d);
}

// One order's answer: callback() goes into the order (called once, on any
// thread); wait() blocks for it.
template <class T>
class AwaitedAnswer {
 public:
  std::function<void(Result<T>)> callback() const {
    return [s = state_](Result<T> r) {
      std::lock_guard lock(s->mu);
      s->result = std::move(r);
      s->cv.notify_all();
    };
  }
  // The answer, or nullopt after `timeout`.
  std::optional<Result<T>> wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(state_->mu);
    if (!state_->cv.wait_for(lock, timeout, [&] { return state_->result.has_value(); })) return std::nullopt;
    return std::move(state_->result);
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<T>> result;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace ssi::cluster
