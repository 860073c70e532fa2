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
