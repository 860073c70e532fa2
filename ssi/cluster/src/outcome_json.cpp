#include "cluster/outcome_json.hpp"

#include <cerrno>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ssi::cluster {

std::string outcome_json(const coord::MachineConfig& config, const Result<coord::Outcome>& outcome,
                         std::chrono::nanoseconds wall) {
  nlohmann::ordered_json j;
  j["schema"] = kOutcomeSchema;
  j["workload"] = config.workload;
  j["rounds"] = config.workload_arg;
  j["nodes"] = config.nodes;
  j["transport"] = config.transport;
  j["mem_bytes"] = config.mem_bytes;
  j["wall_ns"] = wall.count();
  if (!outcome.ok()) {
    j["exit_code"] = 2;
    j["message"] = outcome.error().to_string();
    j["node_reports"] = nlohmann::json::array();
    return j.dump(2);
  }
  j["exit_code"] = outcome->exit_code;
  j["message"] = outcome->message;
  auto reports = nlohmann::ordered_json::array();
  for (const auto& n : outcome->nodes) {
    nlohmann::ordered_json r;
    r["id"] = n.info.id.value();
    r["host"] = n.info.host;
    r["transport_address"] = n.info.transport_address;
    r["exit_code"] = n.last.exit_code;
    r["message"] = n.last.message;
    nlohmann::ordered_json stats = nlohmann::ordered_json::object();
    for (const auto& [k, v] : n.last.stats) stats[k] = v;
    r["stats"] = std::move(stats);
    reports.push_back(std::move(r));
  }
  j["node_reports"] = std::move(reports);
  return j.dump(2);
}

Result<void> write_outcome_json(const std::string& path, const coord::MachineConfig& config,
                                const Result<coord::Outcome>& outcome,
                                std::chrono::nanoseconds wall) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << outcome_json(config, outcome, wall) << '\n';
    out.flush();
    if (!out) return Error::from_errno(fmt::format("cannot write {}", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return Error::from_errno(fmt::format("cannot rename {} to {}", tmp, path));
  return ok();
}

}  // namespace ssi::cluster
