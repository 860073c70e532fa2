#include "multinode/forwarding_io.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "ssi/board.hpp"

namespace ssi::multinode {

Result<void> ForwardingIo::pio(VcpuId vcpu, std::uint16_t port, bool is_write,
                               std::span<std::uint8_t> data) {
  return access({IoSpace::kPio, vcpu, is_write, port, static_cast<std::uint8_t>(data.size()),
                 {data.begin(), data.end()}},
                data);
}

Result<void> ForwardingIo::pio_string(VcpuId vcpu, std::uint16_t port, bool is_write,
                                      std::uint8_t size, std::span<std::uint8_t> data) {
  // KVM hands over at most a page; anything longer goes a page at a time.
  std::size_t chunk = size ? kPageSize / size * size : data.size();
  for (std::size_t off = 0; off < data.size(); off += chunk) {
    auto part = data.subspan(off, std::min(chunk, data.size() - off));
    SSI_TRY(access({IoSpace::kPio, vcpu, is_write, port, size, {part.begin(), part.end()}}, part));
  }
  return ok();
}

Result<void> ForwardingIo::mmio(VcpuId vcpu, Gpa gpa, bool is_write,
                                std::span<std::uint8_t> data) {
  return access({IoSpace::kMmio, vcpu, is_write, gpa.value(),
                 static_cast<std::uint8_t>(data.size()), {data.begin(), data.end()}},
                data);
}

Result<void> ForwardingIo::access(IoAccess a, std::span<std::uint8_t> data) {
  if (!machine::board_claims(a.space == IoSpace::kMmio, a.address, a.width)) {
    unclaimed_.fetch_add(1, std::memory_order_relaxed);
    if (!a.is_write) std::fill(data.begin(), data.end(), std::uint8_t{0xFF});
    return ok();
  }
  return forward(a, data);
}

Result<void> ForwardingIo::forward(const IoAccess& a, std::span<std::uint8_t> data) {
  auto what = [&] {
    return fmt::format("{} {} {:#x} forwarded to node {}", a.space == IoSpace::kPio ? "port" : "mmio",
                       a.is_write ? "write" : "read", a.address, device_node_.value());
  };
  forwarded_.fetch_add(1, std::memory_order_relaxed);
  auto reply = data_.rpc(device_node_, encode_io(a));
  auto exiting = [&] {  // reads see an open bus
    std::fill(data.begin(), data.end(), std::uint8_t{0xFF});
    return ok();
  };
  if (!reply) return exiting();
  if (!reply->ok()) {
    Error e = reply->error();
    // The device node began exiting while serving: so does this machine.
    if (e.code == Errc::kShutdown) return exiting();
    e.message = fmt::format("{}: {}", what(), e.message);
    return e;
  }
  const rdma::Frame& f = **reply;
  if (f.header.flags & rdma::kFlagError) {
    auto b = f.payload.bytes();
    return make_error(static_cast<Errc>(f.header.arg0),
                      fmt::format("{}: {}", what(),
                                  std::string(reinterpret_cast<const char*>(b.data()), b.size())));
  }
  if (!a.is_write) {
    if (f.payload.size() != data.size())
      return make_error(Errc::kProtocol, fmt::format("{}: reply has {} bytes, not {}", what(),
                                                     f.payload.size(), data.size()));
    std::memcpy(data.data(), f.payload.bytes().data(), data.size());
  }
  return ok();
}

}  // namespace ssi::multinode
