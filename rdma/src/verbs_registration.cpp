#include "rdma/verbs_registration.hpp"

#include <fmt/format.h>

namespace ssi::rdma {

RegistrationTable::~RegistrationTable() {
  for (auto& [base, e] : regions_) registrar_.deregister(e.reg.handle);
}

Result<MemoryKeys> RegistrationTable::add(std::span<std::byte> region) {
  if (region.empty()) return make_error(Errc::kInvalidArgument, "cannot register an empty region");
  auto base = reinterpret_cast<std::uintptr_t>(region.data());
  auto end = base + region.size();
  if (end < base) return make_error(Errc::kInvalidArgument, "region wraps the address space");
  // The first region starting at or after base, and the one before it.
  auto next = regions_.lower_bound(base);
  if (next != regions_.end() && next->first < end) {
    return make_error(Errc::kInvalidArgument,
                      fmt::format("region {:#x}+{:#x} overlaps the one at {:#x}", base,
                                  region.size(), next->first));
  }
  if (next != regions_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.length > base) {
      return make_error(Errc::kInvalidArgument,
                        fmt::format("region {:#x}+{:#x} overlaps the one at {:#x}", base,
                                    region.size(), prev->first));
    }
  }
  SSI_ASSIGN_OR_RETURN(auto reg, registrar_.register_region(region));
  regions_.emplace(base, Entry{region.size(), reg});
  return reg.keys;
}

Result<void> RegistrationTable::remove(const std::byte* base) {
  auto it = regions_.find(reinterpret_cast<std::uintptr_t>(base));
  if (it == regions_.end()) {
    return make_error(Errc::kNotFound,
                      fmt::format("no registered region starts at {}", fmt::ptr(base)));
  }
  registrar_.deregister(it->second.reg.handle);
  regions_.erase(it);
  return ok();
}

Result<MemoryKeys> RegistrationTable::find(const void* addr, std::size_t len) const {
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  auto it = regions_.upper_bound(a);  // first region starting after addr
  if (it != regions_.begin()) {
    --it;
    std::uintptr_t offset = a - it->first;
    if (offset <= it->second.length && len <= it->second.length - offset) {
      return it->second.reg.keys;
    }
  }
  return make_error(Errc::kNotFound,
                    fmt::format("{:#x}+{:#x} is not inside one registered region", a, len));
}

}  // namespace ssi::rdma
