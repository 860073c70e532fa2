#include "multinode/wire.hpp"

#include <cstring>

#include <fmt/format.h>

namespace ssi::multinode {

namespace {
Error bad(std::string msg) { return make_error(Errc::kProtocol, std::move(msg)); }
}  // namespace

// arg0: bits 0-7 width, bit 8 write, bits 9-10 space, bits 16-28 element
// count, bits 32-63 vCPU; arg1: address. A write carries its bytes; a read's
// reply carries width * count bytes.
rdma::Frame encode_io(const IoAccess& a) {
  std::uint64_t arg0 = a.width | (std::uint64_t{a.is_write} << 8) |
                       (std::uint64_t(a.space) << 9) | (std::uint64_t{a.count() & 0x1FFF} << 16) |
                       (std::uint64_t{a.vcpu.value()} << 32);
  rdma::Frame f = rdma::Frame::make(kIoRequest, arg0, a.address);
  if (a.is_write)
    f.payload = rdma::Payload::copy_of(std::as_bytes(std::span(a.data)));
  return f;
}

Result<IoAccess> decode_io(const rdma::Frame& f) {
  const auto& h = f.header;
  if (h.type != kIoRequest) return bad(fmt::format("frame type {:#x} is not an I/O request", h.type));
  IoAccess a;
  a.width = static_cast<std::uint8_t>(h.arg0 & 0xFF);
  a.is_write = (h.arg0 >> 8) & 1;
  auto space = (h.arg0 >> 9) & 3;
  std::size_t count = (h.arg0 >> 16) & 0x1FFF;
  if (space > 1) return bad(fmt::format("I/O request with address space {}", space));
  a.space = static_cast<IoSpace>(space);
  a.vcpu = VcpuId{static_cast<std::uint32_t>(h.arg0 >> 32)};
  a.address = h.arg1;
  if (a.width == 0 || a.width > 8) return bad(fmt::format("I/O request of {} bytes", a.width));
  std::size_t bytes = a.width * count;
  if (count == 0 || bytes > kPageSize || (a.space == IoSpace::kMmio && count != 1))
    return bad(fmt::format("I/O request of {} elements of {} bytes", count, a.width));
  if (a.space == IoSpace::kPio && a.address > 0xFFFF)
    return bad(fmt::format("port {:#x} is out of range", a.address));
  if (a.is_write && f.payload.size() != bytes)
    return bad(fmt::format("I/O write of {} bytes carries {}", bytes, f.payload.size()));
  a.data.assign(bytes, 0);
  if (a.is_write) std::memcpy(a.data.data(), f.payload.bytes().data(), bytes);
  return a;
}

rdma::Frame encode_eoi(std::uint8_t vector) {
  return rdma::Frame::make(kEoi, vector);
}

Result<std::uint8_t> decode_eoi(const rdma::Frame& f) {
  if (f.header.type != kEoi) return bad(fmt::format("frame type {:#x} is not an EOI", f.header.type));
  if (f.header.arg0 > 0xFF) return bad(fmt::format("EOI of vector {:#x}", f.header.arg0));
  return static_cast<std::uint8_t>(f.header.arg0);
}

// arg0: bits 0-7 vector, 8-10 mode, 11-12 shorthand, 13 logical, 14 level
// assert, 15 level triggered, 32-63 source APIC id; arg1: destination (low),
// source vCPU (high).
rdma::Frame encode_ipi(const vcpu::Ipi& ipi) {
  std::uint64_t arg0 = ipi.vector | (std::uint64_t(ipi.mode) << 8) |
                       (std::uint64_t(ipi.shorthand) << 11) | (std::uint64_t{ipi.logical} << 13) |
                       (std::uint64_t{ipi.level_assert} << 14) |
                       (std::uint64_t{ipi.level_triggered} << 15) |
                       (std::uint64_t{ipi.source_apic_id} << 32);
  std::uint64_t arg1 = ipi.destination | (std::uint64_t{ipi.source.value()} << 32);
  return rdma::Frame::make(kIpi, arg0, arg1);
}

Result<vcpu::Ipi> decode_ipi(const rdma::Frame& f) {
  const auto& h = f.header;
  if (h.type != kIpi) return bad(fmt::format("frame type {:#x} is not an IPI", h.type));
  vcpu::Ipi ipi;
  ipi.vector = static_cast<std::uint8_t>(h.arg0 & 0xFF);
  ipi.mode = static_cast<vcpu::DeliveryMode>((h.arg0 >> 8) & 7);
  ipi.shorthand = static_cast<vcpu::DestShorthand>((h.arg0 >> 11) & 3);
  ipi.logical = (h.arg0 >> 13) & 1;
  ipi.level_assert = (h.arg0 >> 14) & 1;
  ipi.level_triggered = (h.arg0 >> 15) & 1;
  ipi.source_apic_id = static_cast<std::uint32_t>(h.arg0 >> 32);
  ipi.destination = static_cast<std::uint32_t>(h.arg1);
  ipi.source = VcpuId{static_cast<std::uint32_t>(h.arg1 >> 32)};
  return ipi;
}

// arg0: vCPU; arg1: bits 0-7 kind, 32-63 origin node.
rdma::Frame encode_marker(const MoveMarker& m) {
  return rdma::Frame::make(kMoveMarker, m.vcpu,
                           std::uint64_t(m.kind) | (std::uint64_t{m.origin.value()} << 32));
}

Result<MoveMarker> decode_marker(const rdma::Frame& f) {
  const auto& h = f.header;
  if (h.type != kMoveMarker) return bad(fmt::format("frame type {:#x} is not a move marker", h.type));
  auto kind = h.arg1 & 0xFF;
  if (kind < 1 || kind > 3 || h.arg0 > 0xFFFFFFFFu)
    return bad(fmt::format("move marker of kind {} for vCPU {}", kind, h.arg0));
  return MoveMarker{static_cast<std::uint32_t>(h.arg0), static_cast<MoveMarker::Kind>(kind),
                    NodeId{static_cast<std::uint32_t>(h.arg1 >> 32)}};
}

namespace {
constexpr std::uint32_t kMoveMagic = 0x564f4d53;  // "SMOV"

void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
}  // namespace

// Little endian: magic, state length, state, counter count, then per
// counter its name length, name and value.
std::vector<std::uint8_t> encode_move(const MovePayload& m) {
  std::vector<std::uint8_t> out;
  put32(out, kMoveMagic);
  put32(out, static_cast<std::uint32_t>(m.state.size()));
  out.insert(out.end(), m.state.begin(), m.state.end());
  put32(out, static_cast<std::uint32_t>(m.counters.size()));
  for (const auto& [name, value] : m.counters) {
    put32(out, static_cast<std::uint32_t>(name.size()));
    out.insert(out.end(), name.begin(), name.end());
    put64(out, value);
  }
  return out;
}

Result<MovePayload> decode_move(std::span<const std::uint8_t> in) {
  std::size_t at = 0;
  auto get = [&](std::size_t n, std::uint64_t& v) {
    if (in.size() - at < n) return false;
    v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{in[at + i]} << (8 * i);
    at += n;
    return true;
  };
  auto truncated = [&] { return bad(fmt::format("move payload of {} bytes is truncated at {}", in.size(), at)); };
  std::uint64_t magic = 0, len = 0, count = 0;
  if (!get(4, magic) || magic != kMoveMagic) return bad("not a move payload");
  MovePayload m;
  if (!get(4, len) || in.size() - at < len) return truncated();
  m.state.assign(in.begin() + at, in.begin() + at + len);
  at += len;
  if (!get(4, count)) return truncated();
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t n = 0, value = 0;
    if (!get(4, n) || in.size() - at < n) return truncated();
    std::string name(reinterpret_cast<const char*>(in.data() + at), n);
    at += n;
    if (!get(8, value)) return truncated();
    m.counters.emplace_back(std::move(name), value);
  }
  if (at != in.size()) return bad(fmt::format("{} bytes after the move payload", in.size() - at));
  return m;
}

}  // namespace ssi::multinode
