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

TEST_F(DirectoryTest, WriteInvalidatesEverySharerBeforeGranting) {
  read_by(1);
  read_by(2);
  read_by(3);
  ASSERT_TRUE(send(kWriteReq, 3, 0, 0, kUpgrade).ok());
  ASSERT_EQ(out.size(), 2u);  // Inv to 1 and 2, not to the requester
  expect_out(0, kInv, 1, 4, 0);
  expect_out(1, kInv, 2, 4, 0);
  ASSERT_TRUE(send(kInvAck, 2, 0, 4).ok());
  EXPECT_TRUE(out.empty()) << "granted before every InvAck";
  ASSERT_TRUE(send(kInvAck, 1, 0, 4).ok());
  ASSERT_EQ(out.size(), 1u);
  expect_out(0, kGrant, 3, 4, kGrantWritable | kGrantKeep);
  auto v = dir.view(PageNo{0});
  EXPECT_EQ(v.state, DirState::kModified);
  EXPECT_EQ(v.owner, NodeId{3});
  EXPECT_EQ(v.sharers, 0u);
}

TEST_F(DirectoryTest, ReadOfModifiedPageFetchesFromOwnerAndBothShare) {
  ASSERT_TRUE(send(kWriteReq, 1, 0).ok());
  expect_out(0, kGrant, 1, 1, kGrantWritable | kGrantZero);
  ASSERT_TRUE(send(kGrantAck, 1, 0, 1).ok());
  ASSERT_TRUE(send(kReadReq, 2, 0).ok());
  ASSERT_EQ(out.size(), 1u);
  expect_out(0, kFetch, 1, 2, 0);
  page[0] = std::byte{42};
  ASSERT_TRUE(send(kFetchAck, 1, 0, 2, 0, /*data=*/true).ok());
  ASSERT_EQ(out.size(), 1u);
  expect_out(0, kGrant, 2, 2, 0);
  ASSERT_EQ(out[0].data.size(), kPageSize);
  EXPECT_EQ(out[0].data[0], std::byte{42});
  EXPECT_EQ(dir.view(PageNo{0}).sharers, (1u << 1) | (1u << 2));
}

TEST_F(DirectoryTest, WriteToModifiedPageFetchesWithInvalidate) {
  ASSERT_TRUE(send(kWriteReq, 1, 0).ok());
  ASSERT_TRUE(send(kGrantAck, 1, 0, 1).ok());
  ASSERT_TRUE(send(kWriteReq, 3, 0).ok());
  expect_out(0, kFetch, 1, 2, kFetchInvalidate);
  ASSERT_TRUE(send(kFetchAck, 1, 0, 2, 0, true).ok());
  expect_out(0, kGrant, 3, 2, kGrantWritable);
  EXPECT_EQ(out[0].data.size(), kPageSize);
  EXPECT_EQ(dir.view(PageNo{0}).owner, NodeId{3});
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
    expect_out(0, kFetch, holder, v, kFetchInvalidate);
    ASSERT_TRUE(send(kFetchAck, holder, 0, v, 0, true).ok());
    ASSERT_TRUE(send(kGrantAck, writer, 0, v).ok());
  }
  EXPECT_EQ(dir.view(PageNo{0}).migrations, 3u);
  EXPECT_EQ(dir.view(PageNo{1}).migrations, 0u);
  EXPECT_EQ(dir.migrations(), 3u);
  auto hot = dir.hottest(4);
  ASSERT_EQ(hot.size(), 1u);
  EXPECT_EQ(hot[0].first, PageNo{0});
  EXPECT_EQ(hot[0].second, 3u);
}

TEST_F(DirectoryTest, UpgradeAfterBeingInvalidatedGetsData) {
  read_by(1);
  read_by(2);
  ASSERT_TRUE(send(kWriteReq, 2, 0, 0, kUpgrade).ok());  // 2 wins
  ASSERT_TRUE(send(kWriteReq, 1, 0, 0, kUpgrade).ok());  // 1 queued, still thinks it holds S
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(dir.view(PageNo{0}).queued, 1u);
  ASSERT_TRUE(send(kInvAck, 1, 0, 3).ok());
  expect_out(0, kGrant, 2, 3, kGrantWritable | kGrantKeep);
  ASSERT_TRUE(send(kGrantAck, 2, 0, 3).ok());  // now 1's request starts
  expect_out(0, kFetch, 2, 4, kFetchInvalidate);
  ASSERT_TRUE(send(kFetchAck, 2, 0, 4, 0, true).ok());
  expect_out(0, kGrant, 1, 4, kGrantWritable);  // data, not keep
  EXPECT_EQ(out[0].data.size(), kPageSize);
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
  ASSERT_TRUE(send(kWriteReq, 2, 0).ok());  // Inv(2) to node 1 in flight
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
      {"stale InvAck", kInvAck, 1, 0, 1, Errc::kProtocol},
      {"InvAck from a non-sharer", kInvAck, 3, 0, 2, Errc::kProtocol},
      {"early GrantAck", kGrantAck, 2, 0, 2, Errc::kProtocol},
      {"second request", kReadReq, 2, 0, 0, Errc::kProtocol},
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
  ASSERT_TRUE(send(kInvAck, 1, 0, 2).ok());  // the real ack still completes it
  expect_out(0, kGrant, 2, 2, kGrantWritable | kGrantZero);
}

}  // namespace
}  // namespace ssi::dsm
