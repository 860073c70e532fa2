// The transport contract: every backend must pass these (UCX uct_test idea).
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>
#include <cstdlib>
#include <iostream>
#include <random>

#include "cluster_fixture.hpp"
#include "rdma/codec.hpp"
#include "rdma/fiber_test_util.hpp"

namespace ssi::rdma::testing {

using namespace std::chrono_literals;
namespace bf = boost::fibers;

constexpr FrameType kSeq = 0xf001;     // one-way, arg0 = sequence number
constexpr FrameType kEcho = 0xf002;    // answered with arg0 + 1 and the same payload
constexpr FrameType kSilent = 0xf003;  // never answered

void TransportContract::SetUp() {
  fixture_ = GetParam().make();
  if (auto why = fixture_->skip_reason(); !why.empty()) GTEST_SKIP() << why;
  const char* env = std::getenv("SSI_TEST_SEED");
  seed_ = env ? std::strtoull(env, nullptr, 0) : std::random_device{}();
  std::cout << "[ seed     ] SSI_TEST_SEED=" << seed_ << " backend=" << GetParam().name << "\n";
}

void TransportContract::run(std::size_t n, const std::function<void(Nodes&)>& body,
                            std::chrono::milliseconds timeout) {
  SCOPED_TRACE(::testing::Message() << "SSI_TEST_SEED=" << seed_);
  auto reactor = Reactor::create();
  ASSERT_TRUE(reactor.ok()) << reactor.error().to_string();
  Nodes nodes;
  run_bounded(**reactor, [&] {
    auto built = fixture_->build(n, **reactor, seed_);
    if (!built.ok()) {
      ADD_FAILURE() << "building " << n << " nodes: " << built.error().to_string();
      return;
    }
    nodes = std::move(*built);
    body(nodes);
    // The handlers point into body's frame, which is gone now.
    for (auto& t : nodes) {
      t->on_receive({});
      t->on_peer_down({});
    }
    for (auto& t : nodes) t->shutdown();
  }, timeout, fmt::format("backend={} SSI_TEST_SEED={}", GetParam().name, seed_));
  nodes.clear();
}

namespace {

void serve_echo(Transport& t) {
  t.on_receive([&t](Frame&& f) {
    if (f.header.type != kEcho) return;
    Frame r = Frame::make(kEcho, f.header.arg0 + 1);
    r.payload = std::move(f.payload);
    EXPECT_TRUE(t.reply(f.header, std::move(r)).ok());
  });
}

}  // namespace

TEST_P(TransportContract, FramesArriveInOrderPerPeerPair) {
  run(3, [&](Nodes& nodes) {
    constexpr std::uint64_t kPerSender = 2000;
    std::vector<std::vector<std::uint64_t>> got(3);
    nodes[0]->on_receive([&](Frame&& f) { got.at(f.header.src).push_back(f.header.arg0); });
    std::vector<bf::fiber> senders;
    for (std::size_t s : {1, 2}) {
      senders.emplace_back([&, s] {
        for (std::uint64_t i = 0; i < kPerSender; ++i) {
          auto r = nodes[s]->send(NodeId{0}, Frame::make(kSeq, i));
          ASSERT_TRUE(r.ok()) << r.error().to_string();
          if (i % 32 == 0) boost::this_fiber::yield();  // interleave the two senders
        }
      });
    }
    for (auto& f : senders) f.join();
    ASSERT_TRUE(eventually([&] { return got[1].size() == kPerSender && got[2].size() == kPerSender; }, 20s))
        << got[1].size() << " and " << got[2].size() << " of " << kPerSender;
    for (std::size_t s : {1, 2})
      for (std::uint64_t i = 0; i < kPerSender; ++i)
        ASSERT_EQ(got[s][i], i) << "from node " << s;
  });
}

TEST_P(TransportContract, LargeBurstOfPagePayloadsArrivesIntact) {
  run(2, [&](Nodes& nodes) {
    constexpr std::uint64_t kFrames = 10000;
    std::uint64_t received = 0, bad = 0;
    nodes[0]->on_receive([&](Frame&& f) {
      const auto expect = static_cast<std::byte>((f.header.arg0 * 7) & 0xff);
      bool good = f.header.arg0 == received && f.payload.size() == kMaxPayload;
      for (std::byte b : f.payload.bytes()) good = good && b == expect;
      bad += !good;
      ++received;
    });
    std::vector<std::byte> page(kMaxPayload);
    for (std::uint64_t i = 0; i < kFrames; ++i) {
      std::fill(page.begin(), page.end(), static_cast<std::byte>((i * 7) & 0xff));
      Frame f = Frame::make(kSeq, i);
      f.payload = Payload::borrow(page);  // must be safe to reuse once send() returns
      auto r = nodes[1]->send(NodeId{0}, std::move(f));
      ASSERT_TRUE(r.ok()) << "frame " << i << ": " << r.error().to_string();
    }
    ASSERT_TRUE(eventually([&] { return received == kFrames; }, 30s)) << received << " of " << kFrames;
    EXPECT_EQ(bad, 0u);
  });
}

TEST_P(TransportContract, ConcurrentRpcsFromManyFibers) {
  run(3, [&](Nodes& nodes) {
    serve_echo(*nodes[0]);
    serve_echo(*nodes[2]);
    constexpr int kFibers = 50, kRpcsEach = 40;
    int wrong = 0, failed = 0;
    std::string first_error;
    std::vector<bf::fiber> callers;
    for (int c = 0; c < kFibers; ++c) {
      callers.emplace_back([&, c] {
        std::vector<std::byte> page(c % 2 ? kMaxPayload : 0, static_cast<std::byte>(c));
        for (int i = 0; i < kRpcsEach; ++i) {
          NodeId to{i % 2 ? 2u : 0u};
          Frame req = Frame::make(kEcho, std::uint64_t(c) * 1000 + i);
          req.payload = Payload::borrow(page);
          auto r = nodes[1]->rpc(to, std::move(req), 10s);
          if (!r.ok()) {
            if (failed++ == 0) first_error = r.error().to_string();
            continue;
          }
          bool good = r->header.arg0 == std::uint64_t(c) * 1000 + i + 1 && r->src() == to &&
                      r->payload.size() == page.size();
          for (std::byte b : r->payload.bytes()) good = good && b == static_cast<std::byte>(c);
          wrong += !good;
        }
      });
    }
    for (auto& f : callers) f.join();
    EXPECT_EQ(failed, 0) << first_error;
    EXPECT_EQ(wrong, 0);
  });
}

// Correctness of back-to-back rpcs, and the round trip it took (printed, so
// a regression is visible in the log; the benchmarks hold the real numbers).
TEST_P(TransportContract, SequentialRpcsEchoPagesAndReportRoundTrip) {
  run(2, [&](Nodes& nodes) {
    serve_echo(*nodes[0]);
    for (std::size_t size : {std::size_t{0}, kMaxPayload}) {
      std::vector<std::byte> page(size, std::byte{0x5a});
      constexpr int kRpcs = 2000;
      int good = 0;
      auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < kRpcs; ++i) {
        Frame req = Frame::make(kEcho, i);
        req.payload = Payload::borrow(page);
        auto r = nodes[1]->rpc(NodeId{0}, std::move(req), 5s);
        good += r.ok() && r->header.arg0 == std::uint64_t(i) + 1 && r->payload.size() == size;
      }
      auto us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
      EXPECT_EQ(good, kRpcs);
      std::cout << "[ measured ] " << GetParam().name << " rpc round trip, " << size
                << " B payload: " << us / kRpcs << " us (mean of " << kRpcs << ", one thread)\n";
    }
  });
}

