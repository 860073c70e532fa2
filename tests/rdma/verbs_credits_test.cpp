// The verbs credit window on its own: immediate-data encoding, the rules,
// and a seeded model of two endpoints (random sends, deliveries and
// processing order) that checks no SEND ever finds no posted receive, no
// page slot is overwritten before it is consumed, and nothing deadlocks.
#include <deque>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "rdma/verbs_credits.hpp"

namespace ssi::rdma {
namespace {

TEST(VerbsImm, RoundTripsAndRejectsUnknownBits) {
  VerbsImm imm{1234, true, false, true};
  auto back = VerbsImm::decode(imm.encode());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->credits, 1234);
  EXPECT_TRUE(back->page);
  EXPECT_FALSE(back->update);
  EXPECT_TRUE(back->ack);
  EXPECT_EQ(VerbsImm::decode(1u << 20).error().code, Errc::kProtocol);
  EXPECT_EQ(VerbsImm::decode(VerbsImm{0, true, true, false}.encode()).error().code, Errc::kProtocol);
}

TEST(CreditWindow, DataTakesCreditsAndPeerSlotsRoundRobin) {
  CreditWindow w(/*my_buffers=*/8, /*peer_buffers=*/3);
  std::vector<std::uint32_t> slots;
  while (w.can_send_data()) slots.push_back(w.take_data(true).slot);
  EXPECT_EQ(slots, (std::vector<std::uint32_t>{0, 1, 2}));
  ASSERT_TRUE(w.on_receive(VerbsImm{2, false, true, false}.encode()).ok());  // an update returning 2
  EXPECT_EQ(w.credits(), 2u);
  EXPECT_EQ(w.take_data(false).slot, 0u);  // wraps
}

TEST(CreditWindow, ReturningMoreCreditsThanOwedIsAProtocolError) {
  CreditWindow w(4, 4);
  (void)w.take_data(false);
  auto r = w.on_receive(VerbsImm{2, false, true, false}.encode());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kProtocol);
  EXPECT_NE(r.error().message.find("returned 2 credits"), std::string::npos) << r.error().message;
}

TEST(CreditWindow, UpdateIsDueAtThresholdAndOnlyOneIsInFlight) {
  CreditWindow w(8, 8);  // threshold 2
  ASSERT_EQ(w.threshold(), 2u);
  auto in = w.on_receive(VerbsImm{}.encode());
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(in->slot, 0u);
  w.consumed();
  EXPECT_FALSE(w.take_update());  // owes 1 < 2
  ASSERT_TRUE(w.on_receive(VerbsImm{}.encode()).ok());
  w.consumed();
  auto u = w.take_update();
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->update);
  EXPECT_EQ(u->credits, 2);
  EXPECT_EQ(w.owed(), 0u);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(w.on_receive(VerbsImm{}.encode()).ok());
    w.consumed();
  }
  EXPECT_FALSE(w.take_update()) << "a second update while the first is not acked";
  ASSERT_TRUE(w.on_receive(VerbsImm{0, false, false, true}.encode()).ok());  // the ack
  w.consumed();
  auto u2 = w.take_update();
  ASSERT_TRUE(u2);
  EXPECT_EQ(u2->credits, 4);
}

TEST(CreditWindow, DataPiggybacksOwedCreditsAndTheAck) {
  CreditWindow w(8, 8);
  ASSERT_TRUE(w.on_receive(VerbsImm{}.encode()).ok());
  w.consumed();
  ASSERT_TRUE(w.on_receive(VerbsImm{0, false, true, false}.encode()).ok());  // peer's update
  auto d = w.take_data(false);
  EXPECT_EQ(d.imm.credits, 1);
  EXPECT_TRUE(d.imm.ack);
  EXPECT_EQ(w.owed(), 0u);
  EXPECT_FALSE(w.take_data(false).imm.ack);  // acked once
}

TEST(CreditWindow, AckWithoutAnUpdateIsAProtocolError) {
  CreditWindow w(4, 4);
  EXPECT_EQ(w.on_receive(VerbsImm{0, false, false, true}.encode()).error().code, Errc::kProtocol);
}

