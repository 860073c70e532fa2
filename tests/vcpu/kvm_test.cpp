// Real-KVM tests: tiny real-mode guests. Every test skips without /dev/kvm.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <future>
#include <thread>

#include "base/clock.hpp"
#include "vcpu/cpu_state.hpp"
#include "vcpu/kvm.hpp"
#include "vcpu/kvm_host.hpp"
#include "vcpu/lapic.hpp"
#include "vcpu/runner.hpp"

namespace ssi::vcpu {
namespace {

using namespace std::chrono_literals;
constexpr std::size_t kMem = 1 << 20;
constexpr std::uint64_t kCodeAt = 0x1000;

class NullSink final : public IpiSink {
 public:
  void send_ipi(const Ipi&) override {}
};

struct KvmTest : ::testing::Test {
  void SetUp() override {
    if (auto h = probe_kvm_host(); !h.usable) GTEST_SKIP() << h.reason;
    auto h = open_kvm();
    ASSERT_TRUE(h.ok()) << h.error().to_string();
    hv = std::move(*h);
    mem = ::mmap(nullptr, kMem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
  }
  void TearDown() override {
    vcpus.clear();
    vms.clear();
    if (mem && mem != MAP_FAILED) ::munmap(mem, kMem);
  }

  // A VM with 1 MiB at gpa 0, `code` at 0x1000 and one real-mode vCPU there.
  Vcpu& boot(std::vector<std::uint8_t> code) {
    std::memcpy(static_cast<char*>(mem) + kCodeAt, code.data(), code.size());
    auto vm = hv->create_vm(VmOptions{});
    EXPECT_TRUE(vm.ok()) << vm.error().to_string();
    EXPECT_TRUE((*vm)->add_memory({0, Gpa{0}, kMem, mem, false}).ok());
    auto v = (*vm)->create_vcpu(VcpuId{0});
    EXPECT_TRUE(v.ok()) << v.error().to_string();
    auto cpuid = hv->supported_cpuid();
    EXPECT_TRUE(cpuid.ok());
    EXPECT_TRUE((*v)->set_cpuid(set_cpuid_apic_id(filter_cpuid(*cpuid, {}), 0)).ok());
    auto s = (*v)->get_sregs();
    s->cs.base = 0;
    s->cs.selector = 0;
    EXPECT_TRUE((*v)->set_sregs(*s).ok());
    kvm_regs r{};
    r.rip = kCodeAt;
    r.rflags = 2;
    EXPECT_TRUE((*v)->set_regs(r).ok());
    vms.push_back(std::move(*vm));
    vcpus.push_back(std::move(*v));
    return *vcpus.back();
  }

  std::unique_ptr<Hypervisor> hv;
  std::vector<std::unique_ptr<Vm>> vms;
  std::vector<std::unique_ptr<Vcpu>> vcpus;
  void* mem = nullptr;
};

TEST_F(KvmTest, PortIoThenHlt) {
  Vcpu& v = boot({0xb0, 0x48, 0xe6, 0x10, 0xf4});  // mov al,'H'; out 0x10,al; hlt
  auto e = v.run();
  ASSERT_TRUE(e.ok()) << e.error().to_string();
  ASSERT_EQ(e->kind, ExitKind::kIo) << describe(*e);
  EXPECT_EQ(e->io.port, 0x10);
  EXPECT_TRUE(e->io.is_write);
  ASSERT_EQ(e->io.data.size(), 1u);
  EXPECT_EQ(e->io.data[0], 'H');
  e = v.run();
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->kind, ExitKind::kHlt) << describe(*e);
}

TEST_F(KvmTest, X2apicMsrsAndFilteredMsrsExitToUserspace) {
  Vcpu& v = boot({0x66, 0xb9, 0x30, 0x08, 0x00, 0x00,   // mov ecx, 0x830
                  0x66, 0xb8, 0xfd, 0x00, 0x00, 0x00,   // mov eax, 0xfd
                  0x66, 0x31, 0xd2,                     // xor edx, edx
                  0x0f, 0x30,                           // wrmsr
                  0x66, 0xb9, 0x1b, 0x00, 0x00, 0x00,   // mov ecx, 0x1b
                  0x0f, 0x32,                           // rdmsr
                  0xe6, 0x10, 0xf4});                   // out 0x10, al; hlt
  auto e = v.run();
  ASSERT_TRUE(e.ok()) << e.error().to_string();
  ASSERT_EQ(e->kind, ExitKind::kWrmsr) << describe(*e);
  EXPECT_EQ(e->msr.index, 0x830u);
  EXPECT_EQ(*e->msr.data, 0xfdu);
  EXPECT_EQ(e->msr.reason, MsrExitReason::kInval) << "x2APIC MSRs exit with INVAL: KVM fact #5b, docs/vcpu.md";
  e = v.run();
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->kind, ExitKind::kRdmsr) << describe(*e);
  EXPECT_EQ(e->msr.index, 0x1bu);
  EXPECT_EQ(e->msr.reason, MsrExitReason::kFilter);
  *e->msr.data = 0xfee00942;
  e = v.run();
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->kind, ExitKind::kIo) << describe(*e);
  EXPECT_EQ(e->io.data[0], 0x42) << "the guest got our APIC_BASE value";
}

