// Node agent: handing a retiring node's share to another node at a barrier
// (docs/mobility.md, "Retiring a node"). The retiring node A sends, per
// peer, in order: its writebacks and leaves (to each page's home), its
// directory entries (to the new home B), then kHandEnd with the number of
// frames before it. A peer answers kHandEnd once it took that many, after
// pointing A's ranges at B. No vCPU runs and no request is in flight, so
// the protocol's transactions never see a half-moved entry.
#include <array>
#include <cstring>

#include <boost/fiber/future.hpp>
#include <boost/fiber/operations.hpp>
#include <fmt/format.h>

#include "dsm/messages.hpp"
#include "node_internal.hpp"

namespace ssi::dsm {
namespace {

std::uint64_t bit(NodeId n) { return 1ull << n.value(); }

constexpr std::chrono::seconds kEndWait{10};  // a peer waits this long for A's frames

}  // namespace

struct Node::HandoverWait {
  std::uint32_t due = 0;        // kHandEndAcks still to come
  std::uint64_t rejected = 0;   // frames the peers rejected
  boost::fibers::promise<void> done;
};

Result<HandoverStats> Node::hand_over(NodeId to, std::chrono::milliseconds timeout) {
  const auto t0 = std::chrono::steady_clock::now();
  const NodeId self = config_.self;
  if (!started_ || stopping_ || failed_ || retired_ || handover_)
    return make_error(Errc::kShutdown, fmt::format("node {} cannot hand over now", self));
  if (to == self || to.value() >= config_.nodes || (gone_ & bit(to)))
    return make_error(Errc::kInvalidArgument, fmt::format("node {} cannot take node {}'s share", to, self));
  // GrantAcks and FetchAcks of the last transactions may still be on
  // their way to this home: wait for them, bounded.
  for (int i = 0; i < 2000 && !(inflight_.empty() && directory_.idle()); ++i)
    boost::this_fiber::sleep_for(std::chrono::milliseconds(1));
  if (!inflight_.empty() || !directory_.idle())
    return make_error(Errc::kInvalidArgument,
                      fmt::format("node {}: {} request(s) in flight or a home transaction busy: "
                                  "not at a barrier", self, inflight_.size()));
  HandoverStats st;
  std::vector<std::uint64_t> sent(config_.nodes, 0);
  auto send = [&](const OutMsg& m) {
    ++sent[m.to.value()];
    st.bytes += m.data.size();
    send_out(m);
  };
  // Leave every page homed elsewhere: write back what this node owns.
  for (std::uint64_t i = 0; i < region_.pages(); ++i) {
    const PageNo p{i};
    const NodeId home = map_.home_of(p);
    if (home == self) continue;
    const PageView v = table_.view(p);
    if (v.pending != Pending::kNone)
      return make_error(Errc::kInvalidArgument, fmt::format("page {}: a request is pending", p));
    if (v.state == PageState::kM) {
      ++st.written_back;
      send({home, kWriteback, p, v.version, 0, region_.page_bytes(p)});
    } else if (v.state == PageState::kS) {
      ++st.left;
      send({home, kLeave, p, v.version, 0, {}});
    }
  }
  // This home's entries go to `to`; without this node in them. Those
  // without data travel kHandBatch to a frame (most of a share, when the
  // new home pre-copied it or the pages were never written).
  std::vector<std::uint64_t> batch;
  batch.reserve(kPageSize / 8);
  auto flush = [&] {
    if (batch.empty()) return;
    const std::uint64_t n = batch.size() / 4;
    batch.resize(kPageSize / 8, 0);
    ++sent[to.value()];
    send_out({to, kHandEntries, PageNo{0}, 0, 0,
              {reinterpret_cast<const std::byte*>(batch.data()), kPageSize}, n});
    batch.clear();
  };
  for (const Directory::Handed& e : directory_.entries()) {
    std::uint64_t sharers = e.sharers & ~bit(self);
    DirState state = e.state;
    std::uint64_t flags = 0;
    bool zero = e.zero;
    std::span<const std::byte> data;
    if (state == DirState::kModified && e.owner == self) {
      state = DirState::kUncached;  // its data is this node's copy
      zero = false;
      data = region_.page_bytes(e.page);
    } else if (state != DirState::kModified && !zero) {
      if (state == DirState::kShared && (sharers & bit(to))) flags |= kHandKept, ++st.kept;
      else data = {e.copy, kPageSize};
    }
    if (state == DirState::kShared && sharers == 0) state = DirState::kUncached;
    flags |= static_cast<std::uint64_t>(state) | (zero ? kHandZero : 0) |
             (state == DirState::kModified ? std::uint64_t{e.owner.value()} << 8 : 0);
    ++st.entries;
    if (data.empty()) {
      batch.insert(batch.end(), {e.page.value(), e.version, flags, sharers});
      if (batch.size() / 4 == kHandBatch) flush();
      continue;
    }
    ++st.entry_pages;
    send({to, kHandEntry, e.page, e.version, flags, data, sharers});
  }
  flush();
  // Every other node learns the new home once it has the frames before it.
  auto wait = std::make_shared<HandoverWait>();
  auto done = wait->done.get_future();
  for (std::uint32_t n = 0; n < config_.nodes; ++n)
    if (NodeId{n} != self && !(gone_ & bit(NodeId{n}))) ++wait->due;
  handover_ = wait;
  if (wait->due == 0) wait->done.set_value();
  for (std::uint32_t n = 0; n < config_.nodes; ++n)
    if (NodeId{n} != self && !(gone_ & bit(NodeId{n})))
      send_out({NodeId{n}, kHandEnd, PageNo{0}, 0, sent[n], {}, to.value()});
  const bool answered = done.wait_for(timeout) == boost::fibers::future_status::ready;
  handover_.reset();
  if (!answered)
    return make_error(Errc::kTimeout, fmt::format("node {}: {} node(s) did not take the handover "
                                                  "within {} ms", self, wait->due, timeout.count()));
  if (wait->rejected != 0)
    return make_error(Errc::kProtocol, fmt::format("node {}: {} handover frame(s) rejected", self,
                                                   wait->rejected));
  SSI_ASSIGN_OR_RETURN(st.pages_rehomed, map_.rehome(self, to));
  directory_.clear();
  retired_ = true;
  gone_ |= bit(self);
  fail(make_error(Errc::kShutdown, fmt::format("node {} retired (node {} took its share)", self, to)));
  st.took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  dsm_log()->info("node {}: share handed to node {}: {} entries ({} with data, {} kept), {} written "
                  "back, {} left, {} bytes, {} us", self, to, st.entries, st.entry_pages, st.kept,
                  st.written_back, st.left, st.bytes, st.took.count());
  return st;
}

void Node::on_handover_frame(const rdma::Frame& f) {
  const auto& h = f.header;
  const NodeId from{h.src};
  if (hand_taken_.empty()) {
    hand_taken_.assign(config_.nodes, 0);
    hand_rejected_.assign(config_.nodes, 0);
  }
  if (h.type == kHandEndAck) {
    if (!handover_ || handover_->due == 0)
      return bad_message(h, make_error(Errc::kProtocol, "no handover waits for it"));
    handover_->rejected += msg_flags(h);
    if (--handover_->due == 0) handover_->done.set_value();
    return;
  }
  if (from == config_.self || (gone_ & bit(from)) || retired_) {
    ++hand_rejected_[from.value()];
    return bad_message(h, make_error(Errc::kProtocol, "handover from a node that cannot retire"));
  }
  if (h.type != kHandEnd) {
    auto r = take_handover_frame(f);
    if (!r.ok()) {
      ++hand_rejected_[from.value()];
      return bad_message(h, r.error());
    }
    ++hand_taken_[from.value()];
    return;
  }
  // kHandEnd: frames are handled in fibers of their own; wait (bounded)
  // until every frame the retiring node sent before this one was handled.
  const std::uint64_t expected = msg_flags(h);
  const NodeId to{static_cast<std::uint32_t>(msg_arg(h))};
  const auto until = std::chrono::steady_clock::now() + kEndWait;
  auto handled = [&] { return hand_taken_[from.value()] + hand_rejected_[from.value()]; };
  while (handled() < expected && std::chrono::steady_clock::now() < until && !stopping_)
    boost::this_fiber::sleep_for(std::chrono::milliseconds(1));
  std::uint64_t rejected = hand_rejected_[from.value()] + (expected - std::min(expected, handled()));
  if (to.value() >= config_.nodes || to == from || (gone_ & bit(to))) ++rejected;
  else if (auto r = map_.rehome(from, to); !r.ok()) ++rejected;
  gone_ |= bit(from);
  hand_taken_[from.value()] = hand_rejected_[from.value()] = 0;
  if (rejected != 0)
    dsm_log()->error("node {}: handover from node {}: {} frame(s) rejected or missing", config_.self,
                     from, rejected);
  send_out({from, kHandEndAck, PageNo{0}, 0, rejected, {}});
}

// One entry of a page homed on `from`, from a kHandEntry or a kHandEntries
// record.
Result<void> Node::take_entry(NodeId from, PageNo p, std::uint64_t version, std::uint64_t flags,
                              std::uint64_t sharers, std::span<const std::byte> data) {
  if (p.value() >= region_.pages() || map_.home_of(p) != from)
    return make_error(Errc::kProtocol, fmt::format("entry of page {}, not homed on node {}", p, from));
  Directory::Handed e{p, static_cast<DirState>(flags & 3), NodeId{static_cast<std::uint32_t>((flags >> 8) & 0xff)},
                      sharers, version, (flags & kHandZero) != 0, nullptr};
  if (flags & kHandKept) {
    if (table_.view(p).state != PageState::kS)
      return make_error(Errc::kProtocol, fmt::format("page {} said kept here, but not held in S", p));
    e.copy = region_.page_ptr(p);
  } else if (!data.empty()) {
    e.copy = data.data();
  }
  return directory_.adopt(e);
}

Result<void> Node::take_handover_frame(const rdma::Frame& f) {
  const auto& h = f.header;
  const NodeId from{h.src};
  const PageNo p = msg_page(h);
  const auto data = f.payload.bytes();
  if (h.type == kHandEntry) return take_entry(from, p, msg_version(h), msg_flags(h), msg_arg(h), data);
  if (h.type == kHandEntries) {
    const std::uint64_t n = msg_arg(h);
    if (n == 0 || n > kHandBatch || data.size() != kPageSize)
      return make_error(Errc::kProtocol, fmt::format("a batch of {} entries in {} bytes", n, data.size()));
    std::array<std::uint64_t, kPageSize / 8> rec;
    std::memcpy(rec.data(), data.data(), kPageSize);
    for (std::uint64_t i = 0; i < n; ++i)
      SSI_TRY(take_entry(from, PageNo{rec[4 * i]}, rec[4 * i + 1], rec[4 * i + 2], rec[4 * i + 3], {}));
    return ok();
  }
  if (map_.home_of(p) != config_.self)
    return make_error(Errc::kProtocol, fmt::format("page {} is not homed here", p));
  // The last transaction of the page may wait for another node's GrantAck
  // or FetchAck, still on its way: those come, bounded.
  const auto until = std::chrono::steady_clock::now() + kEndWait;
  while (directory_.view(p).busy && std::chrono::steady_clock::now() < until && !stopping_)
    boost::this_fiber::sleep_for(std::chrono::milliseconds(1));
  if (h.type == kWriteback) return directory_.writeback(p, from, data);
  return directory_.leave(p, from);
}

}  // namespace ssi::dsm
