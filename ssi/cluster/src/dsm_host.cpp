#include "dsm_host.hpp"

#include <chrono>

namespace ssi::cluster {

DsmSnapshot DsmSnapshot::of(const dsm::NodeStats& s) {
  DsmSnapshot d;
  d.read_faults = s.read_faults.load();
  d.write_faults = s.write_faults.load();
  d.upgrade_faults = s.upgrade_faults.load();
  d.zero_fills = s.zero_fills.load();
  d.coalesced = s.coalesced_faults.load();
  d.bytes_sent = s.bytes_sent.load();
  d.bytes_received = s.bytes_received.load();
  d.invalidations_sent = s.invalidations_sent.load();
  d.invalidations_received = s.invalidations_received.load();
  d.fetches_sent = s.fetches_sent.load();
  d.bad_messages = s.bad_messages.load();
  d.holds = s.holds.load();
  d.hold_ns = s.hold_ns.load();
  d.read_n = s.read_latency.count();
  d.read_ns = s.read_latency.sum_ns();
  d.write_n = s.write_latency.count();
  d.write_ns = s.write_latency.sum_ns();
  d.upgrade_n = s.upgrade_latency.count();
  d.upgrade_ns = s.upgrade_latency.sum_ns();
  for (int k = 0; k < dsm::kPaths; ++k) {
    d.path_n[k] = s.path_faults[k].load();
    d.path_ns[k] = s.path_ns[k].load();
    d.path_delays[k] = s.path_delays[k].load();
  }
  return d;
}

DsmSnapshot DsmSnapshot::operator-(const DsmSnapshot& e) const {
  DsmSnapshot d;
  d.read_faults = read_faults - e.read_faults;
  d.write_faults = write_faults - e.write_faults;
  d.upgrade_faults = upgrade_faults - e.upgrade_faults;
  d.zero_fills = zero_fills - e.zero_fills;
  d.coalesced = coalesced - e.coalesced;
  d.bytes_sent = bytes_sent - e.bytes_sent;
  d.bytes_received = bytes_received - e.bytes_received;
  d.invalidations_sent = invalidations_sent - e.invalidations_sent;
  d.invalidations_received = invalidations_received - e.invalidations_received;
  d.fetches_sent = fetches_sent - e.fetches_sent;
  d.bad_messages = bad_messages - e.bad_messages;
  d.holds = holds - e.holds;
  d.hold_ns = hold_ns - e.hold_ns;
  d.read_n = read_n - e.read_n;
  d.read_ns = read_ns - e.read_ns;
  d.write_n = write_n - e.write_n;
  d.write_ns = write_ns - e.write_ns;
  d.upgrade_n = upgrade_n - e.upgrade_n;
  d.upgrade_ns = upgrade_ns - e.upgrade_ns;
  for (int k = 0; k < dsm::kPaths; ++k) {
    d.path_n[k] = path_n[k] - e.path_n[k];
    d.path_ns[k] = path_ns[k] - e.path_ns[k];
    d.path_delays[k] = path_delays[k] - e.path_delays[k];
  }
  return d;
}

namespace {
std::uint64_t mean(std::uint64_t sum, std::uint64_t n) { return n ? sum / n : 0; }
}  // namespace

coord::Counters DsmSnapshot::counters() const {
  coord::Counters out{{"read_faults", read_faults},
          {"write_faults", write_faults},
          {"upgrade_faults", upgrade_faults},
          {"zero_fills", zero_fills},
          {"coalesced_faults", coalesced},
          {"page_bytes_sent", bytes_sent},
          {"page_bytes_received", bytes_received},
          {"invalidations_sent", invalidations_sent},
          {"invalidations_received", invalidations_received},
          {"fetches_sent", fetches_sent},
          {"holds", holds},
          {"hold_mean_ns", mean(hold_ns, holds)},
          {"bad_messages", bad_messages},
          {"read_fault_mean_ns", mean(read_ns, read_n)},
          {"write_fault_mean_ns", mean(write_ns, write_n)},
          {"upgrade_fault_mean_ns", mean(upgrade_ns, upgrade_n)}};
  for (int k = 0; k < dsm::kPaths; ++k) {
    const std::string name = dsm::fault_path_name(k);
    out.emplace_back(name + "_faults", path_n[k]);
    out.emplace_back(name + "_fault_mean_ns", mean(path_ns[k], path_n[k]));
    out.emplace_back(name + "_delays", path_delays[k]);
  }
  return out;
}

coord::Counters live_dsm_counters(const dsm::NodeStats& s) {
  coord::Counters out = DsmSnapshot::of(s).counters();
  const std::pair<const char*, const dsm::Log2Histogram*> kinds[] = {
      {"read_fault", &s.read_latency}, {"write_fault", &s.write_latency},
      {"upgrade_fault", &s.upgrade_latency}};
  for (const auto& [kind, h] : kinds) {
    std::string k = kind;
    out.emplace_back(k + "_p50_ns", static_cast<std::uint64_t>(h->quantile(0.5).count()));
    out.emplace_back(k + "_p99_ns", static_cast<std::uint64_t>(h->quantile(0.99).count()));
    out.emplace_back(k + "_latency_sum_ns", h->sum_ns());
    for (int b = 0; b < dsm::Log2Histogram::kBuckets; ++b)
      if (std::uint64_t n = h->bucket(b)) out.emplace_back(k + "_latency_bucket." + std::to_string(b), n);
  }
  return out;
}

coord::Counters DsmHost::live_counters() const {
  return node_ ? live_dsm_counters(node_->stats()) : coord::Counters{};
}

Result<void> DsmHost::start(std::uint32_t nodes, std::uint64_t bytes) {
  return host_.call([this, nodes, bytes]() -> Result<void> {
    dsm::NodeConfig nc;
    nc.self = host_.self();
    nc.nodes = nodes;
    nc.bytes = bytes;
    SSI_ASSIGN_OR_RETURN(node_, dsm::Node::create(nc, host_.reactor(), host_.transport()));
    // The host's transport reports a dead peer here: the DSM fails the
    // faults that wait on it and releases their threads.
    host_.transport().on_peer_down([n = node_.get()](NodeId peer, const Error& why) {
      n->peer_failed(peer, why);
    });
    return node_->start();
  });
}

void DsmHost::fail(const std::string& why) {
  if (!node_) return;
  (void)host_.call([this, why]() -> Result<void> {
    node_->fail(make_error(Errc::kDisconnected, why));
    return ok();
  }, std::chrono::seconds(5));
}

void DsmHost::stop() {
  if (!node_) return;
  (void)host_.call([this]() -> Result<void> {
    host_.transport().on_peer_down({});
    node_->stop();
    node_.reset();
    return ok();
  }, std::chrono::seconds(5));
}

std::uint64_t DsmHost::first_page_of(std::uint32_t node) const {
  for (const auto& r : node_->homes().ranges())
    if (r.home == NodeId{node}) return r.first.value();
  return 0;
}

std::uint64_t DsmHost::pages_of(std::uint32_t node) const {
  for (const auto& r : node_->homes().ranges())
    if (r.home == NodeId{node}) return r.end.value() - r.first.value();
  return 0;
}

}  // namespace ssi::cluster
