// DSM wire messages (frame types kDsmFrames, routed to the DSM by the
// transport). Every message names one page and the version of the home's
// transaction it belongs to, and carries flags; this codec maps them onto
// the frame header's generic arguments. See docs/protocol.md.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/ids.hpp"
#include "rdma/dispatcher.hpp"
#include "rdma/frame.hpp"

namespace ssi::dsm {

inline constexpr rdma::FrameRange kDsmFrames{0x0100, 0x01ff};

// The fourth argument (msg_arg) names the requester a message is on behalf
// of, or counts its acks: the protocol forwards instead of relaying through
// the home (docs/protocol.md, "Message paths").
enum MsgType : rdma::FrameType {
  kReadReq = 0x0101,   // R -> H: read miss (R in I)
  kWriteReq = 0x0102,  // R -> H: write miss (I) or upgrade (S); flags = kUpgrade
  kGrant = 0x0103,     // H or owner -> R: flags = GrantFlags; payload = page unless
                       // zero/keep; arg = InvAcks R must collect before installing
  kGrantAck = 0x0104,  // R -> H: grant installed; home may start the next request
  kInv = 0x0105,       // H -> sharer: drop your S copy; arg = R, who gets the InvAck
  kInvAck = 0x0106,    // sharer -> R (the requester of the write)
  kFetch = 0x0107,     // H -> owner: grant the page to R = arg yourself;
                       // flags = kFetchInvalidate ? drop : keep S and FetchAck
  kFetchAck = 0x0108,  // owner -> H (read only): payload = page, the home's new copy
  // A node's share handed over at a barrier (docs/mobility.md, "Retiring a
  // node"), from the retiring node A; never sent otherwise.
  kHandEntry = 0x0109,      // A -> B: one directory entry of a page homed on A; version =
                            // its version, flags = HandEntry flags, arg = sharers;
                            // payload = the home's copy unless zero or kHandKept
  kWriteback = 0x010a,      // A -> H: A's M copy of a page homed on H; payload = page
  kLeave = 0x010b,          // A -> H: A drops its S copy of a page homed on H
  kHandEnd = 0x010c,        // A -> every node: arg = B, flags = handover frames sent to
                            // this node before it; home A's pages on B from now on
  kHandEndAck = 0x010d,     // node -> A: done; flags = handover frames it rejected
  kHandEntries = 0x010e,    // A -> B: arg = N <= kHandBatch entries without data, payload =
                            // N records {page, version, flags, sharers} (u64 each), zero padded
};

inline constexpr std::uint64_t kHandBatch = 128;  // records of 32 bytes in one page

// kHandEntry flags: bits 0-1 DirState, bit 2 zero, bit 3 kept, bits 8-15 owner.
inline constexpr std::uint64_t kHandZero = 1u << 2;
// B holds the page in S (a sharer already): its own copy is the home's copy.
inline constexpr std::uint64_t kHandKept = 1u << 3;

inline constexpr std::uint64_t kUpgrade = 1;           // WriteReq: I still hold S
inline constexpr std::uint64_t kFetchInvalidate = 1;  // Fetch: M -> I instead of M -> S
// Fetch (with kFetchInvalidate): the requester asked to read a migratory
// page; the forwarded grant is writable and carries kGrantMigratory.
inline constexpr std::uint64_t kFetchMigratory = 2;
// Fetch (with kFetchInvalidate): the page is hot; the forwarded grant
// carries kGrantHot.
inline constexpr std::uint64_t kFetchHot = 4;
// GrantAck: the previous holder of a migratory grant gave the page up
// without having changed it (kGrantClean): evidence against migratory.
inline constexpr std::uint64_t kAckClean = 1;

// Grant flags.
inline constexpr std::uint64_t kGrantWritable = 1u << 0;  // M, else S
inline constexpr std::uint64_t kGrantZero = 1u << 1;  // never written: zero-fill locally, no payload
inline constexpr std::uint64_t kGrantKeep = 1u << 2;  // upgrade of the copy the requester holds
inline constexpr std::uint64_t kGrantForwarded = 1u << 3;  // sent by the old owner, not the home
// A read miss of a page the home found migratory, granted writable (M): the
// reader is expected to write it next (docs/protocol.md, "Migratory pages").
inline constexpr std::uint64_t kGrantMigratory = 1u << 4;
// Forwarded grant: the old owner held it from a migratory grant and did not
// change it (the requester echoes kAckClean to the home).
inline constexpr std::uint64_t kGrantClean = 1u << 5;
// A writable grant of a hot page (migratory, or handed from writer to writer
// several times in a row): the requester holds it until its faulting thread
// changed it, or for the hot-page hold at most (docs/protocol.md, "Hot pages").
inline constexpr std::uint64_t kGrantHot = 1u << 6;

std::string_view msg_name(rdma::FrameType t);

// The codec: arg0 = page, arg1 = version, arg2 = flags, arg3 = arg.
inline PageNo msg_page(const rdma::FrameHeader& h) { return PageNo{h.arg0}; }
inline std::uint64_t msg_version(const rdma::FrameHeader& h) { return h.arg1; }
inline std::uint64_t msg_flags(const rdma::FrameHeader& h) { return h.arg2; }
inline std::uint64_t msg_arg(const rdma::FrameHeader& h) { return h.arg3; }
inline rdma::Frame make_msg(rdma::FrameType type, PageNo page, std::uint64_t version,
                            std::uint64_t flags, std::uint64_t arg = 0) {
  return rdma::Frame::make(type, page.value(), version, flags, arg);
}

}  // namespace ssi::dsm
