// VerbsTransport over the soft RC fabric, beyond the contract suite: which
// path data takes, zero copy from registered memory, a tiny credit window,
// bad input from a peer, rkey violations, QP errors, simultaneous dials,
// and the factory with and without a device.
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>
#include <cstring>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "rdma/codec.hpp"
#include "rdma/fiber_test_util.hpp"
#include "rdma/soft_rc.hpp"
#include "rdma/verbs_transport.hpp"

namespace ssi::rdma::testing {
namespace {

using namespace std::chrono_literals;
constexpr FrameType kData = 0xf101;
constexpr FrameType kEcho = 0xf102;

struct Down {
  NodeId peer;
  Error why;
};

// Two (or more) verbs nodes on one reactor over one soft RC network.
class VerbsSoftTest : public ::testing::Test {
 protected:
  void SetUp() override { reactor_ = std::move(Reactor::create().value()); }

  Result<void> add_nodes(std::size_t n, VerbsTransportOptions options = {}) {
    for (std::size_t i = 0; i < n; ++i) {
      auto id = static_cast<std::uint32_t>(nodes_.size());
      SSI_ASSIGN_OR_RETURN(auto fabric, net_.make_fabric(fmt::format("soft{}", id)));
      fabrics_.push_back(fabric.get());
      TransportConfig config;
      config.self = NodeId{id};
      // BadAddressesAreClearErrors redials a refusing port until this runs
      // out; the error names the refusal however late the last answer comes.
      config.connect_timeout = 500ms;
      SSI_ASSIGN_OR_RETURN(auto t, VerbsTransport::create(config, std::move(fabric), *reactor_, options));
      downs_.emplace_back();
      t->on_peer_down([this, id](NodeId p, const Error& e) { downs_[id].push_back({p, e}); });
      nodes_.push_back(std::move(t));
    }
    return ok();
  }
  Result<void> link(std::size_t a, std::size_t b) {
    return nodes_[a]->connect(nodes_[b]->self(), nodes_[b]->local_address());
  }
  void serve_echo(std::size_t i) {
    Transport* t = nodes_[i].get();
    t->on_receive([t](Frame&& f) {
      Frame r = Frame::make(kEcho, f.header.arg0 + 1);
      r.payload = std::move(f.payload);
      (void)t->reply(f.header, std::move(r));
    });
  }
  // Runs `body` on the reactor (bounded), then shuts every node down.
  void run(const std::function<void()>& body, std::chrono::milliseconds timeout = 30s) {
    run_bounded(*reactor_, [&] {
      body();
      for (auto& t : nodes_) {
        t->on_receive({});
        t->on_peer_down({});
        t->shutdown();
      }
    }, timeout);
    nodes_.clear();
  }
  bool saw_down(std::size_t node, NodeId peer) {
    return eventually([&] {
      for (auto& d : downs_[node]) if (d.peer == peer) return true;
      return false;
    });
  }

