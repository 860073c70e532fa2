// EpollReactor: Boost.Fiber on one thread, sleeping in epoll_wait when idle.
//
// The scheduling algorithm (EpollAlgorithm) is round_robin except that, when
// no fiber is ready, suspend_until() blocks in epoll_wait() until the next
// fiber timer, an fd event, a post() or a wake-up from another thread
// (notify() writes an eventfd). fd events and posted tasks become new fibers.
// So the one protocol thread never busy-waits and never misses a timer.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/algo/round_robin.hpp>
#include <boost/fiber/all.hpp>

#include "base/log.hpp"
#include "rdma/reactor.hpp"
#include "base/unique_fd.hpp"

namespace ssi::rdma {
namespace {

namespace bf = boost::fibers;
using Clock = std::chrono::steady_clock;

// After this many fibers ran back to back, poll fds once even though
// fibers are still ready, so I/O is never starved by busy fibers.
constexpr int kPicksBetweenPolls = 64;
constexpr int kMaxEvents = 64;
constexpr std::size_t kFiberStackSize = 128 * 1024;
// How long run() keeps scheduling after stop() for fibers still alive.
constexpr auto kDrainTimeout = std::chrono::seconds(2);

class EpollReactor;

class EpollAlgorithm : public bf::algo::algorithm {
 public:
  explicit EpollAlgorithm(EpollReactor* r) : reactor_(r) {}
  void awakened(bf::context* ctx) noexcept override { ctx->ready_link(rqueue_); }
  bf::context* pick_next() noexcept override;
  bool has_ready_fibers() const noexcept override { return !rqueue_.empty(); }
  void suspend_until(Clock::time_point const& deadline) noexcept override;
  void notify() noexcept override;

 private:
  EpollReactor* reactor_;
  bf::scheduler::ready_queue_type rqueue_;
  int picks_ = 0;
  bool want_poll_ = false;
};

struct Watch {
  int fd;
  std::uint32_t events;
  Reactor::ReadyFn ready;
  bool running = false;   // a fiber is calling `ready`
  bool disarmed = false;  // epoll interest removed while running
  bool removed = false;   // unwatch()ed
};

class EpollReactor final : public Reactor {
 public:
  EpollReactor(UniqueFd epfd, UniqueFd evfd, ReactorOptions options)
      : epfd_(std::move(epfd)), evfd_(std::move(evfd)), options_(options) {}

  void run(Task main) override {
    thread_ = std::this_thread::get_id();
    running_ = true;
    bf::use_scheduling_algorithm<EpollAlgorithm>(this);
    if (main) spawn(std::move(main));
    {
      std::unique_lock lock(run_mutex_);
      run_cv_.wait(lock, [&] { return stopping_; });
      // Let fibers finish (transports fail their rpcs on shutdown), bounded.
      auto until = Clock::now() + kDrainTimeout;
      if (!run_cv_.wait_until(lock, until, [&] { return live_ == 0; }))
        log::get("rdma")->warn("reactor stopped with {} fibers still blocked", live_);
    }
    // Later fiber use on this thread must not reach into this object.
    bf::use_scheduling_algorithm<bf::algo::round_robin>();
    stopping_ = false;
    stop_requested_ = false;
    running_ = false;
    thread_ = {};
  }

  void stop() override {
    if (stop_requested_.exchange(true)) return;
    post([this] {
      std::unique_lock lock(run_mutex_);
      stopping_ = true;
      run_cv_.notify_all();
    });
  }

  void post(Task task) override {
    bool was_empty;
    {
      std::lock_guard lock(post_mutex_);
      was_empty = posted_.empty();
      posted_.push_back(std::move(task));
      has_posted_.store(true, std::memory_order_release);
    }
    if (was_empty) wake();
  }

  void spawn(Task task) override {
    ++live_;
    bf::fiber(std::allocator_arg, stacks_, [this, task = std::move(task)] {
      task();
      if (--live_ == 0 && stopping_) run_cv_.notify_all();
    }).detach();
  }

  Result<void> watch(int fd, std::uint32_t events, ReadyFn ready) override {
    auto w = std::make_shared<Watch>(Watch{fd, events, std::move(ready)});
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
      return Error::from_errno(fmt::format("epoll_ctl(ADD, fd {})", fd));
    watches_[fd] = std::move(w);
    return ok();
  }

  Result<void> modify(int fd, std::uint32_t events) override {
    auto it = watches_.find(fd);
    if (it == watches_.end()) return make_error(Errc::kNotFound, fmt::format("fd {} not watched", fd));
    it->second->events = events;
    if (it->second->disarmed) return ok();  // re-armed with `events` when the fiber ends
    return set_interest(fd, events);
  }

  void unwatch(int fd) override {
    auto it = watches_.find(fd);
    if (it == watches_.end()) return;
    it->second->removed = true;
    watches_.erase(it);
    ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  }

  bool on_reactor_thread() const override { return running_ && thread_ == std::this_thread::get_id(); }
  bool running() const override { return running_; }

