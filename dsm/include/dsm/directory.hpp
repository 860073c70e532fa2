// Home side of the MSI protocol for the pages homed on one node: per page
// {state, owner, sharers, version, zero, memory copy} plus a FIFO of waiting
// requests, so requests for one page are served one at a time while other
// pages proceed independently. Pure logic: messages in, messages out, no
// syscalls, no transport; the node agent drives it on its reactor thread.
//
// A transaction: request -> Grant to the requester, sent at once by the
// home (with Inv to the sharers, who ack the requester directly) or by the
// owner the home sent a Fetch -> GrantAck (and, for a read served by the
// owner, its FetchAck with the home's copy). The next request for the page
// starts only after those, so an Inv or Fetch can never overtake the grant
// it follows.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/ids.hpp"
#include "base/result.hpp"
#include "dsm/home_map.hpp"
#include "dsm/outbox.hpp"
#include "rdma/frame.hpp"

namespace ssi::dsm {

enum class DirState : std::uint8_t { kUncached, kShared, kModified };

// A snapshot of one page's directory entry (for tests and debugging).
struct DirView {
  DirState state = DirState::kUncached;
  NodeId owner;
  std::uint64_t sharers = 0;  // bit n = node n holds S
  std::uint64_t version = 0;
  bool zero = true;  // never written: no data anywhere yet
  bool busy = false;
  std::size_t queued = 0;
  // Hot-page detection: write grants that moved the page to another writer
  // than the last one. A page ping-ponging between writers climbs by one
  // per handover; one written by a single node stays at 0.
  std::uint64_t migrations = 0;
  // Migratory detection (docs/protocol.md, "Migratory pages"): evidence
  // score, and whether read misses are granted writable now.
  std::uint8_t migratory_score = 0;
  bool migratory = false;
  bool hot = false;  // writable grants carry kGrantHot
};

class Directory {
 public:
  static constexpr std::uint32_t kMaxNodes = 64;  // sharer bitmap width

  Directory(NodeId self, const HomeMap& map);

  // Handles one DSM frame addressed to the home (ReadReq, WriteReq,
  // FetchAck, GrantAck). Bad input (page not homed here, unknown node,
  // unexpected or stale message) returns an error and changes nothing.
  Result<void> on_message(const rdma::FrameHeader& h, std::span<const std::byte> payload,
                          Outbox& out);

  DirView view(PageNo p) const;
  // Sum of every page's migrations, and the pages with the most of them
  // (at most `n`, most migrated first).
  std::uint64_t migrations() const { return migrations_; }
  // Read misses granted writable because their page was migratory.
  std::uint64_t migratory_grants() const { return migratory_grants_; }
  // A page is migratory once its score reaches kMigratoryOn: +1 each time a
  // node upgrades a page it read-missed last, after another node wrote it;
  // -1 each time a migratory grant is given up unchanged.
  static constexpr std::uint8_t kMigratoryOn = 2, kMigratoryMax = 3;
  // A page is hot while migratory or after this many write grants in a row
  // each moved it to another node than the last writer.
  static constexpr std::uint32_t kHotAfter = 3;
  // Off: no read is granted writable (detection and hot pages stay on).
  void set_migratory(bool on) { migratory_on_ = on; }
  std::vector<std::pair<PageNo, std::uint64_t>> hottest(std::size_t n) const;

  // Handing a node's share over (docs/mobility.md, "Retiring a node"); only
  // at a barrier, when no transaction is in progress anywhere. An entry as
  // it travels: `copy` is the home's copy (null: zero, or held in M).
  struct Handed {
    PageNo page;
    DirState state = DirState::kUncached;
    NodeId owner;
    std::uint64_t sharers = 0;
    std::uint64_t version = 0;
    bool zero = true;
    const std::byte* copy = nullptr;
  };
  // No transaction in progress and none queued.
  bool idle() const;
  // Every entry of this home, in page order; valid until the next call
  // that changes the directory.
  std::vector<Handed> entries() const;
  void clear() { entries_.clear(); }
  // The new home takes an entry (the page may still be homed on the old
  // node: the map changes after every entry arrived). `copy` must be given
  // unless the page is zero or held in M.
  Result<void> adopt(const Handed& e);
  // The retiring node gives up its copy: in M (writeback with its data:
  // the home's copy from now on, no holder left) or in S (leave).
  Result<void> writeback(PageNo p, NodeId from, std::span<const std::byte> data);
  Result<void> leave(PageNo p, NodeId from);

 private:
  struct Request {
    NodeId from;
    bool write = false;
    bool upgrade = false;
  };
  struct Txn {
    Txn(Request r, std::uint64_t v) : req(r), version(v) {}
    Request req;
    std::uint64_t version = 0;         // the version this transaction grants
    std::optional<NodeId> fetch_from;  // read served by the owner: its FetchAck is due
    bool grant_acked = false;
    bool migratory = false;  // a read granted writable
  };
  using PageBuf = std::array<std::byte, kPageSize>;
  struct Entry {
    DirState state = DirState::kUncached;
    NodeId owner;
    std::uint64_t sharers = 0;
    std::uint64_t version = 0;
    bool zero = true;
    std::optional<NodeId> last_writer;
    std::uint64_t migrations = 0;
    std::optional<NodeId> last_reader;  // requester of the last transaction, if a read
    std::uint8_t migratory_score = 0;
    std::uint32_t streak = 0;  // write grants in a row that moved the page
    std::unique_ptr<PageBuf> copy;  // valid when !zero and state != kModified
    std::optional<Txn> txn;
    std::deque<Request> queue;
  };

  Result<void> on_request(PageNo p, const rdma::FrameHeader& h, Outbox& out);
  Result<void> on_fetch_ack(PageNo p, NodeId from, std::uint64_t version,
                            std::span<const std::byte> payload, Outbox& out);
  Result<void> on_grant_ack(PageNo p, NodeId from, std::uint64_t version, std::uint64_t flags,
                            Outbox& out);
  void start_write(PageNo p, Entry& e, Outbox& out);
  void detect_migratory(Entry& e, const Request& req);
  void start(PageNo p, Entry& e, Outbox& out);
  void maybe_finish(PageNo p, Entry& e, Outbox& out);
  Result<Entry*> active_txn(PageNo p, NodeId from, std::uint64_t version, const char* what);

  NodeId self_;
  const HomeMap& map_;
  std::unordered_map<std::uint64_t, Entry> entries_;  // created on first request
  std::uint64_t migrations_ = 0;
  std::uint64_t migratory_grants_ = 0;
  bool migratory_on_ = true;
};

}  // namespace ssi::dsm
