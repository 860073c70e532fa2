#include "vcpu/timer.hpp"

#include <vector>

namespace ssi::vcpu {

TimerThread::TimerThread(std::function<void(VcpuId)> on_due)
    : on_due_(std::move(on_due)), thread_([this] { loop(); }) {}

TimerThread::~TimerThread() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void TimerThread::schedule(VcpuId vcpu, std::optional<Clock::time_point> deadline) {
  {
    std::lock_guard lock(mu_);
    if (deadline)
      deadlines_[vcpu] = *deadline;
    else
      deadlines_.erase(vcpu);
  }
  cv_.notify_all();
}

void TimerThread::loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    auto now = std::chrono::steady_clock::now();
    std::vector<VcpuId> due;
    std::optional<Clock::time_point> next;
    for (auto it = deadlines_.begin(); it != deadlines_.end();) {
      if (it->second <= now) {
        due.push_back(it->first);  // one call per arm; the LAPIC re-arms periodic timers
        it = deadlines_.erase(it);
      } else {
        if (!next || it->second < *next) next = it->second;
        ++it;
      }
    }
    if (!due.empty()) {
      lock.unlock();  // on_due notifies a runner, which may re-arm through schedule()
      for (auto id : due) on_due_(id);
      lock.lock();
      continue;
    }
    if (next)
      cv_.wait_until(lock, *next);
    else
      cv_.wait(lock);
  }
}

}  // namespace ssi::vcpu
