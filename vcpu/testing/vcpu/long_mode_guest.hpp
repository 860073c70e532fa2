// A tiny 64-bit guest for real-KVM tests: 1 MiB of RAM at 0, identity page
// tables over 4 GiB (so the LAPIC page 0xFEE00000 is reachable), a GDT with
// flat code (8) and data (16) segments, an empty IDT at 0x2000 (set_gate
// fills it), stack below 0x9000, `code` at 0x1000. CR8 needs 64-bit mode.
#pragma once

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <memory>
#include <vector>

#include "vcpu/kvm.hpp"

namespace ssi::vcpu::testing {

class LongModeGuest {
 public:
  static constexpr std::size_t kMem = 1 << 20;
  static constexpr std::uint64_t kCode = 0x1000, kPml4 = 0x10000, kGdt = 0x800, kIdt = 0x2000;

  LongModeGuest() {
    mem_ = static_cast<std::uint8_t*>(
        ::mmap(nullptr, kMem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  }
  ~LongModeGuest() {
    vcpu_.reset();
    vm_.reset();
    if (mem_ != MAP_FAILED) ::munmap(mem_, kMem);
  }

  // Builds the VM and one vCPU at `code`; ADD_FAILURE on any error.
  Vcpu* boot(Hypervisor& hv, const std::vector<std::uint8_t>& code) {
    if (mem_ == MAP_FAILED) return fail("mmap");
    std::memcpy(mem_ + kCode, code.data(), code.size());
    write_page_tables();
    put(kGdt + 8, 0x00af9a000000ffffull);   // 64-bit code, DPL 0
    put(kGdt + 16, 0x00cf92000000ffffull);  // data
    auto vm = hv.create_vm({});
    if (!vm.ok()) return fail(vm.error().to_string());
    vm_ = std::move(*vm);
    if (!vm_->add_memory({0, Gpa{0}, kMem, mem_, false}).ok()) return fail("add_memory");
    auto v = vm_->create_vcpu(VcpuId{0});
    if (!v.ok()) return fail(v.error().to_string());
    vcpu_ = std::move(*v);
    auto cpuid = hv.supported_cpuid();
    if (!cpuid.ok() || !vcpu_->set_cpuid(set_cpuid_apic_id(filter_cpuid(*cpuid, {}), 0)).ok())
      return fail("cpuid");
    auto s = vcpu_->get_sregs();
    if (!s.ok()) return fail("get_sregs");
    kvm_segment code_seg{};
    code_seg.limit = 0xFFFFFFFF;
    code_seg.selector = 8;
    code_seg.type = 11;
    code_seg.present = code_seg.s = code_seg.l = code_seg.g = 1;
    kvm_segment data_seg = code_seg;
    data_seg.selector = 16;
    data_seg.type = 3;
    data_seg.l = 0;
    data_seg.db = 1;
    s->cs = code_seg;
    s->ds = s->es = s->fs = s->gs = s->ss = data_seg;
    s->cr0 = 0x80000031;  // PG NE ET PE
    s->cr3 = kPml4;
    s->cr4 = 0x20;        // PAE
    s->efer = 0x500;      // LME LMA
    s->gdt.base = kGdt;
    s->gdt.limit = 23;
    s->idt.base = kIdt;
    s->idt.limit = 0xFFF;
    if (!vcpu_->set_sregs(*s).ok()) return fail("set_sregs");
    kvm_regs r{};
    r.rip = kCode;
    r.rsp = 0x9000;
    r.rflags = 2;
    if (!vcpu_->set_regs(r).ok()) return fail("set_regs");
    return vcpu_.get();
  }

  std::uint8_t* mem() { return mem_; }
  // A present DPL-0 64-bit interrupt gate: vector -> handler (selector 8).
  void set_gate(std::uint8_t vector, std::uint64_t handler) {
    std::uint64_t lo = (handler & 0xFFFF) | (8ull << 16) | (0x8Eull << 40) |
                       (((handler >> 16) & 0xFFFF) << 48);
    put(kIdt + vector * 16ull, lo);
    put(kIdt + vector * 16ull + 8, handler >> 32);
  }

 private:
  Vcpu* fail(const std::string& what) {
    ADD_FAILURE() << "long-mode guest setup: " << what;
    return nullptr;
  }
  void put(std::uint64_t at, std::uint64_t v) { std::memcpy(mem_ + at, &v, 8); }
  void write_page_tables() {
    put(kPml4, (kPml4 + 0x1000) | 3);
    for (std::uint64_t g = 0; g < 4; ++g) {  // PDPT -> 4 PDs of 2 MiB pages
      std::uint64_t pd = kPml4 + 0x2000 + g * 0x1000;
      put(kPml4 + 0x1000 + g * 8, pd | 3);
      for (std::uint64_t i = 0; i < 512; ++i) put(pd + i * 8, ((g << 30) | (i << 21)) | 0x83);
    }
  }

  std::uint8_t* mem_;
  std::unique_ptr<Vm> vm_;
  std::unique_ptr<Vcpu> vcpu_;
};

}  // namespace ssi::vcpu::testing
