// SHA-256 (FIPS 180-4) of a file: nodes check that their copy of the guest
// kernel is the coordinator's. Small enough to keep rather than pull in a
// crypto library for one hash.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/result.hpp"

namespace ssi::cluster {

std::string sha256_hex(std::span<const std::uint8_t> data);
Result<std::string> sha256_of_file(const std::string& path);

}  // namespace ssi::cluster
