// ShmTransport between real processes: forked node processes, each with its
// own reactor, exchange rpcs with page payloads; a SIGKILLed node is seen as
// down within a bound. Every wait is bounded (watchdog, alarm, poll timeouts).
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "rdma/fiber_test_util.hpp"
#include "rdma/shm_transport.hpp"

namespace ssi::rdma {
namespace {

using namespace std::chrono_literals;
constexpr FrameType kEcho = 0xf010;
constexpr FrameType kQuit = 0xf011;
constexpr FrameType kStatus = 0xf012;  // reply arg0: 1 once the node's own rpcs ended, arg1: status
constexpr int kChildSeconds = 30;  // a child never outlives this (alarm)

std::vector<std::byte> page(std::uint64_t seed) {
  std::vector<std::byte> p(kMaxPayload);
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = std::byte(static_cast<std::uint8_t>(seed + i * 7));
  return p;
}

struct Child {
  pid_t pid = -1;
  std::string name;
};

// A node process: serves echo rpcs, rpcs every node in `peers` 50 times
// (checking the echoed page), answers kStatus, and exits on kQuit with 0,
// or 3 if a check failed. Other frame types are never answered.
[[noreturn]] void node_main(NodeId self, const std::string& name,
                            const std::vector<std::pair<NodeId, std::string>>& peers, int ready_fd) {
  ::alarm(kChildSeconds);
  auto reactor = Reactor::create();
  if (!reactor.ok()) ::_exit(10);
  int status = 0;
  bool done = false;
  std::unique_ptr<ShmTransport> transport;  // outlives the first fiber
  (*reactor)->run([&] {
    ShmOptions options;
    options.name = name;
    auto t = ShmTransport::create(self, **reactor, options);
    if (!t.ok()) {
      status = 11;
      (*reactor)->stop();
      return;
    }
    transport = std::move(*t);
    auto& tr = *transport;
    tr.on_receive([&](Frame&& f) {
      if (f.header.type == kQuit) {
        tr.shutdown();
        (*reactor)->stop();
        return;
      }
      if (f.header.type == kStatus) {
        (void)tr.reply(f.header, Frame::make(kStatus, done ? 1 : 0, status));
        return;
      }
      if (f.header.type != kEcho) return;
      Frame r = Frame::make(kEcho, f.header.arg0 + 1);
      r.payload = std::move(f.payload);
      if (!tr.reply(f.header, std::move(r)).ok()) status = 12;
    });
    char one = 1;
    if (::write(ready_fd, &one, 1) != 1) status = 13;
    for (auto& [peer, addr] : peers) {
      if (!tr.connect(peer, addr).ok()) status = 14;
      for (std::uint64_t i = 0; i < 50 && status == 0; ++i) {
        Frame req = Frame::make(kEcho, i);
        auto p = page(i + self.value());
        req.payload = Payload::borrow(p);
        auto r = tr.rpc(peer, std::move(req), 5s);
        if (!r.ok() || r->header.arg0 != i + 1 ||
            !std::equal(p.begin(), p.end(), r->payload.bytes().begin(), r->payload.bytes().end())) {
          status = 3;
        }
      }
    }
    done = true;  // now wait for kQuit (the handler stops the reactor)
  });
  ::_exit(status);
}

Child spawn_node(NodeId id, const std::vector<std::pair<NodeId, std::string>>& peers) {
  Child c;
  c.name = ShmListener::unique_name() + "-n" + std::to_string(id.value());
  int pipefd[2];
  if (::pipe(pipefd) != 0) return c;
  c.pid = ::fork();
  if (c.pid == 0) {
    ::close(pipefd[0]);
    node_main(id, c.name, peers, pipefd[1]);
  }
  ::close(pipefd[1]);
  pollfd p{pipefd[0], POLLIN, 0};
  char b = 0;
  if (::poll(&p, 1, 10000) != 1 || ::read(pipefd[0], &b, 1) != 1) {
    ::kill(c.pid, SIGKILL);
    ::waitpid(c.pid, nullptr, 0);
    c.pid = -1;
  }
  ::close(pipefd[0]);
  return c;
}

// waitpid with a deadline; SIGKILLs the child if it does not exit in time.
std::optional<int> reap(pid_t pid, std::chrono::milliseconds within) {
  auto until = std::chrono::steady_clock::now() + within;
  int status = 0;
  while (std::chrono::steady_clock::now() < until) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    ::usleep(2000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return std::nullopt;
}

TEST(ShmMultiProcess, ThreeNodeProcessesExchangePageRpcs) {
  Child n2 = spawn_node(NodeId{2}, {});
  ASSERT_GT(n2.pid, 0) << "node 2 did not start";
  Child n1 = spawn_node(NodeId{1}, {{NodeId{2}, "shm:" + n2.name}});
  ASSERT_GT(n1.pid, 0) << "node 1 did not start";
  auto reactor = Reactor::create();
  ASSERT_TRUE(reactor.ok());
  testing::run_bounded(**reactor, [&] {
    auto t = ShmTransport::create(NodeId{0}, **reactor);
    ASSERT_TRUE(t.ok()) << t.error().to_string();
    for (auto& [id, c] : {std::pair{NodeId{1}, &n1}, std::pair{NodeId{2}, &n2}}) {
      auto conn = (*t)->connect(id, "shm:" + c->name);
      ASSERT_TRUE(conn.ok()) << conn.error().to_string();
      for (std::uint64_t i = 0; i < 200; ++i) {
        Frame req = Frame::make(kEcho, i);
        auto p = page(i);
        req.payload = Payload::borrow(p);
        auto r = (*t)->rpc(id, std::move(req), 5s);
        ASSERT_TRUE(r.ok()) << "rpc " << i << " to node " << id.value() << ": "
                            << r.error().to_string();
        ASSERT_EQ(r->header.arg0, i + 1);
        ASSERT_TRUE(std::equal(p.begin(), p.end(), r->payload.bytes().begin(),
                               r->payload.bytes().end()));
      }
    }
    // Node 1 runs its own rpcs to node 2 meanwhile: node 2 stays until they end.
    ASSERT_TRUE(testing::eventually([&] {
      auto st = (*t)->rpc(NodeId{1}, Frame::make(kStatus), 1s);
      return st.ok() && st->header.arg0 == 1;
    }, 10s)) << "node 1 did not finish its rpcs to node 2";
    for (NodeId id : {NodeId{1}, NodeId{2}}) ASSERT_TRUE((*t)->send(id, Frame::make(kQuit)).ok());
    (*t)->shutdown();
  }, 30s, "ShmMultiProcess");
  for (Child* c : {&n1, &n2}) {
    auto st = reap(c->pid, 10s);
    ASSERT_TRUE(st.has_value()) << c->name << " did not exit";
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << c->name << " status " << *st;
  }
}

TEST(ShmMultiProcess, SigkilledNodeIsSeenDownQuicklyAndFailsPendingRpc) {
  Child n1 = spawn_node(NodeId{1}, {});
  ASSERT_GT(n1.pid, 0);
  auto reactor = Reactor::create();
  ASSERT_TRUE(reactor.ok());
  testing::run_bounded(**reactor, [&] {
    auto t = ShmTransport::create(NodeId{0}, **reactor);
    ASSERT_TRUE(t.ok());
    std::optional<std::chrono::steady_clock::time_point> down_at;
    std::optional<Error> why;
    (*t)->on_peer_down([&](NodeId p, const Error& e) {
      if (p == NodeId{1}) {
        down_at = std::chrono::steady_clock::now();
        why = e;
      }
    });
    auto c = (*t)->connect(NodeId{1}, "shm:" + n1.name);
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    ASSERT_TRUE((*t)->rpc(NodeId{1}, Frame::make(kEcho), 5s).ok());
    // An rpc the dead node will never answer: it must fail, not time out.
    std::optional<Result<Frame>> pending;
    boost::fibers::fiber caller([&] {
      pending.emplace((*t)->rpc(NodeId{1}, Frame::make(0xf0ff), 10s));
    });
    boost::this_fiber::sleep_for(20ms);
    auto killed_at = std::chrono::steady_clock::now();
    ASSERT_EQ(::kill(n1.pid, SIGKILL), 0);
    ASSERT_TRUE(testing::eventually([&] { return down_at.has_value(); }, 5s))
        << "node 1's death not reported within 5 s";
    auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(*down_at - killed_at);
    EXPECT_LT(delay, 500ms) << "peer down reported after " << delay.count() << " ms";
    EXPECT_EQ(why->code, Errc::kDisconnected) << why->to_string();
    caller.join();
    ASSERT_TRUE(pending.has_value());
    ASSERT_FALSE(pending->ok());
    EXPECT_EQ(pending->error().code, Errc::kDisconnected) << pending->error().to_string();
    EXPECT_FALSE((*t)->send(NodeId{1}, Frame::make(kEcho)).ok());
    (*t)->shutdown();
  }, 30s, "ShmMultiProcess");
  reap(n1.pid, 5s);
}

}  // namespace
}  // namespace ssi::rdma
