// RAII owners for the kernel objects the shm backend shares between
// processes: a MAP_SHARED memfd mapping and eventfd doorbells.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <utility>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace ssi::rdma {

// A memfd mapped MAP_SHARED: created by one process, sent to the peer with
// SCM_RIGHTS and mapped there too, so both see the same pages.
class SharedMemory {
 public:
  SharedMemory() = default;
  SharedMemory(SharedMemory&& o) noexcept;
  SharedMemory& operator=(SharedMemory&& o) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory();

  // A new zero-filled memfd of `size` bytes, mapped read/write.
  static Result<SharedMemory> create(const std::string& name, std::size_t size);
  // Maps an fd received from a peer; its size must be at least `min_size`.
  static Result<SharedMemory> attach(UniqueFd fd, std::size_t min_size);

  std::span<std::byte> bytes() const { return {base_, size_}; }
  int fd() const { return fd_.get(); }

 private:
  void unmap();
  UniqueFd fd_;
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
};

// A non-blocking, close-on-exec eventfd: the doorbell a sleeping ring
// consumer (or a producer waiting for space) waits on in epoll.
class Doorbell {
 public:
  static Result<Doorbell> create();
  static Doorbell adopt(UniqueFd fd) { return Doorbell(std::move(fd)); }
  Doorbell() = default;

  Result<void> ring() const;
  // Consumes pending rings; returns whether there were any.
  bool drain() const;
  // Blocks the calling thread until rung or `timeout_ms` (-1 = forever).
  Result<bool> wait(int timeout_ms) const;
  int fd() const { return fd_.get(); }

 private:
  explicit Doorbell(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace ssi::rdma
