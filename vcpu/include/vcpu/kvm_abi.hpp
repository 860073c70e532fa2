// The one place ssi includes <linux/kvm.h>. Every other file includes this.
//
// Debian 12's uapi headers declare the trailing variable-length array of
// kvm_cpuid2, kvm_msrs, kvm_msr_list, kvm_xsave, kvm_irq_routing ... with
// __DECLARE_FLEX_ARRAY, which wraps it in a struct with an empty struct
// member. An empty struct has size 0 in C but 1 in C++, so in g++
// sizeof(kvm_cpuid2) is 12 instead of 8: the entries move by 4 bytes and,
// because _IOWR() encodes the argument's size in the ioctl number,
// KVM_GET_SUPPORTED_CPUID becomes an ioctl the kernel does not know (EINVAL).
// Every `ssi run` failed that way on a host whose /dev/kvm works, while all
// tests against fakes passed. The fix: declare these arrays as GNU
// zero-length arrays, which have C's layout in C++ too. The static_asserts
// below pin the C layout of every variable-length struct ssi passes to KVM,
// so a header that changes again fails the build, not the first ioctl.
#pragma once

#include <linux/stddef.h>  // defines __DECLARE_FLEX_ARRAY (include-guarded)

#undef __DECLARE_FLEX_ARRAY
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]

#include <linux/kvm.h>

#include <cstddef>

namespace ssi::vcpu::abi {

// Sizes and offsets as the kernel (C) sees them; checked by the compiler.
static_assert(sizeof(kvm_cpuid2) == 8 && offsetof(kvm_cpuid2, entries) == 8);
static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msrs) == 8 && offsetof(kvm_msrs, entries) == 8);
static_assert(sizeof(kvm_msr_entry) == 16);
static_assert(sizeof(kvm_msr_list) == 4 && offsetof(kvm_msr_list, indices) == 4);
static_assert(sizeof(kvm_xsave) == 4096 && offsetof(kvm_xsave, extra) == 4096);
static_assert(sizeof(kvm_signal_mask) == 4 && offsetof(kvm_signal_mask, sigset) == 4);
static_assert(sizeof(kvm_irq_routing) == 8 && offsetof(kvm_irq_routing, entries) == 8);
static_assert(sizeof(kvm_msr_filter_range) == 24);
static_assert(sizeof(kvm_run) == 2352);
static_assert(offsetof(kvm_run, exit_reason) == 8 && offsetof(kvm_run, io) == 32);
static_assert(sizeof(kvm_regs) == 144 && sizeof(kvm_sregs) == 312);
static_assert(sizeof(kvm_fpu) == 416 && sizeof(kvm_xcrs) == 392);
static_assert(sizeof(kvm_vcpu_events) == 64 && sizeof(kvm_debugregs) == 128);
static_assert(sizeof(kvm_userspace_memory_region) == 32);
static_assert(sizeof(kvm_enable_cap) == 104);

// The ioctl numbers that carry a size: recomputed from the C sizes above.
static_assert(KVM_GET_SUPPORTED_CPUID == 0xc008ae05);
static_assert(KVM_SET_CPUID2 == 0x4008ae90 && KVM_GET_CPUID2 == 0xc008ae91);
static_assert(KVM_GET_MSRS == 0xc008ae88 && KVM_SET_MSRS == 0x4008ae89);
static_assert(KVM_GET_MSR_INDEX_LIST == 0xc004ae02);
static_assert(KVM_GET_XSAVE == 0x9000aea4 && KVM_SET_XSAVE == 0x5000aea5);
static_assert(KVM_SET_SIGNAL_MASK == 0x4004ae8b);

}  // namespace ssi::vcpu::abi
