// ShmTransport behaviour beyond the contract suite: both sides connecting
// at once, rejected connections, address checks, polling before sleep.
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "rdma/fiber_test_util.hpp"
#include "rdma/shm_transport.hpp"

namespace ssi::rdma {
namespace {

using namespace std::chrono_literals;
constexpr FrameType kSeq = 0xf030;

// Runs `body` on a fresh reactor with two shm nodes (0 and 1).
void with_two_nodes(ShmOptions options,
                    const std::function<void(ShmTransport&, ShmTransport&)>& body) {
  auto reactor = Reactor::create();
  ASSERT_TRUE(reactor.ok());
  testing::run_bounded(**reactor, [&] {
    auto a = ShmTransport::create(NodeId{0}, **reactor, options);
    auto b = ShmTransport::create(NodeId{1}, **reactor, options);
    ASSERT_TRUE(a.ok() && b.ok());
    body(**a, **b);
    (*a)->shutdown();
    (*b)->shutdown();
  }, 30s, "ShmTransportTest");
}

// Both nodes connect before either accepts: two channels per pair. Each side
// sends on its own, so every direction stays in order.
TEST(ShmTransport, SimultaneousConnectsKeepPerDirectionOrder) {
  with_two_nodes({}, [](ShmTransport& a, ShmTransport& b) {
    ASSERT_TRUE(a.connect(NodeId{1}, b.local_address()).ok());
    ASSERT_TRUE(b.connect(NodeId{0}, a.local_address()).ok());
    std::vector<std::uint64_t> at_a, at_b;
    a.on_receive([&](Frame&& f) { at_a.push_back(f.header.arg0); });
    b.on_receive([&](Frame&& f) { at_b.push_back(f.header.arg0); });
    constexpr std::uint64_t kN = 500;
    for (std::uint64_t i = 0; i < kN; ++i) {
      ASSERT_TRUE(a.send(NodeId{1}, Frame::make(kSeq, i)).ok());
      ASSERT_TRUE(b.send(NodeId{0}, Frame::make(kSeq, i)).ok());
    }
    ASSERT_TRUE(testing::eventually([&] { return at_a.size() == kN && at_b.size() == kN; }, 10s))
        << at_a.size() << " / " << at_b.size();
    for (std::uint64_t i = 0; i < kN; ++i) {
      ASSERT_EQ(at_a[i], i);
      ASSERT_EQ(at_b[i], i);
    }
  });
}

TEST(ShmTransport, ConnectionToTheWrongNodeIsReportedDown) {
  with_two_nodes({}, [](ShmTransport& a, ShmTransport& b) {
    std::optional<Error> why;
    a.on_peer_down([&](NodeId p, const Error& e) {
      if (p == NodeId{5}) why = e;
    });
    // b is node 1, not node 5: it refuses, and a learns it asynchronously.
    ASSERT_TRUE(a.connect(NodeId{5}, b.local_address()).ok());
    ASSERT_TRUE(testing::eventually([&] { return why.has_value(); }, 5s));
    EXPECT_EQ(why->code, Errc::kProtocol) << why->to_string();
    EXPECT_FALSE(a.connected(NodeId{5}));
    EXPECT_FALSE(b.connected(NodeId{0}));
    auto s = a.send(NodeId{5}, Frame::make(kSeq));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, Errc::kDisconnected);
  });
}

TEST(ShmTransport, RejectsAddressesOfOtherBackendsAndAbsentListeners) {
  with_two_nodes({}, [](ShmTransport& a, ShmTransport&) {
    auto tcp = a.connect(NodeId{1}, "tcp:127.0.0.1:80");
    ASSERT_FALSE(tcp.ok());
    EXPECT_EQ(tcp.error().code, Errc::kInvalidArgument);
    auto absent = a.connect(NodeId{1}, "shm:" + ShmListener::unique_name());
    ASSERT_FALSE(absent.ok());
    EXPECT_EQ(absent.error().sys_errno, ECONNREFUSED);
  });
}

// With a poll window the receive path keeps working (and falls asleep again
// afterwards: a later frame still arrives via the doorbell).
TEST(ShmTransport, PollingBeforeSleepDeliversAndStillWakesLater) {
  ShmOptions options;
  options.spin = std::chrono::microseconds(200);
  with_two_nodes(options, [](ShmTransport& a, ShmTransport& b) {
    ASSERT_TRUE(a.connect(NodeId{1}, b.local_address()).ok());
    std::vector<std::uint64_t> got;
    b.on_receive([&](Frame&& f) { got.push_back(f.header.arg0); });
    for (std::uint64_t i = 0; i < 100; ++i)
      ASSERT_TRUE(a.send(NodeId{1}, Frame::make(kSeq, i)).ok());
    ASSERT_TRUE(testing::eventually([&] { return got.size() == 100; }, 5s));
    boost::this_fiber::sleep_for(20ms);  // well past the poll window: b sleeps
    ASSERT_TRUE(a.send(NodeId{1}, Frame::make(kSeq, 100)).ok());
    ASSERT_TRUE(testing::eventually([&] { return got.size() == 101; }, 5s));
    EXPECT_EQ(got.back(), 100u);
  });
}

}  // namespace
}  // namespace ssi::rdma
