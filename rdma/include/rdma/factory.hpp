// make_transport(): one entry point for every backend, chosen by name.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/secret.hpp"
#include "rdma/transport.hpp"

namespace ssi::rdma {

class LoopbackNetwork;

struct TransportConfig {
  std::string kind = "tcp";  // "tcp", "loopback", "shm", "verbs"
  NodeId self{0};
  // Where this node listens: "tcp:127.0.0.1:0" (port 0 = any), "shm:NAME";
  // empty = backend default. Unused by loopback.
  Address listen;
  LoopbackNetwork* loopback = nullptr;  // required for "loopback"
  // connect() keeps retrying (peer not listening yet) and send() waits for
  // a handshake in progress at most this long.
  std::chrono::milliseconds connect_timeout{10000};
  // Every connection proves knowledge of it before any frame is acted on
  // (tcp, shm, verbs). All nodes of a machine must have the same one.
  MachineSecret secret{};
};

Result<std::unique_ptr<Transport>> make_transport(const TransportConfig& config, Reactor& reactor);

}  // namespace ssi::rdma
