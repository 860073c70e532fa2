// Whole machines of FakeVcpus spread over 2 and 4 nodes in one process, on
// the real DSM and the loopback (and tcp) transport: console from every node
// at node 0 in per-vCPU order, cross-node INIT/SIPI and IPI ping-pong, a
// counter in DSM-backed guest RAM, and machine-wide exit.
#include <gtest/gtest.h>

#include <atomic>

#include <sstream>

#include "in_process_machine.hpp"
#include "multinode/scripted_guest.hpp"

namespace ssi::multinode::testing {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t kMem = 8ull << 20;

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string rtrim(std::string s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// The BSP's part in the small tests: INIT + SIPI(0x08) to cpu 1, then cli; hlt.
void start_cpu1_then_sleep(vcpu::testing::FakeVcpu& v) {
  v.push_mmio_write(0xFEE00310, {0, 0, 0, 1}, false)
      .push_mmio_write(0xFEE00300, {0x00, 0x45, 0, 0}, false)
      .push_mmio_write(0xFEE00300, {0x08, 0x46, 0, 0}, false)
      .push_simple(vcpu::ExitKind::kHlt, false);
}

struct GuestCase {
  std::uint32_t nodes, vcpus;
  std::string transport;
};

class ScriptedGuestTest : public ::testing::TestWithParam<GuestCase> {};

TEST_P(ScriptedGuestTest, RunsAcrossNodesWithConsoleIpisSipiAndCoherentCounter) {
  const GuestCase& gc = GetParam();
  const std::uint64_t seed = 42 + gc.nodes;
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  ScriptedGuestConfig sg;
  sg.placement = Placement::round_robin(gc.vcpus, gc.nodes);
  sg.lines = 4;
  sg.increments = 300;
  sg.ping_rounds = 2;
  sg.wait_limit = 8s;
  InProcessMachine m(gc.nodes, gc.vcpus, kMem,
                     [&sg](vcpu::testing::FakeVcpu& v, std::span<std::uint8_t> ram) {
                       script_vcpu(v, sg, ram);
                     },
                     seed, gc.transport);
  ASSERT_TRUE(m.status().ok()) << m.status().error().to_string();
  m.start();
  auto results = m.wait(20s);
  for (std::uint32_t n = 0; n < gc.nodes; ++n) {
    ASSERT_TRUE(results[n].ok()) << "node " << n << ": " << results[n].error().to_string();
    EXPECT_EQ(*results[n], 0) << "node " << n;
  }
  auto console = lines_of(m.console());
  // Every line is whole (the guest lock held across nodes) and each vCPU's
  // lines appear in its program order.
  std::vector<std::uint32_t> next(gc.vcpus, 0);
  bool summary = false;
  for (const auto& raw : console) {
    std::string l = rtrim(raw);
    if (l == success_summary(sg)) {
      summary = true;
      continue;
    }
    bool matched = false;
    for (std::uint32_t c = 0; c < gc.vcpus && !matched; ++c) {
      if (next[c] < sg.lines && l + "\n" == vcpu_line(sg, c, next[c])) {
        ++next[c];
        matched = true;
      }
    }
    EXPECT_TRUE(matched) << "unexpected or out-of-order console line: '" << l << "'\n"
                         << m.console();
  }
  EXPECT_TRUE(summary) << m.console();
  for (std::uint32_t c = 0; c < gc.vcpus; ++c) EXPECT_EQ(next[c], sg.lines) << "cpu " << c;

  // IPIs: the BSP took one pong per round per AP, every AP its pings.
  std::uint64_t remote_ipis = 0, forwarded = 0;
  for (std::uint32_t n = 0; n < gc.nodes; ++n) {
    for (auto* v : m.vm(n).vcpus()) {
      std::uint32_t id = v->id().value();
      if (id == 0) {
        EXPECT_EQ(v->injected(),
                  std::vector<std::uint8_t>((gc.vcpus - 1) * sg.ping_rounds, 0x41));
      } else {
        EXPECT_EQ(v->injected(), std::vector<std::uint8_t>(sg.ping_rounds, 0x40)) << "cpu " << id;
        EXPECT_EQ(v->regs.rip, 0x8000u) << "cpu " << id << " SIPI entry";
        EXPECT_EQ(v->regs.rsi, id) << "cpu index in rsi";
      }
      EXPECT_EQ(v->bad_injections(), 0);
    }
    for (const auto& [name, value] : m.machine(n).stats()) {
      if (name == "ipis_sent_remote") remote_ipis += value;
      if (name == "io_forwarded") forwarded += value;
    }
  }
  EXPECT_GT(remote_ipis, 0u);
  EXPECT_GT(forwarded, 0u) << "vCPUs off node 0 print through node 0";
}

INSTANTIATE_TEST_SUITE_P(
    Nodes, ScriptedGuestTest,
    ::testing::Values(GuestCase{2, 2, "loopback"}, GuestCase{2, 4, "loopback"},
                      GuestCase{4, 4, "loopback"}, GuestCase{4, 8, "loopback"},
                      GuestCase{2, 4, "tcp"}),
    [](const auto& info) {
      return info.param.transport + "_" + std::to_string(info.param.nodes) + "nodes_" +
             std::to_string(info.param.vcpus) + "vcpus";
    });

TEST(ClusterMachineTest, GuestRamIsTheDsmRegionRegisteredAsMemorySlots) {
  InProcessMachine m(2, 2, kMem, [](vcpu::testing::FakeVcpu&, std::span<std::uint8_t>) {});
  ASSERT_TRUE(m.status().ok()) << m.status().error().to_string();
  for (std::uint32_t n = 0; n < 2; ++n) {
    auto slots = m.vm(n).slots();
    ASSERT_FALSE(slots.empty());
    EXPECT_EQ(slots[0].host, static_cast<void*>(m.cluster().node(n).base())) << "node " << n;
  }
  // Node 0 wrote the boot info; node 1 reads it through the DSM.
  auto* info = reinterpret_cast<const ssi_boot_info*>(m.cluster().node(1).base() + 0x5000);
  EXPECT_EQ(info->magic, SSI_BOOT_MAGIC);
  EXPECT_EQ(info->node_count, 2u);
  EXPECT_EQ(info->cpu_node[1], 1u);
  EXPECT_EQ(info->node_ram_start[0], 0u);
  EXPECT_EQ(info->node_ram_start[1], m.cluster().node(0).homes().ranges()[1].first.value() * kPageSize)
      << "the guest is told the DSM's homes";
}

TEST(ClusterMachineTest, ForeignKernelsStartTheirApsInRealModeOnAnyNode) {
  // A multiboot / Linux kernel brings its own AP trampoline: SIPI(0x08)
  // starts vCPU 1 on node 1 at 0800:0000 in real mode, not in long mode.
  InProcessMachine m(
      2, 2, kMem,
      [](vcpu::testing::FakeVcpu& v, std::span<std::uint8_t>) {
        if (v.id().value() == 0) {
          start_cpu1_then_sleep(v);
        } else {
          v.push_io_out(0xF8, {0}, false).push_simple(vcpu::ExitKind::kHlt, false);
        }
      },
      1, "loopback", machine::KernelKind::kMultiboot);
  ASSERT_TRUE(m.status().ok()) << m.status().error().to_string();
  m.start();
  auto results = m.wait(5s);
  ASSERT_TRUE(results[1].ok()) << results[1].error().to_string();
  auto* ap = m.vm(1).vcpus()[0];
  EXPECT_EQ(ap->sregs.cs.selector, 0x0800);
  EXPECT_EQ(ap->sregs.cs.base, 0x8000u);
  EXPECT_EQ(ap->regs.rip, 0u);
  EXPECT_EQ(ap->sregs.efer & (1u << 10), 0u) << "not in long mode";
}

TEST(ClusterMachineTest, ExitOnOneNodeStopsEveryNode) {
  // vCPU 1 (node 1) writes the exit port: forwarded to node 0, whose exit
  // request reaches every node; vCPU 0 just halts.
  InProcessMachine m(2, 2, kMem, [](vcpu::testing::FakeVcpu& v, std::span<std::uint8_t>) {
    if (v.id().value() == 0) {
      start_cpu1_then_sleep(v);
    } else {
      // The exit reaches this node asynchronously: the guest halts meanwhile.
      v.push_io_out(0xF8, {7}, false).push_simple(vcpu::ExitKind::kHlt, false);
    }
  });
  ASSERT_TRUE(m.status().ok()) << m.status().error().to_string();
  m.start();
  auto results = m.wait(5s);
  for (std::uint32_t n = 0; n < 2; ++n) {
    ASSERT_TRUE(results[n].ok()) << "node " << n << ": " << results[n].error().to_string();
    EXPECT_EQ(*results[n], 7) << "node " << n;
  }
}

TEST(ClusterMachineTest, ForwardedReadTakesNodeZerosAnswer) {
  // COM1's LSR read from node 1 says "transmitter empty", as node 0's UART does.
  InProcessMachine m(2, 2, kMem, [](vcpu::testing::FakeVcpu& v, std::span<std::uint8_t>) {
    if (v.id().value() == 0) {
      start_cpu1_then_sleep(v);
    } else {
      v.push_io_in(0x3FD, 1, false).push_io_out(0xF8, {0}, false)
          .push_simple(vcpu::ExitKind::kHlt, false);
    }
  });
  ASSERT_TRUE(m.status().ok());
  m.start();
  auto results = m.wait(5s);
  ASSERT_TRUE(results[1].ok()) << results[1].error().to_string();
  auto reads = m.vm(1).vcpus()[0]->completed_reads();
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].address, 0x3FDu);
  EXPECT_EQ(reads[0].data[0] & 0x60, 0x60) << "THRE|TEMT from node 0's 16550";
}

