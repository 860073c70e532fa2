// `ssi node` on real hosts: launchers (ssh, srun) may start nodes before
// the coordinator listens, so a node keeps trying to reach it, with
// backoff, until its --join-timeout.
#include <gtest/gtest.h>

#include <cstdlib>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "ssi/free_port.hpp"
#include "ssi/subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using ssi::testing::run_process;

// The processes a test starts form one machine and share its secret, as the
// launchers arrange (docs/security.md); children inherit it.
const bool kMachineSecretSet = ::setenv("SSI_SECRET", std::string(64, 'a').c_str(), 1) == 0;

TEST(NodeJoin, GivesUpAtTheDeadlineWithOneLineAndExitThree) {
  std::string at = "127.0.0.1:" + std::to_string(ssi::testing::free_loopback_port());
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_process(SSI_BINARY, {"node", "--coordinator", at, "--id", "0", "--join-timeout", "1"},
                       {}, 30s);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_GE(took, 900ms) << "it must keep trying until the deadline";
  EXPECT_LT(took, 5s);
  EXPECT_EQ(r.err, "ssi: error: node 0: coordinator " + at +
                       " not reachable within 1 s: Connection refused\n");
}

TEST(NodeJoin, NodesStartedBeforeTheCoordinatorJoinIt) {
  std::string port = std::to_string(ssi::testing::free_loopback_port());
  auto node = [&](const char* id) {
    return std::async(std::launch::async, [=] {
      return run_process(SSI_BINARY, {"node", "--coordinator", "127.0.0.1:" + port, "--id", id}, {}, 60s);
    });
  };
  auto n0 = node("0"), n1 = node("1");
  std::this_thread::sleep_for(1500ms);  // both nodes are retrying by now
  auto c = run_process(SSI_BINARY, {"coordinator", "--listen", "127.0.0.1:" + port, "--nodes", "2",
                                    "--workload", "dsm-demo", "--rounds", "500"}, {}, 60s);
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("counter = 2000 (exact)"), std::string::npos) << c.out;
  EXPECT_EQ(n0.get().exit_code, 0);
  EXPECT_EQ(n1.get().exit_code, 0);
}

// `ssi node` in the background, stderr to a file.
struct NodeProcess {
  pid_t pid = -1;
  std::string err_path = ::testing::TempDir() + "ssi-node-" + std::to_string(getpid());
  explicit NodeProcess(const std::string& coordinator) {
    pid = fork();
    if (pid == 0) {
      int fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 2);
      execl(SSI_BINARY, SSI_BINARY, "node", "--coordinator", coordinator.c_str(), "--id", "0", nullptr);
      _exit(127);
    }
  }
  ~NodeProcess() {
    if (pid > 0 && kill(pid, SIGKILL) == 0) waitpid(pid, nullptr, 0);
    std::remove(err_path.c_str());
  }
  // SIGTERM, then the exit code (-1: still running after 5 s) and the time it took.
  std::pair<int, std::chrono::milliseconds> terminate() {
    auto t0 = std::chrono::steady_clock::now();
    kill(pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)};
      }
      std::this_thread::sleep_for(10ms);
    }
    return {-1, 5000ms};
  }
  std::string err() const {
    std::ifstream in(err_path);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }
};

TEST(NodeJoin, SigtermWhileWaitingForTheCoordinatorEndsTheNodeAtOnce) {
  NodeProcess node("127.0.0.1:" + std::to_string(ssi::testing::free_loopback_port()));
  std::this_thread::sleep_for(300ms);  // retrying to join
  auto [code, took] = node.terminate();
  EXPECT_EQ(code, 143);
  EXPECT_LT(took, 500ms);
  EXPECT_EQ(node.err(), "ssi: error: node 0: interrupted by SIGTERM while waiting for the coordinator\n");
}

// scancel signals every task: a joined node whose coordinator does not
// stop it (here it was not signalled) ends itself 1 s later, one line.
TEST(NodeJoin, SigtermedNodeThatTheCoordinatorDoesNotStopEndsAfterOneSecond) {
  std::string port = std::to_string(ssi::testing::free_loopback_port());
  auto coordinator = std::async(std::launch::async, [&] {
    return run_process(SSI_BINARY, {"coordinator", "--listen", "127.0.0.1:" + port, "--nodes", "2"}, {}, 10s);
  });
  NodeProcess node("127.0.0.1:" + port);
  std::this_thread::sleep_for(1000ms);  // joined; the coordinator waits for node 1
  auto [code, took] = node.terminate();
  EXPECT_EQ(code, 143);
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 2000ms);
  EXPECT_EQ(node.err(), "ssi node 0: SIGTERM and no stop from the coordinator within 1 s; exiting\n");
  coordinator.wait();  // it gives up after its own timeout (10 s here at most)
}

}  // namespace