TEST_P(TransportContract, RoutesFramesByTypeRangeWithAllFourArguments) {
  run(2, [&](Nodes& nodes) {
    constexpr FrameRange kMine{0xf100, 0xf1ff};
    int routed = 0, fallback = 0, bad_args = 0;
    ASSERT_TRUE(nodes[0]->route(kMine, [&](Frame&& f) {
      ++routed;
      const auto& h = f.header;
      bad_args += h.arg0 != 1 || h.arg1 != 2 || h.arg2 != ~0ull || h.arg3 != h.type;
    }).ok());
    nodes[0]->on_receive([&](Frame&&) { ++fallback; });
    // Overlapping or transport-internal ranges are refused.
    EXPECT_EQ(nodes[0]->route({0xf1ff, 0xf200}, [](Frame&&) {}).error().code, Errc::kInvalidArgument);
    EXPECT_EQ(nodes[0]->route({0x0001, 0x0100}, [](Frame&&) {}).error().code, Errc::kInvalidArgument);
    auto send = [&](FrameType t) {
      ASSERT_TRUE(nodes[1]->send(NodeId{0}, Frame::make(t, 1, 2, ~0ull, t)).ok());
    };
    for (FrameType t : {0xf100, 0xf1ff, 0xf200, 0xf0ff}) send(t);
    ASSERT_TRUE(eventually([&] { return routed + fallback == 4; }, 10s));
    EXPECT_EQ(routed, 2);
    EXPECT_EQ(bad_args, 0);
    nodes[0]->unroute(kMine);
    send(0xf150);
    ASSERT_TRUE(eventually([&] { return fallback == 3; }, 10s));
    EXPECT_EQ(routed, 2);
  });
}

