// Strong types for ids and addresses: a PageNo is not a NodeId.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

#include <fmt/format.h>

namespace ssi {

template <typename Tag, typename Rep>
class StrongId {
 public:
  using rep = Rep;
  constexpr StrongId() = default;
  constexpr explicit StrongId(Rep v) : v_(v) {}
  constexpr Rep value() const { return v_; }
  constexpr auto operator<=>(const StrongId&) const = default;

 private:
  Rep v_{};
};

using NodeId = StrongId<struct NodeIdTag, std::uint32_t>;
using VcpuId = StrongId<struct VcpuIdTag, std::uint32_t>;
using PageNo = StrongId<struct PageNoTag, std::uint64_t>;
using Gpa = StrongId<struct GpaTag, std::uint64_t>;  // guest-physical address

inline constexpr std::uint64_t kPageSize = 4096;
inline constexpr unsigned kPageShift = 12;

template <typename Tag, typename Rep>
std::ostream& operator<<(std::ostream& os, const StrongId<Tag, Rep>& id) {
  return os << id.value();
}

constexpr PageNo page_of(Gpa a) { return PageNo{a.value() >> kPageShift}; }
constexpr Gpa gpa_of(PageNo p) { return Gpa{p.value() << kPageShift}; }

}  // namespace ssi

template <typename Tag, typename Rep>
struct std::hash<ssi::StrongId<Tag, Rep>> {
  std::size_t operator()(const ssi::StrongId<Tag, Rep>& id) const noexcept {
    return std::hash<Rep>{}(id.value());
  }
};

template <typename Tag, typename Rep>
struct fmt::formatter<ssi::StrongId<Tag, Rep>> : fmt::formatter<Rep> {
  auto format(const ssi::StrongId<Tag, Rep>& id, format_context& ctx) const {
    return fmt::formatter<Rep>::format(id.value(), ctx);
  }
};
