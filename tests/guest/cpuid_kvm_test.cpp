// The CPUID every vCPU presents is exactly ssi's policy: the cpuid kernel
// (ssi ELF; mbcpuid for the multiboot kind) dumps leaves 1, 7.0, 0xD.0,
// 0xD.1 and 0x80000001 on every CPU it runs, and each
// must equal what `ssi cpuid` prints on the same host (the policy applied to
// KVM's supported CPUID). A leaf the policy removed reads as zeros (KVM
// returns zeros for a missing leaf below the maximum basic leaf). The only
// per-CPU field, CPUID.1:EBX[31:24], must be that CPU's APIC id; what the
// kvm_pvm emulator cannot run must be hidden in any case. Skips, with
// the reason, without a usable /dev/kvm: scripts/kvm-vm-tests runs it in the
// KVM test VM, where the expected policy is computed inside the VM.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "kernel_cases.hpp"
#include "ssi/subprocess.hpp"
#include "vcpu/kvm_host.hpp"

namespace ssi::machine {
namespace {

using namespace std::chrono_literals;

using Leaf = std::pair<std::uint32_t, std::uint32_t>;  // (leaf, sub-leaf)
using Regs = std::array<std::uint32_t, 4>;             // eax, ebx, ecx, edx
constexpr std::uint32_t kApicIdBits = 0xFF000000u;     // CPUID.1:EBX[31:24]
const std::vector<Leaf> kDumped{{0x1, 0}, {0x7, 0}, {0xD, 0}, {0xD, 1}, {0x80000001, 0}};

const vcpu::KvmHost& kvm_host() {
  static const vcpu::KvmHost host = vcpu::probe_kvm_host();
  return host;
}

#define SKIP_WITHOUT_KVM() \
  if (!kvm_host().usable) GTEST_SKIP() << kvm_host().reason

// `ssi cpuid` lines: "leaf 0x00000001.0 eax=0x... ebx=0x... ecx=0x... edx=0x...".
std::map<Leaf, Regs> policy_leaves() {
  auto o = ssi::testing::run_process(SSI_BINARY, {"cpuid"}, {}, 60s);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  std::map<Leaf, Regs> out;
  std::istringstream in(o.out);
  for (std::string line; std::getline(in, line);) {
    Leaf l;
    Regs r;
    if (std::sscanf(line.c_str(), "leaf %x.%u eax=%x ebx=%x ecx=%x edx=%x", &l.first, &l.second,
                    &r[0], &r[1], &r[2], &r[3]) == 6)
      out[l] = r;
  }
  EXPECT_FALSE(out.empty()) << o.out;
  return out;
}

struct GuestLeaf {
  std::uint32_t apic = 0;
  Regs regs{};
};

// The kernel's lines: "cpuid: cpu C apic A leaf 0xL.S eax=0x.. ebx=0x.. ecx=0x.. edx=0x..".
std::map<unsigned, std::map<Leaf, GuestLeaf>> guest_leaves(const std::string& serial) {
  std::map<unsigned, std::map<Leaf, GuestLeaf>> out;
  std::istringstream in(serial);
  for (std::string line; std::getline(in, line);) {
    unsigned cpu = 0;
    Leaf l;
    GuestLeaf g;
    auto pos = line.find("cpuid: cpu ");
    if (pos == std::string::npos) continue;
    if (std::sscanf(line.c_str() + pos,
                    "cpuid: cpu %u apic %u leaf %x.%u eax=%x ebx=%x ecx=%x edx=%x", &cpu, &g.apic,
                    &l.first, &l.second, &g.regs[0], &g.regs[1], &g.regs[2], &g.regs[3]) == 8)
      out[cpu][l] = g;
  }
  return out;
}

std::string hex(const Regs& r) {
  char buf[80];
  std::snprintf(buf, sizeof buf, "eax=%08x ebx=%08x ecx=%08x edx=%08x", r[0], r[1], r[2], r[3]);
  return buf;
}

// What the kvm_pvm emulator cannot execute at CPL0 (docs/vcpu.md, KVM fact
// #7) must be hidden whatever `ssi cpuid` says: (leaf, register, bits).
struct Hidden {
  Leaf leaf;
  int reg;
  std::uint32_t bits;
  const char* what;
};
const std::vector<Hidden> kHidden{
    {{0x1, 0}, 2, (1u << 26) | (1u << 27) | (1u << 28), "XSAVE, OSXSAVE, AVX"},
    {{0x1, 0}, 2, (1u << 12) | (1u << 29), "FMA, F16C"},
    {{0x1, 0}, 2, (1u << 20) | (1u << 23), "SSE4.2, POPCNT"},
    {{0x1, 0}, 2, 1u << 13, "CMPXCHG16B"},
    {{0x7, 0}, 1, (1u << 5) | (1u << 16), "AVX2, AVX-512F"},
    {{0xD, 0}, 0, ~0u, "XSAVE state components"},
    {{0x80000001, 0}, 3, 1u << 27, "RDTSCP"},
};

void expect_hidden(const Leaf& l, const Regs& seen) {
  for (const auto& h : kHidden) {
    if (h.leaf == l) {
      EXPECT_EQ(seen[h.reg] & h.bits, 0u) << h.what << " visible to the guest";
    }
  }
}

struct CpuidCase {
  std::string kernel;  // path
  unsigned nodes, vcpus;
  int exit_code;     // ssi's on success (multiboot: isa-debug-exit (0 << 1) | 1)
  unsigned dumping;  // CPUs that print (a multiboot kernel runs the BSP only)
  std::string name;
};

void PrintTo(const CpuidCase& c, std::ostream* os) { *os << c.name; }

// Every dumping CPU printed every leaf, equal to the policy.
void expect_policy(const std::string& serial, const CpuidCase& c) {
  const auto policy = policy_leaves();
  const auto guest = guest_leaves(serial);
  ASSERT_EQ(guest.size(), c.dumping) << serial;
  for (const auto& [cpu, leaves] : guest) {
    for (const Leaf& l : kDumped) {
      SCOPED_TRACE(::testing::Message()
                   << "cpu " << cpu << " leaf 0x" << std::hex << l.first << "." << l.second);
      auto g = leaves.find(l);
      ASSERT_NE(g, leaves.end()) << serial;
      auto p = policy.find(l);
      Regs want = p == policy.end() ? Regs{} : p->second;
      Regs seen = g->second.regs;
      expect_hidden(l, seen);
      if (l.first == 1) {
        EXPECT_EQ(seen[1] >> 24, g->second.apic) << "CPUID.1:EBX[31:24] is not the APIC id";
        seen[1] &= ~kApicIdBits;
        want[1] &= ~kApicIdBits;
      }
      EXPECT_EQ(hex(seen), hex(want)) << "guest (first) differs from `ssi cpuid` (second)";
    }
  }
}

class CpuidKvm : public ::testing::TestWithParam<CpuidCase> {};

TEST_P(CpuidKvm, EveryCpuSeesExactlyThePolicy) {
  SKIP_WITHOUT_KVM();
  const CpuidCase& c = GetParam();
  std::vector<std::string> args{"run",
                                "--nodes",
                                std::to_string(c.nodes),
                                "--vcpus",
                                std::to_string(c.vcpus),
                                "--mem",
                                "64M",
                                "--kernel",
                                c.kernel};
  if (c.nodes > 1) args.insert(args.end(), {"--transport", "tcp"});
  auto o = ssi::testing::run_process(SSI_BINARY, args, {}, 600s);
  ASSERT_EQ(o.exit_code, c.exit_code) << "stdout:\n" << o.out << "\nstderr:\n" << o.err;
  expect_policy(o.out, c);
}

std::vector<CpuidCase> cpuid_cases() {
  const std::string elf = guest_kernel_path("cpuid");
  return {{elf, 1, 1, 0, 1, "ssi_elf_1node_1vcpu"},
          {elf, 1, 2, 0, 2, "ssi_elf_1node_2vcpus"},
          {elf, 2, 2, 0, 2, "ssi_elf_2nodes_2vcpus"},
          {SSI_MBCPUID, 1, 2, 1, 1, "multiboot_1node_2vcpus"},
          {SSI_MBCPUID, 2, 2, 1, 1, "multiboot_2nodes_2vcpus"}};
}

INSTANTIATE_TEST_SUITE_P(Kvm, CpuidKvm, ::testing::ValuesIn(cpuid_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace ssi::machine
