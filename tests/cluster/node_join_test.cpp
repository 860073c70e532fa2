// `ssi node` on real hosts: launchers (ssh, srun) may start nodes before
// the coordinator listens, so a node keeps trying to reach it, with
// backoff, until its --join-timeout.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "ssi/subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using ssi::testing::run_process;

// A port nobody listens on right now.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST(NodeJoin, GivesUpAtTheDeadlineWithOneLineAndExitThree) {
  std::string at = "127.0.0.1:" + std::to_string(free_port());
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
  std::string port = std::to_string(free_port());
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

}  // namespace
