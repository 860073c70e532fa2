#include "sha256.hpp"

#include <openssl/evp.h>

#include <fstream>
#include <vector>

#include <fmt/format.h>

namespace ssi::cluster {

std::string sha256_hex(std::span<const std::uint8_t> data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) return {};
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

Result<std::string> sha256_of_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::from_errno(fmt::format("cannot read {}", path));
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string hex = sha256_hex(bytes);
  if (hex.empty()) return make_error(Errc::kSystem, fmt::format("SHA-256 of {} failed", path));
  return hex;
}

}  // namespace ssi::cluster
