// verbs instance of the transport contract suite. Skips, with the reason,
// wherever make_transport("verbs") cannot build a node (no RDMA device here).
#include "cluster_fixture.hpp"
#include "rdma/factory.hpp"

namespace ssi::rdma::testing {
namespace {

class VerbsCluster : public ClusterFixture {
 public:
  std::string skip_reason() override {
    auto reactor = Reactor::create();
    if (!reactor.ok()) return "no reactor: " + reactor.error().to_string();
    TransportConfig config;
    config.kind = "verbs";
    auto t = make_transport(config, **reactor);
    if (t.ok()) return {};
    return t.error().message;
  }
  Result<Nodes> build(std::size_t n, Reactor& reactor, std::uint64_t) override {
    Nodes nodes;
    for (std::size_t i = 0; i < n; ++i) {
      TransportConfig config;
      config.kind = "verbs";
      config.self = NodeId{static_cast<std::uint32_t>(i)};
      SSI_ASSIGN_OR_RETURN(auto t, make_transport(config, reactor));
      nodes.push_back(std::move(t));
    }
    for (auto& a : nodes)
      for (auto& b : nodes)
        if (a != b) SSI_TRY(a->connect(b->self(), b->local_address()));
    return nodes;
  }
};

INSTANTIATE_TEST_SUITE_P(Verbs, TransportContract,
                         ::testing::Values(ContractBackend{
                             "verbs", [] { return std::make_unique<VerbsCluster>(); }}),
                         ContractBackend::name_of);

}  // namespace
}  // namespace ssi::rdma::testing
