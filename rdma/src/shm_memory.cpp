#include "rdma/shm_memory.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace ssi::rdma {

SharedMemory::SharedMemory(SharedMemory&& o) noexcept
    : fd_(std::move(o.fd_)),
      base_(std::exchange(o.base_, nullptr)),
      size_(std::exchange(o.size_, 0)) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& o) noexcept {
  if (this != &o) {
    unmap();
    fd_ = std::move(o.fd_);
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

SharedMemory::~SharedMemory() { unmap(); }

void SharedMemory::unmap() {
  if (base_ != nullptr) ::munmap(base_, size_);
  base_ = nullptr;
  size_ = 0;
}

namespace {
Result<std::byte*> map_shared(int fd, std::size_t size) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return Error::from_errno("mmap shared ring memory");
  return static_cast<std::byte*>(p);
}
}  // namespace

Result<SharedMemory> SharedMemory::create(const std::string& name, std::size_t size) {
  UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC));
  if (!fd) return Error::from_errno("memfd_create " + name);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return Error::from_errno("ftruncate memfd " + name);
  }
  SharedMemory m;
  SSI_ASSIGN_OR_RETURN(m.base_, map_shared(fd.get(), size));
  m.size_ = size;
  m.fd_ = std::move(fd);
  return m;
}

Result<SharedMemory> SharedMemory::attach(UniqueFd fd, std::size_t min_size) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno("fstat received memfd");
  auto size = static_cast<std::size_t>(st.st_size);
  if (size < min_size) {
    return make_error(Errc::kProtocol, "received memfd is " + std::to_string(size) +
                                           " bytes, expected at least " +
                                           std::to_string(min_size));
  }
  SharedMemory m;
  SSI_ASSIGN_OR_RETURN(m.base_, map_shared(fd.get(), size));
  m.size_ = size;
  m.fd_ = std::move(fd);
  return m;
}

Result<Doorbell> Doorbell::create() {
  UniqueFd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!fd) return Error::from_errno("eventfd for shm doorbell");
  return Doorbell(std::move(fd));
}

Result<void> Doorbell::ring() const {
  std::uint64_t one = 1;
  // EAGAIN means the counter is saturated: the peer has a wake-up pending.
  if (::write(fd_.get(), &one, sizeof one) != sizeof one && errno != EAGAIN) {
    return Error::from_errno("write shm doorbell eventfd");
  }
  return ok();
}

bool Doorbell::drain() const {
  std::uint64_t n = 0;
  return ::read(fd_.get(), &n, sizeof n) == sizeof n && n > 0;
}

Result<bool> Doorbell::wait(int timeout_ms) const {
  pollfd p{fd_.get(), POLLIN, 0};
  int r = ::poll(&p, 1, timeout_ms);
  if (r < 0) {
    if (errno == EINTR) return false;
    return Error::from_errno("poll shm doorbell");
  }
  return r > 0 && drain();
}

}  // namespace ssi::rdma
