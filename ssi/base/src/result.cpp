#include "base/result.hpp"

#include <cstring>

namespace ssi {

std::string_view errc_name(Errc c) {
  switch (c) {
    case Errc::kOk: return "ok";
    case Errc::kInvalidArgument: return "invalid argument";
    case Errc::kNotFound: return "not found";
    case Errc::kSystem: return "system error";
    case Errc::kProtocol: return "protocol error";
    case Errc::kVersionMismatch: return "version mismatch";
    case Errc::kTimeout: return "timeout";
    case Errc::kDisconnected: return "disconnected";
    case Errc::kUnsupported: return "unsupported";
    case Errc::kShutdown: return "shutdown";
    case Errc::kOutOfRange: return "out of range";
    case Errc::kInternal: return "internal error";
  }
  return "unknown";
}

Error Error::from_errno(std::string what) { return from_errno(std::move(what), errno); }

Error Error::from_errno(std::string what, int err) {
  what += ": ";
  what += std::strerror(err);
  return Error{Errc::kSystem, std::move(what), err};
}

std::string Error::to_string() const {
  std::string s(errc_name(code));
  if (!message.empty()) {
    s += ": ";
    s += message;
  }
  return s;
}

}  // namespace ssi
