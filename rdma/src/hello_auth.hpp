// The challenge-response of the stream hellos (tcp, verbs setup channel):
//   dialer   -> acceptor  hello       payload: dialer nonce
//   acceptor -> dialer    hello       payload: acceptor nonce + acceptor proof
//   dialer   -> acceptor  hello proof payload: dialer proof
// Each proof is an HMAC over both ids and both nonces (base/secret.hpp), so
// a recorded handshake is worth nothing on a new connection. The acceptor
// acts on no frame of the stream before the dialer's proof checked out.
#pragma once

#include <cstring>
#include <optional>
#include <span>

#include "base/secret.hpp"
#include "rdma/frame.hpp"

namespace ssi::rdma {

struct HelloChallenge {
  Nonce nonce{};
  Proof proof{};  // the acceptor's; unused in the dialer's hello
};

inline Payload challenge_payload(const Nonce& nonce, const Proof* proof) {
  std::byte buf[kNonceSize + kProofSize];
  std::memcpy(buf, nonce.data(), kNonceSize);
  if (proof) std::memcpy(buf + kNonceSize, proof->data(), kProofSize);
  return Payload::copy_of(std::span(buf, proof ? sizeof buf : kNonceSize));
}

// The nonce (and proof, when `with_proof`) leading `bytes`; nullopt if too short.
inline std::optional<HelloChallenge> parse_challenge(std::span<const std::byte> bytes, bool with_proof) {
  if (bytes.size() < kNonceSize + (with_proof ? kProofSize : 0)) return std::nullopt;
  HelloChallenge c;
  std::memcpy(c.nonce.data(), bytes.data(), kNonceSize);
  if (with_proof) std::memcpy(c.proof.data(), bytes.data() + kNonceSize, kProofSize);
  return c;
}

}  // namespace ssi::rdma
