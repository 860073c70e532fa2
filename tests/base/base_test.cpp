#include <gtest/gtest.h>

#include <unordered_set>

#include "base/clock.hpp"
#include "base/fake_clock.hpp"
#include "base/ids.hpp"
#include "base/log.hpp"
#include "base/result.hpp"

namespace ssi {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return make_error(Errc::kInvalidArgument, fmt::format("{} is not positive", v));
  return v;
}

Result<int> doubled(int v) {
  SSI_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

Result<void> check(int v) {
  SSI_TRY(parse_positive(v));
  return ok();
}

TEST(Result, CarriesValueOrError) {
  auto good = doubled(21);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 42);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(bad.error().to_string(), "invalid argument: -1 is not positive");
  EXPECT_TRUE(check(1).ok());
  EXPECT_FALSE(check(0).ok());
}

TEST(Result, SystemErrorCarriesErrnoAndContext) {
  Error e = Error::from_errno("open /nonexistent", ENOENT);
  EXPECT_EQ(e.code, Errc::kSystem);
  EXPECT_EQ(e.sys_errno, ENOENT);
  EXPECT_NE(e.message.find("open /nonexistent: No such file"), std::string::npos);
}

TEST(StrongIds, AreDistinctHashableAndFormattable) {
  static_assert(!std::is_convertible_v<NodeId, PageNo>);
  static_assert(!std::is_convertible_v<std::uint32_t, NodeId>);
  EXPECT_LT(NodeId{1}, NodeId{2});
  std::unordered_set<PageNo> pages{PageNo{1}, PageNo{2}, PageNo{1}};
  EXPECT_EQ(pages.size(), 2u);
  EXPECT_EQ(fmt::format("{}", NodeId{7}), "7");
  EXPECT_EQ(page_of(Gpa{0x3fff}), PageNo{3});
  EXPECT_EQ(gpa_of(PageNo{3}), Gpa{0x3000});
}

TEST(FakeClock, MovesOnlyWhenAdvanced) {
  testing::FakeClock clock;
  auto t0 = clock.now();
  EXPECT_EQ(clock.now(), t0);
  clock.advance(std::chrono::microseconds(5));
  EXPECT_EQ(clock.now() - t0, std::chrono::microseconds(5));
}

TEST(Log, LoggersArePerModuleAndReused) {
  auto a = log::get("base-test");
  auto b = log::get("base-test");
  EXPECT_EQ(a.get(), b.get());
  log::set_node(NodeId{3});
  a->info("tagged line");  // visible with SSI_LOG=info
}

}  // namespace
}  // namespace ssi
