// redial_until_established(): what a connect reports however its retries end.
#include "rdma/redial.hpp"

#include <gtest/gtest.h>

#include <boost/fiber/operations.hpp>
#include <cerrno>

#include "rdma/fiber_test_util.hpp"
#include "rdma/reactor.hpp"

namespace ssi::rdma {
namespace {

using namespace std::chrono_literals;

// A peer that refuses every dial at once, except that the last wait (the one
// that reaches the deadline) sees nothing: what a loaded host does when the
// refusal of the final dial arrives after the deadline.
TEST(Redial, ATimeoutAfterRefusalsReportsTheRefusal) {
  auto reactor = Reactor::create().value();
  int dials = 0, abandoned = 0;
  Result<void> r = ok();
  testing::run_bounded(*reactor, [&] {
    r = redial_until_established(
        60ms, {.dial = [&]() -> Result<void> { ++dials; return ok(); },
               .wait = [&](Redial::Clock::time_point deadline) -> Result<void> {
                 if (Redial::Clock::now() + 30ms < deadline)
                   return Error{Errc::kDisconnected, "connect: refused", ECONNREFUSED};
                 boost::this_fiber::sleep_until(deadline);
                 return make_error(Errc::kTimeout, "no handshake in time");
               },
               .abandon = [&] { ++abandoned; },
               .shut_down = [] { return false; }});
  }, 10s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().sys_errno, ECONNREFUSED) << r.error().to_string();
  EXPECT_NE(r.error().message.find("gave up after 60 ms"), std::string::npos) << r.error().message;
  EXPECT_GE(dials, 2);  // refused, paused 20 ms, redialled
  EXPECT_EQ(abandoned, 1);
}

TEST(Redial, AnErrorThatIsNotARefusalEndsAtOnce) {
  auto reactor = Reactor::create().value();
  int dials = 0;
  Result<void> r = ok();
  testing::run_bounded(*reactor, [&] {
    r = redial_until_established(
        5s, {.dial = [&]() -> Result<void> { ++dials; return ok(); },
             .wait = [](Redial::Clock::time_point) -> Result<void> {
               return make_error(Errc::kProtocol, "failed authentication");
             },
             .abandon = [] {},
             .shut_down = [] { return false; }});
  }, 10s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kProtocol);
  EXPECT_EQ(dials, 1);
}

}  // namespace
}  // namespace ssi::rdma
