// A guest made of FakeVcpu scripts, for exercising a multi-node machine
// without /dev/kvm (in-process tests and `ssi demo --workload machine-demo`).
// It behaves like a small SMP test kernel:
//  - the BSP starts every AP with INIT + SIPI (all-excluding-self), each AP
//    records the registers SIPI gave it in guest RAM, the BSP waits for all;
//  - every vCPU prints `lines` lines on COM1 under a spinlock in guest RAM
//    (so lines from different nodes never interleave) and adds `increments`
//    to a counter in guest RAM with atomic RMWs (DSM coherence);
//  - the BSP plays IPI ping-pong with every AP (fixed vector 0x40 there,
//    0x41 back), waiting with "sti; hlt" like a real guest (the exit before
//    each HLT has interrupts off, so no wake-up is lost);
//  - the BSP checks everything, prints one summary line and writes the
//    result to the ssi exit port (0 = every check passed).
// Every spin on guest memory is bounded by `wait_limit`.
#pragma once

#include <chrono>
#include <span>
#include <string>

#include "multinode/placement.hpp"
#include "vcpu/fake_vcpu.hpp"

namespace ssi::multinode::testing {

struct ScriptedGuestConfig {
  Placement placement;
  std::uint32_t lines = 3;
  std::uint32_t increments = 500;
  std::uint32_t ping_rounds = 2;
  std::chrono::milliseconds wait_limit{10000};
};

// Guest-physical addresses the script uses (above the 1 MiB boot area).
inline constexpr std::uint64_t kLockGpa = 0x200000;
inline constexpr std::uint64_t kCounterGpa = 0x201000;
inline constexpr std::uint64_t kDoneGpa = 0x202000;
inline constexpr std::uint64_t kStartedGpa = 0x203000;  // one word per vCPU
inline constexpr std::uint64_t kScriptedGuestMinRam = 4ull << 20;
inline constexpr std::uint16_t kPostPort = 0x80;  // harmless writes that carry hooks

// Writes the script of vCPU `v.id()`; `ram` is this node's view of guest RAM
// (the DSM region: ram offset == gpa below 3 GiB).
void script_vcpu(vcpu::testing::FakeVcpu& v, const ScriptedGuestConfig& config,
                 std::span<std::uint8_t> ram);

// The console line vCPU `cpu` prints as its `line`-th line.
std::string vcpu_line(const ScriptedGuestConfig& config, std::uint32_t cpu, std::uint32_t line);
// The BSP's last line when every check passed.
std::string success_summary(const ScriptedGuestConfig& config);

}  // namespace ssi::multinode::testing
