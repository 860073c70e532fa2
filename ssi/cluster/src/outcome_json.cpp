#include "cluster/outcome_json.hpp"

#include <signal.h>
#include <string.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cluster/build_info.hpp"

namespace ssi::cluster {
namespace {

using Json = nlohmann::ordered_json;

Json config_json(const coord::MachineConfig& config) {
  Json c;
  c["nodes"] = config.nodes;
  c["vcpus"] = config.vcpus;
  c["mem_bytes"] = config.mem_bytes;
  c["transport"] = config.transport;
  c["workload"] = config.workload;
  c["rounds"] = config.workload_arg;
  c["phases"] = config.phases;
  if (!config.kernel.empty()) c["kernel"] = config.kernel;
  if (!config.kernel_sha256.empty()) c["kernel_sha256"] = config.kernel_sha256;
  if (!config.initrd.empty()) c["initrd"] = config.initrd;
  if (!config.initrd_sha256.empty()) c["initrd_sha256"] = config.initrd_sha256;
  if (!config.append.empty()) c["append"] = config.append;
  if (!config.vcpu_shares.empty()) c["vcpu_shares"] = config.vcpu_shares;
  if (config.vcpu_quota_percent) c["vcpu_quota_percent"] = config.vcpu_quota_percent;
  if (config.node_mem_limit) c["node_mem_limit"] = config.node_mem_limit;
  return c;
}

// Counters named "vcpuN.<what>" go to node["vcpus"][i] = {"id": N, what: v};
// the others to node["stats"].
void split_counters(const coord::Counters& counters, Json& node) {
  Json stats = Json::object(), vcpus = Json::array();
  for (const auto& [k, v] : counters) {
    unsigned id = 0;
    int used = 0;
    if (std::sscanf(k.c_str(), "vcpu%u.%n", &id, &used) == 1 && used > 0) {
      auto it = std::find_if(vcpus.begin(), vcpus.end(), [&](const Json& j) { return j["id"] == id; });
      if (it == vcpus.end()) {
        vcpus.push_back(Json{{"id", id}});
        it = vcpus.end() - 1;
      }
      (*it)[k.substr(static_cast<std::size_t>(used))] = v;
    } else {
      stats[k] = v;
    }
  }
  node["stats"] = std::move(stats);
  if (!vcpus.empty()) node["vcpus"] = std::move(vcpus);
}

std::string exit_reason(const Result<coord::Outcome>& outcome, const RunFacts& facts) {
  if (facts.signal) return fmt::format("interrupted by SIG{}", sigabbrev_np(facts.signal));
  if (!outcome.ok()) return "error";
  return outcome->exit_code == 0 || outcome->guest_exit ? "finished" : "failed";
}

}  // namespace

std::string outcome_json(const coord::MachineConfig& config, const Result<coord::Outcome>& outcome,
                         const RunFacts& facts) {
  Json j;
  j["schema"] = kOutcomeSchema;
  j["version"] = SSI_CLUSTER_VERSION;
  j["git"] = git_revision();
  j["config"] = config_json(config);
  // The config's main fields also at the top level, as readers of the
  // first version of this schema expect them.
  j["workload"] = config.workload;
  j["rounds"] = config.workload_arg;
  j["nodes"] = config.nodes;
  j["transport"] = config.transport;
  j["mem_bytes"] = config.mem_bytes;
  j["wall_ns"] = facts.wall.count();
  j["exit_reason"] = exit_reason(outcome, facts);
  if (!outcome.ok()) {
    j["exit_code"] = 2;
    j["message"] = outcome.error().to_string();
    j["node_reports"] = Json::array();
    return j.dump(2);
  }
  j["exit_code"] = facts.signal ? 128 + facts.signal : outcome->exit_code;
  j["message"] = outcome->message;
  auto reports = Json::array();
  for (const auto& n : outcome->nodes) {
    Json r;
    r["id"] = n.info.id.value();
    r["host"] = n.info.host;
    r["pid"] = n.info.pid;
    r["transport_address"] = n.info.transport_address;
    r["exit_code"] = n.last.exit_code;
    r["message"] = n.last.message;
    split_counters(n.last.stats, r);
    reports.push_back(std::move(r));
  }
  j["node_reports"] = std::move(reports);
  return j.dump(2);
}

Result<void> write_outcome_json(const std::string& path, const coord::MachineConfig& config,
                                const Result<coord::Outcome>& outcome, const RunFacts& facts) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << outcome_json(config, outcome, facts) << '\n';
    out.flush();
    if (!out) return Error::from_errno(fmt::format("cannot write {}", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return Error::from_errno(fmt::format("cannot rename {} to {}", tmp, path));
  return ok();
}

}  // namespace ssi::cluster
