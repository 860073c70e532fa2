// Directory: a retiring node's entries leave it, the new home takes them,
// and every home forgets the retiring node as owner or sharer
// (docs/mobility.md, "Retiring a node"). Only at a barrier: no transaction
// is in progress, so each entry is a plain (state, owner, sharers, version,
// copy) tuple.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "dsm/directory.hpp"

namespace ssi::dsm {
namespace {

std::uint64_t bit(NodeId n) { return 1ull << n.value(); }

Error refused(PageNo p, std::string why) {
  return make_error(Errc::kProtocol, fmt::format("handover of page {}: {}", p, why));
}

}  // namespace

bool Directory::idle() const {
  return std::all_of(entries_.begin(), entries_.end(),
                     [](const auto& kv) { return !kv.second.txn && kv.second.queue.empty(); });
}

std::vector<Directory::Handed> Directory::entries() const {
  std::vector<Handed> out;
  out.reserve(entries_.size());
  for (const auto& [page, e] : entries_)
    out.push_back({PageNo{page}, e.state, e.owner, e.sharers, e.version, e.zero,
                   e.copy && !e.zero && e.state != DirState::kModified ? e.copy->data() : nullptr});
  std::sort(out.begin(), out.end(), [](const Handed& a, const Handed& b) { return a.page < b.page; });
  return out;
}

Result<void> Directory::adopt(const Handed& h) {
  if (h.page.value() >= map_.pages()) return refused(h.page, "beyond the guest's pages");
  if (h.state == DirState::kModified && (h.owner.value() >= map_.nodes() || h.sharers != 0))
    return refused(h.page, fmt::format("held in M by node {} with sharers {:#x}", h.owner, h.sharers));
  if (h.state != DirState::kModified && !h.zero && !h.copy)
    return refused(h.page, "written but no copy came with it");
  auto [it, fresh] = entries_.try_emplace(h.page.value());
  if (!fresh && (it->second.txn || !it->second.queue.empty()))
    return refused(h.page, "the new home has a transaction for it");
  Entry& e = it->second;
  e = Entry{};
  e.state = h.state;
  e.owner = h.state == DirState::kModified ? h.owner : NodeId{};
  e.sharers = h.sharers;
  e.version = h.version;
  e.zero = h.zero;
  if (h.copy) {
    e.copy = std::make_unique<PageBuf>();
    std::memcpy(e.copy->data(), h.copy, kPageSize);
  }
  return ok();
}

Result<void> Directory::writeback(PageNo p, NodeId from, std::span<const std::byte> data) {
  auto it = entries_.find(p.value());
  if (it == entries_.end() || it->second.txn || it->second.state != DirState::kModified ||
      it->second.owner != from)
    return refused(p, fmt::format("writeback from node {}, which does not own it here", from));
  if (data.size() != kPageSize) return refused(p, fmt::format("writeback of {} bytes", data.size()));
  Entry& e = it->second;
  if (!e.copy) e.copy = std::make_unique<PageBuf>();
  std::memcpy(e.copy->data(), data.data(), kPageSize);
  e.zero = false;
  e.state = DirState::kUncached;  // the home's copy is the data; nobody holds it
  e.owner = NodeId{};
  e.sharers = 0;
  return ok();
}

Result<void> Directory::leave(PageNo p, NodeId from) {
  auto it = entries_.find(p.value());
  if (it == entries_.end() || it->second.txn || it->second.state != DirState::kShared ||
      !(it->second.sharers & bit(from)))
    return refused(p, fmt::format("node {} leaves a copyset it is not in", from));
  Entry& e = it->second;
  e.sharers &= ~bit(from);
  if (e.sharers == 0) e.state = DirState::kUncached;
  return ok();
}

}  // namespace ssi::dsm
