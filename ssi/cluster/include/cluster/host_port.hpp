// HOST:PORT as the command line takes it (coordinator and listen
// addresses). Checked strictly: `--listen 127.0.0.1:70000` is an error,
// not port 4464.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace ssi::cluster {

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};

// `allow_any_port`: port 0 ("any free port") is accepted, for listen addresses.
Result<HostPort> parse_host_port(std::string_view text, bool allow_any_port);

}  // namespace ssi::cluster
