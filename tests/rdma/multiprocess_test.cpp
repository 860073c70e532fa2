// N node processes over 127.0.0.1 exchange rpcs; one is SIGKILLed and the
// others must report it down. Every wait is bounded.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include "base/unique_fd.hpp"

namespace ssi::rdma {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A child process running rdma_test_node, killed and reaped on destruction.
class NodeProcess {
 public:
  NodeProcess(int id, const std::string& kind) : id_(id) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      std::string ids = std::to_string(id);
      ::execl(SSI_TEST_NODE_BIN, SSI_TEST_NODE_BIN, ids.c_str(), kind.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    stdin_.reset(in[1]);
    stdout_.reset(out[0]);
  }
  ~NodeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool started() const { return pid_ > 0; }

  void send(const std::string& line) {
    std::string l = line + "\n";
    (void)!::write(stdin_.get(), l.data(), l.size());
  }

  // Next line starting with `prefix` (others are skipped), or nullopt on timeout/EOF.
  std::optional<std::string> expect(const std::string& prefix, std::chrono::milliseconds timeout) {
    auto until = Clock::now() + timeout;
    for (;;) {
      for (auto nl = buf_.find('\n'); nl != std::string::npos; nl = buf_.find('\n')) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        seen_ += line + " | ";
        if (line.rfind(prefix, 0) == 0) return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd p{stdout_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char tmp[1024];
      ssize_t n = ::read(stdout_.get(), tmp, sizeof tmp);
      if (n <= 0) return std::nullopt;
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

  void kill9() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // Waits (bounded) for a clean exit; returns the exit status or -1.
  int wait_exit(std::chrono::milliseconds timeout) {
    auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }

  const std::string& seen() const { return seen_; }
  int id() const { return id_; }

 private:
  int id_;
  pid_t pid_ = -1;
  UniqueFd stdin_, stdout_;
  std::string buf_, seen_;
};

TEST(TcpMultiProcess, RpcsFlowAndASigkilledNodeIsSeenDown) {
  constexpr int kNodes = 3;
  std::vector<std::unique_ptr<NodeProcess>> nodes;
  std::vector<std::string> addrs;
  for (int i = 0; i < kNodes; ++i) {
    nodes.push_back(std::make_unique<NodeProcess>(i, "tcp"));
    ASSERT_TRUE(nodes.back()->started());
  }
  for (auto& n : nodes) {
    auto a = n->expect("ADDR ", 10s);
    ASSERT_TRUE(a) << "node " << n->id() << " said: " << n->seen();
    addrs.push_back(a->substr(5));
  }
  for (auto& n : nodes) {
    for (int j = 0; j < kNodes; ++j)
      if (j != n->id()) n->send("PEER " + std::to_string(j) + " " + addrs[j]);
    n->send("GO");
  }
  for (auto& n : nodes) {
    auto r = n->expect("RPCS_", 30s);
    ASSERT_TRUE(r) << "node " << n->id() << " said: " << n->seen();
    EXPECT_EQ(r->rfind("RPCS_OK " + std::to_string(200 * (kNodes - 1)) + " ", 0), 0u) << *r;
    std::cout << "[ measured ] node " << n->id() << ": " << *r << " (4 KiB rpcs, all nodes at once)\n";
  }
  auto start = Clock::now();
  nodes[2]->kill9();
  for (int i = 0; i < 2; ++i) {
    auto d = nodes[i]->expect("DOWN 2", 5s);
    ASSERT_TRUE(d) << "node " << i << " said: " << nodes[i]->seen();
    EXPECT_EQ(*d, "DOWN 2 disconnected");
  }
  auto took = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  std::cout << "[ measured ] peer death seen by both survivors after " << took << " ms\n";
  for (int i = 0; i < 2; ++i) {
    nodes[i]->send("QUIT");
    EXPECT_EQ(nodes[i]->wait_exit(10s), 0) << "node " << i << " did not exit cleanly";
  }
}

}  // namespace
}  // namespace ssi::rdma
