// Per-vCPU DSM requests by home node (docs/mobility.md, placement): each
// vCPU thread records its tid when it starts (also after a move), and the
// DSM's on_request hook (reactor thread, the faulting thread's tid from
// userfaultfd) counts the request against that vCPU and the page's home.
// Reported as "vcpu<K>.dsm_requests_home<N>" by the node that counted them.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "coordinator/types.hpp"

namespace ssi::cluster {

class VcpuFaults {
 public:
  VcpuFaults(std::uint32_t vcpus, std::uint32_t nodes)
      : vcpus_(vcpus), nodes_(nodes), tid_(std::make_unique<std::atomic<std::uint32_t>[]>(vcpus)),
        count_(std::make_unique<std::atomic<std::uint64_t>[]>(std::size_t{vcpus} * nodes)) {}

  // On vCPU `v`'s own thread.
  void on_vcpu_thread(std::uint32_t v) {
    if (v < vcpus_) tid_[v].store(static_cast<std::uint32_t>(::syscall(SYS_gettid)));
  }
  // Any thread: a request of thread `tid` to `home` (not a vCPU: ignored).
  void on_request(NodeId home, std::uint32_t tid) {
    if (tid == 0 || home.value() >= nodes_) return;
    for (std::uint32_t v = 0; v < vcpus_; ++v)
      if (tid_[v].load(std::memory_order_relaxed) == tid) {
        count_[std::size_t{v} * nodes_ + home.value()].fetch_add(1, std::memory_order_relaxed);
        return;
      }
  }
  void append_to(coord::Counters& out) const {
    for (std::uint32_t v = 0; v < vcpus_; ++v)
      for (std::uint32_t n = 0; n < nodes_; ++n)
        if (auto c = count_[std::size_t{v} * nodes_ + n].load(); c != 0)
          out.emplace_back("vcpu" + std::to_string(v) + ".dsm_requests_home" + std::to_string(n), c);
  }

 private:
  std::uint32_t vcpus_, nodes_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> tid_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> count_;
};

}  // namespace ssi::cluster
