// What every transport benchmark needs around the measurement: CPU
// placement (pinning), a forked server process, the machine description for
// the JSON context, and per-operation latency statistics.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace ssi::bench {

// Where the two ends run. On this machine kind waking a thread on the other
// CPU costs 15-40 us, so results differ by placement far more than by code.
struct Placement {
  const char* name;
  int client_cpu;
  int server_cpu;
  // How long a waiting side polls before sleeping: pointless (harmful) when
  // both ends share a CPU, the only way to avoid cross-CPU wake-ups otherwise.
  std::chrono::microseconds spin;
};
inline constexpr Placement kSameCpu{"same", 0, 0, std::chrono::microseconds(0)};
inline constexpr Placement kSplitCpu{"split", 0, 1, std::chrono::microseconds(50)};

bool pin_to_cpu(int cpu);
int online_cpus();
// CPU model, CPU count, kernel and the placement legend, via AddCustomContext.
void add_machine_context();

// A child process running `body` pinned to `cpu`; `body` gets a pipe fd to
// send one line (e.g. its address) back. Killed (SIGKILL) and reaped on
// destruction, so a benchmark can never leave servers behind.
class ForkedServer {
 public:
  ForkedServer(int cpu, std::function<void(int report_fd)> body);
  ~ForkedServer();
  ForkedServer(const ForkedServer&) = delete;
  ForkedServer& operator=(const ForkedServer&) = delete;
  bool ok() const { return pid_ > 0 && !line_.empty(); }
  // The line the child reported (empty if it failed to within 10 s).
  const std::string& line() const { return line_; }

 private:
  pid_t pid_ = -1;
  std::string line_;
};
void report_line(int fd, const std::string& line);

struct LatencyStats {
  double median_us = 0;
  double p99_us = 0;
};
LatencyStats summarize(std::vector<double> ns);

// Blocks until `fd` is readable: polls without sleeping for `spin` first.
bool wait_readable(int fd, std::chrono::microseconds spin, int timeout_ms = 10000);

}  // namespace ssi::bench
