// Which memory the NIC may touch: regions registered with ibv_reg_mr, looked
// up by address when a page goes out (lkey) or is advertised (rkey). The
// ibv calls sit behind MemoryRegistrar so the bookkeeping is testable
// without a device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>

#include "base/result.hpp"

namespace ssi::rdma {

struct MemoryKeys {
  std::uint32_t lkey = 0;
  std::uint32_t rkey = 0;
  bool operator==(const MemoryKeys&) const = default;
};

class MemoryRegistrar {
 public:
  struct Registration {
    MemoryKeys keys;
    std::uintptr_t handle = 0;  // what deregister() needs (an ibv_mr*)
  };
  virtual ~MemoryRegistrar() = default;
  virtual Result<Registration> register_region(std::span<std::byte> region) = 0;
  virtual void deregister(std::uintptr_t handle) = 0;
};

// Owns its registrations: removing a region or destroying the table
// deregisters it. Regions may not overlap.
class RegistrationTable {
 public:
  explicit RegistrationTable(MemoryRegistrar& registrar) : registrar_(registrar) {}
  RegistrationTable(const RegistrationTable&) = delete;
  RegistrationTable& operator=(const RegistrationTable&) = delete;
  ~RegistrationTable();

  Result<MemoryKeys> add(std::span<std::byte> region);
  Result<void> remove(const std::byte* base);
  // The keys of the region holding all of [addr, addr + len); kNotFound if no
  // single region does (a buffer straddling two registrations cannot be one SGE).
  Result<MemoryKeys> find(const void* addr, std::size_t len) const;
  std::size_t size() const { return regions_.size(); }

 private:
  struct Entry {
    std::size_t length;
    MemoryRegistrar::Registration reg;
  };
  MemoryRegistrar& registrar_;
  std::map<std::uintptr_t, Entry> regions_;  // by base address
};

}  // namespace ssi::rdma