  // Called by the algorithm from the dispatcher when no fiber is ready
  // (or a poll is due): wait for events up to `deadline`, then turn them
  // into fibers.
  void poll(Clock::time_point deadline, bool block) {
    int timeout_ms = 0;
    if (block && !has_posted_.load(std::memory_order_acquire)) {
      if (spin_then_poll(deadline)) {
        timeout_ms = 0;
      } else if (deadline == Clock::time_point::max()) {
        timeout_ms = -1;
      } else {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
        timeout_ms = left <= 0 ? 0 : static_cast<int>(std::min<long>(left, 1 << 30));
      }
    }
    epoll_event events[kMaxEvents];
    int n = ::epoll_wait(epfd_.get(), events, kMaxEvents, timeout_ms);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == evfd_.get()) {
        std::uint64_t v;
        [[maybe_unused]] auto r = ::read(evfd_.get(), &v, sizeof v);
        continue;
      }
      fire(events[i].data.fd, events[i].events);
    }
    drain_posted();
  }

  void wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(evfd_.get(), &one, sizeof one);
  }

  Result<void> init() {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = evfd_.get();
    if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, evfd_.get(), &ev) != 0)
      return Error::from_errno("epoll_ctl(ADD, eventfd)");
    return ok();
  }

 private:
  // Spin-before-block: a peer's reply often arrives within microseconds,
  // and a cross-core wake-up from epoll costs 15-40 us here. Returns true
  // if something became ready while spinning.
  bool spin_then_poll(Clock::time_point deadline) {
    if (options_.spin.count() <= 0) return false;
    auto until = std::min(deadline, Clock::now() + options_.spin);  // never past a timer
    epoll_event ev;
    while (Clock::now() < until) {
      if (has_posted_.load(std::memory_order_acquire)) return true;
      int n = ::epoll_wait(epfd_.get(), &ev, 1, 0);
      if (n > 0) {
        if (ev.data.fd == evfd_.get()) {
          std::uint64_t v;
          [[maybe_unused]] auto r = ::read(evfd_.get(), &v, sizeof v);
        } else {
          fire(ev.data.fd, ev.events);
        }
        return true;
      }
    }
    return false;
  }

  Result<void> set_interest(int fd, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev) != 0)
      return Error::from_errno(fmt::format("epoll_ctl(MOD, fd {})", fd));
    return ok();
  }

  // Level-triggered, but at most one fiber per fd at a time: if the fd is
  // still ready while its fiber is blocked, interest is dropped until the
  // fiber returns, so epoll_wait() does not spin on it.
  void fire(int fd, std::uint32_t events) {
    auto it = watches_.find(fd);
    if (it == watches_.end()) return;
    std::shared_ptr<Watch> w = it->second;
    if (w->running) {
      if (!w->disarmed) {
        w->disarmed = true;
        (void)set_interest(fd, 0);
      }
      return;
    }
    w->running = true;
    spawn([this, w, events] {
      w->ready(events);
      w->running = false;
      if (w->disarmed && !w->removed) {
        w->disarmed = false;
        (void)set_interest(w->fd, w->events);
      }
    });
  }

  void drain_posted() {
    if (!has_posted_.load(std::memory_order_acquire)) return;
    std::deque<Task> tasks;
    {
      std::lock_guard lock(post_mutex_);
      tasks.swap(posted_);
      has_posted_.store(false, std::memory_order_release);
    }
    for (auto& t : tasks) spawn(std::move(t));
  }

  // A fiber per frame / event: reuse stacks instead of an mmap + munmap each.
  bf::pooled_fixedsize_stack stacks_{kFiberStackSize};
  UniqueFd epfd_;
  UniqueFd evfd_;
  ReactorOptions options_;
  std::unordered_map<int, std::shared_ptr<Watch>> watches_;
  std::mutex post_mutex_;
  std::deque<Task> posted_;
  std::atomic<bool> has_posted_{false};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> running_{false};
  std::thread::id thread_;
  bf::mutex run_mutex_;
  bf::condition_variable run_cv_;
  bool stopping_ = false;
  std::size_t live_ = 0;
};

bf::context* EpollAlgorithm::pick_next() noexcept {
  if (rqueue_.empty()) return nullptr;  // only the dispatcher asks then: it polls next
  if (++picks_ >= kPicksBetweenPolls) want_poll_ = true;
  if (want_poll_) {
    // A poll is due. The dispatcher polls when we return nullptr to it; a
    // worker must get a context (Boost.Fiber keeps the dispatcher in the
    // ready queue for that), so hand it the dispatcher, which comes back.
    if (bf::context::active()->is_context(bf::type::dispatcher_context)) return nullptr;
    for (auto it = rqueue_.begin(); it != rqueue_.end(); ++it) {
      if (it->is_context(bf::type::dispatcher_context)) {
        bf::context* dispatcher = &*it;
        rqueue_.erase(it);
        return dispatcher;
      }
    }
  }
  bf::context* ctx = &rqueue_.front();
  rqueue_.pop_front();
  return ctx;
}

void EpollAlgorithm::suspend_until(Clock::time_point const& deadline) noexcept {
  reactor_->poll(deadline, /*block=*/rqueue_.empty());
  want_poll_ = false;
  picks_ = 0;
}

void EpollAlgorithm::notify() noexcept { reactor_->wake(); }

}  // namespace

Result<std::unique_ptr<Reactor>> Reactor::create() { return create(ReactorOptions{}); }

Result<std::unique_ptr<Reactor>> Reactor::create(ReactorOptions options) {
  UniqueFd epfd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epfd) return Error::from_errno("epoll_create1");
  UniqueFd evfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!evfd) return Error::from_errno("eventfd");
  auto r = std::make_unique<EpollReactor>(std::move(epfd), std::move(evfd), options);
  SSI_TRY(r->init());
  return std::unique_ptr<Reactor>(std::move(r));
}

}  // namespace ssi::rdma
