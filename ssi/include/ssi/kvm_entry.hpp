// EntryState (boot.hpp, plain data) -> the KVM register structs the vCPU
// layer sets. Pure, so the conversion is unit-tested without /dev/kvm.
#pragma once

#include "vcpu/kvm_abi.hpp"

#include "ssi/boot.hpp"

namespace ssi::machine {

kvm_regs to_kvm_regs(const EntryState& st);
// `base` (usually the vCPU's current sregs) supplies the fields EntryState
// does not describe (apic_base, interrupt bitmap, cr2, cr8).
kvm_sregs to_kvm_sregs(const EntryState& st, kvm_sregs base);

}  // namespace ssi::machine
