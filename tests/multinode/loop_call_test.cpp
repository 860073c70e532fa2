// LoopCalls: a plain thread calls into a reactor and gets the answer
// without polling; cancel_all() wakes a waiter whose operation is still
// running; calls after it return at once.
#include <gtest/gtest.h>

#include <boost/fiber/operations.hpp>

#include <chrono>
#include <thread>

#include "multinode/loop_call.hpp"
#include "rdma/reactor.hpp"

namespace ssi::multinode {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class LoopCallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = rdma::Reactor::create();
    ASSERT_TRUE(r.ok());
    reactor = std::move(*r);
    loop = std::thread([this] { reactor->run(); });
    while (!reactor->running()) std::this_thread::sleep_for(1ms);
  }
  void TearDown() override {
    reactor->stop();
    loop.join();
  }
  LoopCalls::Post post() {
    return [this](LoopCalls::Task t) { reactor->post(std::move(t)); };
  }
  std::unique_ptr<rdma::Reactor> reactor;
  std::thread loop;
  LoopCalls calls;
};

TEST_F(LoopCallTest, ReturnsTheOperationsResultFromTheLoopThread) {
  std::thread::id ran_on;
  auto r = calls.call<int>(post(), [&]() -> Result<int> {
    ran_on = std::this_thread::get_id();
    boost::this_fiber::sleep_for(5ms);  // a fiber: may wait without blocking the loop
    return 7;
  });
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->ok());
  EXPECT_EQ(**r, 7);
  EXPECT_EQ(ran_on, loop.get_id());
  auto e = calls.call<void>(post(), []() -> Result<void> {
    return make_error(Errc::kTimeout, "peer silent");
  });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->error().code, Errc::kTimeout);
}

TEST_F(LoopCallTest, ManyThreadsCallConcurrently) {
  std::vector<std::thread> ts;
  std::atomic<int> sum{0};
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto r = calls.call<int>(post(), [t, i]() -> Result<int> { return t * 1000 + i; });
        if (r && r->ok() && **r == t * 1000 + i) sum.fetch_add(1);
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(sum.load(), 800);
}

TEST_F(LoopCallTest, CancelWakesAWaiterAtOnceAndLaterCallsReturnNothing) {
  std::atomic<bool> release{false};
  Clock::time_point woke{};
  std::thread waiter([&] {
    auto r = calls.call<int>(post(), [&]() -> Result<int> {
      // Bounded: a peer that answers only after the caller gave up.
      for (int i = 0; i < 2000 && !release.load(); ++i) boost::this_fiber::sleep_for(1ms);
      return 1;
    });
    woke = Clock::now();
    EXPECT_FALSE(r.has_value());
  });
  std::this_thread::sleep_for(50ms);  // the waiter is blocked in call()
  auto cancelled_at = Clock::now();
  calls.cancel_all();
  waiter.join();
  EXPECT_LT(woke - cancelled_at, 200ms) << "the waiter was not woken by the cancel";
  release.store(true);
  bool ran = false;
  auto r = calls.call<int>(post(), [&]() -> Result<int> {
    ran = true;
    return 2;
  });
  EXPECT_FALSE(r.has_value());
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace ssi::multinode
