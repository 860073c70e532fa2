#include "ssi/kvm_entry.hpp"

namespace ssi::machine {

namespace {

kvm_segment to_kvm(const SegmentReg& s) {
  kvm_segment k{};
  k.base = s.base;
  k.limit = s.limit;
  k.selector = s.selector;
  k.type = s.type;
  k.present = s.present;
  k.dpl = s.dpl;
  k.db = s.db;
  k.s = s.s;
  k.l = s.l;
  k.g = s.g;
  k.avl = s.avl;
  k.unusable = s.unusable ? 1 : 0;
  return k;
}

}  // namespace

kvm_regs to_kvm_regs(const EntryState& st) {
  kvm_regs r{};
  r.rip = st.rip;
  r.rsp = st.rsp;
  r.rflags = st.rflags;
  r.rdi = st.rdi;
  r.rsi = st.rsi;
  r.rax = st.rax;
  r.rbx = st.rbx;
  return r;
}

kvm_sregs to_kvm_sregs(const EntryState& st, kvm_sregs base) {
  base.cs = to_kvm(st.cs);
  base.ds = to_kvm(st.ds);
  base.es = to_kvm(st.es);
  base.fs = to_kvm(st.fs);
  base.gs = to_kvm(st.gs);
  base.ss = to_kvm(st.ss);
  base.tr = to_kvm(st.tr);
  base.ldt = to_kvm(st.ldt);
  base.gdt.base = st.gdt.base;
  base.gdt.limit = st.gdt.limit;
  base.idt.base = st.idt.base;
  base.idt.limit = st.idt.limit;
  base.cr0 = st.cr0;
  base.cr3 = st.cr3;
  base.cr4 = st.cr4;
  base.efer = st.efer;
  return base;
}

}  // namespace ssi::machine