TEST_F(KvmTest, KickFromAnotherThreadInterruptsASpinningGuest) {
  Vcpu& v = boot({0xeb, 0xfe});  // jmp $
  auto kicker = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(20ms);
    v.kick();
  });
  auto t0 = SteadyClock::instance().now();
  auto e = v.run();
  auto took = SteadyClock::instance().now() - t0;
  kicker.wait();
  ASSERT_TRUE(e.ok()) << e.error().to_string();
  EXPECT_EQ(e->kind, ExitKind::kInterrupted) << describe(*e);
  EXPECT_LT(took, 2s);
}

TEST_F(KvmTest, KickBeforeRunIsNotLost) {
  Vcpu& v = boot({0xeb, 0xfe});
  v.kick();  // before this thread ever entered KVM_RUN (KVM fact #4, docs/vcpu.md)
  auto e = v.run();
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->kind, ExitKind::kInterrupted);
}

// The guest TSC counts from the machine's epoch (what every node's vCPUs
// share) even when a write of MSR 0x10 would fall in KVM's 1-second
// "synchronization" window: this vCPU is created 0.3 s after the epoch and
// set 1.2 s later, so the value written (1.5 s) is within a second of what
// KVM expects (1.2 s since its creation). KVM then ignored the value (kept
// its offset, or on a host with an unstable TSC such as the KVM test VM added
// the 1.2 s to it), and a 2-node Linux saw TSCs seconds apart.
TEST_F(KvmTest, TscCountsFromTheMachineEpochEvenInKvmsSyncWindow) {
  const std::int64_t epoch = realtime_ns() - 300'000'000;
  Vcpu& v = boot({0x0f, 0x31, 0xe6, 0x10, 0xf4});  // rdtsc; out 0x10, al; hlt
  std::this_thread::sleep_for(1200ms);
  ASSERT_TRUE(set_tsc_from_epoch(v, epoch).ok());
  auto khz = v.get_tsc_khz();
  ASSERT_TRUE(khz.ok());
  const std::int64_t before = realtime_ns();
  auto e = v.run();
  const std::int64_t after = realtime_ns();
  ASSERT_TRUE(e.ok()) << e.error().to_string();
  ASSERT_EQ(e->kind, ExitKind::kIo) << describe(*e);
  auto regs = v.get_regs();
  ASSERT_TRUE(regs.ok());
  const std::uint64_t tsc = (regs->rdx << 32) | (regs->rax & 0xFFFFFFFFu);
  const double tsc_ms = static_cast<double>(tsc) / static_cast<double>(*khz);
  // The guest read it between `before` and `after` (give 50 ms for clock
  // granularity and the TCG emulator's jitter).
  EXPECT_GE(tsc_ms, static_cast<double>(before - epoch) / 1e6 - 50) << "TSC behind the epoch";
  EXPECT_LE(tsc_ms, static_cast<double>(after - epoch) / 1e6 + 50) << "TSC ahead of the epoch";
}

TEST_F(KvmTest, StateMovesToAFreshVcpuInAFreshVm) {
  // inc bx; out 0x10, al; jmp back: each exit shows bx.
  Vcpu& a = boot({0x43, 0xe6, 0x10, 0xeb, 0xfb});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.run().ok());
  NullSink sink;
  LapicConfig cfg;
  cfg.bsp = true;
  Lapic la(cfg, SteadyClock::instance(), sink, nullptr);
  auto saved = save_cpu_state(a, la);
  ASSERT_TRUE(saved.ok()) << saved.error().to_string();
  EXPECT_EQ(saved->regs.rbx & 0xFFFF, 3u);
  auto got = deserialize(serialize(*saved));
  ASSERT_TRUE(got.ok());

  Vcpu& b = boot({0x43, 0xe6, 0x10, 0xeb, 0xfb});
  Lapic lb(cfg, SteadyClock::instance(), sink, nullptr);
  ASSERT_TRUE(restore_cpu_state(b, lb, *got).ok());
  auto e = b.run();
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->kind, ExitKind::kIo) << describe(*e);
  auto regs = b.get_regs();
  EXPECT_EQ(regs->rbx & 0xFFFF, 4u) << "continued where the other vCPU stopped";
}

}  // namespace
}  // namespace ssi::vcpu
