#include "rdma/reactor.hpp"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>
#include <thread>

#include "rdma/fiber_test_util.hpp"
#include "base/unique_fd.hpp"

namespace ssi::rdma {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::run_bounded;

long cpu_us(const rusage& u) {
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000L + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

std::unique_ptr<Reactor> make() {
  auto r = Reactor::create();
  EXPECT_TRUE(r.ok());
  return std::move(*r);
}

TEST(Reactor, RunsMainFiberAndStops) {
  auto reactor = make();
  bool ran = false;
  run_bounded(*reactor, [&] {
    EXPECT_TRUE(reactor->on_reactor_thread());
    ran = true;
  }, 5s);
  EXPECT_TRUE(ran);
  EXPECT_FALSE(reactor->running());
}

TEST(Reactor, PostFromAnotherThreadRunsOnReactor) {
  auto reactor = make();
  std::atomic<int> count{0};
  run_bounded(*reactor, [&] {
    std::thread t([&] {
      for (int i = 0; i < 1000; ++i)
        reactor->post([&] {
          EXPECT_TRUE(reactor->on_reactor_thread());
          ++count;
        });
    });
    EXPECT_TRUE(eventually([&] { return count == 1000; }, 5s));
    t.join();
  }, 10s);
  EXPECT_EQ(count, 1000);
}

TEST(Reactor, StopFromAnotherThreadEndsIdleRun) {
  auto reactor = make();
  std::thread stopper([&] {
    std::this_thread::sleep_for(50ms);
    reactor->stop();
  });
  auto start = std::chrono::steady_clock::now();
  reactor->run();
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(Reactor, WatchedFdWakesAFiberLevelTriggered) {
  auto reactor = make();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd rd(fds[0]), wr(fds[1]);
  std::string got;
  run_bounded(*reactor, [&] {
    auto r = reactor->watch(rd.get(), EPOLLIN, [&](std::uint32_t) {
      char buf[2];  // read less than available: level-triggered must call again
      auto n = ::read(rd.get(), buf, 1);
      if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    });
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    ASSERT_EQ(::write(wr.get(), "hello", 5), 5);
    EXPECT_TRUE(eventually([&] { return got == "hello"; }, 5s)) << got;
    reactor->unwatch(rd.get());
  }, 10s);
}

TEST(Reactor, SleepingFiberWakesOnTimeWithoutBurningCpu) {
  auto reactor = make();
  rusage before{}, after{};
  std::chrono::steady_clock::duration slept{};
  run_bounded(*reactor, [&] {
    ::getrusage(RUSAGE_THREAD, &before);
    auto start = std::chrono::steady_clock::now();
    boost::this_fiber::sleep_for(200ms);
    slept = std::chrono::steady_clock::now() - start;
    ::getrusage(RUSAGE_THREAD, &after);
  }, 5s);
  EXPECT_GE(slept, 200ms);
  EXPECT_LT(slept, 400ms);
  EXPECT_LT(cpu_us(after) - cpu_us(before), 50000) << "the reactor spun instead of sleeping";
}

TEST(Reactor, SpinningReactorStillWakesOnFdsAndSleepsWhenIdle) {
  ReactorOptions options;
  options.spin = std::chrono::microseconds(50);
  auto reactor = Reactor::create(options).value();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd rd(fds[0]), wr(fds[1]);
  rusage before{}, after{};
  int fired = 0;
  run_bounded(*reactor, [&] {
    ASSERT_TRUE(reactor->watch(rd.get(), EPOLLIN, [&](std::uint32_t) {
      char c;
      fired += ::read(rd.get(), &c, 1) == 1;
    }).ok());
    std::thread writer([&] {
      for (int i = 0; i < 20; ++i) {
        std::this_thread::sleep_for(1ms);
        (void)!::write(wr.get(), "x", 1);
      }
    });
    EXPECT_TRUE(eventually([&] { return fired == 20; }, 5s));
    writer.join();
    ::getrusage(RUSAGE_THREAD, &before);
    boost::this_fiber::sleep_for(200ms);
    ::getrusage(RUSAGE_THREAD, &after);
    reactor->unwatch(rd.get());
  }, 10s);
  EXPECT_EQ(fired, 20);
  EXPECT_LT(cpu_us(after) - cpu_us(before), 50000) << "spin must stay bounded while idle";
}

TEST(Reactor, BusyFibersDoNotStarveFdEvents) {
  auto reactor = make();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd rd(fds[0]), wr(fds[1]);
  bool fired = false, stop = false;
  run_bounded(*reactor, [&] {
    boost::fibers::fiber busy([&] {
      while (!stop) boost::this_fiber::yield();  // always ready
    });
    ASSERT_TRUE(reactor->watch(rd.get(), EPOLLIN, [&](std::uint32_t) {
      char c;
      (void)!::read(rd.get(), &c, 1);
      fired = true;
    }).ok());
    ASSERT_EQ(::write(wr.get(), "x", 1), 1);
    auto until = std::chrono::steady_clock::now() + 5s;
    while (!fired && std::chrono::steady_clock::now() < until) boost::this_fiber::yield();
    stop = true;
    busy.join();
    EXPECT_TRUE(fired);
    reactor->unwatch(rd.get());
  }, 10s);
}

TEST(Reactor, CanRunTwiceOnOneThread) {
  for (int i = 0; i < 2; ++i) {
    auto reactor = make();
    int n = 0;
    run_bounded(*reactor, [&] {
      boost::this_fiber::sleep_for(1ms);
      ++n;
    }, 5s);
    EXPECT_EQ(n, 1);
  }
}

}  // namespace
}  // namespace ssi::rdma
