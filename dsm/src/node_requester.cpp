// Node agent, requester side: uffd faults, grants, invalidations, fetches.
#include <algorithm>
#include <array>
#include <cstring>

#include <boost/fiber/operations.hpp>
#include <fmt/format.h>

#include "dsm/messages.hpp"
#include "node_internal.hpp"

namespace ssi::dsm {

void Node::on_uffd_ready() {
  if (stopping_) return;
  std::array<FaultEvent, 32> events;
  // Drain without yielding: the fd is level-triggered, and handling an event
  // never blocks (sending happens in the request's own fiber).
  for (;;) {
    auto n = region_.read_events(events);
    if (!n.ok()) return local_error(n.error());
    if (*n == 0) return;
    for (std::size_t i = 0; i < *n; ++i) on_fault(events[i]);
  }
}

void Node::on_fault(const FaultEvent& ev) {
  if (failed_) return fail_fault(ev.page, ev.wp);
  FaultAction a = table_.on_fault(ev.page, ev.write);
  switch (a) {
    case FaultAction::kWait:
      ++stats_.coalesced_faults;
      return;
    case FaultAction::kWake:
      // The page was installed after the kernel queued this event; the
      // install already woke the thread, unless it faulted again since.
      ++stats_.spurious_faults;
      if (auto r = region_.wake(ev.page); !r.ok()) local_error(r.error());
      return;
    default:
      if (config_.on_request) config_.on_request(ev.page, map_.home_of(ev.page), ev.tid);
      start_request(ev.page, a);
  }
}

void Node::start_request(PageNo p, FaultAction action) {
  auto inf = std::make_shared<Inflight>();
  inf->start = std::chrono::steady_clock::now();
  inf->action = action;
  auto done = std::make_shared<boost::fibers::future<void>>(inf->done.get_future());
  inflight_[p.value()] = inf;
  if (action == FaultAction::kSendRead) ++stats_.read_faults;
  if (action == FaultAction::kSendWrite) ++stats_.write_faults;
  if (action == FaultAction::kSendUpgrade) ++stats_.upgrade_faults;
  dsm_log()->trace("node {}: {} fault on page {}", config_.self,
                   action == FaultAction::kSendRead ? "read" : "write", p);
  reactor_.spawn([this, p, action, done] {
    if (done->wait_for(std::chrono::seconds(0)) == boost::fibers::future_status::ready) return;
    send_out({map_.home_of(p), action == FaultAction::kSendRead ? kReadReq : kWriteReq, p, 0,
              action == FaultAction::kSendUpgrade ? kUpgrade : 0, {}});
    auto waited = std::chrono::milliseconds{0};
    while (done->wait_for(config_.request_timeout) == boost::fibers::future_status::timeout) {
      if (failed_) break;  // peer_failed released it (and this fiber's promise)
      waited += config_.request_timeout;
      dsm_log()->error("node {}: request for page {} outstanding for {} ms", config_.self, p,
                       waited.count());
    }
  });
}

void Node::finish_request(PageNo p) {
  auto it = inflight_.find(p.value());
  if (it == inflight_.end()) return;
  auto inf = std::move(it->second);
  inflight_.erase(it);
  auto took = std::chrono::steady_clock::now() - inf->start;
  if (inf->action == FaultAction::kSendRead) stats_.read_latency.record(took);
  if (inf->action == FaultAction::kSendWrite) stats_.write_latency.record(took);
  if (inf->action == FaultAction::kSendUpgrade) stats_.upgrade_latency.record(took);
  stats_.path_ns[inf->path] += static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(took).count());
  inf->done.set_value();
}

void Node::on_grant(rdma::Frame& f) {
  const auto& h = f.header;
  PageNo p = msg_page(h);
  const std::uint64_t flags = msg_flags(h), acks = msg_arg(h);
  auto action = table_.on_grant(p, msg_version(h), flags, !f.payload.empty(), acks);
  if (!action.ok()) return bad_message(h, action.error());
  auto it = inflight_.find(p.value());
  if (it != inflight_.end()) {
    const bool forwarded = flags & kGrantForwarded, write = flags & kGrantWritable;
    it->second->path = !write ? (forwarded ? kPathReadForwarded : kPathReadHome)
                       : forwarded ? kPathWriteForwarded
                       : acks > 0  ? kPathWriteSharers
                                   : kPathWriteHome;
    if (acks > 0) stats_.sharer_acks += acks;
    it->second->migratory = flags & kGrantMigratory;
    it->second->hot = flags & kGrantHot;
    it->second->clean = flags & kGrantClean;
    // request -> home, then home -> me, or home -> owner -> me
    const NodeId home = map_.home_of(p), from{h.src};
    const int via = (home != config_.self) + (forwarded ? (home != from) : 0) + (from != config_.self);
    it->second->delays = std::max(it->second->delays, via);
  }
  if (!*action) {  // InvAcks still due: keep the page for the last one
    if (it != inflight_.end()) it->second->grant_data = std::move(f.payload).to_owned();
    return;
  }
  complete_grant(p, **action, msg_version(h), f.payload.bytes());
}

