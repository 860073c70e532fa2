// Machine frames and IPI routing rules: pure, no transport.
#include <gtest/gtest.h>

#include "multinode/ipi_router.hpp"
#include "multinode/wire.hpp"

namespace ssi::multinode {
namespace {

TEST(Wire, IoWriteRoundTrips) {
  IoAccess a{IoSpace::kMmio, VcpuId{7}, true, 0xFED00010, 4, {1, 2, 3, 4}};
  auto back = decode_io(encode_io(a));
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back->space, IoSpace::kMmio);
  EXPECT_EQ(back->vcpu, VcpuId{7});
  EXPECT_TRUE(back->is_write);
  EXPECT_EQ(back->address, 0xFED00010u);
  EXPECT_EQ(back->data, (std::vector<std::uint8_t>{1, 2, 3, 4}));
}

TEST(Wire, IoReadCarriesWidthNotBytes) {
  IoAccess a{IoSpace::kPio, VcpuId{3}, false, 0x3FD, 1, {0xAA}};
  rdma::Frame f = encode_io(a);
  EXPECT_TRUE(f.payload.empty());
  auto back = decode_io(f);
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->is_write);
  EXPECT_EQ(back->data.size(), 1u);
}

TEST(Wire, MalformedIoRequestsAreRefused) {
  IoAccess a{IoSpace::kPio, VcpuId{0}, true, 0x3F8, 1, {'x'}};
  rdma::Frame wide = encode_io(a);
  wide.header.arg0 = (wide.header.arg0 & ~0xFFull) | 9;  // 9-byte access
  EXPECT_FALSE(decode_io(wide).ok());
  rdma::Frame port = encode_io(a);
  port.header.arg1 = 0x10000;
  EXPECT_FALSE(decode_io(port).ok());
  rdma::Frame short_payload = encode_io(a);
  short_payload.payload = rdma::Payload();
  EXPECT_FALSE(decode_io(short_payload).ok());
  // A string longer than a page, and an MMIO "string".
  IoAccess big{IoSpace::kPio, VcpuId{0}, false, 0x3F8, 2, std::vector<std::uint8_t>(2 * 2049)};
  EXPECT_FALSE(decode_io(encode_io(big)).ok());
  IoAccess mmio{IoSpace::kMmio, VcpuId{0}, false, 0xFEC00000, 4, std::vector<std::uint8_t>(8)};
  EXPECT_FALSE(decode_io(encode_io(mmio)).ok());
}

TEST(Wire, AWholeStringInstructionIsOneFrame) {
  // rep outsw of a page: 2048 words at one port, in one frame.
  std::vector<std::uint8_t> bytes(kPageSize);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i * 7);
  IoAccess out{IoSpace::kPio, VcpuId{5}, true, 0x1F0, 2, bytes};
  auto back = decode_io(encode_io(out));
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back->width, 2);
  EXPECT_EQ(back->count(), 2048u);
  EXPECT_EQ(back->data, bytes);
  // rep insd of 3 dwords: no payload, the count travels in the header.
  IoAccess in{IoSpace::kPio, VcpuId{5}, false, 0x1F0, 4, std::vector<std::uint8_t>(12)};
  rdma::Frame f = encode_io(in);
  EXPECT_TRUE(f.payload.empty());
  auto rin = decode_io(f);
  ASSERT_TRUE(rin.ok());
  EXPECT_EQ(rin->count(), 3u);
  EXPECT_EQ(rin->data.size(), 12u);
}

TEST(Wire, EoiCarriesItsVector) {
  auto v = decode_eoi(encode_eoi(0x50));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 0x50);
  rdma::Frame bad = encode_eoi(0x50);
  bad.header.arg0 = 0x150;
  EXPECT_FALSE(decode_eoi(bad).ok());
}

TEST(Wire, IpiRoundTripsEveryField) {
  vcpu::Ipi ipi;
  ipi.source = VcpuId{5};
  ipi.source_apic_id = 5;
  ipi.mode = vcpu::DeliveryMode::kStartup;
  ipi.vector = 0x9A;
  ipi.shorthand = vcpu::DestShorthand::kAllExcludingSelf;
  ipi.destination = 0xFFFFFFFF;
  ipi.logical = true;
  ipi.level_assert = false;
  ipi.level_triggered = true;
  auto back = decode_ipi(encode_ipi(ipi));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->source, ipi.source);
  EXPECT_EQ(back->source_apic_id, 5u);
  EXPECT_EQ(back->mode, ipi.mode);
  EXPECT_EQ(back->vector, 0x9A);
  EXPECT_EQ(back->shorthand, ipi.shorthand);
  EXPECT_EQ(back->destination, 0xFFFFFFFFu);
  EXPECT_TRUE(back->logical);
  EXPECT_FALSE(back->level_assert);
  EXPECT_TRUE(back->level_triggered);
}

