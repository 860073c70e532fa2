// verbs instances of the transport contract suite:
// - VerbsSoftRc: the real VerbsTransport (side-channel handshake, credits,
//   RDMA WRITE pages, CQ fiber) over the soft RC fake fabric, so the data
//   path runs here; kill = the node's NIC dies and its process exits.
// - Verbs: make_transport("verbs") on a real RDMA device; skips, with the
//   reason, wherever there is none (this project's machines).
#include <fmt/format.h>

#include <boost/fiber/operations.hpp>

#include "cluster_fixture.hpp"
#include "rdma/codec.hpp"
#include "rdma/factory.hpp"
#include "rdma/fiber_test_util.hpp"
#include "rdma/soft_rc.hpp"
#include "rdma/verbs_transport.hpp"

namespace ssi::rdma::testing {
namespace {

class SoftRcCluster : public ClusterFixture {
 public:
  Result<Nodes> build(std::size_t n, Reactor& reactor, std::uint64_t) override {
    reactor_ = &reactor;
    SSI_ASSIGN_OR_RETURN(auto nodes, make_nodes(n, [&](NodeId id) -> Result<std::unique_ptr<Transport>> {
                           SSI_ASSIGN_OR_RETURN(auto t, make_node(id));
                           return std::unique_ptr<Transport>(std::move(t));
                         }));
    SSI_TRY(connect_all(nodes, Dial::kAllAtOnce));  // exercises the simultaneous-dial rule
    addresses_ = addresses_of(nodes);
    return nodes;
  }

  void kill(std::size_t i, Nodes& nodes) override {
    network_.kill(*fabrics_.at(i));  // its QPs stop answering
    nodes[i]->shutdown();            // and its sockets close, as at process exit
  }

  // A node `fake` connects to node `to` (full handshake), sends `bytes` as
  // one message of the data path and waits until node `to` drops it. A
  // truncated frame cannot exist on RC (a SEND arrives whole or not at
  // all); what a receiver sees of a sender dying mid-frame is the
  // connection closing with nothing delivered, so that is what it does.
  Result<void> inject_raw(std::size_t to, NodeId fake, std::span<const std::byte> bytes) override {
    SSI_ASSIGN_OR_RETURN(auto t, make_node(fake));
    const NodeId dst{static_cast<std::uint32_t>(to)};
    bool dropped = false;
    t->on_peer_down([&](NodeId, const Error&) { dropped = true; });
    SSI_TRY(t->connect(dst, addresses_.at(to)));
    bool truncated = bytes.size() >= kHeaderSize &&
                     validate_header(decode_header(bytes.first<kHeaderSize>())).ok() &&
                     bytes.size() - kHeaderSize < decode_header(bytes.first<kHeaderSize>()).payload_len;
    Result<void> r = ok();
    if (!truncated) {
      r = t->send_raw(dst, bytes);
      if (r.ok() && !eventually([&] { return dropped; }))
        r = make_error(Errc::kTimeout, fmt::format("node {} kept the connection after the bad message", to));
    }
    t->on_peer_down({});
    t->shutdown();
    boost::this_fiber::sleep_for(std::chrono::milliseconds(5));  // its last fibers end
    return r;
  }

 private:
  Result<std::unique_ptr<VerbsTransport>> make_node(NodeId id) {
    SSI_ASSIGN_OR_RETURN(auto fabric, network_.make_fabric(fmt::format("soft{}", id.value())));
    fabrics_[id.value()] = fabric.get();
    TransportConfig config;
    config.kind = "verbs";
    config.self = id;
    config.listen = "verbs:127.0.0.1:0";
    return VerbsTransport::create(config, std::move(fabric), *reactor_);
  }

  SoftRcNetwork network_;  // outlives every fabric (the nodes die in run())
  std::map<std::uint32_t, SoftRcFabric*> fabrics_;
  std::vector<Address> addresses_;
  Reactor* reactor_ = nullptr;
};

class VerbsDeviceCluster : public ClusterFixture {
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
    SSI_ASSIGN_OR_RETURN(auto nodes, make_nodes(n, [&](NodeId id) {
                           TransportConfig config;
                           config.kind = "verbs";
                           config.self = id;
                           return make_transport(config, reactor);
                         }));
    SSI_TRY(connect_all(nodes, Dial::kAllAtOnce));
    return nodes;
  }
};

INSTANTIATE_TEST_SUITE_P(VerbsSoftRc, TransportContract,
                         ::testing::Values(ContractBackend{
                             "verbs_soft_rc", [] { return std::make_unique<SoftRcCluster>(); }}),
                         ContractBackend::name_of);

INSTANTIATE_TEST_SUITE_P(Verbs, TransportContract,
                         ::testing::Values(ContractBackend{
                             "verbs", [] { return std::make_unique<VerbsDeviceCluster>(); }}),
                         ContractBackend::name_of);

}  // namespace
}  // namespace ssi::rdma::testing
