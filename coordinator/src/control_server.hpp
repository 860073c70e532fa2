// The coordinator's listening side: accepts connections, runs the machine's
// challenge-response on each (stream_auth.hpp) within a deadline, and hands
// only authenticated streams to Cap'n Proto. Idle, slow, unauthenticated
// and surplus connections are closed and logged once each (rate-limited:
// a connect flood is summarised).
#pragma once

#include <chrono>
#include <string>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include "base/rate_limited_log.hpp"
#include "base/secret.hpp"

namespace ssi::coord {

class ControlServer final : private kj::TaskSet::ErrorHandler {
 public:
  // At most this many connections may be mid-handshake; a connection must
  // authenticate within the handshake limit.
  static constexpr std::size_t kMaxPending = 64;

  ControlServer(capnp::Capability::Client bootstrap, const MachineSecret& secret, kj::Timer& timer,
                kj::Duration handshake_limit);
  kj::Promise<void> accept_loop(kj::ConnectionReceiver& listener);

 private:
  void taskFailed(kj::Exception&& e) override;
  void admit(kj::Own<kj::AsyncIoStream> stream);

  capnp::TwoPartyServer rpc_;
  const MachineSecret& secret_;
  kj::Timer& timer_;
  kj::Duration handshake_limit_;
  kj::TaskSet handshakes_;
  std::size_t pending_ = 0;
  log::RateLimitedLog refusals_{"coord"};
};

}  // namespace ssi::coord