  SoftRcNetwork net_;
  std::unique_ptr<Reactor> reactor_;
  std::vector<SoftRcFabric*> fabrics_;
  std::vector<std::unique_ptr<VerbsTransport>> nodes_;
  std::vector<std::vector<Down>> downs_;
};

TEST_F(VerbsSoftTest, PagesGoByRdmaWriteAndSmallPayloadsInline) {
  run([&] {
    ASSERT_TRUE(add_nodes(2).ok());
    ASSERT_TRUE(link(1, 0).ok());
    std::vector<Frame> got;
    nodes_[0]->on_receive([&](Frame&& f) { got.push_back(std::move(f)); });
    const auto writes = net_.writes();
    std::vector<std::byte> page(kMaxPayload, std::byte{0x3c}), small(100, std::byte{0x7e});
    for (int i = 0; i < 5; ++i) {
      Frame f = Frame::make(kData, i);
      f.payload = Payload::borrow(i % 2 ? small : page);
      ASSERT_TRUE(nodes_[1]->send(NodeId{0}, std::move(f)).ok());
    }
    ASSERT_TRUE(eventually([&] { return got.size() == 5; }));
    EXPECT_EQ(net_.writes() - writes, 3u) << "the three pages, and only they, were RDMA-written";
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(got[i].header.arg0, std::uint64_t(i));
      auto& want = i % 2 ? small : page;
      ASSERT_EQ(got[i].payload.size(), want.size());
      EXPECT_EQ(std::memcmp(got[i].payload.bytes().data(), want.data(), want.size()), 0);
    }
  });
}

TEST_F(VerbsSoftTest, PagesFromRegisteredMemoryAreWrittenInPlace) {
  run([&] {
    ASSERT_TRUE(add_nodes(2).ok());
    std::vector<std::byte> guest(4 * kMaxPayload, std::byte{0x11});
    ASSERT_TRUE(nodes_[1]->register_memory(guest).ok());
    EXPECT_EQ(nodes_[1]->register_memory(std::span(guest).subspan(100, 10)).error().code, Errc::kInvalidArgument);
    ASSERT_TRUE(link(1, 0).ok());
    std::vector<Frame> got;
    nodes_[0]->on_receive([&](Frame&& f) { got.push_back(std::move(f)); });
    Frame f = Frame::make(kData);
    f.payload = Payload::borrow(std::span(guest).subspan(2 * kMaxPayload, kMaxPayload));
    ASSERT_TRUE(nodes_[1]->send(NodeId{0}, std::move(f)).ok());
    EXPECT_EQ(net_.last_write_source(), guest.data() + 2 * kMaxPayload) << "no staging copy";
    std::fill(guest.begin(), guest.end(), std::byte{0x22});  // free again once send() returned
    ASSERT_TRUE(eventually([&] { return got.size() == 1; }));
    for (std::byte b : got[0].payload.bytes()) ASSERT_EQ(b, std::byte{0x11});
  });
}

// Two credits per direction (one update in flight): any slip in the credit
// accounting makes the fake fail a SEND with "receiver not ready".
TEST_F(VerbsSoftTest, TinyCreditWindowCarriesTrafficBothWaysInOrder) {
  run([&] {
    VerbsTransportOptions options;
    options.buffers = 2;
    ASSERT_TRUE(add_nodes(2, options).ok());
    ASSERT_TRUE(link(0, 1).ok());
    constexpr std::uint64_t kFrames = 3000;
    std::vector<std::uint64_t> next(2, 0);
    std::uint64_t bad = 0;
    for (std::size_t i = 0; i < 2; ++i)
      nodes_[i]->on_receive([&, i](Frame&& f) {
        bad += f.header.arg0 != next[i]++ || f.payload.size() != (f.header.arg0 % 3 ? 0 : kMaxPayload);
      });
    std::vector<boost::fibers::fiber> senders;
    for (std::size_t s = 0; s < 2; ++s)
      senders.emplace_back([&, s] {
        std::vector<std::byte> page(kMaxPayload);
        for (std::uint64_t i = 0; i < kFrames; ++i) {
          Frame f = Frame::make(kData, i);
          if (i % 3 == 0) f.payload = Payload::borrow(page);
          auto r = nodes_[s]->send(NodeId{static_cast<std::uint32_t>(1 - s)}, std::move(f));
          ASSERT_TRUE(r.ok()) << r.error().to_string();
        }
      });
    for (auto& f : senders) f.join();
    ASSERT_TRUE(eventually([&] { return next[0] == kFrames && next[1] == kFrames; }, 20s))
        << next[0] << " " << next[1];
    EXPECT_EQ(bad, 0u);
    EXPECT_TRUE(downs_[0].empty() && downs_[1].empty()) << downs_[0].front().why.to_string();
  });
}

struct Malformed {
  const char* what;
  std::vector<std::byte> bytes;
  Errc code;
  const char* message;
};

std::vector<Malformed> malformed() {
  auto header = [](auto mutate) {
    FrameHeader h;
    h.type = kData;
    h.src = 1;
    h.dst = 0;
    mutate(h);
    auto b = encode_header(h);
    return std::vector<std::byte>(b.begin(), b.end());
  };
  std::vector<Malformed> v;
  v.push_back({"shorter than a header", std::vector<std::byte>(10), Errc::kProtocol, "shorter than a frame header"});
  v.push_back({"payload announced but missing", header([](FrameHeader& h) { h.payload_len = 100; }), Errc::kProtocol,
               "announces 100 payload bytes"});
  v.push_back({"spoofed source", header([](FrameHeader& h) { h.src = 7; }), Errc::kProtocol, "a frame 7 -> 0"});
  v.push_back({"bad magic", header([](FrameHeader& h) { h.magic = 1; }), Errc::kProtocol, "bad frame magic"});
  v.push_back({"a hello after the handshake", header([](FrameHeader& h) { h.type = kFrameHello; }), Errc::kProtocol,
               "hello on an established connection"});
  return v;
}

TEST_F(VerbsSoftTest, MalformedMessageDropsTheConnectionWithAClearError) {
  run([&] {
    ASSERT_TRUE(add_nodes(2).ok());
    serve_echo(0);
    for (const auto& m : malformed()) {
      SCOPED_TRACE(m.what);
      downs_[0].clear();
      downs_[1].clear();
      ASSERT_TRUE(link(1, 0).ok());
      ASSERT_TRUE(nodes_[1]->send_raw(NodeId{0}, m.bytes).ok());
      ASSERT_TRUE(saw_down(0, NodeId{1})) << "node 0 kept the connection";
      const Error& e = downs_[0].front().why;
      EXPECT_EQ(e.code, m.code) << e.to_string();
      EXPECT_NE(e.message.find(m.message), std::string::npos) << e.to_string();
      ASSERT_TRUE(saw_down(1, NodeId{0})) << "node 1 was not told";
      // Both nodes are fine: they connect again and talk.
      ASSERT_TRUE(link(1, 0).ok());
      auto r = nodes_[1]->rpc(NodeId{0}, Frame::make(kEcho, 1), 5s);
      ASSERT_TRUE(r.ok()) << r.error().to_string();
      EXPECT_EQ(r->header.arg0, 2u);
    }
  });
}

TEST_F(VerbsSoftTest, RkeyViolationDropsTheConnectionAndFailsPendingRpcs) {
  run([&] {
    ASSERT_TRUE(add_nodes(2).ok());
    ASSERT_TRUE(link(1, 0).ok());
    fabrics_[0]->set_remote_access(false);  // node 0's slots refuse remote writes
    std::vector<std::byte> page(kMaxPayload);
    Frame req = Frame::make(kEcho);
    req.payload = Payload::borrow(page);
    auto r = nodes_[1]->rpc(NodeId{0}, std::move(req), 10s);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::kDisconnected) << r.error().to_string();
    ASSERT_TRUE(saw_down(1, NodeId{0}));
    const Error& e = downs_[1].front().why;
    EXPECT_EQ(e.code, Errc::kProtocol) << e.to_string();
    EXPECT_NE(e.message.find("rkey"), std::string::npos) << e.to_string();
    EXPECT_TRUE(saw_down(0, NodeId{1}));
  });
}

