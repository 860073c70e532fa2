#include "bench_env.hpp"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include <benchmark/benchmark.h>

namespace ssi::bench {

bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

int online_cpus() { return static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)); }

void add_machine_context() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown";
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  utsname u{};
  ::uname(&u);
  benchmark::AddCustomContext("ssi_cpu_model", model);
  benchmark::AddCustomContext("ssi_cpus_online", std::to_string(online_cpus()));
  benchmark::AddCustomContext("ssi_kernel", std::string(u.sysname) + " " + u.release);
  benchmark::AddCustomContext(
      "ssi_placement",
      "same: client and server process both pinned to CPU0, no spinning; "
      "split: client on CPU0, server on CPU1, both poll 50 us before sleeping; "
      "loopback: both nodes in one process on one reactor (client CPU0)");
  benchmark::AddCustomContext(
      "ssi_ratio", "ratio = our median round trip (or time per frame) / the raw floor's, "
                   "floor measured in the same benchmark run with the same placement and "
                   "payload bytes (the floor carries no 64-byte frame header)");
}

void report_line(int fd, const std::string& line) {
  std::string l = line + "\n";
  [[maybe_unused]] auto n = ::write(fd, l.data(), l.size());
}

ForkedServer::ForkedServer(int cpu, std::function<void(int)> body) {
  int p[2];
  if (::pipe(p) != 0) return;
  pid_ = ::fork();
  if (pid_ == 0) {
    ::close(p[0]);
    ::alarm(120);  // never outlive a wedged parent
    pin_to_cpu(cpu);
    body(p[1]);
    ::_exit(0);
  }
  ::close(p[1]);
  char buf[256];
  std::string got;
  while (got.find('\n') == std::string::npos && wait_readable(p[0], {}, 10000)) {
    auto n = ::read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(p[0]);
  if (auto nl = got.find('\n'); nl != std::string::npos) line_ = got.substr(0, nl);
}

ForkedServer::~ForkedServer() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

LatencyStats summarize(std::vector<double> ns) {
  if (ns.empty()) return {};
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) { return ns[static_cast<std::size_t>(q * (ns.size() - 1))] / 1000.0; };
  return {at(0.5), at(0.99)};
}

bool wait_readable(int fd, std::chrono::microseconds spin, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (spin.count() > 0) {
    auto until = std::chrono::steady_clock::now() + spin;
    do {
      if (::poll(&p, 1, 0) == 1) return true;
    } while (std::chrono::steady_clock::now() < until);
  }
  return ::poll(&p, 1, timeout_ms) == 1;
}

}  // namespace ssi::bench
