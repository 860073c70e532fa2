// Test helper: zeroed guest-RAM backing that is allocated lazily (mmap with
// MAP_NORESERVE), so tests can describe GiBs of RAM and touch only what the
// loaders write.
#pragma once

#include <sys/mman.h>

#include <cstdint>
#include <span>

namespace ssi::testing {

class LazyRam {
 public:
  explicit LazyRam(std::size_t size)
      : size_(size),
        p_(::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)) {}
  ~LazyRam() {
    if (p_ != MAP_FAILED) ::munmap(p_, size_);
  }
  LazyRam(const LazyRam&) = delete;
  LazyRam& operator=(const LazyRam&) = delete;
  // Empty if the mapping failed (tests assert on the size).
  std::span<std::uint8_t> span() {
    if (p_ == MAP_FAILED) return {};
    return {static_cast<std::uint8_t*>(p_), size_};
  }

 private:
  std::size_t size_;
  void* p_;
};

}  // namespace ssi::testing
