// A Vm that hands out FakeVcpus (scripted by a callback as they are created)
// and records the memory slots it was given: lets a machine be assembled and
// run in tests without /dev/kvm.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "vcpu/fake_vcpu.hpp"

namespace ssi::vcpu::testing {

class FakeVm final : public Vm {
 public:
  using Script = std::function<void(FakeVcpu&)>;
  explicit FakeVm(Script script = {}) : script_(std::move(script)) {}

  Result<void> add_memory(const MemorySlot& slot) override {
    std::lock_guard lock(mu_);
    slots_.push_back(slot);
    return ok();
  }
  Result<std::unique_ptr<Vcpu>> create_vcpu(VcpuId id) override {
    auto v = std::make_unique<FakeVcpu>(id);
    if (script_) script_(*v);
    std::lock_guard lock(mu_);
    vcpus_.push_back(v.get());
    return std::unique_ptr<Vcpu>(std::move(v));
  }

  std::vector<MemorySlot> slots() const {
    std::lock_guard lock(mu_);
    return slots_;
  }
  // Owned by whoever created the machine; valid while it lives.
  std::vector<FakeVcpu*> vcpus() const {
    std::lock_guard lock(mu_);
    return vcpus_;
  }

 private:
  Script script_;
  mutable std::mutex mu_;
  std::vector<MemorySlot> slots_;
  std::vector<FakeVcpu*> vcpus_;
};

}  // namespace ssi::vcpu::testing
