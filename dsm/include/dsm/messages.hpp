// DSM wire messages (frame types 0x0100-0x01ff). Every message names one page
// (FrameHeader::page) and the version of the home's transaction it belongs to
// (FrameHeader::page_version); arg0 carries flags. See docs/protocol.md.
#pragma once

#include <cstdint>
#include <string_view>

#include "rdma/frame.hpp"

namespace ssi::dsm {

enum MsgType : rdma::FrameType {
  kReadReq = 0x0101,   // R -> H: read miss (R in I)
  kWriteReq = 0x0102,  // R -> H: write miss (I) or upgrade (S); arg0 = kUpgrade
  kGrant = 0x0103,     // H -> R: arg0 = GrantFlags; payload = page unless zero/keep
  kGrantAck = 0x0104,  // R -> H: grant installed; home may start the next request
  kInv = 0x0105,       // H -> sharer: drop your S copy
  kInvAck = 0x0106,    // sharer -> H
  kFetch = 0x0107,     // H -> owner: send data; arg0 = kFetchInvalidate ? drop : keep S
  kFetchAck = 0x0108,  // owner -> H: payload = page
};

inline constexpr std::uint64_t kUpgrade = 1;           // WriteReq: I still hold S
inline constexpr std::uint64_t kFetchInvalidate = 1;  // Fetch: M -> I instead of M -> S

// Grant flags (arg0).
inline constexpr std::uint64_t kGrantWritable = 1u << 0;  // M, else S
inline constexpr std::uint64_t kGrantZero = 1u << 1;  // never written: zero-fill locally, no payload
inline constexpr std::uint64_t kGrantKeep = 1u << 2;  // upgrade of the copy the requester holds

std::string_view msg_name(rdma::FrameType t);

}  // namespace ssi::dsm
