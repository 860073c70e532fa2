// What one side of an RC queue-pair connection tells the other (the data
// rc_pingpong exchanges over its TCP socket), plus where its page area is,
// as a text string of fixed-width hex fields:
//   verbs:1-LLLL-QQQQQQ-PPPPPP-<32 hex gid>-MMMM-RRRRRRRR-<16 hex addr>-<16 hex len>
// (version, LID, QPN, PSN, GID, path MTU in bytes, rkey, page-area address
// and length). Text so it can travel through the coordinator, logs and CLI.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace ssi::rdma {

struct VerbsConnInfo {
  std::uint16_t lid = 0;
  std::uint32_t qpn = 0;  // 24 bits
  std::uint32_t psn = 0;  // 24 bits
  std::array<std::uint8_t, 16> gid{};
  std::uint16_t mtu = 1024;  // 256, 512, 1024, 2048 or 4096
  std::uint32_t rkey = 0;
  std::uint64_t addr = 0;
  std::uint64_t length = 0;

  std::string encode() const;
  // Strict: wrong prefix/version, field count, width, non-hex digits or
  // out-of-range values are kInvalidArgument with the offending field named.
  static Result<VerbsConnInfo> decode(std::string_view text);

  bool operator==(const VerbsConnInfo&) const = default;
};

}  // namespace ssi::rdma
