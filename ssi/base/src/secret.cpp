#include "base/secret.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

namespace ssi {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_u32(std::vector<unsigned char>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

void append_bytes(std::vector<unsigned char>& out, std::span<const std::byte> b) {
  for (std::byte x : b) out.push_back(static_cast<unsigned char>(x));
}

}  // namespace

Nonce random_nonce() {
  Nonce n;
  // RAND_bytes fails only if the OS entropy source does; running on with a
  // predictable nonce would make every proof replayable.
  if (RAND_bytes(reinterpret_cast<unsigned char*>(n.data()), static_cast<int>(n.size())) != 1)
    std::abort();
  return n;
}

MachineSecret MachineSecret::generate() {
  MachineSecret s;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(s.key_.data()), static_cast<int>(s.key_.size())) != 1)
    std::abort();  // as in random_nonce()
  s.size_ = s.key_.size();
  return s;
}

Result<MachineSecret> MachineSecret::from_hex(std::string_view hex) {
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == ' ')) hex.remove_suffix(1);
  MachineSecret s;
  if (hex.size() != 2 * s.key_.size())
    return make_error(Errc::kInvalidArgument,
                      fmt::format("machine secret: expected {} hex digits, got {}", 2 * s.key_.size(), hex.size()));
  for (std::size_t i = 0; i < s.key_.size(); ++i) {
    int hi = hex_digit(hex[2 * i]);
    int lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return make_error(Errc::kInvalidArgument, "machine secret: not a hex string");
    s.key_[i] = static_cast<std::byte>(hi * 16 + lo);
  }
  s.size_ = s.key_.size();
  return s;
}

Result<MachineSecret> MachineSecret::from_environment() {
  if (const char* hex = std::getenv(kSecretEnv); hex && *hex) return from_hex(hex);
  const char* path = std::getenv(kSecretFileEnv);
  if (!path || !*path)
    return make_error(Errc::kNotFound, fmt::format("no machine secret: set {} or {}", kSecretEnv, kSecretFileEnv));
  struct stat st {};
  if (::stat(path, &st) != 0) return Error::from_errno(fmt::format("machine secret file {}", path));
  if ((st.st_mode & 077) != 0)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("machine secret file {} is readable by others (mode {:o}): chmod 600 it", path,
                                  st.st_mode & 0777));
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return from_hex(line);
}

std::string MachineSecret::hex() const {
  std::string out;
  for (std::size_t i = 0; i < size_; ++i) out += fmt::format("{:02x}", static_cast<unsigned>(key_[i]));
  return out;
}

Proof MachineSecret::prove(AuthRole role, const AuthTranscript& t) const {
  std::vector<unsigned char> msg;
  msg.insert(msg.end(), {'s', 's', 'i', '-', 'a', 'u', 't', 'h', '1', 0});
  msg.insert(msg.end(), t.channel.begin(), t.channel.end());
  msg.push_back(0);
  msg.push_back(static_cast<unsigned char>(role));
  append_u32(msg, t.dialer);
  append_u32(msg, t.acceptor);
  append_bytes(msg, t.dialer_nonce);
  append_bytes(msg, t.acceptor_nonce);
  Proof p;
  unsigned int len = 0;
  static const unsigned char kNoKey = 0;  // HMAC() wants a non-null key pointer
  const unsigned char* key = size_ ? reinterpret_cast<const unsigned char*>(key_.data()) : &kNoKey;
  if (!HMAC(EVP_sha256(), key, static_cast<int>(size_), msg.data(), msg.size(),
            reinterpret_cast<unsigned char*>(p.data()), &len) ||
      len != p.size())
    std::abort();  // libcrypto cannot compute SHA-256: nothing sensible to do
  return p;
}

bool MachineSecret::check(AuthRole role, const AuthTranscript& t, std::span<const std::byte> proof) const {
  if (proof.size() != kProofSize) return false;
  Proof want = prove(role, t);
  return CRYPTO_memcmp(want.data(), proof.data(), kProofSize) == 0;
}

}  // namespace ssi
