#include "dsm/page_table.hpp"

#include <fmt/format.h>

#include "dsm/messages.hpp"

namespace ssi::dsm {
namespace {

Error protocol(std::string msg) { return make_error(Errc::kProtocol, std::move(msg)); }

}  // namespace

PageView& PageTable::at(PageNo p) { return table_[p.value()]; }

PageView PageTable::view(PageNo p) const {
  return p.value() < pages_ ? table_[p.value()] : PageView{};
}

Result<PageView*> PageTable::checked(PageNo p, const char* what) {
  if (p.value() >= pages_)
    return make_error(Errc::kOutOfRange,
                      fmt::format("{} for page {} beyond {} pages", what, p, pages_));
  return &at(p);
}

FaultAction PageTable::on_fault(PageNo p, bool write) {
  PageView& v = at(p);
  // One request per page: later faults are woken by the install that ends it
  // (a read install leaves S, so a blocked writer faults again and upgrades).
  if (v.pending != Pending::kNone) return FaultAction::kWait;
  switch (v.state) {
    case PageState::kI:
      v.pending = write ? Pending::kWrite : Pending::kRead;
      return write ? FaultAction::kSendWrite : FaultAction::kSendRead;
    case PageState::kS:
      if (!write) return FaultAction::kWake;
      v.pending = Pending::kUpgrade;
      return FaultAction::kSendUpgrade;
    case PageState::kM:
      break;
  }
  return FaultAction::kWake;
}

Result<std::optional<InstallAction>> PageTable::on_grant(PageNo p, std::uint64_t version,
                                                        std::uint64_t flags, bool has_payload,
                                                        std::uint64_t acks) {
  SSI_ASSIGN_OR_RETURN(PageView * v, checked(p, "Grant"));
  if (v->pending == Pending::kNone)
    return protocol(fmt::format("Grant for page {} with no request in flight", p));
  if (version <= v->version)
    return protocol(fmt::format("stale Grant for page {}: version {} <= {}", p, version, v->version));
  const bool writable = flags & kGrantWritable, zero = flags & kGrantZero,
             keep = flags & kGrantKeep;
  // A read granted writable is a migratory grant (it must say so).
  const bool migratory_read = v->pending == Pending::kRead && (flags & kGrantMigratory);
  if (writable != (v->pending != Pending::kRead) && !(migratory_read && writable))
    return protocol(fmt::format("Grant for page {} is {} but we asked for {}", p,
                                writable ? "M" : "S", writable ? "S" : "M"));
  if (acks != 0 && !writable)
    return protocol(fmt::format("read Grant for page {} asks for {} InvAcks", p, acks));
  InstallAction action;
  if (keep) {
    if (v->pending != Pending::kUpgrade || v->state != PageState::kS || has_payload || !writable)
      return protocol(fmt::format("Grant keep for page {} we do not hold in S", p));
    action = InstallAction::kUnprotect;
  } else if (zero) {
    if (has_payload) return protocol(fmt::format("zero Grant for page {} with a payload", p));
    action = writable ? InstallAction::kZero : InstallAction::kZeroWp;
  } else {
    if (!has_payload) return protocol(fmt::format("Grant for page {} without data", p));
    action = writable ? InstallAction::kCopy : InstallAction::kCopyWp;
  }
  auto it = collecting_.find(p.value());
  const std::uint64_t got = it == collecting_.end() ? 0 : it->second.acks;
  if (it != collecting_.end() && (it->second.granted || it->second.ack_version != version))
    return protocol(fmt::format("Grant for page {} version {} does not match its InvAcks", p,
                                version));
  if (got > acks)
    return protocol(fmt::format("Grant for page {} wants {} InvAcks but {} came", p, acks, got));
  if (got < acks) {
    collecting_[p.value()] = {got, version, true, acks, version, flags, action};
    return std::optional<InstallAction>{};
  }
  if (it != collecting_.end()) collecting_.erase(it);
  return std::optional<InstallAction>{apply(*v, version, flags, action)};
}

Result<std::optional<InstallAction>> PageTable::on_inv_ack(PageNo p, std::uint64_t version) {
  SSI_ASSIGN_OR_RETURN(PageView * v, checked(p, "InvAck"));
  // A read may collect InvAcks too: its grant may come writable (migratory)
  // and its acks before it; a read grant that wants none rejects them.
  if (v->pending == Pending::kNone)
    return protocol(fmt::format("InvAck for page {} with no request in flight", p));
  if (version <= v->version)
    return protocol(fmt::format("stale InvAck for page {}: version {} <= {}", p, version,
                                v->version));
  Collect& c = collecting_[p.value()];
  if ((c.acks > 0 || c.granted) && c.ack_version != version)
    return protocol(fmt::format("InvAck for page {} version {} amid version {}", p, version,
                                c.ack_version));
  if (c.granted && c.acks >= c.needed)
    return protocol(fmt::format("InvAck for page {} beyond the {} its Grant wants", p, c.needed));
  ++c.acks;
  c.ack_version = version;
  if (!c.granted || c.acks < c.needed) return std::optional<InstallAction>{};
  Collect done = c;
  collecting_.erase(p.value());
  return std::optional<InstallAction>{apply(*v, done.version, done.flags, done.action)};
}

InstallAction PageTable::apply(PageView& v, std::uint64_t version, std::uint64_t flags,
                               InstallAction action) {
  v.state = (flags & kGrantWritable) ? PageState::kM : PageState::kS;
  v.pending = Pending::kNone;
  v.version = version;
  return action;
}

Result<bool> PageTable::on_inv(PageNo p, std::uint64_t version) {
  SSI_ASSIGN_OR_RETURN(PageView * v, checked(p, "Inv"));
  if (version <= v->version)
    return protocol(fmt::format("stale Inv for page {}: version {} <= {}", p, version, v->version));
  if (v->state == PageState::kM)
    return protocol(fmt::format("Inv for page {} we hold in M (home must Fetch)", p));
  const bool drop = v->state == PageState::kS;
  // An upgrade in flight stays pending: the home no longer counts us as a
  // sharer, so its grant will carry the data.
  v->state = PageState::kI;
  v->version = version;
  return drop;
}

Result<void> PageTable::on_fetch(PageNo p, std::uint64_t version, bool invalidate) {
  SSI_ASSIGN_OR_RETURN(PageView * v, checked(p, "Fetch"));
  if (version <= v->version)
    return protocol(fmt::format("stale Fetch for page {}: version {} <= {}", p, version, v->version));
  if (v->state != PageState::kM)
    return protocol(fmt::format("Fetch for page {} we do not hold in M", p));
  v->state = invalidate ? PageState::kI : PageState::kS;
  v->version = version;
  return ok();
}

}  // namespace ssi::dsm
