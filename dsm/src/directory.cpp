#include "dsm/directory.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include <fmt/format.h>

#include "dsm/messages.hpp"

namespace ssi::dsm {
namespace {

std::uint64_t bit(NodeId n) { return 1ull << n.value(); }

Error protocol(std::string msg) { return make_error(Errc::kProtocol, std::move(msg)); }

}  // namespace

Directory::Directory(NodeId self, const HomeMap& map) : self_(self), map_(map) {}

Result<void> Directory::on_message(const rdma::FrameHeader& h, std::span<const std::byte> payload,
                                   Outbox& out) {
  NodeId from{h.src};
  PageNo p = msg_page(h);
  if (from.value() >= map_.nodes() || from.value() >= kMaxNodes)
    return make_error(Errc::kNotFound, fmt::format("{} from unknown node {}", msg_name(h.type), from));
  if (p.value() >= map_.pages())
    return make_error(Errc::kOutOfRange, fmt::format("{} for page {} beyond {} pages",
                                                     msg_name(h.type), p, map_.pages()));
  if (map_.home_of(p) != self_)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("{} for page {} homed on node {}, not here", msg_name(h.type), p,
                                  map_.home_of(p)));
  switch (h.type) {
    case kReadReq:
    case kWriteReq:
      return on_request(p, h, out);
    case kFetchAck:
      return on_fetch_ack(p, from, msg_version(h), payload, out);
    case kGrantAck:
      return on_grant_ack(p, from, msg_version(h), msg_flags(h), out);
    default:
      return protocol(fmt::format("home got unexpected message type {:#x}", h.type));
  }
}

Result<void> Directory::on_request(PageNo p, const rdma::FrameHeader& h, Outbox& out) {
  Request req{NodeId{h.src}, h.type == kWriteReq, h.type == kWriteReq && (msg_flags(h) & kUpgrade)};
  auto found = entries_.find(p.value());
  if (found != entries_.end()) {
    const Entry& e = found->second;
    // The current transaction's requester may ask again as soon as it has
    // installed the grant, which may be before its GrantAck (or the old
    // owner's FetchAck) is in: that one is queued like any other.
    bool dup = false;
    for (const auto& q : e.queue) dup = dup || q.from == req.from;
    if (dup)
      return protocol(fmt::format("node {} sent a second request for page {}", req.from, p));
    if (e.state == DirState::kModified && e.owner == req.from && !e.txn)
      return protocol(fmt::format("owner {} requested page {} it holds in M", req.from, p));
  }
  Entry& e = entries_[p.value()];
  if (e.txn) {
    e.queue.push_back(req);
    return ok();
  }
  e.txn.emplace(req, e.version + 1);
  start(p, e, out);
  return ok();
}

// Every transaction grants at once: the home sends the grant itself (data,
// zero or keep; for a write, together with the invalidations, whose acks go
// to the requester), or has the owner forward the page (Fetch). The page
// stays busy until the requester's GrantAck and, for a forwarded read, the
// owner's FetchAck with the home's new copy.
void Directory::start(PageNo p, Entry& e, Outbox& out) {
  Txn& t = *e.txn;
  const NodeId to = t.req.from;
  const bool owned_elsewhere = e.state == DirState::kModified && e.owner != to;
  e.version = t.version;
  detect_migratory(e, t.req);
  // A migratory page: the reader will write next, so grant it writable now
  // (one transfer instead of a read miss and an upgrade).
  t.migratory = migratory_on_ && !t.req.write && e.migratory_score >= kMigratoryOn;
  if (t.migratory) ++migratory_grants_;
  if (!t.req.write && !t.migratory) {
    if (owned_elsewhere) {
      t.fetch_from = e.owner;
      out.push_back({e.owner, kFetch, p, t.version, 0, {}, to.value()});
      return;  // on_fetch_ack: Shared, sharers = {owner, to}
    }
    e.state = DirState::kShared;
    e.sharers |= bit(to);
    std::span<const std::byte> data;
    if (!e.zero) data = *e.copy;
    out.push_back({to, kGrant, p, t.version, e.zero ? kGrantZero : 0, data});
    return;
  }
  start_write(p, e, out);
}

// Migratory: node R read-missed the page (the last transaction), then asks
// to upgrade it, and another node wrote it before R: the page moves from
// writer to writer, each reading it first.
void Directory::detect_migratory(Entry& e, const Request& req) {
  const bool evidence = req.write && req.upgrade && e.last_reader == req.from && e.last_writer &&
                        *e.last_writer != req.from;
  if (evidence && e.migratory_score < kMigratoryMax) ++e.migratory_score;
  e.last_reader = req.write ? std::nullopt : std::optional<NodeId>(req.from);
}

