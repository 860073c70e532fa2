#include <gtest/gtest.h>

#include "dsm/home_map.hpp"

namespace ssi::dsm {
namespace {

TEST(HomeMap, EqualChunksSpreadTheRemainderOverTheFirstNodes) {
  auto m = HomeMap::equal_chunks(10, 3);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  // 4 + 3 + 3 pages
  EXPECT_EQ(m->home_of(PageNo{0}), NodeId{0});
  EXPECT_EQ(m->home_of(PageNo{3}), NodeId{0});
  EXPECT_EQ(m->home_of(PageNo{4}), NodeId{1});
  EXPECT_EQ(m->home_of(PageNo{6}), NodeId{1});
  EXPECT_EQ(m->home_of(PageNo{7}), NodeId{2});
  EXPECT_EQ(m->home_of(PageNo{9}), NodeId{2});
}

TEST(HomeMap, ExplicitTableMustCoverEveryPageOnce) {
  using R = HomeMap::Range;
  auto good = HomeMap::from_ranges(8, 2, {R{PageNo{4}, PageNo{8}, NodeId{0}},
                                          R{PageNo{0}, PageNo{4}, NodeId{1}}});
  ASSERT_TRUE(good.ok()) << good.error().to_string();
  EXPECT_EQ(good->home_of(PageNo{0}), NodeId{1});
  EXPECT_EQ(good->home_of(PageNo{7}), NodeId{0});
  EXPECT_FALSE(HomeMap::from_ranges(8, 2, {R{PageNo{0}, PageNo{4}, NodeId{0}}}).ok()) << "gap";
  EXPECT_FALSE(HomeMap::from_ranges(8, 2, {R{PageNo{0}, PageNo{5}, NodeId{0}},
                                           R{PageNo{4}, PageNo{8}, NodeId{1}}})
                   .ok())
      << "overlap";
  EXPECT_FALSE(HomeMap::from_ranges(8, 2, {R{PageNo{0}, PageNo{8}, NodeId{2}}}).ok())
      << "unknown node";
  EXPECT_FALSE(HomeMap::equal_chunks(0, 2).ok());
}

}  // namespace
}  // namespace ssi::dsm
