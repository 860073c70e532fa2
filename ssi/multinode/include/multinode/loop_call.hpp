// The one way a thread calls into an event loop of this node and waits for
// the answer: the reactor (whose fibers own the transport) or the device
// thread (whose loop owns node 0's board). The operation is posted to the
// loop; the caller, a plain thread (a vCPU) or a fiber on another loop,
// blocks on a Boost.Fiber future until the operation returns, with no
// polling: a plain thread sleeps in its fiber scheduler's condition
// variable, a fiber yields its loop to other fibers. cancel_all() (the
// machine stopping, a node failing) wakes every waiter at once with
// nullopt; the operation itself still runs to its end (bounded by the
// transport timeout) and its result is dropped.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>

#include <boost/fiber/future.hpp>

#include "base/result.hpp"

namespace ssi::multinode {

class LoopCalls {
 public:
  using Task = std::function<void()>;
  using Post = std::function<void(Task)>;  // hands a task to the loop (thread-safe)

  // Runs `op` on the loop behind `post` and waits for it; nullopt once
  // cancel_all() has been called (before or during the wait).
  template <typename T>
  std::optional<Result<T>> call(const Post& post, std::function<Result<T>()> op) {
    auto state = std::make_shared<State<T>>();
    auto future = state->promise.get_future();
    auto it = track(state);
    if (it == pending_.end()) return std::nullopt;
    // The state, not `this`, is captured: the loop may run the operation
    // after the caller gave up waiting.
    post([state, op = std::move(op)]() mutable { state->settle(op()); });
    std::optional<Result<T>> out = future.get();
    untrack(it);
    return out;
  }

  // Thread-safe. Wakes every waiter with nullopt; later calls return nullopt.
  void cancel_all();
  bool cancelled() const { return cancelled_.load(); }

 private:
  struct Pending {
    virtual ~Pending() = default;
    virtual void cancel() = 0;
  };
  template <typename T>
  struct State final : Pending {
    void settle(std::optional<Result<T>> v) {
      if (!settled.exchange(true)) promise.set_value(std::move(v));
    }
    void cancel() override { settle(std::nullopt); }
    std::atomic<bool> settled{false};
    boost::fibers::promise<std::optional<Result<T>>> promise;
  };
  using List = std::list<std::shared_ptr<Pending>>;

  // end() when already cancelled.
  List::iterator track(std::shared_ptr<Pending> p);
  void untrack(List::iterator it);

  std::mutex mu_;  // held only to link and unlink, never across a wait
  List pending_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace ssi::multinode
