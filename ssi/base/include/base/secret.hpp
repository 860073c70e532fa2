// The machine secret and the challenge-response every connection of a
// machine runs before it is trusted (node<->node transports, node<->
// coordinator). The launcher or the coordinator creates 32 random bytes;
// nodes get them out of band (environment or a 0600 file, see
// docs/security.md). Only HMAC-SHA256 proofs over fresh nonces cross the
// wire, never the secret.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace ssi {

inline constexpr std::size_t kNonceSize = 16;
inline constexpr std::size_t kProofSize = 32;  // HMAC-SHA256
using Nonce = std::array<std::byte, kNonceSize>;
using Proof = std::array<std::byte, kProofSize>;

// Environment variables that hand the secret to a node process.
inline constexpr const char* kSecretEnv = "SSI_SECRET";            // 64 hex digits
inline constexpr const char* kSecretFileEnv = "SSI_SECRET_FILE";   // a file holding them, mode 0600

// Which side of a handshake a proof speaks for: the two sides' proofs
// differ, so one side's proof cannot be reflected back as the other's.
enum class AuthRole : std::uint8_t { kDialer = 1, kAcceptor = 2 };

// Everything one handshake's proofs cover: the channel kind (so a tcp proof
// is no shm proof), both ends' ids as the dialer claimed them, both nonces.
struct AuthTranscript {
  std::string_view channel;  // "tcp", "shm", "verbs", "coordinator"
  std::uint32_t dialer = 0;
  std::uint32_t acceptor = 0;
  Nonce dialer_nonce{};
  Nonce acceptor_nonce{};
};

class MachineSecret {
 public:
  // The empty secret: a valid HMAC key all the same, used by in-process
  // tests; ssi's node and coordinator processes never run with it.
  MachineSecret() = default;
  static MachineSecret generate();
  static Result<MachineSecret> from_hex(std::string_view hex);
  // SSI_SECRET, else SSI_SECRET_FILE (refused unless only its owner may
  // read it); kNotFound if neither is set.
  static Result<MachineSecret> from_environment();

  bool empty() const { return size_ == 0; }
  std::string hex() const;

  Proof prove(AuthRole role, const AuthTranscript& t) const;
  // Constant-time comparison with what `role` should have sent.
  bool check(AuthRole role, const AuthTranscript& t, std::span<const std::byte> proof) const;

 private:
  std::array<std::byte, 32> key_{};
  std::size_t size_ = 0;
};

Nonce random_nonce();

}  // namespace ssi