TEST_F(VerbsSoftTest, QpErrorIsReportedOnBothSidesAndTheNodesReconnect) {
  run([&] {
    ASSERT_TRUE(add_nodes(2).ok());
    serve_echo(0);
    ASSERT_TRUE(link(1, 0).ok());
    auto qpn = nodes_[0]->qpn_of(NodeId{1});
    ASSERT_TRUE(qpn);
    ASSERT_TRUE(net_.fail_qp(*qpn));
    ASSERT_TRUE(saw_down(0, NodeId{1}));
    EXPECT_EQ(downs_[0].front().why.code, Errc::kDisconnected);
    EXPECT_NE(downs_[0].front().why.message.find("flushed"), std::string::npos) << downs_[0].front().why.to_string();
    ASSERT_TRUE(saw_down(1, NodeId{0}));
    ASSERT_TRUE(link(1, 0).ok());
    auto r = nodes_[1]->rpc(NodeId{0}, Frame::make(kEcho, 5), 5s);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_NE(nodes_[0]->qpn_of(NodeId{1}), qpn) << "a new QP";
  });
}

// The NIC of node 0 dies while its process (and so its side channels)
// lives on: the failed work requests alone must bring the connections down.
TEST_F(VerbsSoftTest, NicFailureAloneFailsPendingRpcsAndIsReported) {
  run([&] {
    ASSERT_TRUE(add_nodes(3).ok());
    ASSERT_TRUE(link(1, 0).ok());
    ASSERT_TRUE(link(2, 0).ok());
    std::optional<Result<Frame>> pending;
    boost::fibers::fiber caller([&] { pending.emplace(nodes_[1]->rpc(NodeId{0}, Frame::make(kData), 20s)); });
    boost::this_fiber::sleep_for(10ms);
    net_.kill(*fabrics_[0]);
    ASSERT_TRUE(eventually([&] { return pending.has_value(); })) << "the pending rpc never failed";
    caller.join();
    ASSERT_FALSE(pending->ok());
    EXPECT_EQ(pending->error().code, Errc::kDisconnected) << pending->error().to_string();
    EXPECT_TRUE(saw_down(1, NodeId{0}));
    EXPECT_TRUE(saw_down(2, NodeId{0}));
    ASSERT_TRUE(saw_down(0, NodeId{1}));
    EXPECT_NE(downs_[0].front().why.message.find("flushed"), std::string::npos) << downs_[0].front().why.to_string();
  });
}

