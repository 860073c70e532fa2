#include "ssi/checkpoint_run.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

namespace ssi::machine {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

constexpr std::chrono::milliseconds kPauseTimeout{10'000};

// Pauses, saves and writes; the caller stops the machine afterwards.
Result<void> take_checkpoint(Machine& m, const CheckpointTrigger& t, const CheckpointConfig& config) {
  auto t0 = Clock::now();
  if (!m.pause_vcpus(kPauseTimeout))
    return make_error(Errc::kTimeout, "checkpoint: a vCPU did not pause within 10 s");
  double pause_ms = ms_since(t0);
  SSI_ASSIGN_OR_RETURN(auto cpus, m.save_vcpus());
  SSI_ASSIGN_OR_RETURN(auto devices, m.save_devices());
  auto t1 = Clock::now();
  CheckpointConfig with_tsc = config;
  with_tsc.tsc_khz = m.tsc_khz();
  SSI_ASSIGN_OR_RETURN(CheckpointStats s, write_checkpoint(t.dir, with_tsc, m.ram(), cpus, devices));
  double write_ms = ms_since(t1);
  // One machine-readable line (benchmarks/guest/checkpoint parses it).
  std::fprintf(stderr,
               "ssi: checkpoint saved to %s: {\"pause_ms\": %.3f, \"write_ms\": %.3f, \"total_ms\": "
               "%.3f, \"ram_pages\": %llu, \"bytes\": %llu, \"vcpus\": %zu}\n",
               t.dir.c_str(), pause_ms, write_ms, ms_since(t0),
               static_cast<unsigned long long>(s.ram_pages_written),
               static_cast<unsigned long long>(s.bytes_written), cpus.size());
  return ok();
}

}  // namespace

Result<int> run_with_checkpoint(Machine& machine, const CheckpointTrigger& trigger,
                                const CheckpointConfig& config) {
  if (!trigger.enabled()) return run_until_exit(machine);
  std::mutex mu;
  std::condition_variable cv;
  bool fired = false, done = false;
  if (!trigger.on_console.empty() && machine.board())
    machine.board()->set_console_observer([&, text = trigger.on_console](std::string_view line) {
      if (line.find(text) == std::string_view::npos) return;
      // Now, on the thread that printed the line: the guest must not run on
      // (or even finish) before the checkpointer thread gets to pause it.
      machine.request_pause();
      std::lock_guard lock(mu);
      fired = true;
      cv.notify_all();
    });
  std::optional<Error> failed;
  std::thread checkpointer([&] {
    {
      std::unique_lock lock(mu);
      auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(trigger.after_s > 0 ? trigger.after_s : 1e9));
      cv.wait_until(lock, until, [&] { return fired || done; });
      if (done) return;
    }
    auto r = take_checkpoint(machine, trigger, config);
    if (!r.ok()) failed = std::move(r).error();
    machine.request_exit(failed ? kVcpuFailed : 0);
    machine.resume_vcpus();  // they see the exit request before entering the guest
  });
  auto result = run_until_exit(machine);
  {
    std::lock_guard lock(mu);
    done = true;
    cv.notify_all();
  }
  checkpointer.join();
  if (machine.board()) machine.board()->set_console_observer({});
  if (failed) return std::move(*failed);
  return result;
}

Result<void> restore_machine(Machine& machine, const Checkpoint& c) {
  SSI_TRY(load_checkpoint_ram(c, machine.ram()));
  SSI_TRY(machine.restore_devices(c.devices));
  for (std::uint32_t i = 0; i < c.cpus.size(); ++i) SSI_TRY(machine.restore_vcpu(i, c.cpus[i]));
  return ok();
}

}  // namespace ssi::machine
