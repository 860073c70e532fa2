// Dialing a peer until its handshake completes, shared by the backends that
// set up over a stream (tcp; verbs over its tcp side channel). A dial that
// is refused (the peer is not listening yet) or closed before the handshake
// (the peer lost a simultaneous dial to its own, which is about to arrive) is
// retried every 20 ms until the timeout. The error that ends it names the
// last refusal when only a timeout followed it: under load the final dial may
// not even get its answer before the deadline, and "refused" is the cause.
#pragma once

#include <chrono>
#include <functional>

#include "base/result.hpp"

namespace ssi::rdma {

struct Redial {
  using Clock = std::chrono::steady_clock;
  std::function<Result<void>()> dial;  // starts a dial unless one is under way
  std::function<Result<void>(Clock::time_point deadline)> wait;  // established, or why not
  std::function<void()> abandon;       // giving up: drop a dial still in progress
  std::function<bool()> shut_down;     // the transport is shutting down: stop at once
};

// Fiber: dials (and redials) until established or `timeout` has passed.
Result<void> redial_until_established(std::chrono::milliseconds timeout, const Redial& r);

}  // namespace ssi::rdma
