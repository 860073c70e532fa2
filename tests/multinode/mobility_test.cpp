// vCPU mobility without KVM (docs/mobility.md): the placement table moves,
// IPI routing follows it, and a leaving LAPIC's IPIs are diverted
// atomically (none delivered and diverted, none lost) until the move ends.
#include <gtest/gtest.h>

#include <vector>

#include "base/fake_clock.hpp"
#include "multinode/ipi_router.hpp"
#include "multinode/placement.hpp"
#include "ssi/board.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::multinode {
namespace {

vcpu::Ipi fixed_to(std::uint32_t apic_id, std::uint8_t vector) {
  vcpu::Ipi ipi;
  ipi.vector = vector;
  ipi.destination = apic_id;
  return ipi;
}

TEST(MobilityTest, PlacementTableMovesAVcpuAndRoutingFollows) {
  PlacementTable t(Placement::round_robin(4, 2));
  EXPECT_EQ(t.node_of(1), NodeId{1});
  auto before = ClusterIpiRouter::remote_nodes(fixed_to(1, 0x40), NodeId{0}, t);
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0], NodeId{1});
  t.set(1, NodeId{0});
  EXPECT_TRUE(ClusterIpiRouter::remote_nodes(fixed_to(1, 0x40), NodeId{0}, t).empty());
  EXPECT_EQ(ClusterIpiRouter::remote_nodes(fixed_to(1, 0x40), NodeId{1}, t).at(0), NodeId{0});
  EXPECT_EQ(t.snapshot().vcpu_node, (std::vector<std::uint32_t>{0, 0, 0, 1}));
  // Broadcasts still reach every other node.
  vcpu::Ipi all = fixed_to(0xff, 0x41);
  all.shorthand = vcpu::DestShorthand::kAllIncludingSelf;
  EXPECT_EQ(ClusterIpiRouter::remote_nodes(all, NodeId{0}, t).size(), 1u);
}

class NullSink final : public vcpu::IpiSink {
 public:
  void send_ipi(const vcpu::Ipi&) override {}
};

vcpu::LapicConfig config_of(std::uint32_t id) {
  vcpu::LapicConfig c;
  c.vcpu = VcpuId{id};
  c.apic_id = id;
  c.bsp = id == 0;
  return c;
}

TEST(MobilityTest, LeavingLapicsIpisAreDivertedUntilTheMoveEnds) {
  ssi::testing::FakeClock clock;
  NullSink sink;
  vcpu::Lapic stays(config_of(0), clock, sink, nullptr), leaves(config_of(1), clock, sink, nullptr);
  machine::LocalIpiRouter router;
  router.lapics = {&stays, &leaves};
  std::vector<vcpu::Ipi> held;
  router.divert(&leaves, [&](const vcpu::Ipi& ipi, std::uint32_t, vcpu::Lapic&) { held.push_back(ipi); });
  router.send_ipi(fixed_to(1, 0x40));  // to the leaving vCPU: held
  router.send_ipi(fixed_to(0, 0x41));  // to the other: not held
  vcpu::Ipi all = fixed_to(0, 0x42);
  all.shorthand = vcpu::DestShorthand::kAllIncludingSelf;
  router.send_ipi(all);  // held once, for the leaving vCPU
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0].vector, 0x40);
  EXPECT_EQ(held[1].vector, 0x42);
  bool ran = false;
  router.end_divert(&leaves, [&] { ran = true; });
  EXPECT_TRUE(ran);
  router.send_ipi(fixed_to(1, 0x43));  // gone: neither held nor delivered here
  EXPECT_EQ(held.size(), 2u);
  EXPECT_EQ(router.lapics.size(), 1u);
  router.add(&leaves);  // it comes back
  EXPECT_EQ(router.lapics.size(), 2u);
}

}  // namespace
}  // namespace ssi::multinode