void Node::on_inv_ack(rdma::Frame& f) {
  const auto& h = f.header;
  PageNo p = msg_page(h);
  if (failed_) return;  // the request is gone (fail released it)
  auto action = table_.on_inv_ack(p, msg_version(h));
  if (!action.ok()) return bad_message(h, action.error());
  auto it = inflight_.find(p.value());
  if (it != inflight_.end()) {
    // request -> home -> sharer -> me
    const NodeId home = map_.home_of(p), from{h.src};
    const int via = (home != config_.self) + (home != from) + (from != config_.self);
    it->second->delays = std::max(it->second->delays, via);
  }
  if (!*action) return;
  rdma::Payload data;
  if (it != inflight_.end()) data = std::move(it->second->grant_data);
  complete_grant(p, **action, msg_version(h), data.bytes());
}

void Node::complete_grant(PageNo p, InstallAction action, std::uint64_t version,
                          std::span<const std::byte> data) {
  // Counted before the install wakes the faulting threads, so they see it
  // (the latency can only be added after it, by finish_request).
  if (action == InstallAction::kZero || action == InstallAction::kZeroWp) ++stats_.zero_fills;
  std::uint64_t ack_flags = 0;
  if (auto it = inflight_.find(p.value()); it != inflight_.end()) {
    ++stats_.path_faults[it->second->path];
    stats_.path_delays[it->second->path] += static_cast<std::uint64_t>(it->second->delays);
    if (it->second->clean) ack_flags |= kAckClean;
    // Snapshot what was granted, before the install wakes a writer.
    if (it->second->migratory || it->second->hot) {
      auto& g = granted_copy_[p.value()];
      g.copy.assign(kPageSize, std::byte{0});
      if (action == InstallAction::kCopy) std::memcpy(g.copy.data(), data.data(), kPageSize);
      if (action == InstallAction::kUnprotect)
        std::memcpy(g.copy.data(), region_.page_ptr(p), kPageSize);  // still write-protected
      g.at = std::chrono::steady_clock::now();
      g.migratory = it->second->migratory;
      g.hot = it->second->hot;
    } else {
      granted_copy_.erase(p.value());
    }
  }
  if (auto r = install(p, action, data); !r.ok()) local_error(r.error());
  if (!granted_at_.empty()) granted_at_[p.value()] = std::chrono::steady_clock::now();
  finish_request(p);
  send_out({map_.home_of(p), kGrantAck, p, version, ack_flags, {}});
}

Result<void> Node::install(PageNo p, InstallAction action, std::span<const std::byte> data) {
  if (action == InstallAction::kUnprotect) return region_.write_protect(p, false);
  for (int attempt = 0; attempt < 2; ++attempt) {
    Result<Install> r = Install::kInstalled;
    switch (action) {
      case InstallAction::kCopyWp: r = region_.install_copy(p, data, true); break;
      case InstallAction::kCopy: r = region_.install_copy(p, data, false); break;
      case InstallAction::kZeroWp: r = region_.install_copy(p, zero_page_, true); break;
      case InstallAction::kZero: r = region_.install_zero(p); break;
      case InstallAction::kUnprotect: break;
    }
    if (!r.ok()) return std::move(r).error();
    if (*r == Install::kInstalled) return ok();
    // EEXIST: something is mapped where our table says I. Our mapping must
    // follow the protocol's decision, so replace it.
    dsm_log()->warn("node {}: page {} unexpectedly present at install; replacing", config_.self, p);
    SSI_TRY(region_.drop(p));
  }
  return make_error(Errc::kInternal, fmt::format("page {} stays present after drop", p));
}

void Node::wait_hold(PageNo p) {
  if (granted_at_.empty()) return;  // no window
  auto now = std::chrono::steady_clock::now();
  auto until = granted_at_[p.value()] + config_.hold.window;
  if (now >= until) return;
  ++stats_.holds;
  stats_.hold_ns += static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(until - now).count());
  boost::this_fiber::sleep_until(until);
}

void Node::wait_hot(PageNo p) {
  if (config_.hot.hold.count() <= 0) return;
  auto it = granted_copy_.find(p.value());
  if (it == granted_copy_.end() || !it->second.hot) return;
  const auto until = it->second.at + config_.hot.hold;
  auto changed = [&] {
    auto g = granted_copy_.find(p.value());  // the map may change while we sleep
    return g == granted_copy_.end() ||
           std::memcmp(g->second.copy.data(), region_.page_ptr(p), kPageSize) != 0;
  };
  auto now = std::chrono::steady_clock::now();
  if (now >= until || changed()) return;
  ++stats_.holds;
  ++stats_.hot_holds;
  const auto start = now;
  // The reactor sleeps in whole milliseconds: check at each wake-up.
  while (!stopping_ && now < until && !changed()) {
    boost::this_fiber::sleep_until(std::min(until, now + std::chrono::milliseconds(1)));
    now = std::chrono::steady_clock::now();
  }
  stats_.hold_ns += static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - start).count());
}

