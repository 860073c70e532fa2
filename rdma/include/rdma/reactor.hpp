// The node's protocol thread: a Boost.Fiber scheduler that, when no fiber is
// ready, sleeps in epoll_wait on the fds it watches (sockets, userfaultfd,
// eventfds) or until the next fiber timer. Everything that touches a
// Transport or the DSM directory runs as a fiber on this one thread, so
// protocol state needs no locks. Other threads enter with post().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "base/ids.hpp"
#include "base/result.hpp"

namespace ssi::rdma {

struct ReactorOptions {
  // Before sleeping in epoll_wait, poll without blocking for this long:
  // a reply often arrives within microseconds, while a cross-core wake-up
  // from epoll costs 15-40 us on small VMs. 0 = always block at once.
  std::chrono::microseconds spin{0};
};

class Reactor {
 public:
  using Task = std::function<void()>;
  using ReadyFn = std::function<void(std::uint32_t epoll_events)>;

  static Result<std::unique_ptr<Reactor>> create();
  static Result<std::unique_ptr<Reactor>> create(ReactorOptions options);
  virtual ~Reactor() = default;

  // Runs the scheduler on the calling thread until stop(); `main` (if set)
  // is spawned as the first fiber. After stop(), run() keeps scheduling for
  // up to 2 s while fibers spawned by this reactor are still alive (shut
  // transports down first so their waiting rpcs end).
  virtual void run(Task main = {}) = 0;
  // Thread-safe: request run() to return once the current fibers yield.
  virtual void stop() = 0;
  // Thread-safe: spawn `task` as a new fiber on the reactor thread.
  virtual void post(Task task) = 0;
  // Reactor thread only: spawn `task` as a new fiber now.
  virtual void spawn(Task task) = 0;
  // Reactor thread only: call `ready` (in a fresh fiber) whenever `fd`
  // reports `events` (EPOLLIN/EPOLLOUT/...; level-triggered).
  virtual Result<void> watch(int fd, std::uint32_t events, ReadyFn ready) = 0;
  virtual Result<void> modify(int fd, std::uint32_t events) = 0;
  virtual void unwatch(int fd) = 0;
  // True on the thread currently inside run().
  virtual bool on_reactor_thread() const = 0;
  // Thread-safe: true while some thread is inside run().
  virtual bool running() const = 0;
};

}  // namespace ssi::rdma
