// CpuState <-> bytes. Layout (little endian, x86-64 nodes only):
//   "SSICPUST" | u32 version | u32 total length | sections... | u64 FNV-1a
//   section = u32 tag | u32 length | bytes
// Kernel structs are copied as they are: every node runs the same ABI.
#include "vcpu/cpu_state.hpp"

#include <cstring>
#include <type_traits>

#include <fmt/format.h>

namespace ssi::vcpu {
namespace {

constexpr char kMagic[8] = {'S', 'S', 'I', 'C', 'P', 'U', 'S', 'T'};
constexpr std::size_t kHeader = sizeof(kMagic) + 4 + 4;
constexpr std::size_t kTrailer = 8;

enum Tag : std::uint32_t {
  kRegs = 1, kSregs, kFpu, kXsave, kXcrs, kEvents, kMpState, kDebugregs, kMsrs, kCpuid, kLapic,
  kTagCount
};

std::uint64_t fnv1a(std::span<const std::uint8_t> b) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (auto c : b) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

class Writer {
 public:
  std::vector<std::uint8_t> out;
  void raw(const void* p, std::size_t n) {
    auto* b = static_cast<const std::uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
  template <typename T>
  void pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    raw(&v, sizeof(T));
  }
  template <typename T>
  void section(Tag tag, const T* items, std::size_t count) {
    pod(static_cast<std::uint32_t>(tag));
    pod(static_cast<std::uint32_t>(sizeof(T) * count));
    raw(items, sizeof(T) * count);
  }
};

void put_lapic(Writer& w, const LapicState& l) {
  w.pod(static_cast<std::uint32_t>(kLapic));
  w.pod(static_cast<std::uint32_t>(sizeof(l.regs) + 8 + 8 + 8 + 4 + 5));
  w.pod(l.regs);
  w.pod(l.apic_base);
  w.pod(l.tsc_deadline);
  w.pod(l.timer_remaining_ns);
  w.pod(l.apic_id);
  for (std::uint8_t b : {std::uint8_t(l.nmi_pending), std::uint8_t(l.wait_for_sipi),
                         std::uint8_t(l.init_pending), std::uint8_t(l.sipi_pending), l.sipi_vector})
    w.pod(b);
}

Error corrupt(const std::string& what) {
  return make_error(Errc::kProtocol, "CPU state: " + what);
}

template <typename T>
Result<void> get_one(std::span<const std::uint8_t> body, T& out, const char* name) {
  if (body.size() != sizeof(T))
    return corrupt(fmt::format("section {} is {} bytes, expected {}", name, body.size(), sizeof(T)));
  std::memcpy(&out, body.data(), sizeof(T));
  return ok();
}

template <typename T>
Result<void> get_many(std::span<const std::uint8_t> body, std::vector<T>& out, const char* name) {
  if (body.size() % sizeof(T) != 0)
    return corrupt(fmt::format("section {} is {} bytes, not a multiple of {}", name, body.size(),
                               sizeof(T)));
  out.resize(body.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), body.data(), body.size());
  return ok();
}

Result<void> get_lapic(std::span<const std::uint8_t> body, LapicState& l) {
  constexpr std::size_t n = sizeof(l.regs) + 8 + 8 + 8 + 4 + 5;
  if (body.size() != n)
    return corrupt(fmt::format("section lapic is {} bytes, expected {}", body.size(), n));
  const std::uint8_t* p = body.data();
  auto take = [&p](auto& v) {
    std::memcpy(&v, p, sizeof(v));
    p += sizeof(v);
  };
  take(l.regs);
  take(l.apic_base);
  take(l.tsc_deadline);
  take(l.timer_remaining_ns);
  take(l.apic_id);
  l.nmi_pending = *p++ != 0;
  l.wait_for_sipi = *p++ != 0;
  l.init_pending = *p++ != 0;
  l.sipi_pending = *p++ != 0;
  l.sipi_vector = *p++;
  return ok();
}

}  // namespace

std::vector<std::uint8_t> serialize(const CpuState& s) {
  Writer w;
  w.raw(kMagic, sizeof(kMagic));
  w.pod(kCpuStateVersion);
  w.pod(std::uint32_t{0});  // total length, patched below
  w.section(kRegs, &s.regs, 1);
  w.section(kSregs, &s.sregs, 1);
  w.section(kFpu, &s.fpu, 1);
  w.section(kXsave, &s.xsave, 1);
  w.section(kXcrs, &s.xcrs, 1);
  w.section(kEvents, &s.events, 1);
  w.section(kMpState, &s.mp_state, 1);
  w.section(kDebugregs, &s.debugregs, 1);
  w.section(kMsrs, s.msrs.data(), s.msrs.size());
  w.section(kCpuid, s.cpuid.data(), s.cpuid.size());
  put_lapic(w, s.lapic);
  auto total = static_cast<std::uint32_t>(w.out.size() + kTrailer);
  std::memcpy(w.out.data() + sizeof(kMagic) + 4, &total, 4);
  w.pod(fnv1a(w.out));
  return std::move(w.out);
}