void Node::on_inv(const rdma::Frame& f) {
  const auto& h = f.header;
  PageNo p = msg_page(h);
  wait_hold(p);
  if (stopping_) return;
  auto drop = table_.on_inv(p, msg_version(h));
  if (!drop.ok()) return bad_message(h, drop.error());
  ++stats_.invalidations_received;
  if (*drop) {
    if (auto r = region_.drop(p); !r.ok()) local_error(r.error());
  }
  // The requester (msg_arg) collects the acks, not the home.
  send_out({NodeId{static_cast<std::uint32_t>(msg_arg(h))}, kInvAck, p, msg_version(h), 0, {}});
}

void Node::on_fetch(const rdma::Frame& f) {
  const auto& h = f.header;
  PageNo p = msg_page(h);
  const bool invalidate = msg_flags(h) & kFetchInvalidate;
  wait_hold(p);
  wait_hot(p);
  if (stopping_) return;
  if (auto r = table_.on_fetch(p, msg_version(h), invalidate); !r.ok())
    return bad_message(h, r.error());
  ++stats_.fetches_received;
  // Freeze the page first: a write after this point faults (and becomes a
  // new request), so the data sent is the last write this node made.
  if (auto r = region_.write_protect(p, true); !r.ok()) local_error(r.error());
  // Grant the page to the requester ourselves: it is one message delay
  // closer than through the home. A read also sends the home its new copy.
  const NodeId to{static_cast<std::uint32_t>(msg_arg(h))};
  const std::uint64_t v = msg_version(h);
  // Held from a migratory grant and never changed: the home's guess that
  // this node would write it was wrong once more.
  std::uint64_t clean = 0;
  if (auto it = granted_copy_.find(p.value()); it != granted_copy_.end()) {
    if (it->second.migratory &&
        std::memcmp(it->second.copy.data(), region_.page_ptr(p), kPageSize) == 0) {
      clean = kGrantClean;
      ++stats_.clean_handovers;
    }
    granted_copy_.erase(it);
  }
  if (!invalidate) {
    send_out({to, kGrant, p, v, kGrantForwarded, region_.page_bytes(p)});
    send_out({NodeId{h.src}, kFetchAck, p, v, 0, region_.page_bytes(p)});
    return;
  }
  // Copy before dropping: the send may yield and the mapping is gone after.
  std::array<std::byte, kPageSize> copy;
  std::memcpy(copy.data(), region_.page_ptr(p), kPageSize);
  if (auto r = region_.drop(p); !r.ok()) local_error(r.error());
  const std::uint64_t migratory = ((msg_flags(h) & kFetchMigratory) ? kGrantMigratory : 0) |
                                  ((msg_flags(h) & kFetchHot) ? kGrantHot : 0);
  send_out({to, kGrant, p, v, kGrantForwarded | kGrantWritable | migratory | clean, copy});
}

void Node::peer_failed(NodeId peer, const Error& why) {
  // A node that handed its share over holds nothing: it may leave.
  if (peer.value() < Directory::kMaxNodes && (gone_ & (1ull << peer.value()))) return;
  fail(make_error(Errc::kDisconnected, fmt::format("node {} lost: {}", peer, why.message)));
}

void Node::fail(const Error& why) {
  if (stopping_) return;
  {
    std::lock_guard lock(failure_mu_);
    if (!failure_) failure_ = why;
  }
  if (failed_) return;
  failed_ = true;
  // Not an error line: peers close in any order when a machine stops, and a
  // fault that fails is reported by its owner (on_fault_failed).
  dsm_log()->debug("node {}: {}: {} fault(s) in flight fail, and every later one", config_.self,
                   why.message, inflight_.size());
  auto inflight = std::move(inflight_);
  inflight_.clear();
  for (auto& [page, inf] : inflight) {
    fail_fault(PageNo{page}, inf->action == FaultAction::kSendUpgrade);
    inf->done.set_value();
  }
}

std::optional<Error> Node::failure() const {
  std::lock_guard lock(failure_mu_);
  return failure_;
}

void Node::fail_fault(PageNo p, bool wp) {
  ++stats_.failed_faults;
  auto why = failure();
  if (config_.on_fault_failed)
    config_.on_fault_failed(p, make_error(Errc::kDisconnected,
                                          fmt::format("page {} (home node {}): {}", p,
                                                      map_.home_of(p), why->message)));
  // Release the threads: they must leave the kernel's fault wait (a blocked
  // vCPU never returns from KVM_RUN otherwise). The page's contents are lost
  // with the node; what they read from now on is zeros.
  Result<void> r = ok();
  if (wp) {
    r = region_.write_protect(p, false);
  } else {
    auto z = region_.install_zero(p);
    if (!z.ok()) r = std::move(z).error();
    else if (*z == Install::kAlreadyPresent) r = region_.write_protect(p, false);
  }
  if (!r.ok()) local_error(r.error());
}

}  // namespace ssi::dsm
