// QEMU's fw_cfg interface, legacy port-I/O flavour (docs/specs/fw_cfg.rst in
// QEMU): a 16-bit selector at 0x510 picks an item, byte reads from 0x511
// stream it. Test kernels written for QEMU read the CPU count and RAM size
// this way. ssi provides the signature, the interface id (no DMA), RAM size,
// CPU counts, the legacy NUMA item and an empty file directory; unknown items
// and reads past an item's end return 0, as in QEMU.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "ssi/devices/io_bus.hpp"
#include "ssi/devices/state_bytes.hpp"

namespace ssi::machine {

inline constexpr std::uint64_t kFwCfgPort = 0x510;
inline constexpr std::uint64_t kFwCfgPorts = 2;  // selector, data

namespace fw_cfg {
inline constexpr std::uint16_t kSignature = 0x00;  // "QEMU"
inline constexpr std::uint16_t kId = 0x01;         // u32 feature bits: 1 = traditional interface
inline constexpr std::uint16_t kRamSize = 0x03;    // u64
inline constexpr std::uint16_t kNbCpus = 0x05;     // u16
inline constexpr std::uint16_t kNuma = 0x0D;     // u64 nodes, u64 node per cpu, u64 bytes per node
inline constexpr std::uint16_t kMaxCpus = 0x0F;  // u16
inline constexpr std::uint16_t kFileDir = 0x19;  // u32 big-endian count, then entries
}  // namespace fw_cfg

struct FwCfgConfig {
  std::uint64_t ram_bytes = 0;
  std::uint16_t cpus = 1;
  std::vector<std::uint32_t> cpu_node{};  // empty: no NUMA item
  std::vector<std::uint64_t> node_bytes{};
};

class FwCfg : public IoDevice {
 public:
  explicit FwCfg(const FwCfgConfig& config);

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  // Checkpoint (docs/checkpoint.md): the guest-visible state, appended /
  // read back in a fixed order. restore() is false on short input.
  void save(StateWriter& w);
  bool restore(StateReader& r);
  // (Only the selector and read position: the items follow from the config.)

  // The bytes of one item (empty if unknown), for tests.
  std::vector<std::uint8_t> item(std::uint16_t key) const;

 private:
  std::map<std::uint16_t, std::vector<std::uint8_t>> items_;
  std::mutex mu_;
  std::uint16_t selector_ = 0;
  std::size_t pos_ = 0;
};

}  // namespace ssi::machine
