// The coordinator's listening side: accepts connections, runs the machine's
// challenge-response on each (stream_auth.hpp) within a deadline, and hands
// only authenticated streams to Cap'n Proto. Idle, slow, unauthenticated
// and surplus connections are closed and logged once each, at most
// kLinesPerSecond lines a second (a connect flood is summarised).
#pragma once

#include <chrono>
#include <string>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include "base/secret.hpp"

namespace ssi::coord {

class RateLimitedLog {
 public:
  static constexpr int kLinesPerSecond = 5;
  void warn(const std::string& line);

 private:
  std::chrono::steady_clock::time_point window_{};
  int lines_ = 0;
  int suppressed_ = 0;
};

class ControlServer final : private kj::TaskSet::ErrorHandler {
 public:
  // At most this many connections may be mid-handshake; a connection must
  // authenticate within kHandshakeLimit.
  static constexpr std::size_t kMaxPending = 64;
  static constexpr auto kHandshakeLimit = 3 * kj::SECONDS;

  ControlServer(capnp::Capability::Client bootstrap, const MachineSecret& secret, kj::Timer& timer);
  kj::Promise<void> accept_loop(kj::ConnectionReceiver& listener);

 private:
  void taskFailed(kj::Exception&& e) override;
  void admit(kj::Own<kj::AsyncIoStream> stream);

  capnp::TwoPartyServer rpc_;
  const MachineSecret& secret_;
  kj::Timer& timer_;
  kj::TaskSet handshakes_;
  std::size_t pending_ = 0;
  RateLimitedLog refusals_;
};

}  // namespace ssi::coord