TEST_P(TransportContract, RpcTimesOutWithoutReplyAndTransportStaysUsable) {
  run(2, [&](Nodes& nodes) {
    serve_echo(*nodes[0]);  // ignores kSilent
    auto start = std::chrono::steady_clock::now();
    auto r = nodes[1]->rpc(NodeId{0}, Frame::make(kSilent), 100ms);
    auto took = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::kTimeout) << r.error().to_string();
    EXPECT_GE(took, 100ms);
    EXPECT_LT(took, 2s);
    auto again = nodes[1]->rpc(NodeId{0}, Frame::make(kEcho, 41), 5s);
    ASSERT_TRUE(again.ok()) << again.error().to_string();
    EXPECT_EQ(again->header.arg0, 42u);
  });
}

TEST_P(TransportContract, PeerDeathFailsPendingRpcsAndIsReported) {
  run(3, [&](Nodes& nodes) {
    serve_echo(*nodes[2]);
    std::vector<std::pair<NodeId, Errc>> down1, down2;
    nodes[1]->on_peer_down([&](NodeId p, const Error& e) { down1.emplace_back(p, e.code); });
    nodes[2]->on_peer_down([&](NodeId p, const Error& e) { down2.emplace_back(p, e.code); });
    std::optional<Result<Frame>> pending;
    bf::fiber caller([&] { pending.emplace(nodes[1]->rpc(NodeId{0}, Frame::make(kSilent), 20s)); });
    boost::this_fiber::sleep_for(20ms);  // the request is in flight
    auto start = std::chrono::steady_clock::now();
    fixture_->kill(0, nodes);
    ASSERT_TRUE(eventually([&] { return pending.has_value(); }, 10s)) << "pending rpc never failed";
    caller.join();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    ASSERT_FALSE(pending->ok());
    EXPECT_EQ(pending->error().code, Errc::kDisconnected) << pending->error().to_string();
    ASSERT_TRUE(eventually([&] { return !down1.empty() && !down2.empty(); }, 10s));
    EXPECT_EQ(down1.front().first, NodeId{0});
    EXPECT_EQ(down2.front().first, NodeId{0});
    auto r = nodes[1]->rpc(NodeId{2}, Frame::make(kEcho, 1), 5s);
    EXPECT_TRUE(r.ok()) << "survivors still talk: " << r.error().to_string();
  });
}

