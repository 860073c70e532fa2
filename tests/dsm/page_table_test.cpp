// PageTable (requester side): fault decisions, coalescing, grant installs,
// invalidation races, stale and unexpected messages.
#include <gtest/gtest.h>

#include "dsm/messages.hpp"
#include "dsm/page_table.hpp"

namespace ssi::dsm {
namespace {

const PageNo kP{3};

TEST(PageTable, FaultsOnOnePageCoalesceIntoOneRequest) {
  PageTable t(8);
  EXPECT_EQ(t.on_fault(kP, false), FaultAction::kSendRead);
  EXPECT_EQ(t.on_fault(kP, false), FaultAction::kWait);
  EXPECT_EQ(t.on_fault(kP, true), FaultAction::kWait);
  EXPECT_EQ(t.on_fault(PageNo{4}, true), FaultAction::kSendWrite);
}

TEST(PageTable, ZeroReadGrantInstallsWriteProtectedZeros) {
  PageTable t(8);
  ASSERT_EQ(t.on_fault(kP, false), FaultAction::kSendRead);
  auto a = t.on_grant(kP, 1, kGrantZero, false);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  EXPECT_EQ(*a, InstallAction::kZeroWp);
  EXPECT_EQ(t.view(kP).state, PageState::kS);
  EXPECT_EQ(t.on_fault(kP, false), FaultAction::kWake) << "a stale read fault is just woken";
  EXPECT_EQ(t.on_fault(kP, true), FaultAction::kSendUpgrade);
  a = t.on_grant(kP, 2, kGrantWritable | kGrantKeep, false);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  EXPECT_EQ(*a, InstallAction::kUnprotect);
  EXPECT_EQ(t.view(kP).state, PageState::kM);
}

TEST(PageTable, InvalidationDuringUpgradeTurnsItIntoAWriteMiss) {
  PageTable t(8);
  ASSERT_EQ(t.on_fault(kP, false), FaultAction::kSendRead);
  ASSERT_TRUE(t.on_grant(kP, 1, 0, true).ok());
  ASSERT_EQ(t.on_fault(kP, true), FaultAction::kSendUpgrade);
  auto drop = t.on_inv(kP, 2);
  ASSERT_TRUE(drop.ok());
  EXPECT_TRUE(*drop);
  EXPECT_EQ(t.view(kP).state, PageState::kI);
  EXPECT_EQ(t.view(kP).pending, Pending::kUpgrade);
  EXPECT_FALSE(t.on_grant(kP, 3, kGrantWritable | kGrantKeep, false).ok())
      << "keep is impossible after losing the copy";
  auto a = t.on_grant(kP, 3, kGrantWritable, true);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  EXPECT_EQ(*a, InstallAction::kCopy);
}

TEST(PageTable, InvalidateOfAPageNotHeldIsAckedWithoutDrop) {
  PageTable t(8);
  auto drop = t.on_inv(kP, 5);
  ASSERT_TRUE(drop.ok());
  EXPECT_FALSE(*drop);
}

TEST(PageTable, FetchDowngradesOrInvalidatesTheOwner) {
  PageTable t(8);
  ASSERT_EQ(t.on_fault(kP, true), FaultAction::kSendWrite);
  ASSERT_EQ(t.on_grant(kP, 1, kGrantWritable | kGrantZero, false).value(), InstallAction::kZero);
  ASSERT_TRUE(t.on_fetch(kP, 2, false).ok());
  EXPECT_EQ(t.view(kP).state, PageState::kS);
  EXPECT_FALSE(t.on_fetch(kP, 3, true).ok()) << "only an M page can be fetched";
}

TEST(PageTable, WriteGrantWaitsForTheInvAcksItNames) {
  PageTable t(8);
  // Acks after the grant.
  ASSERT_EQ(t.on_fault(kP, true), FaultAction::kSendWrite);
  auto a = t.on_grant(kP, 2, kGrantWritable, true, 2);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  EXPECT_FALSE(a->has_value()) << "installed before the InvAcks";
  EXPECT_EQ(t.view(kP).state, PageState::kI);
  EXPECT_FALSE(t.on_inv_ack(kP, 1).ok()) << "InvAck of another transaction";
  a = t.on_inv_ack(kP, 2);
  ASSERT_TRUE(a.ok() && !a->has_value());
  a = t.on_inv_ack(kP, 2);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  EXPECT_EQ(*a, InstallAction::kCopy);
  EXPECT_EQ(t.view(kP).state, PageState::kM);
  EXPECT_FALSE(t.on_inv_ack(kP, 2).ok()) << "InvAck with no write in flight";
  // Acks before the grant (another pair may be faster than the home's).
  PageNo q{4};
  ASSERT_EQ(t.on_fault(q, true), FaultAction::kSendWrite);
  ASSERT_TRUE(t.on_inv_ack(q, 7).ok());
  EXPECT_FALSE(t.on_inv_ack(q, 8).ok()) << "acks of two transactions";
  EXPECT_FALSE(t.on_grant(q, 8, kGrantWritable, true, 1).ok()) << "grant of another version";
  EXPECT_FALSE(t.on_grant(q, 7, kGrantWritable, true, 0).ok()) << "more acks than wanted";
  a = t.on_grant(q, 7, kGrantWritable | kGrantZero, false, 1);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  EXPECT_EQ(*a, InstallAction::kZero);
  EXPECT_FALSE(t.on_grant(kP, 9, 0, true, 1).ok()) << "a read grant names no acks";
}

TEST(PageTable, BadMessagesAreErrorsAndChangeNothing) {
  PageTable t(8);
  ASSERT_EQ(t.on_fault(kP, false), FaultAction::kSendRead);
  ASSERT_TRUE(t.on_grant(kP, 4, 0, true).ok());
  const PageView before = t.view(kP);
  EXPECT_FALSE(t.on_grant(kP, 5, 0, true).ok()) << "grant with no request";
  EXPECT_FALSE(t.on_inv(kP, 4).ok()) << "stale inv";
  EXPECT_FALSE(t.on_inv(PageNo{8}, 9).ok()) << "out of range";
  EXPECT_FALSE(t.on_grant(PageNo{99}, 9, 0, true).ok()) << "out of range";
  ASSERT_EQ(t.on_fault(kP, true), FaultAction::kSendUpgrade);
  EXPECT_FALSE(t.on_grant(kP, 3, kGrantWritable | kGrantKeep, false).ok()) << "stale grant";
  EXPECT_FALSE(t.on_grant(kP, 6, 0, true).ok()) << "S grant for a write request";
  EXPECT_EQ(t.view(kP).state, before.state);
  EXPECT_EQ(t.view(kP).version, before.version);
  EXPECT_EQ(t.view(kP).pending, Pending::kUpgrade);
}

}  // namespace
}  // namespace ssi::dsm
