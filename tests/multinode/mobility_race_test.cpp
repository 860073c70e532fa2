// vCPU moves racing IPIs, in process (FakeVcpus, real DSM, loopback): the
// test drives emigrate / immigrate / placed itself, so each interleaving is
// reproduced exactly (docs/mobility.md, transit.hpp).
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "in_process_machine.hpp"

namespace ssi::multinode::testing {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t kMem = 8ull << 20;

// A one-shot latch a scripted vCPU waits on (bounded) until the test opens it.
class Latch {
 public:
  void open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 10s, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Polls `done` every ms for up to `limit`.
template <class F>
bool eventually(F done, std::chrono::milliseconds limit = 5000ms) {
  for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
    if (done()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return done();
}

std::uint64_t counter(ClusterFabric& f, const std::string& name) {
  for (const auto& [n, v] : f.stats())
    if (n == name) return v;
  return 0;
}

// The last CI failure: cpu 0 (node 0) sends INIT + SIPI to cpu 1 while cpu 1
// (waiting for SIPI) moves from node 1 to node 0. The INIT reaches node 1
// and is held there; the SIPI is sent after node 0 took cpu 1, so it is
// delivered on node 0 at once. It must not overtake the held INIT (which
// would reset the LAPIC after the SIPI and lose the AP).
TEST(MobilityRaceTest, InitHeldOnTheOldNodeStaysAheadOfASipiSentOnTheNewOne) {
  Latch go_init, go_sipi;
  std::atomic<bool> at_sipi{false}, sipi_sent{false}, ap_done{false};
  std::atomic<int> ap_started{0};
  InProcessMachine m(2, 2, kMem, [&](vcpu::testing::FakeVcpu& v, std::span<std::uint8_t>) {
    using vcpu::ExitKind;
    if (v.id().value() == 0) {
      v.push_mmio_write(0xFEE00310, {0, 0, 0, 1}, false)
          .then([&] { go_init.wait(); })
          .push_mmio_write(0xFEE00300, {0x00, 0x45, 0, 0}, false)  // INIT to cpu 1
          .push_mmio_write(0xFEE00300, {0x08, 0x46, 0, 0}, false)  // SIPI 0x08 to cpu 1
          .then([&] {
            at_sipi = true;
            go_sipi.wait();
          })
          .push_simple(ExitKind::kHlt, false)
          .then([&] { sipi_sent = true; });
    } else {  // cpu 1, on whichever node it runs
      v.push_simple(ExitKind::kIrqWindowOpen, false)
          .then([&] { ++ap_started; })
          .push_simple(ExitKind::kHlt, false)
          .then([&] { ap_done = true; });
    }
  });
  ASSERT_TRUE(m.status().ok()) << m.status().error().to_string();
  m.start();

  auto state = m.machine(1).emigrate(1);  // waiting for SIPI on node 1
  ASSERT_TRUE(state.ok()) << state.error().to_string();
  go_init.open();
  ASSERT_TRUE(eventually([&] { return at_sipi.load(); }));
  ASSERT_TRUE(eventually([&] { return counter(m.machine(1), "ipis_received_remote") >= 1; }))
      << "the INIT reaches node 1, where cpu 1 is leaving";
  ASSERT_TRUE(m.machine(0).immigrate(1, *state).ok());
  go_sipi.open();
  ASSERT_TRUE(eventually([&] { return sipi_sent.load(); }));
  m.machine(1).placed(1, NodeId{0});
  m.machine(0).placed(1, NodeId{0});

  EXPECT_TRUE(eventually([&] { return ap_done.load(); })) << "cpu 1 never started on node 0";
  EXPECT_EQ(ap_started.load(), 1);
  EXPECT_EQ(counter(m.machine(1), "ipis_held_in_move"), 1u);
  EXPECT_EQ(m.machine(0).placement().vcpu_node, (std::vector<std::uint32_t>{0, 0}));
  EXPECT_EQ(m.machine(1).placement().vcpu_node, (std::vector<std::uint32_t>{0, 0}));
  for (auto* v : m.vm(0).vcpus())
    if (v->id().value() == 1) {
      EXPECT_EQ(v->regs.rip, 0x8000u) << "SIPI entry";
    }
  m.machine(0).machine().request_exit(0);
  for (auto& r : m.wait(10s)) EXPECT_TRUE(r.ok()) << r.error().to_string();
}

// A move whose target cannot take the vCPU (its state does not parse
// there: the injected failure) is undone: the node it left takes it back
// with the IPIs held for it, and the machine goes on.
TEST(MobilityRaceTest, AFailedImmigrateLeavesTheVcpuOnItsNodeWithItsHeldIpis) {
  Latch go_ipi;
  std::atomic<bool> ipi_sent{false};
  InProcessMachine m(2, 2, kMem, [&](vcpu::testing::FakeVcpu& v, std::span<std::uint8_t>) {
    using vcpu::ExitKind;
    if (v.id().value() == 0) {
      v.push_mmio_write(0xFEE00310, {0, 0, 0, 1}, false)
          .push_mmio_write(0xFEE00300, {0x00, 0x45, 0, 0}, false)  // INIT to cpu 1
          .push_mmio_write(0xFEE00300, {0x08, 0x46, 0, 0}, false)  // SIPI
          .push_mmio_write(0xFEE00300, {0x43, 0x00, 0, 0}, false)  // fixed 0x43 to cpu 1
          .then([&] { go_ipi.wait(); })
          .push_simple(ExitKind::kHlt, false)
          .then([&] { ipi_sent = true; });
      return;
    }
    v.push_mmio_write(0xFEE000F0, {0xFF, 0x01, 0, 0}, true).then([&v] { v.regs.rflags |= 0x200; });
    for (int i = 0; i < 8; ++i) v.push_simple(ExitKind::kHlt, true);
  });
  ASSERT_TRUE(m.status().ok()) << m.status().error().to_string();
  m.start();
  ASSERT_TRUE(eventually([&] { return counter(m.machine(1), "vcpu1.halts") >= 1; }));

  auto state = m.machine(1).emigrate(1);
  ASSERT_TRUE(state.ok()) << state.error().to_string();
  go_ipi.open();
  ASSERT_TRUE(eventually([&] { return ipi_sent.load(); }));
  ASSERT_TRUE(eventually([&] { return counter(m.machine(1), "ipis_received_remote") >= 3; }));
  EXPECT_EQ(counter(m.machine(1), "vcpu1.interrupts_injected"), 0u) << "held, not delivered";
  std::vector<std::uint8_t> junk(64, 0xAB);
  EXPECT_FALSE(m.machine(0).immigrate(1, junk).ok());
  auto back = m.machine(1).immigrate(1, *state);  // what the coordinator does then
  ASSERT_TRUE(back.ok()) << back.error().to_string();

  EXPECT_TRUE(eventually([&] { return counter(m.machine(1), "vcpu1.interrupts_injected") >= 1; }))
      << "the IPI held during the failed move reaches cpu 1 on node 1";
  EXPECT_EQ(counter(m.machine(1), "vcpu_moves_undone"), 1u);
  EXPECT_EQ(counter(m.machine(1), "ipis_held_in_move"), 1u);
  EXPECT_EQ(counter(m.machine(0), "vcpus"), 1u);
  EXPECT_EQ(counter(m.machine(1), "vcpus"), 1u);
  EXPECT_EQ(m.machine(0).placement().vcpu_node, (std::vector<std::uint32_t>{0, 1}));
  EXPECT_EQ(m.machine(1).placement().vcpu_node, (std::vector<std::uint32_t>{0, 1}));
  // It can still move afterwards, and its counters go with it (they
  // include what it counted on node 1 before the failed move).
  EXPECT_TRUE(eventually([&] { return counter(m.machine(1), "vcpu1.halts") >= 2; }));
  auto again = m.machine(1).emigrate(1);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  const std::uint64_t halts = counter(m.machine(1), "vcpu1.halts");
  const std::uint64_t injected = counter(m.machine(1), "vcpu1.interrupts_injected");
  EXPECT_EQ(halts, 0u) << "node 1 reports no counters for a vCPU that left";
  ASSERT_TRUE(m.machine(0).immigrate(1, *again).ok());
  m.machine(1).placed(1, NodeId{0});
  m.machine(0).placed(1, NodeId{0});
  EXPECT_EQ(counter(m.machine(0), "vcpus"), 2u);
  EXPECT_GE(counter(m.machine(0), "vcpu1.halts"), 2u) << "counted on node 1, reported by node 0";
  EXPECT_GE(counter(m.machine(0), "vcpu1.interrupts_injected"), 1u + injected);
  m.machine(0).machine().request_exit(0);
  for (auto& r : m.wait(10s)) {
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(*r, 0);
  }
}

// 3 nodes: cpu 2 (node 2) broadcasts a fixed IPI while cpu 1 moves from
// node 1 to node 0, after node 0 took cpu 1 and before node 2 learnt of it.
// The broadcast reaches node 1 (which holds it for cpu 1) and node 0 (where
// cpu 1 now is): cpu 1 must take it once, not twice.
TEST(MobilityRaceTest, ABroadcastFromAThirdNodeDuringAMoveIsTakenOnce) {
  Latch go_broadcast;
  std::atomic<bool> broadcast_sent{false};
  std::atomic<int> cpu1_made{0};
  InProcessMachine m(3, 3, kMem, [&](vcpu::testing::FakeVcpu& v, std::span<std::uint8_t>) {
    using vcpu::ExitKind;
    const std::uint32_t id = v.id().value();
    if (id == 0) {  // INIT + SIPI to all but self
      v.push_mmio_write(0xFEE00300, {0x00, 0x45, 0x0C, 0}, false)
          .push_mmio_write(0xFEE00300, {0x08, 0x46, 0x0C, 0}, false);
    } else if (id == 2) {  // fixed 0x42 to all but self
      v.push_mmio_write(0xFEE000F0, {0xFF, 0x01, 0, 0}, true)
          .push_mmio_write(0xFEE00300, {0x42, 0x00, 0x0C, 0}, true)
          .then([&] { go_broadcast.wait(); })
          .push_simple(ExitKind::kHlt, false)
          .then([&] { broadcast_sent = true; });
      return;
    }
    // cpus 0 and 1: software-enable the LAPIC, then sleep with IF=1 (also
    // in RFLAGS, which a move carries); each interrupt wakes one HLT and is
    // EOIed (so a second copy of it would be taken too). Cpu 1 made again
    // on node 0 goes on from inside its HLT.
    if (id == 1 && cpu1_made++ > 0) {
      for (int i = 0; i < 8; ++i)
        v.push_mmio_write(0xFEE000B0, {0, 0, 0, 0}, true).push_simple(ExitKind::kHlt, true);
      return;
    }
    v.push_mmio_write(0xFEE000F0, {0xFF, 0x01, 0, 0}, true).then([&v] { v.regs.rflags |= 0x200; });
    for (int i = 0; i < 8; ++i)
      v.push_simple(ExitKind::kHlt, true).push_mmio_write(0xFEE000B0, {0, 0, 0, 0}, true);
  });
  ASSERT_TRUE(m.status().ok()) << m.status().error().to_string();
  m.start();
  ASSERT_TRUE(eventually([&] { return counter(m.machine(1), "vcpu1.halts") >= 1; }));

  auto state = m.machine(1).emigrate(1);
  ASSERT_TRUE(state.ok()) << state.error().to_string();
  ASSERT_TRUE(m.machine(0).immigrate(1, *state).ok());
  go_broadcast.open();
  ASSERT_TRUE(eventually([&] { return broadcast_sent.load(); }));
  // INIT, SIPI, then the broadcast.
  ASSERT_TRUE(eventually([&] { return counter(m.machine(1), "ipis_received_remote") >= 3; }));
  // Node 0 had it long enough to deliver it (which it must not, for cpu 1).
  std::this_thread::sleep_for(100ms);
  m.machine(1).placed(1, NodeId{0});
  m.machine(2).placed(1, NodeId{0});
  m.machine(0).placed(1, NodeId{0});
  vcpu::testing::FakeVcpu* cpu1 = nullptr;
  for (auto* v : m.vm(0).vcpus())
    if (v->id().value() == 1) cpu1 = v;
  ASSERT_NE(cpu1, nullptr);
  EXPECT_TRUE(eventually([&] { return counter(m.machine(0), "vcpu1.interrupts_injected") >= 1; }));
  std::this_thread::sleep_for(100ms);  // a second copy would be taken by now
  EXPECT_EQ(counter(m.machine(0), "vcpu1.interrupts_injected"), 1u);
  EXPECT_EQ(counter(m.machine(1), "ipis_held_in_move"), 1u);
  m.machine(0).machine().request_exit(0);
  for (auto& r : m.wait(10s)) EXPECT_TRUE(r.ok()) << r.error().to_string();
}

}  // namespace
}  // namespace ssi::multinode::testing
