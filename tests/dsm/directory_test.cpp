// Directory (home side) driven by scripted message sequences.
#include <gtest/gtest.h>

#include <array>

#include "dsm/directory.hpp"
#include "dsm/messages.hpp"

namespace ssi::dsm {
namespace {

class DirectoryTest : public ::testing::Test {
 protected:
  // 4 nodes, 8 pages; node 0 is home of pages 0-1.
  HomeMap map = HomeMap::equal_chunks(8, 4).value();
  Directory dir{NodeId{0}, map};
  Outbox out;
  std::array<std::byte, kPageSize> page{};

  Result<void> send(rdma::FrameType type, std::uint32_t from, std::uint64_t pg,
                    std::uint64_t version = 0, std::uint64_t arg0 = 0, bool data = false) {
    rdma::FrameHeader h = make_msg(type, PageNo{pg}, version, arg0).header;
    h.src = from;
    out.clear();
    return dir.on_message(h, data ? std::span<const std::byte>(page) : std::span<const std::byte>(),
                          out);
  }
  static bool refused(const Result<void>& r) {
    return !r.ok() && r.error().code == Errc::kProtocol;
  }
  void expect_out(std::size_t i, rdma::FrameType type, std::uint32_t to, std::uint64_t version,
                  std::uint64_t arg0) {
    ASSERT_LT(i, out.size());
    EXPECT_EQ(out[i].type, type) << msg_name(out[i].type);
    EXPECT_EQ(out[i].to, NodeId{to});
    EXPECT_EQ(out[i].version, version);
    EXPECT_EQ(out[i].flags, arg0);
  }
  // Runs a full read transaction by `who` on page 0 with no owner.
  void read_by(std::uint32_t who) {
    ASSERT_TRUE(send(kReadReq, who, 0).ok());
    ASSERT_EQ(out.size(), 1u);
    ASSERT_EQ(out[0].type, kGrant);
    ASSERT_TRUE(send(kGrantAck, who, 0, out[0].version).ok());
  }
};

TEST_F(DirectoryTest, FirstReadGetsZeroGrantWithoutData) {
  ASSERT_TRUE(send(kReadReq, 2, 0).ok());
  ASSERT_EQ(out.size(), 1u);
  expect_out(0, kGrant, 2, 1, kGrantZero);
  EXPECT_TRUE(out[0].data.empty());
  auto v = dir.view(PageNo{0});
  EXPECT_EQ(v.state, DirState::kShared);
  EXPECT_EQ(v.sharers, 1u << 2);
  EXPECT_TRUE(v.busy);
}

TEST_F(DirectoryTest, WriteInvalidatesSharersAndGrantsInParallel) {
  read_by(1);
  read_by(2);
  read_by(3);
  ASSERT_TRUE(send(kWriteReq, 3, 0, 0, kUpgrade).ok());
  // Inv to 1 and 2 (not to the requester), each naming 3 as the one to ack,
  // and the grant at once, telling 3 to collect 2 InvAcks.
  ASSERT_EQ(out.size(), 3u);
  expect_out(0, kInv, 1, 4, 0);
  expect_out(1, kInv, 2, 4, 0);
  EXPECT_EQ(out[0].arg, 3u);
  EXPECT_EQ(out[1].arg, 3u);
  expect_out(2, kGrant, 3, 4, kGrantWritable | kGrantKeep);
  EXPECT_EQ(out[2].arg, 2u);
  auto v = dir.view(PageNo{0});
  EXPECT_EQ(v.state, DirState::kModified);
  EXPECT_EQ(v.owner, NodeId{3});
  EXPECT_EQ(v.sharers, 0u);
  EXPECT_TRUE(v.busy);
  ASSERT_TRUE(refused(send(kInvAck, 1, 0, 4))) << "acks go to the requester";
  ASSERT_TRUE(send(kGrantAck, 3, 0, 4).ok());
  EXPECT_FALSE(dir.view(PageNo{0}).busy);
}

TEST_F(DirectoryTest, ReadOfModifiedPageIsForwardedByTheOwnerAndBothShare) {
  ASSERT_TRUE(send(kWriteReq, 1, 0).ok());
  expect_out(0, kGrant, 1, 1, kGrantWritable | kGrantZero);
  ASSERT_TRUE(send(kGrantAck, 1, 0, 1).ok());
  ASSERT_TRUE(send(kReadReq, 2, 0).ok());
  ASSERT_EQ(out.size(), 1u);
  expect_out(0, kFetch, 1, 2, 0);
  EXPECT_EQ(out[0].arg, 2u);  // the owner grants to 2 itself
  // The requester's GrantAck may overtake the owner's FetchAck: the page
  // stays busy until both are in.
  ASSERT_TRUE(send(kGrantAck, 2, 0, 2).ok());
  EXPECT_TRUE(dir.view(PageNo{0}).busy);
  page[0] = std::byte{42};
  ASSERT_TRUE(send(kFetchAck, 1, 0, 2, 0, /*data=*/true).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(dir.view(PageNo{0}).busy);
  EXPECT_EQ(dir.view(PageNo{0}).sharers, (1u << 1) | (1u << 2));
  read_by(3);  // served from the home's new copy
  EXPECT_EQ(dir.view(PageNo{0}).sharers, (1u << 1) | (1u << 2) | (1u << 3));
}

TEST_F(DirectoryTest, WriteToModifiedPageIsForwardedWithInvalidate) {
  ASSERT_TRUE(send(kWriteReq, 1, 0).ok());
  ASSERT_TRUE(send(kGrantAck, 1, 0, 1).ok());
  ASSERT_TRUE(send(kWriteReq, 3, 0).ok());
  ASSERT_EQ(out.size(), 1u);
  expect_out(0, kFetch, 1, 2, kFetchInvalidate);
  EXPECT_EQ(out[0].arg, 3u);
  EXPECT_EQ(dir.view(PageNo{0}).owner, NodeId{3});
  ASSERT_TRUE(refused(send(kFetchAck, 1, 0, 2, 0, true)))
      << "a forwarded write needs no FetchAck";
  ASSERT_TRUE(send(kGrantAck, 3, 0, 2).ok());
  EXPECT_FALSE(dir.view(PageNo{0}).busy);
}

TEST_F(DirectoryTest, PagesHandedBetweenWritersAreCountedAsMigrations) {
  // Node 1 writes page 0 twice in a row (one writer: no migration), then
  // nodes 1 and 3 take turns: every handover counts, page 1 stays cold.
  ASSERT_TRUE(send(kWriteReq, 1, 0).ok());
  ASSERT_TRUE(send(kGrantAck, 1, 0, 1).ok());
  ASSERT_TRUE(send(kWriteReq, 1, 1).ok());
  ASSERT_TRUE(send(kGrantAck, 1, 1, 1).ok());
  std::uint64_t v = 1;
  for (std::uint32_t writer : {3u, 1u, 3u}) {
    ++v;
    std::uint32_t holder = writer == 3 ? 1 : 3;
    ASSERT_TRUE(send(kWriteReq, writer, 0).ok());
    // The third handover in a row makes the page hot.
    expect_out(0, kFetch, holder, v, kFetchInvalidate | (v == 4 ? kFetchHot : 0));
    ASSERT_TRUE(send(kGrantAck, writer, 0, v).ok());
  }
  EXPECT_TRUE(dir.view(PageNo{0}).hot);
  EXPECT_EQ(dir.view(PageNo{0}).migrations, 3u);
  EXPECT_EQ(dir.view(PageNo{1}).migrations, 0u);
  EXPECT_EQ(dir.migrations(), 3u);
  auto hot = dir.hottest(4);
  ASSERT_EQ(hot.size(), 1u);
  EXPECT_EQ(hot[0].first, PageNo{0});
  EXPECT_EQ(hot[0].second, 3u);
}

TEST_F(DirectoryTest, PageReadThenUpgradedByAlternatingNodesBecomesMigratory) {
  // Node 1 writes page 0; then nodes 3 and 1 take turns reading it (the
  // owner forwards it) and upgrading it: each upgrade after the node's own
  // read miss, with the other node the last writer, is evidence.
  ASSERT_TRUE(send(kWriteReq, 1, 0).ok());
  ASSERT_TRUE(send(kGrantAck, 1, 0, 1).ok());
  std::uint64_t v = 1;
  for (std::uint32_t node : {3u, 1u}) {
    const std::uint32_t other = node == 3 ? 1 : 3;
    ASSERT_TRUE(send(kReadReq, node, 0).ok());
    expect_out(0, kFetch, other, ++v, 0);
    ASSERT_TRUE(send(kGrantAck, node, 0, v).ok());
    ASSERT_TRUE(send(kFetchAck, other, 0, v, 0, true).ok());
    ASSERT_TRUE(send(kWriteReq, node, 0, 0, kUpgrade).ok());
    expect_out(0, kInv, other, ++v, 0);
    // The second upgrade scores the page migratory, and so hot.
    expect_out(1, kGrant, node, v, kGrantWritable | kGrantKeep | (node == 1 ? kGrantHot : 0));
    ASSERT_TRUE(send(kGrantAck, node, 0, v).ok());
  }
  EXPECT_EQ(dir.view(PageNo{0}).migratory_score, Directory::kMigratoryOn);
  EXPECT_TRUE(dir.view(PageNo{0}).migratory);
  // Now a read miss takes the page writable from its owner, in one transfer.
  ASSERT_TRUE(send(kReadReq, 3, 0).ok());
  ASSERT_EQ(out.size(), 1u);
  expect_out(0, kFetch, 1, ++v, kFetchInvalidate | kFetchMigratory | kFetchHot);
  EXPECT_EQ(out[0].arg, 3u);
  ASSERT_TRUE(send(kGrantAck, 3, 0, v).ok());
  EXPECT_EQ(dir.view(PageNo{0}).owner, NodeId{3});
  EXPECT_EQ(dir.migratory_grants(), 1u);
  // Node 3 gave it up unchanged (the GrantAck says so): evidence against.
  ASSERT_TRUE(send(kReadReq, 1, 0).ok());
  expect_out(0, kFetch, 3, ++v, kFetchInvalidate | kFetchMigratory | kFetchHot);
  ASSERT_TRUE(send(kGrantAck, 1, 0, v, kAckClean).ok());
  EXPECT_FALSE(dir.view(PageNo{0}).migratory);
  // Reads are shared again.
  ASSERT_TRUE(send(kReadReq, 3, 0).ok());
  expect_out(0, kFetch, 1, ++v, 0);
  // A page written by one node only, read by others, never becomes migratory.
  ASSERT_TRUE(send(kWriteReq, 2, 1).ok());
  ASSERT_TRUE(send(kGrantAck, 2, 1, 1).ok());
  EXPECT_EQ(dir.view(PageNo{1}).migratory_score, 0u);
}

TEST_F(DirectoryTest, UpgradeAfterBeingInvalidatedGetsData) {
  read_by(1);
  read_by(2);
  ASSERT_TRUE(send(kWriteReq, 2, 0, 0, kUpgrade).ok());  // 2 wins
  expect_out(1, kGrant, 2, 3, kGrantWritable | kGrantKeep);
  ASSERT_TRUE(send(kWriteReq, 1, 0, 0, kUpgrade).ok());  // 1 queued, still thinks it holds S
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(dir.view(PageNo{0}).queued, 1u);
  ASSERT_TRUE(send(kGrantAck, 2, 0, 3).ok());  // now 1's request starts
  expect_out(0, kFetch, 2, 4, kFetchInvalidate);  // 2 forwards the data, not keep
  EXPECT_EQ(out[0].arg, 1u);
}

TEST_F(DirectoryTest, RequesterMayAskAgainBeforeItsTransactionEnds) {
  ASSERT_TRUE(send(kWriteReq, 1, 0).ok());
  ASSERT_TRUE(send(kGrantAck, 1, 0, 1).ok());
  ASSERT_TRUE(send(kReadReq, 2, 0).ok());  // forwarded by 1
  ASSERT_TRUE(send(kGrantAck, 2, 0, 2).ok());
  // 2 installed S and write-faults before 1's FetchAck is in: queued.
  ASSERT_TRUE(send(kWriteReq, 2, 0, 0, kUpgrade).ok());
  EXPECT_EQ(dir.view(PageNo{0}).queued, 1u);
  ASSERT_TRUE(send(kFetchAck, 1, 0, 2, 0, true).ok());
  ASSERT_EQ(out.size(), 2u);
  expect_out(0, kInv, 1, 3, 0);
  expect_out(1, kGrant, 2, 3, kGrantWritable | kGrantKeep);
  EXPECT_EQ(out[1].arg, 1u);
}

TEST_F(DirectoryTest, OtherPagesProceedWhileOneIsBusy) {
  ASSERT_TRUE(send(kReadReq, 1, 0).ok());  // page 0 waits for GrantAck
  ASSERT_TRUE(send(kWriteReq, 2, 1).ok());
  expect_out(0, kGrant, 2, 1, kGrantWritable | kGrantZero);
  ASSERT_TRUE(send(kReadReq, 3, 0).ok());
  EXPECT_TRUE(out.empty());
}

TEST_F(DirectoryTest, BadInputIsRejectedAndChangesNothing) {
  read_by(1);
  ASSERT_TRUE(send(kWriteReq, 2, 0).ok());  // Inv(2) to node 1 and the grant in flight
  ASSERT_TRUE(send(kReadReq, 3, 0).ok());   // queued
  const DirView before = dir.view(PageNo{0});
  struct Case {
    const char* what;
    rdma::FrameType type;
    std::uint32_t from;
    std::uint64_t page, version;
    Errc code;
  } cases[] = {
      {"unknown node", kReadReq, 9, 0, 0, Errc::kNotFound},
      {"page out of range", kReadReq, 1, 100, 0, Errc::kOutOfRange},
      {"page homed elsewhere", kReadReq, 1, 5, 0, Errc::kInvalidArgument},
      {"InvAck (the requester collects them)", kInvAck, 1, 0, 2, Errc::kProtocol},
      {"GrantAck from another node", kGrantAck, 3, 0, 2, Errc::kProtocol},
      {"stale GrantAck", kGrantAck, 2, 0, 1, Errc::kProtocol},
      {"second request", kReadReq, 3, 0, 0, Errc::kProtocol},
      {"FetchAck nobody asked for", kFetchAck, 1, 0, 2, Errc::kProtocol},
      {"requester-side message", kGrant, 1, 0, 2, Errc::kProtocol},
  };
  for (const auto& c : cases) {
    auto r = send(c.type, c.from, c.page, c.version, 0, c.type == kFetchAck);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_EQ(r.error().code, c.code) << c.what << ": " << r.error().to_string();
    EXPECT_TRUE(out.empty()) << c.what;
    const DirView after = dir.view(PageNo{0});
    EXPECT_EQ(after.sharers, before.sharers) << c.what;
    EXPECT_EQ(after.version, before.version) << c.what;
    EXPECT_EQ(after.queued, before.queued) << c.what;
  }
  ASSERT_TRUE(send(kGrantAck, 2, 0, 2).ok());  // the real ack still completes it
  expect_out(0, kFetch, 2, 3, 0);              // and 3's read starts
}

}  // namespace
}  // namespace ssi::dsm
