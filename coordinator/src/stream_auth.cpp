#include "stream_auth.hpp"

#include <array>
#include <cstring>

#include <kj/debug.h>

namespace ssi::coord {
namespace {

constexpr std::array<std::byte, 4> kMagic{std::byte{'S'}, std::byte{'S'}, std::byte{'I'}, std::byte{'C'}};
constexpr std::size_t kHelloSize = kMagic.size() + kNonceSize;
constexpr std::size_t kChallengeSize = kNonceSize + kProofSize;

// One handshake's buffers; kept alive by the promise chain.
struct Handshake {
  AuthTranscript t{"coordinator", 0, 0, {}, {}};
  std::array<std::byte, kHelloSize> hello{};
  std::array<std::byte, kChallengeSize> challenge{};
  Proof proof{};
};

// Ends the handshake: the stream is dropped, the line names `why`.
void refuse_unless(bool ok, const char* why) {
  if (!ok) kj::throwFatalException(kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(why)));
}

}  // namespace

kj::Promise<kj::Own<kj::AsyncIoStream>> accept_authenticated(kj::Own<kj::AsyncIoStream> stream,
                                                             const MachineSecret& secret, kj::Timer& timer,
                                                             kj::Duration limit) {
  auto hs = kj::heap<Handshake>();
  Handshake& h = *hs;
  kj::AsyncIoStream& s = *stream;
  auto done = s.read(h.hello.data(), h.hello.size())
                  .then([&h, &s, &secret]() {
                    refuse_unless(std::memcmp(h.hello.data(), kMagic.data(), kMagic.size()) == 0,
                                  "not an ssi node (bad greeting)");
                    std::memcpy(h.t.dialer_nonce.data(), h.hello.data() + kMagic.size(), kNonceSize);
                    h.t.acceptor_nonce = random_nonce();
                    Proof mine = secret.prove(AuthRole::kAcceptor, h.t);
                    std::memcpy(h.challenge.data(), h.t.acceptor_nonce.data(), kNonceSize);
                    std::memcpy(h.challenge.data() + kNonceSize, mine.data(), kProofSize);
                    return s.write(h.challenge.data(), h.challenge.size());
                  })
                  .then([&h, &s]() { return s.read(h.proof.data(), h.proof.size()); })
                  .then([&h, &secret, hs = kj::mv(hs), stream = kj::mv(stream)]() mutable {
                    refuse_unless(secret.check(AuthRole::kDialer, h.t, h.proof), "failed authentication");
                    return kj::mv(stream);
                  });
  return timer.timeoutAfter(limit, kj::mv(done));
}

kj::Promise<void> authenticate_to_coordinator(kj::AsyncIoStream& s, const MachineSecret& secret,
                                              kj::Timer& timer, kj::Duration limit) {
  auto hs = kj::heap<Handshake>();
  Handshake& h = *hs;
  h.t.dialer_nonce = random_nonce();
  std::memcpy(h.hello.data(), kMagic.data(), kMagic.size());
  std::memcpy(h.hello.data() + kMagic.size(), h.t.dialer_nonce.data(), kNonceSize);
  auto done = s.write(h.hello.data(), h.hello.size())
                  .then([&h, &s]() { return s.read(h.challenge.data(), h.challenge.size()); })
                  .then([&h, &s, &secret]() {
                    std::memcpy(h.t.acceptor_nonce.data(), h.challenge.data(), kNonceSize);
                    refuse_unless(secret.check(AuthRole::kAcceptor, h.t, std::span(h.challenge).subspan(kNonceSize)),
                                  "the coordinator failed authentication (another machine's secret?)");
                    h.proof = secret.prove(AuthRole::kDialer, h.t);
                    return s.write(h.proof.data(), h.proof.size());
                  })
                  .attach(kj::mv(hs));
  return timer.timeoutAfter(limit, kj::mv(done));
}

}  // namespace ssi::coord
