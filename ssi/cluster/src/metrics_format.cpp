// What the live metrics endpoint says (Prometheus text, QMP-like JSON) and
// what `ssi stats` prints from it. Counter names come from the nodes:
// "vcpu<N>.<name>" are per vCPU, "<kind>_latency_bucket.<b>" is bucket b
// (samples in [2^b, 2^(b+1)) ns) of a DSM fault latency histogram.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cluster/metrics.hpp"
#include "report.hpp"

namespace ssi::cluster {
namespace {

using Json = nlohmann::ordered_json;
constexpr std::string_view kBucket = "_latency_bucket.";

std::string sanitize(std::string_view s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

// "vcpu3.run_ns" -> {3, "run_ns"}; anything else -> nullopt.
std::optional<std::pair<std::uint32_t, std::string>> per_vcpu(const std::string& name) {
  if (!name.starts_with("vcpu")) return std::nullopt;
  auto dot = name.find('.');
  if (dot == std::string::npos || dot == 4) return std::nullopt;
  std::uint32_t v = 0;
  for (std::size_t i = 4; i < dot; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return std::nullopt;
    v = v * 10 + static_cast<std::uint32_t>(name[i] - '0');
  }
  return std::pair{v, name.substr(dot + 1)};
}

bool is_bucket(const std::string& name) { return name.find(kBucket) != std::string::npos; }

// Prometheus lines of one node's histograms, cumulative as the format wants.
void histograms(const coord::NodeReport& n, std::map<std::string, std::string>& out) {
  std::map<std::string, std::map<int, std::uint64_t>> by_kind;
  for (const auto& [name, value] : n.last.stats) {
    auto at = name.find(kBucket);
    if (at == std::string::npos) continue;
    by_kind[name.substr(0, at)][std::stoi(name.substr(at + kBucket.size()))] = value;
  }
  for (const auto& [kind, buckets] : by_kind) {
    std::string metric = fmt::format("ssi_dsm_{}_latency_seconds", sanitize(kind));
    std::string& text = out[metric];
    std::uint64_t total = 0;
    for (const auto& [b, count] : buckets) {
      total += count;
      text += fmt::format("{}_bucket{{node=\"{}\",le=\"{:g}\"}} {}\n", metric, n.info.id,
                          std::ldexp(1.0, b + 1) / 1e9, total);
    }
    text += fmt::format("{}_bucket{{node=\"{}\",le=\"+Inf\"}} {}\n", metric, n.info.id, total);
    text += fmt::format("{}_count{{node=\"{}\"}} {}\n", metric, n.info.id, total);
    for (const auto& [name, value] : n.last.stats)
      if (name == kind + "_latency_sum_ns")
        text += fmt::format("{}_sum{{node=\"{}\"}} {:g}\n", metric, n.info.id, value / 1e9);
  }
}

}  // namespace

std::string prometheus_text(const MetricsSnapshot& snapshot) {
  std::map<std::string, std::string> metrics;  // name -> sample lines (grouped for # TYPE)
  for (const auto& n : snapshot.nodes) {
    for (const auto& [name, value] : n.last.stats) {
      if (is_bucket(name) || name.ends_with("_latency_sum_ns")) continue;
      if (auto v = per_vcpu(name))
        metrics["ssi_vcpu_" + sanitize(v->second)] +=
            fmt::format("ssi_vcpu_{}{{node=\"{}\",vcpu=\"{}\"}} {}\n", sanitize(v->second),
                        n.info.id, v->first, value);
      else
        metrics["ssi_" + sanitize(name)] +=
            fmt::format("ssi_{}{{node=\"{}\"}} {}\n", sanitize(name), n.info.id, value);
    }
    histograms(n, metrics);
  }
  std::string out = fmt::format("# TYPE ssi_samples counter\nssi_samples {}\n", snapshot.samples);
  for (const auto& [name, lines] : metrics)
    out += fmt::format("# TYPE {} {}\n{}", name,
                       name.ends_with("_latency_seconds") ? "histogram" : "untyped", lines);
  return out;
}

std::string query_stats_json(const MetricsSnapshot& snapshot) {
  Json nodes = Json::array();
  for (const auto& n : snapshot.nodes) {
    Json counters = Json::object();
    for (const auto& [name, value] : n.last.stats) counters[name] = value;
    nodes.push_back({{"id", n.info.id.value()}, {"host", n.info.host}, {"pid", n.info.pid},
                     {"counters", counters}});
  }
  Json r = {{"uptime_ms", snapshot.uptime_ms}, {"samples", snapshot.samples}, {"nodes", nodes}};
  return Json{{"return", r}}.dump();
}

Result<MetricsSnapshot> parse_query_stats(const std::string& reply) {
  Json j = Json::parse(reply, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(Errc::kInvalidArgument, "the reply is not JSON");
  if (j.contains("error"))
    return make_error(Errc::kInvalidArgument, j["error"].value("desc", std::string("error")));
  if (!j.contains("return") || !j["return"].is_object())
    return make_error(Errc::kInvalidArgument, "the reply has no \"return\"");
  const Json& r = j["return"];
  MetricsSnapshot s;
  s.uptime_ms = r.value("uptime_ms", 0ull);
  s.samples = r.value("samples", 0ull);
  auto nodes = r.find("nodes");
  if (nodes == r.end() || !nodes->is_array()) return s;
  for (const Json& n : *nodes) {
    coord::NodeReport report;
    report.info.id = NodeId{n.value("id", 0u)};
    report.info.host = n.value("host", std::string());
    report.info.pid = n.value("pid", 0u);
    auto counters = n.find("counters");
    if (counters != n.end() && counters->is_object())
      for (auto it = counters->begin(); it != counters->end(); ++it)
        if (it->is_number_unsigned()) report.last.stats.emplace_back(it.key(), it->get<std::uint64_t>());
    s.nodes.push_back(std::move(report));
  }
  return s;
}

// One row per vCPU: run time, exits (by reason), halts, injected interrupts.
std::string per_vcpu_table(const MetricsSnapshot& snapshot) {
  struct Row {
    std::uint32_t node = 0;
    std::map<std::string, std::uint64_t> values;
  };
  std::map<std::uint32_t, Row> rows;
  for (const auto& n : snapshot.nodes)
    for (const auto& [name, value] : n.last.stats)
      if (auto v = per_vcpu(name)) {
        rows[v->first].node = n.info.id.value();
        rows[v->first].values[v->second] = value;
      }
  if (rows.empty()) return "";
  std::string out = fmt::format("{:<6} {:>5} {:>12} {:>10} {:>8} {:>9}  {}\n", "vcpu", "node",
                                "run time", "exits", "halts", "injected", "exits by reason");
  for (const auto& [v, row] : rows) {
    auto get = [&](const char* k) {
      auto it = row.values.find(k);
      return it == row.values.end() ? 0ull : static_cast<unsigned long long>(it->second);
    };
    std::string reasons;
    for (const auto& [k, value] : row.values)
      if (k.starts_with("exits_")) reasons += fmt::format("{}={} ", k.substr(6), value);
    out += fmt::format("{:<6} {:>5} {:>12} {:>10} {:>8} {:>9}  {}\n", v, row.node,
                       human_counter("run_ns", get("run_ns")).second, get("exits"), get("halts"),
                       get("interrupts_injected"), reasons);
  }
  return out;
}

}  // namespace ssi::cluster
