// Host timers for LAPIC timers: one thread serves every vCPU of a node and
// calls on_due(vcpu) at (or just after) each armed deadline; the machine
// routes that to the vCPU's VcpuRunner::notify(), which kicks it out of
// KVM_RUN or wakes it from HLT so it calls Lapic::update_timer().
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "vcpu/lapic.hpp"

namespace ssi::vcpu {

class TimerThread final : public TimerScheduler {
 public:
  // Deadlines are steady_clock time points (ssi::SteadyClock's epoch).
  explicit TimerThread(std::function<void(VcpuId)> on_due);
  ~TimerThread() override;  // joins the thread
  TimerThread(const TimerThread&) = delete;
  TimerThread& operator=(const TimerThread&) = delete;

  void schedule(VcpuId vcpu, std::optional<Clock::time_point> deadline) override;

 private:
  void loop();

  std::function<void(VcpuId)> on_due_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<VcpuId, Clock::time_point> deadlines_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace ssi::vcpu
