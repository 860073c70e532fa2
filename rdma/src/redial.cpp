#include "rdma/redial.hpp"

#include <cerrno>
#include <optional>

#include <boost/fiber/operations.hpp>
#include <fmt/format.h>

namespace ssi::rdma {

namespace {
constexpr auto kRedialPause = std::chrono::milliseconds(20);
}

Result<void> redial_until_established(std::chrono::milliseconds timeout, const Redial& r) {
  const auto deadline = Redial::Clock::now() + timeout;
  std::optional<Error> last_refusal;
  for (;;) {
    SSI_TRY(r.dial());
    auto w = r.wait(deadline);
    if (w.ok() || r.shut_down()) return w;
    const Error& e = w.error().code == Errc::kTimeout && last_refusal ? *last_refusal : w.error();
    const bool retry = e.sys_errno == ECONNREFUSED || e.code == Errc::kDisconnected;
    if (retry) last_refusal = e;
    if (!retry || Redial::Clock::now() + kRedialPause >= deadline) {
      r.abandon();
      return Error{e.code, fmt::format("{} (gave up after {} ms)", e.message, timeout.count()),
                   e.sys_errno};
    }
    boost::this_fiber::sleep_for(kRedialPause);
  }
}

}  // namespace ssi::rdma
