// A Unix socket address from a path: the metrics endpoint and `ssi stats`.
#pragma once

#include <sys/un.h>

#include <cstring>
#include <string>

#include <fmt/format.h>

#include "base/result.hpp"

namespace ssi::cluster {

inline Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un sa{};
  if (path.size() >= sizeof sa.sun_path)
    return make_error(Errc::kInvalidArgument, fmt::format("socket path too long: {}", path));
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  return sa;
}

}  // namespace ssi::cluster
