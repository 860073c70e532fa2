#include "vcpu/io.hpp"

namespace ssi::vcpu {

bool ExitRequest::request(int exit_code) {
  std::vector<std::function<void()>> to_call;
  {
    std::lock_guard lock(mu_);
    if (code_) return false;
    code_ = exit_code;
    to_call = listeners_;
  }
  // Outside the lock: a listener (a runner's notify) may take its own locks.
  for (auto& l : to_call) l();
  return true;
}

bool ExitRequest::requested() const {
  std::lock_guard lock(mu_);
  return code_.has_value();
}

std::optional<int> ExitRequest::exit_code() const {
  std::lock_guard lock(mu_);
  return code_;
}

void ExitRequest::add_listener(std::function<void()> listener) {
  bool already;
  {
    std::lock_guard lock(mu_);
    already = code_.has_value();
    listeners_.push_back(listener);
  }
  if (already) listener();
}

}  // namespace ssi::vcpu
