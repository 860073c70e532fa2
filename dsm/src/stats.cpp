#include "dsm/stats.hpp"

#include <bit>

#include <fmt/format.h>

namespace ssi::dsm {

void Log2Histogram::record(std::chrono::nanoseconds d) {
  auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(d.count(), 1));
  int b = std::min(kBuckets - 1, static_cast<int>(std::bit_width(ns)) - 1);
  buckets_[b].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
}

std::uint64_t Log2Histogram::count() const {
  std::uint64_t n = 0;
  for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
  return n;
}

std::chrono::nanoseconds Log2Histogram::quantile(double q) const {
  std::uint64_t total = count();
  if (total == 0) return std::chrono::nanoseconds{0};
  auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total - 1)) + 1;
  std::uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += buckets_[b].load(std::memory_order_relaxed);
    if (seen >= rank) return std::chrono::nanoseconds{(2ull << b) - 1};
  }
  return std::chrono::nanoseconds{(2ull << (kBuckets - 1)) - 1};
}

std::string Log2Histogram::summary() const {
  return fmt::format("n={} p50<={}us p99<={}us max<={}us", count(), quantile(0.5).count() / 1000.0,
                     quantile(0.99).count() / 1000.0, quantile(1.0).count() / 1000.0);
}

const char* fault_path_name(int path) {
  static constexpr const char* kNames[kPaths] = {"read_home", "read_forwarded", "write_home",
                                                 "write_sharers", "write_forwarded"};
  return path >= 0 && path < kPaths ? kNames[path] : "?";
}

std::string NodeStats::summary() const {
  return fmt::format(
      "faults read={} write={} upgrade={} zero_fill={} coalesced={} spurious={}; bytes sent={} "
      "received={}; inv sent={} received={}; fetch sent={} received={}; migrations={} migratory={} clean={}; holds={} (hot {}, {}us); bad={} "
      "errors={}; "
      "read[{}] write[{}] upgrade[{}]; paths{}",
      read_faults.load(), write_faults.load(), upgrade_faults.load(), zero_fills.load(),
      coalesced_faults.load(), spurious_faults.load(), bytes_sent.load(), bytes_received.load(),
      invalidations_sent.load(), invalidations_received.load(), fetches_sent.load(),
      fetches_received.load(), page_migrations.load(), migratory_grants.load(),
      clean_handovers.load(), holds.load(), hot_holds.load(), hold_ns.load() / 1000, bad_messages.load(), local_errors.load(), read_latency.summary(),
      write_latency.summary(), upgrade_latency.summary(), paths());
}

std::string NodeStats::paths() const {
  std::string s;
  for (int k = 0; k < kPaths; ++k) {
    auto n = path_faults[k].load();
    if (n == 0) continue;
    s += fmt::format(" {}={} ({:.1f}us, {:.2f} delays)", fault_path_name(k), n,
                     static_cast<double>(path_ns[k].load()) / 1000.0 / static_cast<double>(n),
                     static_cast<double>(path_delays[k].load()) / static_cast<double>(n));
  }
  return s.empty() ? " none" : s;
}

}  // namespace ssi::dsm
