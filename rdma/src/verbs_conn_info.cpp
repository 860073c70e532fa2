#include "rdma/verbs_conn_info.hpp"

#include <fmt/format.h>

#include <vector>

namespace ssi::rdma {

namespace {

constexpr std::string_view kPrefix = "verbs:";
constexpr std::string_view kVersion = "1";

struct Field {
  const char* name;
  std::size_t width;  // hex digits
};
constexpr Field kFields[] = {{"lid", 4},  {"qpn", 6},  {"psn", 6},   {"gid", 32},
                             {"mtu", 4},  {"rkey", 8}, {"addr", 16}, {"length", 16}};

Result<std::uint64_t> parse_hex(std::string_view s, const Field& f) {
  if (s.size() != f.width) {
    return make_error(Errc::kInvalidArgument,
                      fmt::format("verbs address field {} has {} digits, expected {}", f.name,
                                  s.size(), f.width));
  }
  std::uint64_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) {
      return make_error(Errc::kInvalidArgument,
                        fmt::format("verbs address field {} is not hex: '{}'", f.name, s));
    }
    v = v << 4 | static_cast<std::uint64_t>(d);
  }
  return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    auto pos = s.find(sep);
    out.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos) return out;
    s.remove_prefix(pos + 1);
  }
}

bool valid_mtu(std::uint64_t m) {
  return m == 256 || m == 512 || m == 1024 || m == 2048 || m == 4096;
}

}  // namespace

std::string VerbsConnInfo::encode() const {
  std::string gid_hex;
  for (auto b : gid) gid_hex += fmt::format("{:02x}", b);
  return fmt::format("{}{}-{:04x}-{:06x}-{:06x}-{}-{:04x}-{:08x}-{:016x}-{:016x}", kPrefix,
                     kVersion, lid, qpn & 0xffffff, psn & 0xffffff, gid_hex, mtu, rkey, addr,
                     length);
}

Result<VerbsConnInfo> VerbsConnInfo::decode(std::string_view text) {
  if (!text.starts_with(kPrefix)) {
    return make_error(Errc::kInvalidArgument,
                      fmt::format("not a verbs address (no '{}' prefix): '{}'", kPrefix, text));
  }
  auto parts = split(text.substr(kPrefix.size()), '-');
  if (parts.front() != kVersion) {
    return make_error(Errc::kVersionMismatch,
                      fmt::format("verbs address version '{}', we speak {}", parts.front(),
                                  kVersion));
  }
  constexpr std::size_t kCount = std::size(kFields);
  if (parts.size() != kCount + 1) {
    return make_error(Errc::kInvalidArgument,
                      fmt::format("verbs address has {} fields, expected {}", parts.size() - 1,
                                  kCount));
  }
  VerbsConnInfo info;
  std::uint64_t v[kCount] = {};
  for (std::size_t i = 0; i < kCount; ++i) {
    if (i == 3) {  // the GID: 16 bytes, parsed two digits at a time
      if (parts[i + 1].size() != kFields[i].width) {
        return make_error(Errc::kInvalidArgument, "verbs address gid must have 32 hex digits");
      }
      for (std::size_t b = 0; b < 16; ++b) {
        SSI_ASSIGN_OR_RETURN(auto byte,
                             parse_hex(parts[i + 1].substr(2 * b, 2), Field{"gid", 2}));
        info.gid[b] = static_cast<std::uint8_t>(byte);
      }
      continue;
    }
    SSI_ASSIGN_OR_RETURN(v[i], parse_hex(parts[i + 1], kFields[i]));
  }
  if (!valid_mtu(v[4])) {
    return make_error(Errc::kInvalidArgument, fmt::format("verbs address mtu {} invalid", v[4]));
  }
  info.lid = static_cast<std::uint16_t>(v[0]);
  info.qpn = static_cast<std::uint32_t>(v[1]);
  info.psn = static_cast<std::uint32_t>(v[2]);
  info.mtu = static_cast<std::uint16_t>(v[4]);
  info.rkey = static_cast<std::uint32_t>(v[5]);
  info.addr = v[6];
  info.length = v[7];
  return info;
}

}  // namespace ssi::rdma
