// The challenge-response on a fresh control-plane connection, before Cap'n
// Proto reads a byte of it (base/secret.hpp):
//   node        -> coordinator  "SSIC" + node nonce
//   coordinator -> node         coordinator nonce + coordinator proof
//   node        -> coordinator  node proof
// A peer that fails it, or is too slow, is dropped: its bytes never reach
// the RPC system.
#pragma once

#include <kj/async-io.h>
#include <kj/timer.h>

#include "base/secret.hpp"

namespace ssi::coord {

// Coordinator side: the stream once the node proved itself; rejects
// (kj::Exception) on a bad proof, a closed stream, or after `limit`.
kj::Promise<kj::Own<kj::AsyncIoStream>> accept_authenticated(kj::Own<kj::AsyncIoStream> stream,
                                                             const MachineSecret& secret, kj::Timer& timer,
                                                             kj::Duration limit);

// Node side: resolves once both proofs checked out; rejects otherwise.
kj::Promise<void> authenticate_to_coordinator(kj::AsyncIoStream& stream, const MachineSecret& secret,
                                              kj::Timer& timer, kj::Duration limit);

}  // namespace ssi::coord
