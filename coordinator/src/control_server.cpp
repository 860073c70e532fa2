#include "control_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fmt/format.h>

#include "base/log.hpp"
#include "stream_auth.hpp"

namespace ssi::coord {
namespace {

std::string peer_of(kj::AsyncIoStream& s) {
  sockaddr_in sa{};
  kj::uint len = sizeof sa;
  try {
    s.getpeername(reinterpret_cast<sockaddr*>(&sa), &len);
  } catch (const kj::Exception&) {
    return "an unknown peer";
  }
  char host[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
  return fmt::format("{}:{}", host, ntohs(sa.sin_port));
}

}  // namespace

ControlServer::ControlServer(capnp::Capability::Client bootstrap, const MachineSecret& secret, kj::Timer& timer,
                             kj::Duration handshake_limit)
    : rpc_(kj::mv(bootstrap)), secret_(secret), timer_(timer), handshake_limit_(handshake_limit), handshakes_(*this) {}

kj::Promise<void> ControlServer::accept_loop(kj::ConnectionReceiver& listener) {
  return listener.accept().then([this, &listener](kj::Own<kj::AsyncIoStream>&& stream) {
    admit(kj::mv(stream));
    return accept_loop(listener);
  });
}

void ControlServer::admit(kj::Own<kj::AsyncIoStream> stream) {
  std::string who = peer_of(*stream);
  if (pending_ >= kMaxPending) {
    refusals_.warn(fmt::format("coordinator: refused {}: {} connections are still authenticating", who, kMaxPending));
    return;  // dropping the stream closes it
  }
  ++pending_;
  handshakes_.add(accept_authenticated(kj::mv(stream), secret_, timer_, handshake_limit_)
                      .then(
                          [this](kj::Own<kj::AsyncIoStream>&& s) {
                            --pending_;
                            rpc_.accept(kj::mv(s));
                          },
                          [this, who](kj::Exception&& e) {
                            --pending_;
                            // A peer that hangs up before authenticating got
                            // nothing (the nodes' own reachability probes do
                            // this): not worth a warning.
                            if (e.getType() == kj::Exception::Type::DISCONNECTED) {
                              log::get("coord")->debug("coordinator: {} hung up before authenticating", who);
                              return;
                            }
                            refusals_.warn(fmt::format("coordinator: closed the connection from {}: {}", who,
                                                       e.getDescription().cStr()));
                          }));
}

void ControlServer::taskFailed(kj::Exception&& e) {
  refusals_.warn(fmt::format("coordinator: connection failed: {}", e.getDescription().cStr()));
}

}  // namespace ssi::coord
