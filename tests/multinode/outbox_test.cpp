// Outbox: frames queued from many threads leave for their peer in each
// thread's order, without the senders waiting for the reactor; a full
// queue makes a sender wait, and cancel() releases it and drops the rest.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "multinode/outbox.hpp"
#include "rdma/loopback.hpp"
#include "rdma/reactor.hpp"

namespace ssi::multinode {
namespace {

using namespace std::chrono_literals;
constexpr rdma::FrameType kTestFrame = 0xf0a1;

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    reactor = rdma::Reactor::create().value();
    loop = std::thread([this] { reactor->run(); });
    on_reactor([this] {
      for (std::uint32_t i = 0; i < 2; ++i) nodes.push_back(net.create(NodeId{i}, *reactor).value());
      nodes[0]->on_receive([this](rdma::Frame&& f) {
        std::lock_guard lock(mu);
        got.emplace_back(f.header.arg0, f.header.arg1);
      });
    });
  }
  void TearDown() override {
    on_reactor([this] {
      nodes[0]->on_receive({});
      nodes.clear();
    });
    reactor->stop();
    loop.join();
  }
  void on_reactor(std::function<void()> fn) {
    std::promise<void> done;
    reactor->post([&] {
      fn();
      done.set_value();
    });
    ASSERT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
  }
  std::size_t received() {
    std::lock_guard lock(mu);
    return got.size();
  }

  std::unique_ptr<rdma::Reactor> reactor;
  std::thread loop;
  rdma::LoopbackNetwork net{1};
  std::vector<std::unique_ptr<rdma::LoopbackTransport>> nodes;
  std::mutex mu;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> got;  // (thread, sequence)
};

TEST_F(OutboxTest, FramesFromManyThreadsLeaveInEachThreadsOrder) {
  constexpr std::uint64_t kThreads = 3, kEach = 2000;
  Outbox outbox(*reactor, *nodes[1]);
  std::atomic<int> errors{0};
  std::vector<std::thread> senders;
  for (std::uint64_t t = 0; t < kThreads; ++t)
    senders.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < kEach; ++i)
        EXPECT_TRUE(outbox.send(NodeId{0}, rdma::Frame::make(kTestFrame, t, i),
                                [&](const Error&) { ++errors; }));
    });
  for (auto& s : senders) s.join();
  for (int i = 0; i < 1000 && received() < kThreads * kEach; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(received(), kThreads * kEach);
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(outbox.sent(), kThreads * kEach);
  std::vector<std::uint64_t> next(kThreads, 0);
  for (auto [t, i] : got) {
    ASSERT_LT(t, kThreads);
    EXPECT_EQ(i, next[t]) << "thread " << t << "'s frames out of order";
    next[t] = i + 1;
  }
}

TEST_F(OutboxTest, AFullQueueMakesTheSenderWaitAndCancelReleasesIt) {
  Outbox outbox(*reactor, *nodes[1]);
  // Hold the reactor thread: nothing drains while the sender fills the queue.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  reactor->post([released] { released.wait(); });
  std::atomic<std::size_t> queued{0};
  std::atomic<bool> last_result{true};
  std::thread sender([&] {
    for (std::size_t i = 0; i <= Outbox::kMaxQueued; ++i) {
      bool ok = outbox.send(NodeId{0}, rdma::Frame::make(kTestFrame, 0, i), {});
      if (!ok) {
        last_result = false;
        return;
      }
      ++queued;
    }
  });
  for (int i = 0; i < 500 && queued.load() < Outbox::kMaxQueued; ++i) std::this_thread::sleep_for(2ms);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(queued.load(), Outbox::kMaxQueued) << "the sender should wait for room";
  auto t0 = std::chrono::steady_clock::now();
  outbox.cancel();
  sender.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_FALSE(last_result.load());
  release.set_value();
  on_reactor([] {});  // the drain fiber ran after the release
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(received(), 0u) << "cancelled frames must not be sent";
  EXPECT_FALSE(outbox.send(NodeId{0}, rdma::Frame::make(kTestFrame), {}));
}

TEST_F(OutboxTest, OnlyTheLastUnsentFrameWithTheSameKeyAbsorbsANewOne) {
  Outbox outbox(*reactor, *nodes[1]);
  // Hold the reactor thread so that every frame below is still queued.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  reactor->post([released] { released.wait(); });
  constexpr std::uint64_t kNmiTo1 = 7, kNmiTo2 = 8;
  EXPECT_TRUE(outbox.send(NodeId{0}, rdma::Frame::make(kTestFrame, 0, 0), {}, kNmiTo1));
  EXPECT_TRUE(outbox.send(NodeId{0}, rdma::Frame::make(kTestFrame, 0, 1), {}, kNmiTo1));  // merged
  EXPECT_TRUE(outbox.send(NodeId{0}, rdma::Frame::make(kTestFrame, 0, 2), {}, kNmiTo2));
  EXPECT_TRUE(outbox.send(NodeId{0}, rdma::Frame::make(kTestFrame, 0, 3), {}, kNmiTo1));  // not last
  EXPECT_TRUE(outbox.send(NodeId{0}, rdma::Frame::make(kTestFrame, 0, 4), {}));           // no key
  EXPECT_TRUE(outbox.send(NodeId{0}, rdma::Frame::make(kTestFrame, 0, 5), {}));           // no key
  EXPECT_EQ(outbox.merged(), 1u);
  release.set_value();
  for (int i = 0; i < 500 && received() < 5; ++i) std::this_thread::sleep_for(2ms);
  ASSERT_EQ(received(), 5u);
  std::vector<std::uint64_t> order;
  for (auto [t, i] : got) order.push_back(i);
  EXPECT_EQ(order, (std::vector<std::uint64_t>{0, 2, 3, 4, 5}));
  // Once the first frame left, a frame with its key is queued again.
  EXPECT_TRUE(outbox.send(NodeId{0}, rdma::Frame::make(kTestFrame, 0, 6), {}, kNmiTo2));
  for (int i = 0; i < 500 && received() < 6; ++i) std::this_thread::sleep_for(2ms);
  EXPECT_EQ(received(), 6u);
  EXPECT_EQ(outbox.sent(), 6u);
}

}  // namespace
}  // namespace ssi::multinode
