#include "rdma/codec.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace ssi::rdma {

Result<void> validate_header(const FrameHeader& h) {
  if (h.magic != kFrameMagic)
    return make_error(Errc::kProtocol, fmt::format("bad frame magic {:#010x}", h.magic));
  if (h.version != kProtocolVersion)
    return make_error(Errc::kVersionMismatch,
                      fmt::format("peer speaks protocol version {}, we speak {}", h.version,
                                  kProtocolVersion));
  if (h.payload_len > kMaxPayload)
    return make_error(Errc::kProtocol,
                      fmt::format("payload of {} bytes exceeds {}", h.payload_len, kMaxPayload));
  if (h.flags & ~kKnownFlags)
    return make_error(Errc::kProtocol, fmt::format("unknown frame flags {:#06x}", h.flags));
  if (h.type == 0) return make_error(Errc::kProtocol, "frame type 0");
  if (h.type < kFirstUserType && h.type != kFrameHello && h.type != kFrameHelloProof)
    return make_error(Errc::kProtocol, fmt::format("unknown transport frame type {:#06x}", h.type));
  return ok();
}

std::array<std::byte, kHeaderSize> encode_header(const FrameHeader& h) {
  std::array<std::byte, kHeaderSize> out;
  std::memcpy(out.data(), &h, kHeaderSize);
  return out;
}

FrameHeader decode_header(std::span<const std::byte, kHeaderSize> bytes) {
  FrameHeader h;
  std::memcpy(&h, bytes.data(), kHeaderSize);
  return h;
}

Result<void> StreamDecoder::feed(std::span<const std::byte> bytes, const FrameFn& on_frame) {
  if (error_) return *error_;
  while (!bytes.empty()) {
    if (!in_payload_) {
      std::size_t n = std::min(bytes.size(), kHeaderSize - header_fill_);
      std::memcpy(header_buf_.data() + header_fill_, bytes.data(), n);
      header_fill_ += n;
      bytes = bytes.subspan(n);
      if (header_fill_ < kHeaderSize) break;
      header_fill_ = 0;
      current_ = Frame{};
      current_.header = decode_header(header_buf_);
      if (auto v = validate_header(current_.header); !v.ok()) {
        error_ = v.error();
        return *error_;
      }
      if (current_.header.payload_len == 0) {
        on_frame(std::move(current_));
        continue;
      }
      current_.payload = Payload::allocate_for_overwrite(current_.header.payload_len);
      payload_fill_ = 0;
      in_payload_ = true;
    }
    auto dst = current_.payload.mutable_bytes();
    std::size_t n = std::min(bytes.size(), dst.size() - payload_fill_);
    std::memcpy(dst.data() + payload_fill_, bytes.data(), n);
    payload_fill_ += n;
    bytes = bytes.subspan(n);
    if (payload_fill_ == dst.size()) {
      in_payload_ = false;
      on_frame(std::move(current_));
    }
  }
  return ok();
}

}  // namespace ssi::rdma
