// Wire codec: header validation and an incremental stream decoder for byte
// stream backends (tcp). The header is sent as its in-memory little-endian
// layout (every supported host is little-endian x86-64/aarch64).
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <optional>
#include <span>

#include "base/result.hpp"
#include "rdma/frame.hpp"

namespace ssi::rdma {

inline constexpr std::size_t kHeaderSize = sizeof(FrameHeader);
inline constexpr std::uint16_t kKnownFlags = kFlagReply | kFlagError;

// Transport-internal frame types (0x0000-0x00ff).
inline constexpr FrameType kFrameHello = 0x0001;  // first frame on a stream: src = node id
// The dialer's answer to the acceptor's challenge (stream backends; see
// rdma/src/hello_auth.hpp): its proof of the machine secret.
inline constexpr FrameType kFrameHelloProof = 0x0002;
inline constexpr FrameType kFirstUserType = 0x0100;

// kVersionMismatch for another protocol version, kProtocol for a bad magic,
// payload_len > kMaxPayload, unknown flag bits, type 0 or an unknown
// transport-internal type (< kFirstUserType).
Result<void> validate_header(const FrameHeader& h);

std::array<std::byte, kHeaderSize> encode_header(const FrameHeader& h);
FrameHeader decode_header(std::span<const std::byte, kHeaderSize> bytes);

// Feed it arbitrary chunks of a byte stream; it yields whole frames in
// order. After the first error it stays failed (the stream cannot be
// resynchronised) and returns that error from every later feed().
class StreamDecoder {
 public:
  using FrameFn = std::function<void(Frame&& frame)>;

  Result<void> feed(std::span<const std::byte> bytes, const FrameFn& on_frame);
  // True if a frame has started but not finished (a disconnect now loses it).
  bool mid_frame() const { return header_fill_ > 0 || in_payload_; }
  bool failed() const { return error_.has_value(); }

 private:
  std::array<std::byte, kHeaderSize> header_buf_{};
  std::size_t header_fill_ = 0;
  bool in_payload_ = false;
  Frame current_;
  std::size_t payload_fill_ = 0;
  std::optional<Error> error_;
};

}  // namespace ssi::rdma
