#include "cluster/host_port.hpp"

#include <charconv>

#include <fmt/format.h>

namespace ssi::cluster {

Result<HostPort> parse_host_port(std::string_view text, bool allow_any_port) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("'{}' is not HOST:PORT (e.g. 127.0.0.1:7470)", text));
  std::string_view port = text.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size())
    return make_error(Errc::kInvalidArgument, fmt::format("'{}': port '{}' is not a number", text, port));
  const unsigned lowest = allow_any_port ? 0 : 1;
  if (value < lowest || value > 65535)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("'{}': port {} is out of range ({}..65535)", text, value, lowest));
  return HostPort{std::string(text.substr(0, colon)), static_cast<std::uint16_t>(value)};
}

}  // namespace ssi::cluster
