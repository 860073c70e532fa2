// The machine's frames on the data path (type range 0x0200-0x02ff, beside
// the DSM's): device accesses forwarded to node 0, IPIs to the node that runs
// the target vCPU, and the machine-wide exit. Pure encode/decode, tested
// without a transport.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <span>
#include <vector>

#include "base/ids.hpp"
#include "base/result.hpp"
#include "rdma/dispatcher.hpp"
#include "rdma/frame.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::multinode {

enum MachineFrame : rdma::FrameType {
  kIoRequest = 0x0201,    // rpc to node 0; reply payload = the bytes read
  kIpi = 0x0202,          // one ICR write, for the LAPICs of the receiving node
  kMachineExit = 0x0203,  // arg0 = exit code: stop every vCPU of the receiving node
  kEoi = 0x0204,          // to node 0: arg0 = vector of a level-triggered EOI (IOAPIC remote IRR)
  kMoveMarker = 0x0205,   // a vCPU move's IPI marker (MoveMarker, docs/mobility.md)
};

inline constexpr rdma::FrameRange kMachineFrames{0x0200, 0x02ff};

enum class IoSpace : std::uint8_t { kPio = 0, kMmio = 1 };

// One port-I/O or MMIO access of one vCPU, or a whole string instruction
// (rep ins/outs: data.size() / width elements at one port, up to a page).
struct IoAccess {
  IoSpace space = IoSpace::kPio;
  VcpuId vcpu;
  bool is_write = false;
  std::uint64_t address = 0;       // port or gpa
  std::uint8_t width = 0;          // bytes per element (1-8)
  std::vector<std::uint8_t> data;  // write: the bytes; read: size = width * count
  std::size_t count() const { return width ? data.size() / width : 0; }
};

rdma::Frame encode_io(const IoAccess& a);
Result<IoAccess> decode_io(const rdma::Frame& f);

rdma::Frame encode_eoi(std::uint8_t vector);
Result<std::uint8_t> decode_eoi(const rdma::Frame& f);

rdma::Frame encode_ipi(const vcpu::Ipi& ipi);
Result<vcpu::Ipi> decode_ipi(const rdma::Frame& f);

// Where a node stands in vCPU `vcpu`'s move from node A to node B, sent in
// order with its IPI frames (ssi/multinode/include/multinode/transit.hpp).
struct MoveMarker {
  enum class Kind : std::uint8_t {
    kLeft = 1,      // origin -> A: from here on origin sends k's IPIs to B
    kFlushed = 2,   // A -> B: every IPI origin sent for k through A is ahead
    kSwitched = 3,  // origin -> B: from here on origin's IPIs to B count for k
  };
  std::uint32_t vcpu = 0;
  Kind kind = Kind::kLeft;
  NodeId origin;
  bool operator==(const MoveMarker&) const = default;
};
rdma::Frame encode_marker(const MoveMarker& m);
Result<MoveMarker> decode_marker(const rdma::Frame& f);

// What a move carries from node to node (in the coordinator's calls, not
// on the data path): the serialised vcpu::CpuState and the vCPU's counters
// so far (machine::Machine::vcpu_stats), so they go on counting.
struct MovePayload {
  std::vector<std::uint8_t> state;
  std::vector<std::pair<std::string, std::uint64_t>> counters;
};
std::vector<std::uint8_t> encode_move(const MovePayload& m);
Result<MovePayload> decode_move(std::span<const std::uint8_t> bytes);

}  // namespace ssi::multinode
