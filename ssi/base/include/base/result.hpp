// Result<T>: a value or an Error (code + message + errno). C++20 has no
// std::expected, so this is the small subset ssi needs.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ssi {

enum class Errc {
  kOk = 0,
  kInvalidArgument,   // caller passed something malformed
  kNotFound,          // file, peer, page... does not exist
  kSystem,            // a syscall failed: see Error::sys_errno
  kProtocol,          // peer sent a malformed / unexpected message
  kVersionMismatch,   // peer speaks another protocol version
  kTimeout,           // a bounded wait ran out
  kDisconnected,      // peer closed or died
  kUnsupported,       // hardware / kernel lacks a feature (e.g. no RDMA device)
  kShutdown,          // the object is shutting down
  kOutOfRange,        // address / page / id outside the configured range
  kInternal,          // a bug: an invariant did not hold
};

std::string_view errc_name(Errc c);

struct [[nodiscard]] Error {
  Errc code = Errc::kInternal;
  std::string message;
  int sys_errno = 0;

  // "what: strerror(errno)" with the current errno.
  static Error from_errno(std::string what);
  static Error from_errno(std::string what, int err);
  std::string to_string() const;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& { return err_; }
  Error&& error() && { return std::move(err_); }

 private:
  Error err_{Errc::kOk, {}, 0};
  bool ok_ = true;
};

inline Result<void> ok() { return {}; }

inline Error make_error(Errc code, std::string message) {
  return Error{code, std::move(message), 0};
}

}  // namespace ssi

// Propagate an error from an expression returning Result<...>.
#define SSI_TRY(expr)                                   \
  do {                                                  \
    auto ssi_try_r_ = (expr);                           \
    if (!ssi_try_r_.ok()) return std::move(ssi_try_r_).error(); \
  } while (0)

#define SSI_CONCAT_INNER_(a, b) a##b
#define SSI_CONCAT_(a, b) SSI_CONCAT_INNER_(a, b)
// SSI_ASSIGN_OR_RETURN(auto x, f()); assigns the value or returns the error.
#define SSI_ASSIGN_OR_RETURN(lhs, expr) \
  SSI_ASSIGN_OR_RETURN_IMPL_(SSI_CONCAT_(ssi_r_, __LINE__), lhs, expr)
#define SSI_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return std::move(tmp).error();    \
  lhs = std::move(tmp).value()
