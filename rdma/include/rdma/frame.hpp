// A frame: a fixed 64-byte header + an optional payload of at most 4 KiB
// (one guest page). The header layout is the wire format of every backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "base/ids.hpp"

namespace ssi::rdma {

inline constexpr std::uint32_t kFrameMagic = 0x31495353;  // "SSI1" little-endian
// 2: hellos carry a challenge-response over the machine secret.
// 3: the header carries four generic arguments (no DSM fields).
inline constexpr std::uint16_t kProtocolVersion = 3;
inline constexpr std::size_t kMaxPayload = 4096;

// Frame types below kFirstUserType (codec.hpp) are the transport's own; the
// layers above claim ranges of the rest with a Dispatcher (dispatcher.hpp).
using FrameType = std::uint16_t;

enum FrameFlag : std::uint16_t {
  kFlagReply = 1u << 0,  // answers the request with the same request_id
  kFlagError = 1u << 1,  // reply carries an error (arg0 = ssi::Errc)
};

struct FrameHeader {
  std::uint32_t magic = kFrameMagic;
  std::uint16_t version = kProtocolVersion;
  FrameType type = 0;
  std::uint16_t flags = 0;
  std::uint16_t reserved = 0;
  std::uint32_t payload_len = 0;
  std::uint64_t request_id = 0;  // set by rpc(); echoed by reply()
  std::uint32_t src = 0;         // NodeId of the sender (set by the transport)
  std::uint32_t dst = 0;         // NodeId of the receiver
  // Message-specific: each frame type's owner gives them a meaning (an
  // error reply: arg0 = ssi::Errc).
  std::uint64_t arg0 = 0;
  std::uint64_t arg1 = 0;
  std::uint64_t arg2 = 0;
  std::uint64_t arg3 = 0;
};
static_assert(sizeof(FrameHeader) == 64, "wire format");

// Payload bytes: either borrowed (the sender's memory, e.g. a guest page,
// which must stay valid and unchanged until send() returns: backends that
// queue copy it) or owned (a pooled buffer, e.g. everything received).
class Payload {
 public:
  Payload() = default;
  static Payload borrow(std::span<const std::byte> bytes);
  static Payload copy_of(std::span<const std::byte> bytes);
  static Payload allocate(std::size_t size);  // owned, zeroed
  // Owned, contents unspecified: for a caller that fills every byte (a
  // received page is written once, not zeroed first).
  static Payload allocate_for_overwrite(std::size_t size);

  std::span<const std::byte> bytes() const;
  std::span<std::byte> mutable_bytes();  // empty unless owned
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool owned() const { return owned_ != nullptr; }
  Payload to_owned() &&;  // copies a borrowed payload, moves an owned one

 private:
  struct Deleter {
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte[], Deleter> owned_;
  const std::byte* borrowed_ = nullptr;
  std::size_t size_ = 0;
};

struct Frame {
  FrameHeader header;
  Payload payload;

  static Frame make(FrameType type, std::uint64_t arg0 = 0, std::uint64_t arg1 = 0,
                    std::uint64_t arg2 = 0, std::uint64_t arg3 = 0);
  bool is_reply() const { return header.flags & kFlagReply; }
  NodeId src() const { return NodeId{header.src}; }
};

}  // namespace ssi::rdma
