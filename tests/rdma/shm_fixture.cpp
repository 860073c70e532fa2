// shm instance of the transport contract suite: N ShmTransports in this
// process on one reactor, each with its own listener and rings.
#include "cluster_fixture.hpp"
#include "rdma/codec.hpp"
#include "rdma/fiber_test_util.hpp"
#include "rdma/shm_transport.hpp"

namespace ssi::rdma::testing {
namespace {

class ShmCluster : public ClusterFixture {
 public:
  Result<Nodes> build(std::size_t n, Reactor& reactor, std::uint64_t) override {
    std::vector<ShmTransport*> shm;
    SSI_ASSIGN_OR_RETURN(auto nodes, make_nodes(n, [&](NodeId id) -> Result<std::unique_ptr<Transport>> {
                           SSI_ASSIGN_OR_RETURN(auto t, ShmTransport::create(id, reactor));
                           shm.push_back(t.get());
                           return std::unique_ptr<Transport>(std::move(t));
                         }));
    // One side connects; the other learns of it when its listener fires.
    for (std::size_t a = 0; a < n; ++a)
      for (std::size_t b = a + 1; b < n; ++b)
        SSI_TRY(nodes[a]->connect(nodes[b]->self(), nodes[b]->local_address()));
    bool all = eventually([&] {
      for (std::size_t a = 0; a < n; ++a)
        for (std::size_t b = 0; b < n; ++b)
          if (a != b && !shm[a]->connected(nodes[b]->self())) return false;
      return true;
    });
    if (!all) return make_error(Errc::kTimeout, "shm nodes did not all accept within 5 s");
    addresses_ = addresses_of(nodes);
    return nodes;
  }

  // Connects to node `to` as `fake` and publishes `bytes` as one ring record.
  // A record is published atomically, so a truncated frame (a sender dying
  // mid-write) is modelled as what the receiver would see: the connection
  // closing with no record. A record shorter than a header is still pushed.
  Result<void> inject_raw(std::size_t to, NodeId fake, std::span<const std::byte> bytes) override {
    std::string name = addresses_.at(to).substr(4);
    SSI_ASSIGN_OR_RETURN(auto ch,
                         ShmChannel::connect(name, fake, NodeId{static_cast<std::uint32_t>(to)}));
    bool truncated = bytes.size() >= kHeaderSize &&
                     validate_header(decode_header(bytes.first<kHeaderSize>())).ok() &&
                     bytes.size() - kHeaderSize <
                         decode_header(bytes.first<kHeaderSize>()).payload_len;
    if (!truncated) {
      if (ch.tx().try_push({bytes}) != ShmRing::Push::kPushed) {
        return make_error(Errc::kInternal, "could not push the raw record");
      }
      SSI_TRY(ch.ring_peer());
    }
    return ok();  // `ch` closes here
  }

 private:
  std::vector<Address> addresses_;
};

INSTANTIATE_TEST_SUITE_P(Shm, TransportContract,
                         ::testing::Values(ContractBackend{
                             "shm", [] { return std::make_unique<ShmCluster>(); }}),
                         ContractBackend::name_of);

}  // namespace
}  // namespace ssi::rdma::testing
