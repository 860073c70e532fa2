// Loopback instance of the transport contract suite.
#include "cluster_fixture.hpp"
#include "rdma/loopback.hpp"

namespace ssi::rdma::testing {
namespace {

class LoopbackCluster : public ClusterFixture {
 public:
  Result<Nodes> build(std::size_t n, Reactor& reactor, std::uint64_t seed) override {
    network_ = std::make_unique<LoopbackNetwork>(seed);
    SSI_ASSIGN_OR_RETURN(auto nodes, make_nodes(n, [&](NodeId id) -> Result<std::unique_ptr<Transport>> {
                           SSI_ASSIGN_OR_RETURN(auto t, network_->create(id, reactor));
                           return std::unique_ptr<Transport>(std::move(t));
                         }));
    SSI_TRY(connect_all(nodes));
    return nodes;
  }
  void kill(std::size_t i, Nodes&) override { network_->kill(NodeId{static_cast<std::uint32_t>(i)}); }
  Result<void> inject_raw(std::size_t to, NodeId fake, std::span<const std::byte> bytes) override {
    NodeId dst{static_cast<std::uint32_t>(to)};
    network_->inject_bytes(fake, dst, bytes);
    network_->close_stream(fake, dst);
    return ok();
  }

 private:
  std::unique_ptr<LoopbackNetwork> network_;
};

INSTANTIATE_TEST_SUITE_P(Loopback, TransportContract,
                         ::testing::Values(ContractBackend{
                             "loopback", [] { return std::make_unique<LoopbackCluster>(); }}),
                         ContractBackend::name_of);

}  // namespace
}  // namespace ssi::rdma::testing
