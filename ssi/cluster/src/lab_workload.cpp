#include "lab_workload.hpp"

#include <thread>

namespace ssi::cluster {

coord::PhaseResult LabWorkload::run_phase(std::uint32_t phase) {
  coord::PhaseResult r;
  if (phase == 0) {
    if (auto s = setup(); !s.ok()) return {1, s.error().to_string(), {}};
    r.message = fmt::format("node {}: setup done", me());
  } else if (phase == 1) {
    if (auto s = start_line(); !s.ok()) return {1, s.error().to_string(), {}};
    DsmSnapshot before = dsm_.snapshot();
    auto t0 = std::chrono::steady_clock::now();
    auto ops = run();
    auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::steady_clock::now() - t0).count();
    if (!ops.ok()) return {1, ops.error().to_string(), {}};
    auto ns = static_cast<std::uint64_t>(elapsed);
    measured_ = {{"elapsed_ns", ns}, {"ops", *ops}, {"ns_per_op", *ops ? ns / *ops : 0}};
    for (auto& kv : (dsm_.snapshot() - before).counters()) measured_.push_back(std::move(kv));
    r.message = fmt::format("node {}: {} ops in {:.3f} ms", me(), *ops, ns / 1e6);
  } else {
    auto what = check();
    if (!what.ok()) return {1, what.error().to_string(), measured_};
    r.message = fmt::format("node {}: {}", me(), *what);
  }
  r.stats = measured_;
  return r;
}

namespace {
constexpr std::uint64_t kSpinsBeforeSleep = 50;
}  // namespace

Result<void> LabWorkload::start_line() {
  // The last page of node 0's chunk: no workload uses it.
  auto* arrived = dsm_.atomic_word(dsm_.first_page_of(0) + dsm_.pages_of(0) - 1);
  arrived->fetch_add(1);
  return wait_until([&] { return arrived->load() >= nodes_; }, "every node at the start line");
}

Result<void> LabWorkload::wait_until(const std::function<bool()>& done, const char* what) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (std::uint64_t spins = 0; !done(); ++spins) {
    if (stopping_) return make_error(Errc::kShutdown, fmt::format("stopped while waiting for {}", what));
    if ((spins & 63) == 0 && std::chrono::steady_clock::now() > deadline)
      return make_error(Errc::kTimeout, fmt::format("gave up after 60 s waiting for {}", what));
    // Yield first (the update is usually close); then sleep briefly so a
    // waiter does not take the CPU from the reactor thread that must
    // install the very page it waits for (nodes share cores here).
    if (spins < kSpinsBeforeSleep) sched_yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  return ok();
}

}  // namespace ssi::cluster
