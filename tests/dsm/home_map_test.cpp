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

TEST(HomeMap, StandbyNodesHomeNothingUntilARetiringNodesRangesAreRehomedToThem) {
  auto m = HomeMap::equal_chunks(10, 3, 2);  // node 2: standby
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->nodes(), 3u);
  EXPECT_EQ(m->home_of(PageNo{4}), NodeId{0});
  EXPECT_EQ(m->home_of(PageNo{5}), NodeId{1});
  EXPECT_EQ(m->home_of(PageNo{9}), NodeId{1});
  auto moved = m->rehome(NodeId{1}, NodeId{2});
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(*moved, 5u);
  EXPECT_EQ(m->home_of(PageNo{5}), NodeId{2});
  EXPECT_EQ(m->home_of(PageNo{4}), NodeId{0});
  EXPECT_EQ(m->rehome(NodeId{1}, NodeId{2}).value(), 0u) << "node 1 homes nothing now";
  EXPECT_FALSE(m->rehome(NodeId{0}, NodeId{3}).ok()) << "unknown node";
  EXPECT_FALSE(HomeMap::equal_chunks(10, 2, 3).ok()) << "more home nodes than nodes";
}

}  // namespace
}  // namespace ssi::dsm