TEST(Wire, MoveMarkerRoundTripsAndBadKindsAreRefused) {
  MoveMarker m{7, MoveMarker::Kind::kFlushed, NodeId{3}};
  auto back = decode_marker(encode_marker(m));
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, m);
  rdma::Frame bad = encode_marker(m);
  bad.header.arg1 = 9;
  EXPECT_FALSE(decode_marker(bad).ok());
  EXPECT_FALSE(decode_marker(encode_eoi(0x30)).ok());
}

TEST(Wire, MovePayloadCarriesStateAndCountersAndRefusesDamage) {
  MovePayload m{{1, 2, 3, 4, 5}, {{"exits", 12}, {"exits_io", 1ull << 40}}};
  auto bytes = encode_move(m);
  auto back = decode_move(bytes);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back->state, m.state);
  EXPECT_EQ(back->counters, m.counters);
  for (std::size_t cut : {std::size_t{0}, std::size_t{3}, std::size_t{9}, bytes.size() - 1})
    EXPECT_FALSE(decode_move(std::span(bytes).first(cut)).ok()) << "cut at " << cut;
  bytes.push_back(0);
  EXPECT_FALSE(decode_move(bytes).ok());
}

TEST(IpiRouting, PhysicalDestinationGoesToTheNodeOfThatVcpuOnly) {
  Placement p = Placement::round_robin(4, 2);  // 0,2 on node 0; 1,3 on node 1
  vcpu::Ipi ipi;
  ipi.destination = 3;
  EXPECT_EQ(ClusterIpiRouter::remote_nodes(ipi, NodeId{0}, p), std::vector<NodeId>{NodeId{1}});
  ipi.destination = 2;
  EXPECT_TRUE(ClusterIpiRouter::remote_nodes(ipi, NodeId{0}, p).empty()) << "local vCPU";
}

TEST(IpiRouting, BroadcastsShorthandsAndLogicalModeReachEveryOtherNode) {
  Placement p = Placement::round_robin(4, 4);
  std::vector<NodeId> others{NodeId{0}, NodeId{2}, NodeId{3}};
  vcpu::Ipi ipi;
  ipi.destination = 0xFF;  // xAPIC physical broadcast
  EXPECT_EQ(ClusterIpiRouter::remote_nodes(ipi, NodeId{1}, p), others);
  ipi.destination = 1;
  ipi.logical = true;
  EXPECT_EQ(ClusterIpiRouter::remote_nodes(ipi, NodeId{1}, p), others);
  ipi.logical = false;
  ipi.shorthand = vcpu::DestShorthand::kAllExcludingSelf;
  EXPECT_EQ(ClusterIpiRouter::remote_nodes(ipi, NodeId{1}, p), others);
  ipi.shorthand = vcpu::DestShorthand::kSelf;
  EXPECT_TRUE(ClusterIpiRouter::remote_nodes(ipi, NodeId{1}, p).empty());
}

TEST(IpiRouting, OnlyNmisWithTheSameTargetsShareAMergeKey) {
  vcpu::Ipi nmi;
  nmi.mode = vcpu::DeliveryMode::kNmi;
  nmi.destination = 3;
  vcpu::Ipi fixed = nmi;
  fixed.mode = vcpu::DeliveryMode::kFixed;
  EXPECT_EQ(ClusterIpiRouter::merge_key(fixed), 0u) << "fixed IPIs are never merged";
  vcpu::Ipi init = nmi;
  init.mode = vcpu::DeliveryMode::kInit;
  EXPECT_EQ(ClusterIpiRouter::merge_key(init), 0u);
  std::uint64_t to3 = ClusterIpiRouter::merge_key(nmi);
  EXPECT_NE(to3, 0u);
  vcpu::Ipi other = nmi;
  other.source = VcpuId{5};
  EXPECT_EQ(ClusterIpiRouter::merge_key(other), to3) << "same target from another vCPU";
  other.destination = 2;
  EXPECT_NE(ClusterIpiRouter::merge_key(other), to3);
  other = nmi;
  other.logical = true;
  EXPECT_NE(ClusterIpiRouter::merge_key(other), to3) << "logical 3 is not APIC id 3";
  vcpu::Ipi all_but_0 = nmi, all_but_1 = nmi;
  all_but_0.shorthand = all_but_1.shorthand = vcpu::DestShorthand::kAllExcludingSelf;
  all_but_1.source = VcpuId{1};
  EXPECT_NE(ClusterIpiRouter::merge_key(all_but_0), ClusterIpiRouter::merge_key(all_but_1));
}

TEST(Placement, RoundRobinAndExplicitMaps) {
  Placement p = Placement::round_robin(5, 2);
  EXPECT_EQ(p.vcpu_node, (std::vector<std::uint32_t>{0, 1, 0, 1, 0}));
  EXPECT_EQ(p.vcpus_on(NodeId{1}), (std::vector<std::uint32_t>{1, 3}));
  EXPECT_FALSE(Placement::from_map(2, {0, 2}).ok()) << "node out of range";
  EXPECT_FALSE(Placement::from_map(2, {1, 0}).ok()) << "BSP must be on node 0";
  EXPECT_TRUE(Placement::from_map(2, {0, 0, 1}).ok());
}

}  // namespace
}  // namespace ssi::multinode
