// The lab's link emulator: departure times (delay, rate, jitter, FIFO),
// tail drop, and the switch's MAC learning / flooding.
#include <gtest/gtest.h>

#include "link_queue.hpp"
#include "switch_table.hpp"

namespace ssi::lab {
namespace {

std::vector<std::byte> frame(std::size_t n) { return std::vector<std::byte>(n); }

TEST(LinkQueueTest, DelayOnlyDepartsAfterTheDelay) {
  LinkQueue q({.delay_ns = 100'000}, 1);
  ASSERT_TRUE(q.push(1'000, frame(100)));
  EXPECT_EQ(q.next_departure(), 101'000u);
  EXPECT_FALSE(q.due(100'999));
  EXPECT_TRUE(q.due(101'000));
  EXPECT_EQ(q.pop().bytes.size(), 100u);
  EXPECT_TRUE(q.empty());
}

TEST(LinkQueueTest, RateSerialisesBackToBackFrames) {
  // 1 Gbit/s: 1250 bytes take 10 us on the wire.
  LinkQueue q({.delay_ns = 5'000, .rate_gbit = 1.0}, 1);
  ASSERT_TRUE(q.push(0, frame(1250)));
  ASSERT_TRUE(q.push(0, frame(1250)));
  EXPECT_EQ(q.pop().depart_ns, 15'000u);
  EXPECT_EQ(q.pop().depart_ns, 25'000u);
  // An idle wire does not bank credit.
  ASSERT_TRUE(q.push(1'000'000, frame(1250)));
  EXPECT_EQ(q.pop().depart_ns, 1'015'000u);
}

TEST(LinkQueueTest, JitterStaysInBoundsAndNeverReorders) {
  LinkQueue q({.delay_ns = 50'000, .jitter_ns = 20'000}, 42);
  std::uint64_t last = 0;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    ASSERT_TRUE(q.push(i * 1'000, frame(64)));
    auto f = q.pop();
    EXPECT_GE(f.depart_ns, last);
    EXPECT_GE(f.depart_ns, i * 1'000 + 30'000 > last ? std::min(i * 1'000 + 30'000, f.depart_ns) : last);
    EXPECT_LE(f.depart_ns, std::max(last, i * 1'000 + 70'000));
    last = f.depart_ns;
  }
}

TEST(LinkQueueTest, TailDropsBeyondTheQueueLimit) {
  LinkQueue q({.delay_ns = 1'000'000, .queue_limit_bytes = 3000}, 1);
  EXPECT_TRUE(q.push(0, frame(1500)));
  EXPECT_TRUE(q.push(0, frame(1500)));
  EXPECT_FALSE(q.push(0, frame(1)));
  EXPECT_EQ(q.drops(), 1u);
  EXPECT_EQ(q.queued_bytes(), 3000u);
  q.pop();
  EXPECT_TRUE(q.push(0, frame(1)));
}

std::vector<std::byte> eth(std::uint8_t dst, std::uint8_t src) {
  std::vector<std::byte> f(60);
  for (int i = 0; i < 6; ++i) {
    f[i] = std::byte{dst == 0xff ? std::uint8_t{0xff} : std::uint8_t{0x02}};
    f[6 + i] = std::byte{0x02};
  }
  if (dst != 0xff) f[5] = std::byte{dst};
  f[11] = std::byte{src};
  return f;
}

TEST(SwitchTableTest, FloodsUnknownAndBroadcastThenLearns) {
  SwitchTable t(3);
  EXPECT_EQ(t.route(0, eth(0xff, 1)), (std::vector<std::size_t>{1, 2}));  // broadcast
  EXPECT_EQ(t.route(1, eth(1, 2)), (std::vector<std::size_t>{0}));        // learned: 1 is on port 0
  EXPECT_EQ(t.route(0, eth(2, 1)), (std::vector<std::size_t>{1}));        // and 2 on port 1
  EXPECT_EQ(t.route(2, eth(9, 3)), (std::vector<std::size_t>{0, 1}));     // unknown: flood
  EXPECT_TRUE(t.route(0, eth(1, 1)).empty());                             // same port: drop
  EXPECT_TRUE(t.route(0, std::vector<std::byte>(10)).empty());            // runt
}

}  // namespace
}  // namespace ssi::lab
