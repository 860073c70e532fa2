// Helpers for tests that run fibers on a Reactor: a bounded run, a bounded
// wait for a condition, a fiber latch.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <boost/fiber/operations.hpp>

#include "rdma/reactor.hpp"

namespace ssi::rdma::testing {

// Runs `body` as the first fiber of `reactor` on this thread and stops the
// reactor when it returns. A body still running after `timeout` is a hang:
// prints `context` (e.g. the seed) and exits the process with status 2,
// because a blocked fiber cannot be cancelled.
inline void run_bounded(Reactor& reactor, std::function<void()> body,
                        std::chrono::milliseconds timeout, std::string context = {}) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, timeout, [&] { return done; })) {
      std::fprintf(stderr, "HANG: test body did not finish within %lld ms (%s)\n",
                   static_cast<long long>(timeout.count()), context.c_str());
      std::fflush(stderr);
      std::_Exit(2);
    }
  });
  reactor.run([&] {
    body();
    reactor.stop();
  });
  {
    std::lock_guard lock(m);
    done = true;
  }
  cv.notify_all();
  watchdog.join();
}

// In a fiber: polls `pred` every millisecond until true or `timeout`.
inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    boost::this_fiber::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace ssi::rdma::testing
