// Region: one node's copy of guest RAM. One anonymous private mapping
// registered with userfaultfd in MISSING + WP mode, so every access to a page
// this node does not hold (or holds read-only) stops in the kernel and is
// reported to the DSM as a FaultEvent. The thin wrappers below are the only
// place that issues uffd ioctls; the protocol logic lives elsewhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/ids.hpp"
#include "base/result.hpp"

namespace ssi::dsm {

struct FaultEvent {
  PageNo page;
  bool write = false;  // the access was a write
  bool wp = false;     // write-protect fault (page present, read-only) vs missing
  std::uint32_t tid = 0;  // the faulting thread (UFFD_FEATURE_THREAD_ID)
};

// What an install ioctl found. kAlreadyPresent is EEXIST: someone mapped the
// page first; the caller decides whether that is a race or a bug.
enum class Install { kInstalled, kAlreadyPresent };

class Region {
 public:
  // `bytes` is rounded up to whole pages.
  static Result<Region> create(std::size_t bytes);

  Region(Region&& other) noexcept;
  Region& operator=(Region&& other) noexcept;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region();

  std::byte* base() const { return base_; }
  std::size_t size() const { return size_; }
  std::uint64_t pages() const { return size_ / kPageSize; }
  bool contains(PageNo p) const { return p.value() < pages(); }
  std::byte* page_ptr(PageNo p) const { return base_ + p.value() * kPageSize; }
  std::span<const std::byte> page_bytes(PageNo p) const { return {page_ptr(p), kPageSize}; }
  int uffd() const { return uffd_; }

  // UFFDIO_COPY of one page; `wp` maps it write-protected (state S).
  Result<Install> install_copy(PageNo p, std::span<const std::byte> src, bool wp,
                               bool wake = true);
  // UFFDIO_ZEROPAGE: maps the shared zero page (writable on CoW, no uffd-wp
  // bit), so only for pages granted in state M. See region_test.
  Result<Install> install_zero(PageNo p, bool wake = true);
  // UFFDIO_WRITEPROTECT on/off; off also wakes threads blocked on the page.
  Result<void> write_protect(PageNo p, bool on, bool wake = true);
  Result<void> wake(PageNo p);
  // MADV_DONTNEED: the page becomes not-present; the next access faults.
  Result<void> drop(PageNo p);
  // Non-blocking: reads up to out.size() page-fault events; 0 if none ready.
  Result<std::size_t> read_events(std::span<FaultEvent> out);

 private:
  Region(std::byte* base, std::size_t size, int uffd) : base_(base), size_(size), uffd_(uffd) {}
  void release();
  Result<void> check_page(PageNo p, const char* what) const;

  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  int uffd_ = -1;
};

}  // namespace ssi::dsm
