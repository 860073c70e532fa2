#include "multinode/loop_call.hpp"

namespace ssi::multinode {

LoopCalls::List::iterator LoopCalls::track(std::shared_ptr<Pending> p) {
  std::lock_guard lock(mu_);
  if (cancelled_.load()) return pending_.end();
  return pending_.insert(pending_.end(), std::move(p));
}

void LoopCalls::untrack(List::iterator it) {
  std::lock_guard lock(mu_);
  pending_.erase(it);
}

void LoopCalls::cancel_all() {
  List waiting;
  {
    std::lock_guard lock(mu_);
    cancelled_.store(true);
    waiting = pending_;  // copies: each waiter unlinks its own entry
  }
  for (auto& p : waiting) p->cancel();
}

}  // namespace ssi::multinode
