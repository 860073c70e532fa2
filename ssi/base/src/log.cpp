#include "base/log.hpp"

#include <cstdlib>
#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace ssi::log {
namespace {

std::mutex g_mu;
std::string g_node_tag = "--";

std::string pattern() { return "[%H:%M:%S.%e] [n" + g_node_tag + "] [%n] [%^%l%$] %v"; }

spdlog::level::level_enum default_level() {
  const char* env = std::getenv("SSI_LOG");
  return env ? spdlog::level::from_str(env) : spdlog::level::warn;
}

}  // namespace

std::shared_ptr<spdlog::logger> get(const std::string& module) {
  std::lock_guard lock(g_mu);
  if (auto existing = spdlog::get(module)) return existing;
  auto logger = spdlog::stderr_color_mt(module);
  logger->set_pattern(pattern());
  logger->set_level(default_level());
  return logger;
}

void set_node(NodeId node) {
  std::lock_guard lock(g_mu);
  g_node_tag = std::to_string(node.value());
  spdlog::set_pattern(pattern());
}

void set_level(spdlog::level::level_enum level) { spdlog::set_level(level); }

}  // namespace ssi::log
