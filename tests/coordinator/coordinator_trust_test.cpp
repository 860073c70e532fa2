// The control plane under hostile or broken peers: wrong secrets, raw
// connections that never authenticate, a frozen coordinator, a frozen or
// briefly paused node, and a phase that finishes after the node gave up.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "base/unique_fd.hpp"
#include "machine_fixture.hpp"

namespace ssi::coord {
namespace {

using namespace testing;
using Clock = std::chrono::steady_clock;

// A blocking socket to 127.0.0.1:port with a receive timeout.
UniqueFd dial(std::uint16_t port, std::chrono::seconds recv_timeout) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{static_cast<time_t>(recv_timeout.count()), 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  return fd;
}

// Reads until EOF (true) or the receive timeout / an error (false).
bool closed_by_peer(int fd) {
  char buf[256];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

TEST(CoordinatorTrust, NodeWithAnotherSecretIsRefusedAndTheRightOneRuns) {
  auto secret = MachineSecret::generate();
  auto run = run_machine(
      1, 1,
      [&](std::uint16_t port) {
        return std::vector<Child>{
            spawn_node(port, 0, "test-1", 1ms, -1, 0ms, NodeTrust{MachineSecret::generate()}),
            spawn_node(port, 0, "test-1", 1ms, -1, 300ms, NodeTrust{secret})};
      },
      {}, [&](CoordinatorOptions& o) { o.secret = secret; });
  EXPECT_EQ(run.outcome.exit_code, 0) << run.outcome.message;
  EXPECT_EQ(run.child_exits, (std::vector<int>{2, 0})) << "another secret is a setup error: exit 2";
}

TEST(CoordinatorTrust, IdleAndGarbageConnectionsAreClosedAndTheMachineRuns) {
  bool idle_closed = false, garbage_closed = false;
  std::thread intruder;
  auto run = run_machine(
      1, 1,
      [](std::uint16_t port) { return std::vector<Child>{spawn_node(port, 0, "test-1", 4s)}; },
      [&](std::vector<Child>&) {},
      [&](CoordinatorOptions& o) {
        o.handshake_limit = 2s;
        o.on_listening = [&](std::uint16_t port) {
          intruder = std::thread([&, port] {
            UniqueFd idle = dial(port, std::chrono::seconds(6));
            UniqueFd garbage = dial(port, std::chrono::seconds(6));
            const char junk[] = "GET / HTTP/1.0\r\n\r\nmore bytes than a greeting";
            (void)::send(garbage.get(), junk, sizeof junk, MSG_NOSIGNAL);
            garbage_closed = closed_by_peer(garbage.get());
            idle_closed = closed_by_peer(idle.get());
          });
        };
      });
  intruder.join();
  EXPECT_EQ(run.outcome.exit_code, 0) << run.outcome.message;
  EXPECT_TRUE(garbage_closed) << "a connection sending garbage was kept open";
  EXPECT_TRUE(idle_closed) << "an idle unauthenticated connection was kept open past the handshake limit";
}

TEST(CoordinatorTrust, BrieflyPausedNodeSurvivesWithinTheDeadline) {
  auto run = run_machine(
      2, 1,
      [](std::uint16_t port) {
        return std::vector<Child>{spawn_node(port, 0, "test-1", 3s), spawn_node(port, 1, "test-1", 3s)};
      },
      [](std::vector<Child>& kids) {
        std::thread([pid = kids[1].pid] {
          std::this_thread::sleep_for(800ms);
          kill(pid, SIGSTOP);
          std::this_thread::sleep_for(2s);  // below the 3 s floor of both sides
          kill(pid, SIGCONT);
        }).detach();
      },
      [](CoordinatorOptions& o) { o.timing.failure_timeout = 3000ms; });
  EXPECT_EQ(run.outcome.exit_code, 0) << run.outcome.message;
  EXPECT_EQ(run.child_exits, (std::vector<int>{0, 0}));
}

TEST(CoordinatorTrust, FrozenNodeIsDeclaredDeadWithinTheDeadline) {
  auto run = run_machine(
      2, 1,
      [](std::uint16_t port) {
        return std::vector<Child>{spawn_node(port, 0, "test-1", 30s), spawn_node(port, 1, "test-1", 30s)};
      },
      [](std::vector<Child>& kids) {
        std::thread([pid = kids[1].pid] {
          std::this_thread::sleep_for(800ms);
          kill(pid, SIGSTOP);
          std::this_thread::sleep_for(5s);  // long after the verdict: end it
          kill(pid, SIGKILL);
        }).detach();
      });
  EXPECT_EQ(run.outcome.exit_code, 3);
  EXPECT_NE(run.outcome.message.find("node 1"), std::string::npos) << run.outcome.message;
  EXPECT_NE(run.outcome.message.find("no heartbeat"), std::string::npos) << run.outcome.message;
  EXPECT_LT(run.elapsed, 4500ms) << "floor 1.5 s after the freeze at 0.8 s";
  EXPECT_EQ(run.child_exits[0], 3);
}

// A coordinator in a child process, so the test can freeze it.
pid_t spawn_coordinator(int listen_fd, std::uint32_t nodes) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  CoordinatorOptions o;
  o.listen_fd = listen_fd;
  o.config.nodes = nodes;
  o.version = "test-1";
  auto r = run_coordinator(o);
  _exit(r.ok() ? r->exit_code : 2);
}

TEST(CoordinatorTrust, FrozenCoordinatorIsDetectedByItsNodesWithinTheDeadline) {
  auto sock = listen_socket("127.0.0.1", 0);
  ASSERT_TRUE(sock.ok());
  g_listen_fd = sock->first;
  // Node 0 joins and then waits for node 1, which never comes: pings flow.
  Child node = spawn_node(sock->second, 0, "test-1", 1ms, -1, 0ms, NodeTrust{{}, 2000ms});
  pid_t coordinator = spawn_coordinator(sock->first, 2);
  close(sock->first);
  std::this_thread::sleep_for(1s);
  kill(coordinator, SIGSTOP);
  auto frozen_at = Clock::now();
  int code = wait_exit(node.pid);
  auto detected_after = Clock::now() - frozen_at;
  kill(coordinator, SIGKILL);
  waitpid(coordinator, nullptr, 0);
  EXPECT_EQ(code, 3);
  EXPECT_LT(detected_after, 3500ms) << "floor 2 s";
  std::fprintf(stderr, "frozen coordinator detected after %lld ms\n",
               static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(detected_after).count()));
}

// A runtime whose phase ends long after run_node() gave up on the
// coordinator: the completion must not write into run_node()'s frame.
class LatePhaseRuntime final : public NodeRuntime {
 public:
  Result<void> configure(const MachineConfig&) override { return ok(); }
  void run_phase(std::uint32_t, Done done) override {
    std::thread([done = std::move(done)] {
      std::this_thread::sleep_for(2500ms);
      done(PhaseResult{0, "late", {{"filler", 1}}});
    }).detach();
  }
  void stop(const std::string&, bool) override {}
};

TEST(CoordinatorTrust, PhaseFinishingAfterTheCoordinatorIsLostIsHarmless) {
  auto sock = listen_socket("127.0.0.1", 0);
  ASSERT_TRUE(sock.ok());
  std::uint16_t port = sock->second;
  pid_t coordinator = spawn_coordinator(sock->first, 1);
  close(sock->first);
  pid_t node = fork();
  if (node == 0) {
    LatePhaseRuntime rt;
    NodeOptions o;
    o.coordinator = "127.0.0.1:" + std::to_string(port);
    o.info = NodeInfo{NodeId{0}, "localhost", "test-1", "loop:0", static_cast<std::uint32_t>(getpid()), {}};
    o.timing.failure_timeout = 1000ms;
    NodeExit e = run_node(o, rt);
    std::this_thread::sleep_for(3s);  // the phase thread finishes meanwhile
    std::vector<char> scribble(1 << 16, 'x');  // reuse the stack run_node() used
    _exit(e.exit_code + (scribble[100] == 'x' ? 0 : 1));
  }
  std::this_thread::sleep_for(800ms);  // joined, phase 0 running
  kill(coordinator, SIGKILL);
  waitpid(coordinator, nullptr, 0);
  EXPECT_EQ(wait_exit(node), 3) << "the node crashed instead of exiting 3";
}

}  // namespace
}  // namespace ssi::coord
