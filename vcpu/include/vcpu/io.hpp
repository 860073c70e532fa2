// What the run loop calls for guest I/O it does not handle itself (the LAPIC
// is handled inside vcpu/), and how a device asks the whole machine to stop.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "base/ids.hpp"
#include "base/result.hpp"

namespace ssi::vcpu {

// Implemented by the machine (devices, forwarding to node 0). Called on the
// vCPU's thread; may block (the vCPU waits). For reads, fill `data`.
// An error stops this vCPU's run loop with that error.
class IoHandler {
 public:
  virtual ~IoHandler() = default;
  virtual Result<void> pio(VcpuId vcpu, std::uint16_t port, bool is_write,
                           std::span<std::uint8_t> data) = 0;
  // A whole string instruction (rep ins/outs as KVM hands it over, up to a
  // page): data.size() / size elements of `size` bytes, all at `port`, in
  // order. The default makes one pio() per element; a handler that pays
  // per call (forwarding to another node) takes the string at once.
  virtual Result<void> pio_string(VcpuId vcpu, std::uint16_t port, bool is_write,
                                  std::uint8_t size, std::span<std::uint8_t> data) {
    for (std::size_t off = 0; size != 0 && off + size <= data.size(); off += size)
      SSI_TRY(pio(vcpu, port, is_write, data.subspan(off, size)));
    return ok();
  }
  virtual Result<void> mmio(VcpuId vcpu, Gpa gpa, bool is_write,
                            std::span<std::uint8_t> data) = 0;
};

// Machine-wide stop request with an exit code (debug-exit port, fatal vCPU
// error, SIGINT). The first request wins; later ones are ignored. Every run
// loop checks it before each KVM_RUN; listeners (each runner's kick) make
// vCPUs blocked in KVM_RUN or parked in HLT notice at once. Thread-safe.
class ExitRequest {
 public:
  // Returns true if this call was the first request.
  bool request(int exit_code);
  bool requested() const;
  std::optional<int> exit_code() const;
  // Called (on the requesting thread) when the request happens; called at
  // once if it already happened. Listeners must outlive this object's use.
  void add_listener(std::function<void()> listener);

 private:
  mutable std::mutex mu_;
  std::optional<int> code_;
  std::vector<std::function<void()>> listeners_;
};

}  // namespace ssi::vcpu
