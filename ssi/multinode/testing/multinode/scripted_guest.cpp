#include "multinode/scripted_guest.hpp"

#include <atomic>
#include <memory>
#include <thread>

#include <fmt/format.h>

namespace ssi::multinode::testing {

namespace {

using vcpu::ExitKind;
using vcpu::testing::FakeVcpu;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kLapic = 0xFEE00000;
constexpr std::uint8_t kPing = 0x40, kPong = 0x41;

class GuestWord {
 public:
  GuestWord(std::span<std::uint8_t> ram, std::uint64_t gpa)
      : ref_(*reinterpret_cast<std::uint64_t*>(ram.data() + gpa)) {}
  std::atomic_ref<std::uint64_t>& operator*() { return ref_; }
  std::atomic_ref<std::uint64_t>* operator->() { return &ref_; }

 private:
  std::atomic_ref<std::uint64_t> ref_;
};

// Spins (bounded) until `done()`; false on timeout.
template <typename F>
bool spin_until(std::chrono::milliseconds limit, F done) {
  auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// Builds one vCPU's script. Every exit but the waiting HLTs says "interrupts
// off", so pending IPIs are taken only at a HLT, as after "sti; hlt".
class Script : public std::enable_shared_from_this<Script> {
 public:
  // Hooks keep the Script alive (shared_from_this); make it with make_shared.
  Script(FakeVcpu& v, ScriptedGuestConfig c, std::span<std::uint8_t> ram)
      : v_(v), c_(c), ram_(ram), cpu_(v.id().value()) {}

  void build() {
    mmio32(0xF0, 0x1FF);  // SVR: enable the LAPIC
    if (cpu_ == 0) bsp(); else ap();
  }

 private:
  void bsp() {
    std::uint32_t n = c_.placement.vcpus();
    if (n > 1) {
      icr(0, 0x000C4500);  // INIT, all excluding self
      icr(0, 0x000C4608);  // SIPI vector 0x08: APs start at 0x8000
    }
    common_work();
    hook([this, k_ = shared_from_this(), n] {  // wait until every AP checked in
      spin_until(c_.wait_limit, [&] {
        for (std::uint32_t k = 1; k < n; ++k)
          if (GuestWord(ram_, kStartedGpa + 8 * k)->load() == 0) return false;
        return true;
      });
    });
    for (std::uint32_t k = 1; k < n; ++k)
      for (std::uint32_t r = 0; r < c_.ping_rounds; ++r) {
        icr(k, 0x4000u | kPing);
        v_.push_simple(ExitKind::kHlt, true);  // sti; hlt until the pong
        mmio32(0xB0, 0);                       // EOI in the handler
      }
    hook([this, k_ = shared_from_this(), n] {
      spin_until(c_.wait_limit, [&] { return GuestWord(ram_, kDoneGpa)->load() == n - 1; });
    });
    auto summary = std::make_shared<std::string>();
    auto passed = std::make_shared<bool>(false);
    hook([this, k_ = shared_from_this(), summary, passed] { *passed = check(*summary); });
    print_dynamic(summary);
    v_.push_io_out(0xF8, {0}, false).then_fill([passed](std::span<std::uint8_t> b) {
      b[0] = *passed ? 0 : 1;
    });
    v_.push_simple(ExitKind::kHlt, false);  // cli; hlt while the exit spreads
  }

  void ap() {
    hook([this, k_ = shared_from_this()] {  // what SIPI gave us, for the BSP to check
      auto regs = v_.regs;
      GuestWord(ram_, kStartedGpa + 8 * cpu_)->store(regs.rip | (regs.rsi << 32));
    });
    common_work();
    for (std::uint32_t r = 0; r < c_.ping_rounds; ++r) {
      v_.push_simple(ExitKind::kHlt, true);  // sti; hlt until the ping
      mmio32(0xB0, 0);
      icr(0, 0x4000u | kPong);
    }
    hook([this, k_ = shared_from_this()] { GuestWord(ram_, kDoneGpa)->fetch_add(1); });
    v_.push_simple(ExitKind::kHlt, false);  // cli; hlt: sleeps until the machine exits
  }

  void common_work() {
    for (std::uint32_t l = 0; l < c_.lines; ++l) print(vcpu_line(c_, cpu_, l));
    hook([this, k_ = shared_from_this()] {
      // A kick (the machine is exiting) ends the loop, as it ends KVM_RUN.
      const int kicks = v_.kicks();
      for (std::uint32_t i = 0; i < c_.increments && v_.kicks() == kicks; ++i)
        GuestWord(ram_, kCounterGpa)->fetch_add(1);
    });
  }

  bool check(std::string& out) const {
    std::uint32_t n = c_.placement.vcpus();
    std::uint64_t count = GuestWord(ram_, kCounterGpa)->load();
    std::uint64_t expected = std::uint64_t{n} * c_.increments;
    std::uint32_t started_ok = 0;
    for (std::uint32_t k = 1; k < n; ++k)
      if (GuestWord(ram_, kStartedGpa + 8 * k)->load() == (0x8000u | (std::uint64_t{k} << 32)))
        ++started_ok;
    bool good = count == expected && started_ok == n - 1;
    out = good ? success_summary(c_)
               : fmt::format("machine-demo: FAILED: counter {} (expected {}), {} of {} APs "
                             "started at 0x8000",
                             count, expected, started_ok, n - 1);
    return good;
  }

  void mmio32(std::uint32_t reg, std::uint32_t value) {
    v_.push_mmio_write(kLapic + reg,
                       {std::uint8_t(value), std::uint8_t(value >> 8), std::uint8_t(value >> 16),
                        std::uint8_t(value >> 24)},
                       false);
  }
  void icr(std::uint32_t dest, std::uint32_t low) {
    mmio32(0x310, dest << 24);
    mmio32(0x300, low);
  }
  // An exit that only carries `fn` (runs on the vCPU thread, as guest code).
  void hook(std::function<void()> fn) {
    v_.push_io_out(kPostPort, {0}, false).then(std::move(fn));
  }
  void lock() {
    spin_until(c_.wait_limit, [&] {
      std::uint64_t free = 0;
      return GuestWord(ram_, kLockGpa)->compare_exchange_strong(free, cpu_ + 1);
    });
  }
  void unlock() { GuestWord(ram_, kLockGpa)->store(0); }

  void print(const std::string& line) {  // under the guest lock
    for (std::size_t i = 0; i < line.size(); ++i) {
      v_.push_io_out(0x3F8, {std::uint8_t(line[i])}, false);
      if (i == 0) v_.then([this, k_ = shared_from_this()] { lock(); });
    }
    hook([this, k_ = shared_from_this()] { unlock(); });  // after the last byte went out
  }
  // A line computed at run time (fixed width, padded), e.g. the summary.
  void print_dynamic(std::shared_ptr<std::string> text) {
    constexpr std::size_t kWidth = 160;
    for (std::size_t i = 0; i < kWidth; ++i) {
      v_.push_io_out(0x3F8, {' '}, false).then_fill([text, i](std::span<std::uint8_t> b) {
        // Padded with spaces to a fixed width: the exits are scripted up front.
        if (i + 1 == kWidth) b[0] = '\n';
        else b[0] = i < text->size() ? std::uint8_t((*text)[i]) : ' ';
      });
    }
  }

  FakeVcpu& v_;
  const ScriptedGuestConfig c_;
  std::span<std::uint8_t> ram_;
  std::uint32_t cpu_;
};

}  // namespace

void script_vcpu(FakeVcpu& v, const ScriptedGuestConfig& config, std::span<std::uint8_t> ram) {
  std::make_shared<Script>(v, config, ram)->build();
}

std::string vcpu_line(const ScriptedGuestConfig& c, std::uint32_t cpu, std::uint32_t line) {
  return fmt::format("cpu {} on node {}: line {} of {}\n", cpu, c.placement.vcpu_node.at(cpu),
                     line + 1, c.lines);
}

std::string success_summary(const ScriptedGuestConfig& c) {
  std::uint32_t n = c.placement.vcpus();
  return fmt::format("machine-demo: {} vCPUs on {} nodes: counter {} (exact), {} APs started by "
                     "SIPI at 0x8000, {} IPI round trips: ok",
                     n, c.placement.nodes, std::uint64_t{n} * c.increments, n - 1,
                     (n - 1) * c.ping_rounds);
}

}  // namespace ssi::multinode::testing