// A write, or a migratory read: the requester becomes the owner.
void Directory::start_write(PageNo p, Entry& e, Outbox& out) {
  Txn& t = *e.txn;
  const NodeId to = t.req.from;
  const bool owned_elsewhere = e.state == DirState::kModified && e.owner != to;
  if (e.last_writer && *e.last_writer != to) {
    ++e.migrations;
    ++migrations_;
    ++e.streak;
  } else {
    e.streak = 0;
  }
  e.last_writer = to;
  const bool hot = e.streak >= kHotAfter || e.migratory_score >= kMigratoryOn;
  const std::uint64_t migratory = (t.migratory ? kGrantMigratory : 0) | (hot ? kGrantHot : 0);
  if (owned_elsewhere) {
    out.push_back({e.owner, kFetch, p, t.version,
                   kFetchInvalidate | (t.migratory ? kFetchMigratory : 0) | (hot ? kFetchHot : 0),
                   {}, to.value()});
  } else {
    const std::uint64_t inv = e.sharers & ~bit(to);
    for (std::uint64_t m = inv; m != 0; m &= m - 1)
      out.push_back({NodeId{static_cast<std::uint32_t>(std::countr_zero(m))}, kInv, p, t.version,
                     0, {}, to.value()});
    const bool keep = t.req.upgrade && (e.sharers & bit(to));
    std::span<const std::byte> data;
    if (!keep && !e.zero) data = *e.copy;
    out.push_back({to, kGrant, p, t.version,
                   kGrantWritable | migratory | (keep ? kGrantKeep : e.zero ? kGrantZero : 0), data,
                   static_cast<std::uint64_t>(std::popcount(inv))});
  }
  e.state = DirState::kModified;
  e.owner = to;
  e.sharers = 0;
  e.zero = false;  // from now on the owner's copy is the data
}

void Directory::maybe_finish(PageNo p, Entry& e, Outbox& out) {
  if (!e.txn->grant_acked || e.txn->fetch_from) return;
  e.txn.reset();
  if (e.queue.empty()) return;
  e.txn.emplace(e.queue.front(), e.version + 1);
  e.queue.pop_front();
  start(p, e, out);
}

Result<Directory::Entry*> Directory::active_txn(PageNo p, NodeId from, std::uint64_t version,
                                                const char* what) {
  auto it = entries_.find(p.value());
  if (it == entries_.end() || !it->second.txn)
    return protocol(fmt::format("{} from {} for page {} with no request in progress", what, from, p));
  const Txn& t = *it->second.txn;
  if (t.version != version)
    return protocol(fmt::format("stale {} from {} for page {}: version {} but transaction is {}",
                                what, from, p, version, t.version));
  return &it->second;
}

Result<void> Directory::on_fetch_ack(PageNo p, NodeId from, std::uint64_t version,
                                     std::span<const std::byte> payload, Outbox& out) {
  SSI_ASSIGN_OR_RETURN(Entry * e, active_txn(p, from, version, "FetchAck"));
  Txn& t = *e->txn;
  if (t.fetch_from != from)
    return protocol(fmt::format("unexpected FetchAck from {} for page {}", from, p));
  if (payload.size() != kPageSize)
    return protocol(fmt::format("FetchAck for page {} carries {} bytes", p, payload.size()));
  if (!e->copy) e->copy = std::make_unique<PageBuf>();
  std::memcpy(e->copy->data(), payload.data(), kPageSize);
  e->zero = false;
  e->state = DirState::kShared;
  e->sharers = bit(from) | bit(t.req.from);  // the downgraded owner keeps S
  e->owner = NodeId{};
  t.fetch_from.reset();
  maybe_finish(p, *e, out);
  return ok();
}

Result<void> Directory::on_grant_ack(PageNo p, NodeId from, std::uint64_t version,
                                     std::uint64_t flags, Outbox& out) {
  SSI_ASSIGN_OR_RETURN(Entry * e, active_txn(p, from, version, "GrantAck"));
  if (e->txn->grant_acked || e->txn->req.from != from)
    return protocol(fmt::format("unexpected GrantAck from {} for page {}", from, p));
  // The previous holder never changed the page it was granted as migratory.
  if ((flags & kAckClean) && e->migratory_score > 0) --e->migratory_score;
  e->txn->grant_acked = true;
  maybe_finish(p, *e, out);
  return ok();
}

DirView Directory::view(PageNo p) const {
  auto it = entries_.find(p.value());
  if (it == entries_.end()) return {};
  const Entry& e = it->second;
  return {e.state,        e.owner,      e.sharers,
          e.version,      e.zero,       e.txn.has_value(),
          e.queue.size(), e.migrations, e.migratory_score,
          e.migratory_score >= kMigratoryOn,
          e.streak >= kHotAfter || e.migratory_score >= kMigratoryOn};
}

std::vector<std::pair<PageNo, std::uint64_t>> Directory::hottest(std::size_t n) const {
  std::vector<std::pair<PageNo, std::uint64_t>> out;
  for (const auto& [page, e] : entries_)
    if (e.migrations > 0) out.emplace_back(PageNo{page}, e.migrations);
  auto by_count = [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first.value() < b.first.value();
  };
  std::sort(out.begin(), out.end(), by_count);
  if (out.size() > n) out.resize(n);
  return out;
}

}  // namespace ssi::dsm
