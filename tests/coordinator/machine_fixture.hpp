// Forked node processes running run_node() with a scripted runtime, and a
// coordinator in the test process: shared by the coordinator test files.
#pragma once

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "base/secret.hpp"
#include "coordinator/coordinator.hpp"
#include "coordinator/node_client.hpp"

namespace ssi::coord::testing {

using namespace std::chrono_literals;

// Finishes each phase after `delay`; phase `fail_phase` reports exit code 7
// (as a failure, or with `guest_exit` as a guest's own code).
class ScriptedRuntime final : public NodeRuntime {
 public:
  ScriptedRuntime(std::chrono::milliseconds delay, int fail_phase, bool guest_exit = false)
      : delay_(delay), fail_phase_(fail_phase), guest_exit_(guest_exit) {}
  Result<void> configure(const MachineConfig& c) override {
    if (c.peers.size() != c.nodes) return make_error(Errc::kInvalidArgument, "peer list size");
    return ok();
  }
  void run_phase(std::uint32_t phase, Done done) override {
    std::thread([=, this] {
      std::this_thread::sleep_for(delay_);
      PhaseResult r;
      r.exit_code = static_cast<int>(phase) == fail_phase_ ? 7 : 0;
      r.message = r.exit_code ? "scripted failure" : "ok";
      r.guest_exit = r.exit_code != 0 && guest_exit_;
      r.stats = {{"phases_done", phase + 1}, {"pid", static_cast<std::uint64_t>(getpid())}};
      done(std::move(r));
    }).detach();
  }
  void stop(const std::string&, bool) override {}

 private:
  std::chrono::milliseconds delay_;
  int fail_phase_;
  bool guest_exit_;
};

struct Child {
  pid_t pid = -1;
};

inline int g_listen_fd = -1;  // the coordinator's socket; children must not keep it

// What a forked node knows: the secret, and its failure-detector floor.
struct NodeTrust {
  MachineSecret secret;
  std::chrono::milliseconds floor = 3000ms;
};

inline Child spawn_node(std::uint16_t port, std::uint32_t id, std::string version,
                        std::chrono::milliseconds delay, int fail_phase = -1,
                        std::chrono::milliseconds join_after = 0ms, const NodeTrust& trust = {},
                        bool guest_exit = false) {
  pid_t pid = fork();
  if (pid == 0) {
    close(g_listen_fd);
    std::this_thread::sleep_for(join_after);
    ScriptedRuntime rt(delay, fail_phase, guest_exit);
    NodeOptions o;
    o.coordinator = "127.0.0.1:" + std::to_string(port);
    o.info = NodeInfo{NodeId{id}, "localhost", version, "loop:" + std::to_string(id),
                      static_cast<std::uint32_t>(getpid()), {}};
    o.timing.failure_timeout = trust.floor;
    o.secret = trust.secret;
    NodeExit e = run_node(o, rt);
    std::fprintf(stderr, "node %u exit %d: %s\n", id, e.exit_code, e.message.c_str());
    _exit(e.exit_code);
  }
  return Child{pid};
}

inline int wait_exit(pid_t pid) {
  // Bounded: 10 s.
  for (int i = 0; i < 1000; ++i) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(10ms);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

struct Run {
  Outcome outcome;
  std::vector<int> child_exits;
  std::chrono::milliseconds elapsed{};
};

// Starts a coordinator for `nodes` nodes; `spawn(port)` forks the children.
// `tweak` may change the coordinator's options (secret, timing) first.
inline Run run_machine(std::uint32_t nodes, std::uint32_t phases,
                       const std::function<std::vector<Child>(std::uint16_t)>& spawn,
                       const std::function<void(std::vector<Child>&)>& meddle = {},
                       const std::function<void(CoordinatorOptions&)>& tweak = {}) {
  CoordinatorOptions o;
  o.config.nodes = nodes;
  o.config.phases = phases;
  o.version = "test-1";
  o.timing.failure_timeout = 1500ms;
  o.timing.join_timeout = 10s;
  o.timing.phase_timeout = 20s;
  if (tweak) tweak(o);
  // Fork the nodes before the coordinator's event loop exists: a child
  // must not inherit a live kj loop.
  auto sock = listen_socket("127.0.0.1", 0);
  EXPECT_TRUE(sock.ok());
  g_listen_fd = o.listen_fd = sock->first;
  std::vector<Child> children = spawn(sock->second);
  if (meddle) meddle(children);
  o.on_event = [](const std::string& line) { std::fprintf(stderr, "coordinator: %s\n", line.c_str()); };
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_coordinator(o);
  Run run;
  run.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
  if (r.ok()) run.outcome = *r;
  for (auto& c : children) run.child_exits.push_back(wait_exit(c.pid));
  return run;
}

}  // namespace ssi::coord::testing
