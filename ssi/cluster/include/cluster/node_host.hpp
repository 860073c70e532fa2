// A node process's data-path runtime: the reactor thread (Boost.Fiber
// scheduler) and this node's transport, created before the node joins the
// coordinator so it can announce its transport address.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/ids.hpp"
#include "base/result.hpp"
#include "base/secret.hpp"
#include "rdma/reactor.hpp"
#include "rdma/transport.hpp"

namespace ssi::cluster {

class NodeHost {
 public:
  // kind: "tcp" | "shm" | "verbs"; listen: backend address ("" = default);
  // secret: what every peer must prove it knows.
  static Result<std::unique_ptr<NodeHost>> create(NodeId self, const std::string& kind,
                                                  const std::string& listen, const MachineSecret& secret = {});
  ~NodeHost();
  NodeHost(const NodeHost&) = delete;
  NodeHost& operator=(const NodeHost&) = delete;

  NodeId self() const { return self_; }
  rdma::Reactor& reactor() { return *reactor_; }
  rdma::Transport& transport() { return *transport_; }

  // Runs `fn` as a fiber on the reactor thread and waits (bounded) for it.
  Result<void> call(std::function<Result<void>()> fn,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Connects to the peers with a lower id (index = node id); the others
  // connect to us.
  Result<void> connect_all(const std::vector<std::string>& addresses);

  // Shuts the transport down and joins the reactor thread.
  void shutdown();

 private:
  NodeHost() = default;
  NodeId self_;
  std::unique_ptr<rdma::Reactor> reactor_;
  std::unique_ptr<rdma::Transport> transport_;
  std::thread thread_;
  bool down_ = false;
};

}  // namespace ssi::cluster