TEST(ClusterMachineTest, LosingNodeZeroFailsTheForwardingVcpuWithAClearError) {
  // vCPU 1 (node 1) runs, then waits until node 0 is cut off before its
  // COM1 write, which must be forwarded to node 0.
  std::atomic<bool> started{false}, killed{false};
  InProcessMachine m(2, 2, kMem, [&](vcpu::testing::FakeVcpu& v, std::span<std::uint8_t>) {
    if (v.id().value() == 0) {
      start_cpu1_then_sleep(v);
    } else {
      v.push_io_out(0x80, {1}, false).then([&] {
        started = true;
        for (int i = 0; i < 500 && !killed; ++i) std::this_thread::sleep_for(10ms);
      }).push_io_out(0x3F8, {'x'}, false);
    }
  });
  ASSERT_TRUE(m.status().ok());
  m.start();
  for (int i = 0; i < 500 && !started; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(started) << "vCPU 1 did not start within 5 s";
  m.cluster().network().kill(NodeId{0});
  killed = true;
  // Node 0 is cut off, not stopped: in a real run its process is gone or the
  // coordinator stops it. Here it sits in its HLT until the fixture ends.
  auto results = m.wait(5s);  // one deadline for all: node 1 stopped within 5 s
  ASSERT_FALSE(results[1].ok()) << "node 1 must fail, got code " << *results[1];
  EXPECT_EQ(results[0].error().code, Errc::kTimeout) << "node 0 heard nothing";
  EXPECT_NE(results[1].error().message.find("forwarded to node 0"), std::string::npos)
      << results[1].error().to_string();
}

}  // namespace
}  // namespace ssi::multinode::testing
