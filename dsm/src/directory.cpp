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
    case kInvAck:
      return on_inv_ack(p, from, msg_version(h), out);
    case kFetchAck:
      return on_fetch_ack(p, from, msg_version(h), payload, out);
    case kGrantAck:
      return on_grant_ack(p, from, msg_version(h), out);
    default:
      return protocol(fmt::format("home got unexpected message type {:#x}", h.type));
  }
}

Result<void> Directory::on_request(PageNo p, const rdma::FrameHeader& h, Outbox& out) {
  Request req{NodeId{h.src}, h.type == kWriteReq, h.type == kWriteReq && (msg_flags(h) & kUpgrade)};
  auto found = entries_.find(p.value());
  if (found != entries_.end()) {
    const Entry& e = found->second;
    bool dup = e.txn && e.txn->req.from == req.from;
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

void Directory::start(PageNo p, Entry& e, Outbox& out) {
  Txn& t = *e.txn;
  const NodeId from = t.req.from;
  if (e.state == DirState::kModified && e.owner != from) {
    t.fetch_from = e.owner;
    out.push_back({e.owner, kFetch, p, t.version, t.req.write ? kFetchInvalidate : 0, {}});
  }
  if (t.req.write) {
    t.inv_waiting = e.sharers & ~bit(from);
    for (std::uint64_t m = t.inv_waiting; m != 0; m &= m - 1)
      out.push_back({NodeId{static_cast<std::uint32_t>(std::countr_zero(m))}, kInv, p, t.version,
                     0, {}});
  }
  maybe_grant(p, e, out);
}

void Directory::maybe_grant(PageNo p, Entry& e, Outbox& out) {
  Txn& t = *e.txn;
  if (t.granted || t.inv_waiting != 0 || t.fetch_from) return;
  const NodeId to = t.req.from;
  std::uint64_t flags = 0;
  std::span<const std::byte> data;
  if (!t.req.write) {
    e.state = DirState::kShared;
    e.sharers |= bit(to);
    if (e.zero) flags |= kGrantZero;
    else data = *e.copy;
  } else {
    bool keep = t.req.upgrade && (e.sharers & bit(to));
    flags = kGrantWritable | (keep ? kGrantKeep : e.zero ? kGrantZero : 0);
    if (!keep && !e.zero) data = *e.copy;
    if (e.last_writer && *e.last_writer != to) {
      ++e.migrations;
      ++migrations_;
    }
    e.last_writer = to;
    e.state = DirState::kModified;
    e.owner = to;
    e.sharers = 0;
    e.zero = false;  // from now on the owner's copy is the data
  }
  e.version = t.version;
  t.granted = true;
  out.push_back({to, kGrant, p, t.version, flags, data});
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

Result<void> Directory::on_inv_ack(PageNo p, NodeId from, std::uint64_t version, Outbox& out) {
  SSI_ASSIGN_OR_RETURN(Entry * e, active_txn(p, from, version, "InvAck"));
  if (!(e->txn->inv_waiting & bit(from)))
    return protocol(fmt::format("unexpected InvAck from {} for page {}", from, p));
  e->txn->inv_waiting &= ~bit(from);
  e->sharers &= ~bit(from);
  maybe_grant(p, *e, out);
  return ok();
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
  e->state = t.req.write ? DirState::kUncached : DirState::kShared;
  e->sharers = t.req.write ? 0 : bit(from);  // a downgraded owner keeps S
  t.fetch_from.reset();
  maybe_grant(p, *e, out);
  return ok();
}

Result<void> Directory::on_grant_ack(PageNo p, NodeId from, std::uint64_t version, Outbox& out) {
  SSI_ASSIGN_OR_RETURN(Entry * e, active_txn(p, from, version, "GrantAck"));
  if (!e->txn->granted || e->txn->req.from != from)
    return protocol(fmt::format("unexpected GrantAck from {} for page {}", from, p));
  e->txn.reset();
  if (e->queue.empty()) return ok();
  e->txn.emplace(e->queue.front(), e->version + 1);
  e->queue.pop_front();
  start(p, *e, out);
  return ok();
}

DirView Directory::view(PageNo p) const {
  auto it = entries_.find(p.value());
  if (it == entries_.end()) return {};
  const Entry& e = it->second;
  return {e.state,        e.owner, e.sharers, e.version, e.zero, e.txn.has_value(),
          e.queue.size(), e.migrations};
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