TEST_P(TransportContract, ShutdownFailsPendingRpcsAndEndsCleanly) {
  run(2, [&](Nodes& nodes) {
    std::vector<NodeId> down0;
    nodes[0]->on_peer_down([&](NodeId p, const Error&) { down0.push_back(p); });
    std::optional<Result<Frame>> pending;
    bf::fiber caller([&] { pending.emplace(nodes[1]->rpc(NodeId{0}, Frame::make(kSilent), 20s)); });
    boost::this_fiber::sleep_for(20ms);
    nodes[1]->shutdown();
    ASSERT_TRUE(eventually([&] { return pending.has_value(); }, 5s));
    caller.join();
    ASSERT_FALSE(pending->ok());
    EXPECT_EQ(pending->error().code, Errc::kShutdown) << pending->error().to_string();
    auto s = nodes[1]->send(NodeId{0}, Frame::make(kSeq));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, Errc::kShutdown);
    EXPECT_TRUE(eventually([&] { return !down0.empty(); }, 5s)) << "node 0 never saw node 1 leave";
  }, 20s);
}

struct BadInput {
  std::string what;
  std::vector<std::byte> bytes;
  Errc expect;
};

std::vector<BadInput> bad_inputs() {
  auto frame = [](auto mutate) {
    FrameHeader h;
    h.type = kSeq;
    mutate(h);
    auto b = encode_header(h);
    return std::vector<std::byte>(b.begin(), b.end());
  };
  std::vector<BadInput> v;
  v.push_back({"bad magic", frame([](FrameHeader& h) { h.magic = 0xdeadbeef; }), Errc::kProtocol});
  v.push_back({"wrong version", frame([](FrameHeader& h) { h.version = 7; }), Errc::kVersionMismatch});
  v.push_back({"oversized payload", frame([](FrameHeader& h) { h.payload_len = 1 << 20; }), Errc::kProtocol});
  v.push_back({"unknown flags", frame([](FrameHeader& h) { h.flags = 0x80; }), Errc::kProtocol});
  v.push_back({"type 0", frame([](FrameHeader& h) { h.type = 0; }), Errc::kProtocol});
  v.push_back({"unknown internal type", frame([](FrameHeader& h) { h.type = 0x42; }), Errc::kProtocol});
  auto truncated = frame([](FrameHeader& h) { h.payload_len = 100; });
  truncated.resize(kHeaderSize + 10);
  v.push_back({"truncated frame", truncated, Errc::kDisconnected});
  return v;
}

TEST_P(TransportContract, BadInputDropsTheStreamAndKeepsServing) {
  run(2, [&](Nodes& nodes) {
    serve_echo(*nodes[0]);
    std::vector<std::pair<NodeId, Error>> down;
    nodes[0]->on_peer_down([&](NodeId p, const Error& e) { down.emplace_back(p, e); });
    std::uint32_t fake = 100;
    for (const auto& bad : bad_inputs()) {
      SCOPED_TRACE(bad.what);
      NodeId id{fake++};
      auto r = fixture_->inject_raw(0, id, bad.bytes);
      if (!r.ok() && r.error().code == Errc::kUnsupported) GTEST_SKIP() << r.error().to_string();
      ASSERT_TRUE(r.ok()) << r.error().to_string();
      auto seen = [&] {
        for (auto& [p, e] : down) if (p == id) return true;
        return false;
      };
      ASSERT_TRUE(eventually(seen, 5s)) << "node 0 did not drop the bad stream";
      for (auto& [p, e] : down) {
        if (p == id) {
          EXPECT_EQ(e.code, bad.expect) << e.to_string();
        }
      }
      auto alive = nodes[1]->rpc(NodeId{0}, Frame::make(kEcho, 1), 5s);
      ASSERT_TRUE(alive.ok()) << "node 0 stopped serving: " << alive.error().to_string();
    }
  });
}

}  // namespace ssi::rdma::testing
