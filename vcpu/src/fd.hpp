// RAII owner of the kvm_run mapping (private to vcpu/); fds use ssi::UniqueFd.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <utility>

#include "base/unique_fd.hpp"

namespace ssi::vcpu::detail {

using Fd = ssi::UniqueFd;

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
