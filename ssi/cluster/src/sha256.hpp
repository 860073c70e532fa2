// SHA-256 of a file (OpenSSL's libcrypto, which ssi_base already links for
// the machine secret's HMAC): nodes check that their copy of the guest
// kernel is the coordinator's.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/result.hpp"

namespace ssi::cluster {

std::string sha256_hex(std::span<const std::uint8_t> data);
Result<std::string> sha256_of_file(const std::string& path);

}  // namespace ssi::cluster
