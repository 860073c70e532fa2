// The contract suite's view of a backend: build N connected transports,
// crash one, feed one raw bytes. A backend joins the suite with a file
// <backend>_fixture.cpp (picked up by CMake) that defines a ClusterFixture
// and instantiates the suite:
//   INSTANTIATE_TEST_SUITE_P(Shm, TransportContract,
//       ::testing::Values(ContractBackend{"shm", [] { return std::make_unique<ShmCluster>(); }}),
//       ContractBackend::name_of);
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include <boost/fiber/fiber.hpp>
#include <gtest/gtest.h>

#include "base/result.hpp"
#include "rdma/transport.hpp"

namespace ssi::rdma::testing {

using Nodes = std::vector<std::unique_ptr<Transport>>;

class ClusterFixture {
 public:
  virtual ~ClusterFixture() = default;
  // Non-empty: this backend cannot run here; the test is skipped with it.
  virtual std::string skip_reason() { return {}; }
  // Runs on the reactor thread: n transports with NodeIds 0..n-1 on
  // `reactor`, every pair connected.
  virtual Result<Nodes> build(std::size_t n, Reactor& reactor, std::uint64_t seed) = 0;
  // Node i dies without a goodbye (as if its process crashed).
  virtual void kill(std::size_t i, Nodes& nodes) { nodes[i]->shutdown(); }
  // Opens a byte stream to node `to` that claims to be node `fake` (after
  // the backend's handshake, if any), writes `bytes`, and closes it.
  // kUnsupported if the backend has no byte stream to abuse.
  virtual Result<void> inject_raw(std::size_t to, NodeId fake, std::span<const std::byte> bytes) {
    (void)to, (void)fake, (void)bytes;
    return make_error(Errc::kUnsupported, "backend has no raw byte stream");
  }
};

// What every fixture's build() does: n nodes with ids 0..n-1, then links.
using MakeNode = std::function<Result<std::unique_ptr<Transport>>(NodeId)>;
inline Result<Nodes> make_nodes(std::size_t n, const MakeNode& make) {
  Nodes nodes;
  for (std::size_t i = 0; i < n; ++i) {
    SSI_ASSIGN_OR_RETURN(auto t, make(NodeId{static_cast<std::uint32_t>(i)}));
    nodes.push_back(std::move(t));
  }
  return nodes;
}

// Every node connects to every other. kAllAtOnce dials every ordered pair
// from a fiber of its own, so both ends of a pair dial simultaneously.
enum class Dial { kInTurn, kAllAtOnce };
inline Result<void> connect_all(Nodes& nodes, Dial how = Dial::kInTurn) {
  std::vector<boost::fibers::fiber> dialers;
  std::vector<Error> errors;
  for (auto& a : nodes)
    for (auto& b : nodes) {
      if (a == b) continue;
      auto dial = [&errors, from = a.get(), to = b.get()] {
        if (auto r = from->connect(to->self(), to->local_address()); !r.ok()) errors.push_back(r.error());
      };
      if (how == Dial::kAllAtOnce) {
        dialers.emplace_back(dial);
      } else {
        dial();
      }
    }
  for (auto& d : dialers) d.join();
  if (!errors.empty()) return errors.front();
  return ok();
}

inline std::vector<Address> addresses_of(const Nodes& nodes) {
  std::vector<Address> out;
  for (auto& t : nodes) out.push_back(t->local_address());
  return out;
}

struct ContractBackend {
  std::string name;
  std::function<std::unique_ptr<ClusterFixture>()> make;
  static std::string name_of(const ::testing::TestParamInfo<ContractBackend>& info) {
    return info.param.name;
  }
};

// Names the backend in test listings (instead of a hex dump of the struct).
inline void PrintTo(const ContractBackend& b, std::ostream* os) { *os << b.name; }

class TransportContract : public ::testing::TestWithParam<ContractBackend> {
 protected:
  void SetUp() override;  // makes the fixture, picks + prints the seed, skips if needed
  // Builds n nodes on a fresh reactor and runs `body` in a fiber there,
  // bounded by `timeout`; shuts every node down afterwards.
  void run(std::size_t n, const std::function<void(Nodes&)>& body,
           std::chrono::milliseconds timeout = std::chrono::seconds(30));

  std::unique_ptr<ClusterFixture> fixture_;
  std::uint64_t seed_ = 0;
};

}  // namespace ssi::rdma::testing
