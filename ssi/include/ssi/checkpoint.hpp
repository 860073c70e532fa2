// A machine checkpoint on disk (docs/checkpoint.md): a directory with
//   ram.pages      every non-zero 4 KiB page of guest RAM as (u64 offset, page)
//   cpu<N>.state   vCPU N's vcpu::CpuState (serialize(): versioned, checksummed)
//   devices.state  the device node's board and fw_cfg (Machine::save_devices)
//   manifest       text: format version, machine config, each file's size
//                  and SHA-256; written last, so a directory without one is
//                  not a checkpoint.
// open_checkpoint() checks all of it before a restore touches anything:
// damage is one Error line (Errc::kProtocol), never a half-restored guest.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/result.hpp"
#include "ssi/kernel_boot.hpp"
#include "vcpu/cpu_state.hpp"

namespace ssi::machine {

inline constexpr std::uint32_t kCheckpointVersion = 1;
inline constexpr std::uint64_t kCheckpointPage = 4096;

struct CheckpointConfig {
  std::uint32_t vcpus = 1;
  std::uint64_t mem_bytes = 0;  // what --mem gave: MemoryMap::pc(mem_bytes)
  KernelKind kernel = KernelKind::kSsiElf;
  std::uint32_t nodes = 1;      // the node count it was taken on (informational)
  // The vCPUs' TSC rate when it was taken (0 = not recorded): a restore on
  // several nodes turns vCPU 0's saved TSC into the new machine's TSC epoch.
  std::uint64_t tsc_khz = 0;
};

struct CheckpointStats {
  std::uint64_t ram_pages_written = 0;  // non-zero pages
  std::uint64_t bytes_written = 0;      // all files
};

// Writes the checkpoint into `dir` (created if missing; an existing
// manifest is replaced last). `cpus` is every vCPU of the machine.
Result<CheckpointStats> write_checkpoint(const std::string& dir, const CheckpointConfig& config,
                                         std::span<const std::uint8_t> ram,
                                         const std::vector<std::pair<std::uint32_t, vcpu::CpuState>>& cpus,
                                         std::span<const std::uint8_t> devices);

// A checkpoint that passed every check.
struct Checkpoint {
  std::string dir;
  CheckpointConfig config;
  std::vector<vcpu::CpuState> cpus;  // index = vCPU
  std::vector<std::uint8_t> devices;
  std::uint64_t ram_bytes = 0;  // the machine's RAM span it was taken from
  std::uint64_t ram_pages = 0;
};

// Reads the manifest and checks the format version, the config, every
// file's size and SHA-256, every vCPU state and the RAM file's records.
// check_ram = false: ram.pages' size and SHA-256 are not checked here (a
// node of a restore whose launcher checked the whole checkpoint already;
// load_checkpoint_ram still checks every record it copies).
Result<Checkpoint> open_checkpoint(const std::string& dir, bool check_ram = true);

// vCPU `s`'s saved TSC (MSR 0x10); 0 if the state has none.
std::uint64_t saved_tsc(const vcpu::CpuState& s);

// The CLOCK_REALTIME epoch at which a TSC of `tsc_khz` counting from 0
// reads `tsc` at `now_ns`: a restored machine's vCPUs continue from there.
std::int64_t tsc_epoch_for(std::uint64_t tsc, std::uint64_t tsc_khz, std::int64_t now_ns);

// Copies the checked RAM pages into `ram` (mem_bytes long; pages not in the
// file are left as they are: zero in a fresh machine).
Result<void> load_checkpoint_ram(const Checkpoint& c, std::span<std::uint8_t> ram);

}  // namespace ssi::machine
