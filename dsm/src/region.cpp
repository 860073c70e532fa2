#include "dsm/region.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <utility>

namespace ssi::dsm {
namespace {

// EAGAIN from a uffd ioctl means the mm layout is changing (fork, mremap):
// retrying is the documented answer. Bounded so a bug cannot spin forever.
constexpr int kMaxEagainRetries = 10000;

Result<int> open_uffd() {
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd >= 0) return fd;
  // Unprivileged processes may only have /dev/userfaultfd.
  int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev < 0) return Error::from_errno("userfaultfd syscall and /dev/userfaultfd");
  fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
  int err = errno;
  ::close(dev);
  if (fd < 0) return Error::from_errno("USERFAULTFD_IOC_NEW", err);
  return fd;
}

Result<void> handshake_and_register(int uffd, void* base, std::size_t size) {
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_THREAD_ID;
  if (ioctl(uffd, UFFDIO_API, &api) < 0) return Error::from_errno("UFFDIO_API");
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<std::uint64_t>(base);
  reg.range.len = size;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP;
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
    return Error::from_errno("UFFDIO_REGISTER MISSING|WP");
  const std::uint64_t need = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE) |
                             (1ull << _UFFDIO_WRITEPROTECT) | (1ull << _UFFDIO_WAKE);
  if ((reg.ioctls & need) != need)
    return make_error(Errc::kUnsupported,
                      fmt::format("uffd range lacks ioctls: have {:#x} need {:#x}", reg.ioctls,
                                  need));
  return ok();
}

template <typename Arg>
int ioctl_retry(int fd, unsigned long req, Arg* arg) {
  for (int i = 0;; ++i) {
    int rc = ioctl(fd, req, arg);
    if (rc == 0 || errno != EAGAIN || i >= kMaxEagainRetries) return rc;
    sched_yield();
  }
}

}  // namespace

Result<Region> Region::create(std::size_t bytes) {
  std::size_t size = (bytes + kPageSize - 1) / kPageSize * kPageSize;
  if (size == 0) return make_error(Errc::kInvalidArgument, "region of 0 bytes");
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) return Error::from_errno(fmt::format("mmap {} bytes", size));
  // Coherence is per 4 KiB page: a THP would make one fault cover 512 pages.
  if (madvise(p, size, MADV_NOHUGEPAGE) < 0) {
    Error e = Error::from_errno("madvise NOHUGEPAGE");
    munmap(p, size);
    return e;
  }
  auto fd = open_uffd();
  if (!fd.ok()) {
    munmap(p, size);
    return std::move(fd).error();
  }
  Region r(static_cast<std::byte*>(p), size, *fd);
  SSI_TRY(handshake_and_register(r.uffd_, p, size));
  return r;
}

Region::Region(Region&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      uffd_(std::exchange(o.uffd_, -1)) {}

Region& Region::operator=(Region&& o) noexcept {
  if (this != &o) {
    release();
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
    uffd_ = std::exchange(o.uffd_, -1);
  }
  return *this;
}

Region::~Region() { release(); }

void Region::release() {
  if (uffd_ >= 0) ::close(uffd_);  // unregisters and wakes any blocked thread
  if (base_) munmap(base_, size_);
  uffd_ = -1;
  base_ = nullptr;
}

Result<void> Region::check_page(PageNo p, const char* what) const {
  if (contains(p)) return ok();
  return make_error(Errc::kOutOfRange,
                    fmt::format("{}: page {} outside region of {} pages", what, p, pages()));
}

Result<Install> Region::install_copy(PageNo p, std::span<const std::byte> src, bool wp,
                                     bool wake) {
  SSI_TRY(check_page(p, "UFFDIO_COPY"));
  if (src.size() != kPageSize)
    return make_error(Errc::kInvalidArgument, fmt::format("copy of {} bytes", src.size()));
  uffdio_copy c{};
  c.dst = reinterpret_cast<std::uint64_t>(page_ptr(p));
  c.src = reinterpret_cast<std::uint64_t>(src.data());
  c.len = kPageSize;
  c.mode = (wp ? UFFDIO_COPY_MODE_WP : 0) | (wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE);
  if (ioctl_retry(uffd_, UFFDIO_COPY, &c) < 0) {
    if (errno == EEXIST) return Install::kAlreadyPresent;
    return Error::from_errno(fmt::format("UFFDIO_COPY page {}", p));
  }
  return Install::kInstalled;
}

Result<Install> Region::install_zero(PageNo p, bool wake) {
  SSI_TRY(check_page(p, "UFFDIO_ZEROPAGE"));
  uffdio_zeropage z{};
  z.range.start = reinterpret_cast<std::uint64_t>(page_ptr(p));
  z.range.len = kPageSize;
  z.mode = wake ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE;
  if (ioctl_retry(uffd_, UFFDIO_ZEROPAGE, &z) < 0) {
    if (errno == EEXIST) return Install::kAlreadyPresent;
    return Error::from_errno(fmt::format("UFFDIO_ZEROPAGE page {}", p));
  }
  return Install::kInstalled;
}

Result<void> Region::write_protect(PageNo p, bool on, bool wake) {
  SSI_TRY(check_page(p, "UFFDIO_WRITEPROTECT"));
  uffdio_writeprotect w{};
  w.range.start = reinterpret_cast<std::uint64_t>(page_ptr(p));
  w.range.len = kPageSize;
  w.mode = (on ? UFFDIO_WRITEPROTECT_MODE_WP : 0) |
           (!on && !wake ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0);
  if (ioctl_retry(uffd_, UFFDIO_WRITEPROTECT, &w) < 0)
    return Error::from_errno(fmt::format("UFFDIO_WRITEPROTECT {} page {}", on ? "on" : "off", p));
  return ok();
}

Result<void> Region::wake(PageNo p) {
  SSI_TRY(check_page(p, "UFFDIO_WAKE"));
  uffdio_range r{};
  r.start = reinterpret_cast<std::uint64_t>(page_ptr(p));
  r.len = kPageSize;
  if (ioctl(uffd_, UFFDIO_WAKE, &r) < 0) return Error::from_errno(fmt::format("UFFDIO_WAKE {}", p));
  return ok();
}

Result<void> Region::drop(PageNo p) {
  SSI_TRY(check_page(p, "MADV_DONTNEED"));
  if (madvise(page_ptr(p), kPageSize, MADV_DONTNEED) < 0)
    return Error::from_errno(fmt::format("MADV_DONTNEED page {}", p));
  return ok();
}

Result<std::size_t> Region::read_events(std::span<FaultEvent> out) {
  constexpr std::size_t kBatch = 32;
  uffd_msg msgs[kBatch];
  std::size_t want = std::min(out.size(), kBatch);
  ssize_t n = ::read(uffd_, msgs, want * sizeof(uffd_msg));
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return std::size_t{0};
    return Error::from_errno("read userfaultfd");
  }
  std::size_t count = 0;
  auto base = reinterpret_cast<std::uint64_t>(base_);
  for (std::size_t i = 0; i < static_cast<std::size_t>(n) / sizeof(uffd_msg); ++i) {
    if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;  // no other events are enabled
    const auto& pf = msgs[i].arg.pagefault;
    out[count++] = FaultEvent{PageNo{(pf.address - base) / kPageSize},
                              (pf.flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0,
                              (pf.flags & UFFD_PAGEFAULT_FLAG_WP) != 0, pf.feat.ptid};
  }
  return count;
}

}  // namespace ssi::dsm
