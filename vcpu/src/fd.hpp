// RAII owners for the KVM fds and the kvm_run mapping (private to vcpu/).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <utility>

namespace ssi::vcpu::detail {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

class Mapping {
 public:
  Mapping() = default;
  Mapping(void* p, std::size_t len) : p_(p), len_(len) {}
  Mapping(Mapping&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), len_(std::exchange(o.len_, 0)) {}
  Mapping& operator=(Mapping&&) = delete;
  ~Mapping() {
    if (p_) ::munmap(p_, len_);
  }
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
  std::size_t len_ = 0;
};

}  // namespace ssi::vcpu::detail