Result<CpuState> deserialize(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < kHeader + kTrailer)
    return corrupt(fmt::format("{} bytes is too short for a header", bytes.size()));
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) return corrupt("bad magic");
  std::uint32_t version, total;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&total, bytes.data() + 12, 4);
  if (version != kCpuStateVersion)
    return Error{Errc::kVersionMismatch,
                 fmt::format("CPU state: version {} (this build reads {})", version,
                             kCpuStateVersion),
                 0};
  if (total != bytes.size())
    return corrupt(fmt::format("length field says {} bytes, got {} (truncated?)", total,
                               bytes.size()));
  std::uint64_t sum;
  std::memcpy(&sum, bytes.data() + bytes.size() - kTrailer, 8);
  if (sum != fnv1a(bytes.first(bytes.size() - kTrailer))) return corrupt("checksum mismatch");

  CpuState s;
  bool seen[kTagCount] = {};
  std::size_t pos = kHeader, end = bytes.size() - kTrailer;
  while (pos < end) {
    if (end - pos < 8) return corrupt("truncated section header");
    std::uint32_t tag, len;
    std::memcpy(&tag, bytes.data() + pos, 4);
    std::memcpy(&len, bytes.data() + pos + 4, 4);
    pos += 8;
    if (len > end - pos) return corrupt(fmt::format("section {} overruns the buffer", tag));
    auto body = bytes.subspan(pos, len);
    pos += len;
    if (tag == 0 || tag >= kTagCount) return corrupt(fmt::format("unknown section {}", tag));
    if (seen[tag]) return corrupt(fmt::format("duplicate section {}", tag));
    seen[tag] = true;
    switch (tag) {
      case kRegs: SSI_TRY(get_one(body, s.regs, "regs")); break;
      case kSregs: SSI_TRY(get_one(body, s.sregs, "sregs")); break;
      case kFpu: SSI_TRY(get_one(body, s.fpu, "fpu")); break;
      case kXsave: SSI_TRY(get_one(body, s.xsave, "xsave")); break;
      case kXcrs: SSI_TRY(get_one(body, s.xcrs, "xcrs")); break;
      case kEvents: SSI_TRY(get_one(body, s.events, "events")); break;
      case kMpState: SSI_TRY(get_one(body, s.mp_state, "mp_state")); break;
      case kDebugregs: SSI_TRY(get_one(body, s.debugregs, "debugregs")); break;
      case kMsrs: SSI_TRY(get_many(body, s.msrs, "msrs")); break;
      case kCpuid: SSI_TRY(get_many(body, s.cpuid, "cpuid")); break;
      case kLapic: SSI_TRY(get_lapic(body, s.lapic)); break;
    }
  }
  for (std::uint32_t t = 1; t < kTagCount; ++t)
    if (!seen[t]) return corrupt(fmt::format("section {} missing", t));
  return s;
}

bool operator==(const CpuState& a, const CpuState& b) {
  return serialize(a) == serialize(b);
}

const std::vector<std::uint32_t>& saved_msr_indices() {
  static const std::vector<std::uint32_t> indices = {
      0x10,        // TSC
      0x174, 0x175, 0x176,  // SYSENTER_CS/ESP/EIP
      0x1A0,       // MISC_ENABLE
      0x277,       // PAT
      0xC0000081, 0xC0000082, 0xC0000083, 0xC0000084,  // STAR, LSTAR, CSTAR, SFMASK
      0xC0000102,  // KERNEL_GS_BASE (FS/GS base live in sregs)
      0xC0000103,  // TSC_AUX
  };
  return indices;
}

Result<void> complete_pending_io(Vcpu& v) {
  v.kick();  // sets the pending flag: the next run() uses immediate_exit
  SSI_ASSIGN_OR_RETURN(VcpuExit e, v.run());
  if (e.kind != ExitKind::kInterrupted)
    return make_error(Errc::kInternal,
                      "completing pending I/O: KVM_RUN with immediate_exit gave " + describe(e));
  return ok();
}

Result<CpuState> save_cpu_state(Vcpu& v, const Lapic& lapic) {
  SSI_TRY(complete_pending_io(v));
  CpuState s;
  SSI_ASSIGN_OR_RETURN(s.regs, v.get_regs());
  SSI_ASSIGN_OR_RETURN(s.sregs, v.get_sregs());
  SSI_ASSIGN_OR_RETURN(s.fpu, v.get_fpu());
  SSI_ASSIGN_OR_RETURN(s.xsave, v.get_xsave());
  SSI_ASSIGN_OR_RETURN(s.xcrs, v.get_xcrs());
  SSI_ASSIGN_OR_RETURN(s.events, v.get_events());
  SSI_ASSIGN_OR_RETURN(s.mp_state, v.get_mp_state());
  SSI_ASSIGN_OR_RETURN(s.debugregs, v.get_debugregs());
  SSI_ASSIGN_OR_RETURN(s.msrs, v.get_msrs(saved_msr_indices()));
  SSI_ASSIGN_OR_RETURN(s.cpuid, v.get_cpuid());
  s.lapic = lapic.save();
  return s;
}

Result<void> restore_cpu_state(Vcpu& v, Lapic& lapic, const CpuState& s) {
  // CPUID first: KVM checks XSAVE/XCR0 and MSRs against it.
  if (!s.cpuid.empty()) SSI_TRY(v.set_cpuid(s.cpuid));  // empty: keep the vCPU's (mobility)
  SSI_TRY(v.set_sregs(s.sregs));
  SSI_TRY(v.set_regs(s.regs));
  SSI_TRY(v.set_fpu(s.fpu));
  SSI_TRY(v.set_xsave(s.xsave));
  SSI_TRY(v.set_xcrs(s.xcrs));
  SSI_TRY(v.set_msrs(s.msrs));
  SSI_TRY(v.set_events(s.events));  // after regs: carries a queued KVM_INTERRUPT
  kvm_mp_state runnable{};
  runnable.mp_state = KVM_MP_STATE_RUNNABLE;
  SSI_TRY(v.set_mp_state(runnable));
  SSI_TRY(v.set_debugregs(s.debugregs));
  lapic.restore(s.lapic);
  return ok();
}

}  // namespace ssi::vcpu
