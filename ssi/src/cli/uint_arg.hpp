// A small unsigned number given on the command line of the control
// commands (ssi move, ssi retire): digits only, at most 9 of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ssi::cli {

inline std::optional<std::uint32_t> parse_uint_arg(const std::string& s) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return static_cast<std::uint32_t>(std::stoul(s));
}

}  // namespace ssi::cli