// Two endpoints exchanging data messages in a random interleaving of
// sends, wire deliveries (which consume a posted receive, as RC does) and
// receiver processing (which reposts the buffer and may send an update).
struct Endpoint {
  CreditWindow window;
  std::uint32_t buffers;      // R we offer
  std::uint32_t posted;       // receives posted now
  std::uint64_t to_send;      // data messages still to send
  std::vector<bool> slot_busy;  // our page slots holding an unconsumed page
  struct Msg {
    std::uint32_t imm;
    std::uint32_t slot;
    bool update;
  };
  std::deque<Msg> wire_in;   // sent to us, not yet arrived
  std::deque<Msg> arrived;   // arrived (consumed a receive), not processed
  std::uint64_t processed = 0;
};

::testing::AssertionResult run_model(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](std::uint64_t lo, std::uint64_t hi) { return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng); };
  auto ra = static_cast<std::uint32_t>(pick(2, 9)), rb = static_cast<std::uint32_t>(pick(2, 9));
  Endpoint e[2] = {{CreditWindow(ra, rb), ra, ra + 1, pick(0, 300), std::vector<bool>(ra), {}, {}},
                   {CreditWindow(rb, ra), rb, rb + 1, pick(0, 300), std::vector<bool>(rb), {}, {}}};
  const std::uint64_t total = e[0].to_send + e[1].to_send;
  std::uint64_t data_processed = 0;
  for (std::uint64_t step = 0; step < 1'000'000; ++step) {
    std::vector<int> actions;  // 0/1 send, 2/3 deliver, 4/5 process (by endpoint)
    for (int i = 0; i < 2; ++i) {
      if (e[i].to_send > 0 && e[i].window.can_send_data()) actions.push_back(i);
      if (!e[i].wire_in.empty()) actions.push_back(2 + i);
      if (!e[i].arrived.empty()) actions.push_back(4 + i);
    }
    if (actions.empty()) {
      if (data_processed == total) return ::testing::AssertionSuccess();
      return ::testing::AssertionFailure() << "deadlock after " << step << " steps: " << data_processed << " of "
                                           << total << " data messages processed (R " << ra << "/" << rb << ")";
    }
    int a = actions[pick(0, actions.size() - 1)];
    Endpoint& me = e[a % 2];
    Endpoint& other = e[1 - a % 2];
    if (a < 2) {  // send a data message to `other`
      bool page = pick(0, 1);
      auto d = me.window.take_data(page);
      if (page) {
        if (other.slot_busy[d.slot]) return ::testing::AssertionFailure() << "slot " << d.slot << " overwritten";
        other.slot_busy[d.slot] = true;
      }
      other.wire_in.push_back({d.imm.encode(), d.slot, false});
      --me.to_send;
    } else if (a < 4) {  // the head of the wire into `me` arrives
      if (me.posted == 0) return ::testing::AssertionFailure() << "SEND found no posted receive (RNR)";
      --me.posted;
      me.arrived.push_back(me.wire_in.front());
      me.wire_in.pop_front();
    } else {  // `me` processes an arrived message
      auto m = me.arrived.front();
      me.arrived.pop_front();
      auto in = me.window.on_receive(m.imm);
      if (!in.ok()) return ::testing::AssertionFailure() << in.error().to_string();
      ++me.posted;
      if (!in->imm.update) {
        if (in->slot != m.slot) return ::testing::AssertionFailure() << "slot " << in->slot << " != " << m.slot;
        me.slot_busy[in->slot] = false;
        me.window.consumed();
        ++data_processed;
      }
      if (auto u = me.window.take_update()) other.wire_in.push_back({u->encode(), 0, true});
    }
  }
  return ::testing::AssertionFailure() << "did not finish in 1e6 steps";
}

TEST(CreditWindow, RandomSchedulesNeverOverrunReceivesSlotsOrDeadlock) {
  std::uint64_t base = std::random_device{}();
  for (std::uint64_t i = 0; i < 300; ++i) {
    ASSERT_TRUE(run_model(base + i)) << "seed " << base + i;
  }
}

}  // namespace
}  // namespace ssi::rdma
