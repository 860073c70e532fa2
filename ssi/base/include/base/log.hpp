// One spdlog logger per module; every line is tagged with this process's
// node id ("n0", "n1", ... or "--" before one is known).
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "base/ids.hpp"

namespace ssi::log {

// The logger for a module ("rdma", "dsm", "vcpu", ...), created on first use.
std::shared_ptr<spdlog::logger> get(const std::string& module);

// Tag every logger's lines with this node id from now on.
void set_node(NodeId node);

// Level for every logger ("trace".."off"); SSI_LOG env var sets the default.
void set_level(spdlog::level::level_enum level);

}  // namespace ssi::log