TEST_F(VerbsSoftTest, SimultaneousDialsSettleOnOneQueuePairPerPeer) {
  run([&] {
    ASSERT_TRUE(add_nodes(2).ok());
    serve_echo(0);
    serve_echo(1);
    std::vector<Result<void>> results(2, ok());
    boost::fibers::fiber a([&] { results[0] = link(0, 1); });
    boost::fibers::fiber b([&] { results[1] = link(1, 0); });
    a.join();
    b.join();
    ASSERT_TRUE(results[0].ok()) << results[0].error().to_string();
    ASSERT_TRUE(results[1].ok()) << results[1].error().to_string();
    for (std::size_t i = 0; i < 2; ++i) {
      auto r = nodes_[i]->rpc(NodeId{static_cast<std::uint32_t>(1 - i)}, Frame::make(kEcho, i), 5s);
      ASSERT_TRUE(r.ok()) << r.error().to_string();
    }
    EXPECT_TRUE(eventually([&] { return net_.live_qps() == 2; })) << net_.live_qps() << " QPs alive";
  });
}

TEST_F(VerbsSoftTest, BadAddressesAreClearErrors) {
  run([&] {
    ASSERT_TRUE(add_nodes(1).ok());
    auto bad = nodes_[0]->connect(NodeId{5}, "tcp:127.0.0.1:1");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, Errc::kInvalidArgument);
    auto nobody = nodes_[0]->connect(NodeId{5}, "verbs:127.0.0.1:1");
    ASSERT_FALSE(nobody.ok());
    EXPECT_EQ(nobody.error().sys_errno, ECONNREFUSED) << nobody.error().to_string();
  });
}

TEST(VerbsFactory, WithoutADeviceMakeTransportIsUnsupportedWithTheReason) {
  if (rdma_device_count() > 0) GTEST_SKIP() << "an RDMA device is present; this checks the no-device path";
  auto reactor = Reactor::create();
  ASSERT_TRUE(reactor.ok());
  TransportConfig config;
  config.kind = "verbs";
  auto t = make_transport(config, **reactor);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, Errc::kUnsupported);
  EXPECT_EQ(t.error().message.rfind("verbs transport: no RDMA device: ", 0), 0u) << t.error().message;
}

TEST(VerbsFactory, WithADeviceMakeTransportBuildsTheVerbsTransport) {
  if (rdma_device_count() == 0) GTEST_SKIP() << "no RDMA device (ibv_get_device_list found none)";
  auto reactor = Reactor::create();
  ASSERT_TRUE(reactor.ok());
  TransportConfig config;
  config.kind = "verbs";
  auto t = make_transport(config, **reactor);
  ASSERT_TRUE(t.ok()) << t.error().to_string();
  EXPECT_EQ((*t)->kind(), "verbs");
  EXPECT_EQ((*t)->local_address().rfind("verbs:127.0.0.1:", 0), 0u) << (*t)->local_address();
}

}  // namespace
}  // namespace ssi::rdma::testing
