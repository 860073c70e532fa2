// ShmRing on its own: records, wrap-around, back-pressure, corrupt input and
// the sleep/wake handshake, in one process and across fork().
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "rdma/shm_memory.hpp"
#include "rdma/shm_ring.hpp"

namespace ssi::rdma {
namespace {

using Bytes = std::vector<std::byte>;

Bytes pattern(std::size_t n, std::uint32_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = std::byte(static_cast<std::uint8_t>(seed * 31 + i));
  return b;
}

struct RingPair {
  SharedMemory mem;
  ShmRing producer;
  ShmRing consumer;
};

RingPair make_ring(ShmRing::Layout layout) {
  auto mem = SharedMemory::create("ring-test", ShmRing::bytes_needed(layout));
  EXPECT_TRUE(mem.ok()) << mem.error().to_string();
  auto p = ShmRing::create(mem->bytes(), layout);
  EXPECT_TRUE(p.ok()) << p.error().to_string();
  auto c = ShmRing::attach(mem->bytes());
  EXPECT_TRUE(c.ok()) << c.error().to_string();
  return {std::move(mem).value(), *p, *c};
}

std::optional<Bytes> pop_one(ShmRing& r) {
  auto rec = r.peek();
  EXPECT_TRUE(rec.ok()) << rec.error().to_string();
  if (!rec.ok() || !rec->has_value()) return std::nullopt;
  Bytes out((*rec)->begin(), (*rec)->end());
  r.pop();
  return out;
}

TEST(ShmRing, DeliversRecordsInOrderWithGatheredParts) {
  auto r = make_ring({4, 256});
  Bytes a = pattern(10, 1), b = pattern(100, 2);
  ASSERT_EQ(r.producer.try_push({a, b}), ShmRing::Push::kPushed);
  ASSERT_EQ(r.producer.try_push({b}), ShmRing::Push::kPushed);
  auto first = pop_one(r.consumer);
  ASSERT_TRUE(first);
  Bytes ab = a;
  ab.insert(ab.end(), b.begin(), b.end());
  EXPECT_EQ(*first, ab);
  EXPECT_EQ(pop_one(r.consumer), b);
  EXPECT_FALSE(pop_one(r.consumer));
  EXPECT_TRUE(r.consumer.empty());
}

TEST(ShmRing, WrapsAroundManyTimesWithVaryingLengths) {
  auto r = make_ring({4, 4160});
  std::mt19937 rng(7);
  for (std::uint32_t i = 0; i < 1000; ++i) {
    std::size_t burst = 1 + rng() % 4;
    std::vector<Bytes> sent;
    for (std::size_t k = 0; k < burst; ++k) {
      sent.push_back(pattern(rng() % 4161, i * 8 + static_cast<std::uint32_t>(k)));
      ASSERT_EQ(r.producer.try_push({sent.back()}), ShmRing::Push::kPushed) << "i=" << i;
    }
    for (auto& s : sent) ASSERT_EQ(pop_one(r.consumer), s) << "i=" << i;
  }
}

TEST(ShmRing, FullRingRefusesUntilConsumerFreesASlot) {
  auto r = make_ring({8, 64});
  Bytes x = pattern(64, 3);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(r.producer.try_push({x}), ShmRing::Push::kPushed);
  EXPECT_TRUE(r.producer.full());
  EXPECT_EQ(r.producer.try_push({x}), ShmRing::Push::kFull);
  EXPECT_TRUE(r.producer.prepare_wait_for_space());  // announces: still full
  ASSERT_TRUE(pop_one(r.consumer));
  EXPECT_TRUE(r.consumer.take_waiting_producer());   // the consumer must ring
  EXPECT_FALSE(r.consumer.take_waiting_producer());  // ... exactly once
  EXPECT_EQ(r.producer.try_push({x}), ShmRing::Push::kPushed);
}

TEST(ShmRing, RejectsRecordLargerThanCapacity) {
  auto r = make_ring({4, 100});
  Bytes big = pattern(101, 1);
  EXPECT_EQ(r.producer.try_push({big}), ShmRing::Push::kTooLarge);
  Bytes half = pattern(60, 1);
  EXPECT_EQ(r.producer.try_push({half, half}), ShmRing::Push::kTooLarge);
  EXPECT_TRUE(r.consumer.empty());
}

TEST(ShmRing, CreateRejectsBadLayouts) {
  auto mem = SharedMemory::create("ring-test", 1 << 16);
  ASSERT_TRUE(mem.ok());
  EXPECT_EQ(ShmRing::create(mem->bytes(), {3, 64}).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(ShmRing::create(mem->bytes(), {0, 64}).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(ShmRing::create(mem->bytes(), {1024, 4096}).error().code, Errc::kInvalidArgument);
}

TEST(ShmRing, AttachRejectsGarbageHeader) {
  auto mem = SharedMemory::create("ring-test", 1 << 16);
  ASSERT_TRUE(mem.ok());
  std::memset(mem->bytes().data(), 0xab, 256);
  auto r = ShmRing::attach(mem->bytes());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kVersionMismatch);
  // A valid magic but a layout larger than the memory.
  ASSERT_TRUE(ShmRing::create(mem->bytes(), {4, 64}).ok());
  auto too_small = ShmRing::attach(mem->bytes().first(ShmRing::bytes_needed({4, 64}) - 64));
  ASSERT_FALSE(too_small.ok());
  EXPECT_EQ(too_small.error().code, Errc::kProtocol);
}

TEST(ShmRing, CorruptRecordLengthIsAProtocolError) {
  auto r = make_ring({4, 64});
  Bytes x = pattern(8, 1);
  ASSERT_EQ(r.producer.try_push({x}), ShmRing::Push::kPushed);
  // The first slot follows the control block; overwrite its length word.
  auto bytes = r.mem.bytes();
  std::uint32_t bogus = 1000;
  std::size_t first_slot = ShmRing::bytes_needed({4, 64}) - 4 * 128;
  std::memcpy(bytes.data() + first_slot, &bogus, sizeof bogus);
  auto rec = r.consumer.peek();
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().code, Errc::kProtocol);
}

TEST(ShmRing, SleepingConsumerIsWokenExactlyOnce) {
  auto r = make_ring({4, 64});
  EXPECT_FALSE(r.producer.take_sleeping_consumer());  // nobody sleeps yet
  ASSERT_TRUE(r.consumer.prepare_sleep());
  Bytes x = pattern(8, 1);
  ASSERT_EQ(r.producer.try_push({x}), ShmRing::Push::kPushed);
  EXPECT_TRUE(r.producer.take_sleeping_consumer());
  EXPECT_FALSE(r.producer.take_sleeping_consumer());
  // Data already there: the consumer must not go to sleep.
  EXPECT_FALSE(r.consumer.prepare_sleep());
  EXPECT_FALSE(r.producer.take_sleeping_consumer());
}

// Producer and consumer in two processes, both sleeping on doorbells; every
// wait is bounded so a lost wake-up fails instead of hanging.
TEST(ShmRing, CrossProcessStreamWithDoorbellsLosesNoWakeUp) {
  constexpr std::uint32_t kRecords = 20000;
  ShmRing::Layout layout{8, 512};
  auto r = make_ring(layout);
  auto data_bell = Doorbell::create();
  auto space_bell = Doorbell::create();
  ASSERT_TRUE(data_bell.ok() && space_bell.ok());
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int status = 0;
    for (std::uint32_t i = 0; i < kRecords && status == 0; ++i) {
      Bytes x = pattern(1 + i % 512, i);
      for (;;) {
        if (r.producer.try_push({x}) == ShmRing::Push::kPushed) break;
        if (r.producer.prepare_wait_for_space()) {
          auto woke = space_bell->wait(5000);
          if (!woke.ok() || !*woke) { status = 2; break; }
        }
      }
      if (r.producer.take_sleeping_consumer() && !data_bell->ring().ok()) status = 3;
    }
    ::_exit(status);
  }
  std::uint32_t got = 0;
  bool ok = true;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (got < kRecords && ok && std::chrono::steady_clock::now() < deadline) {
    auto rec = r.consumer.peek();
    ASSERT_TRUE(rec.ok()) << rec.error().to_string();
    if (rec->has_value()) {
      Bytes expect = pattern(1 + got % 512, got);
      ok = Bytes((*rec)->begin(), (*rec)->end()) == expect;
      r.consumer.pop();
      ++got;
      if (r.consumer.take_waiting_producer()) {
        ASSERT_TRUE(space_bell->ring().ok());
      }
      continue;
    }
    if (r.consumer.prepare_sleep()) {
      auto woke = data_bell->wait(5000);
      ASSERT_TRUE(woke.ok() && *woke) << "lost wake-up after record " << got;
      r.consumer.woke_up();
    }
  }
  EXPECT_TRUE(ok) << "record " << got << " corrupted";
  EXPECT_EQ(got, kRecords);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
}

}  // namespace
}  // namespace ssi::rdma
