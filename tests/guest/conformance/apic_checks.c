/* APIC_BASE state machine, CPUID/APIC agreement, x2APIC MSRs outside x2APIC
 * mode, and MSRs that exist only when CPUID says so (SDM 10.4.4, 10.12.5). */
#include "conform.h"

#define BASE_BSP (1u << 8)
#define BASE_EXTD (1u << 10)
#define BASE_EN (1u << 11)

static int cpuid_apic_flag(void) {
  uint32_t r[4];
  cpuid(1, 0, r);
  return (r[3] >> 9) & 1;
}

void check_apic_base(void) {
  uint64_t base = 0;
  uint32_t r[4];
  int gp = rdmsr_safe(0x1b, &base);
  EXPECT("apic_base_bsp_reset_value", !gp && base == 0xFEE00900u, base);

  cpuid(1, 0, r);
  uint32_t id = lapic_read(0x20) >> 24;
  EXPECT("cpuid1_apic_id_is_lapic_id", (r[1] >> 24) == id, r[1]);
  EXPECT("cpuid1_apic_flag_set", (r[3] >> 9) & 1, r[3]);
  cpuid(0, 0, r);
  if (r[0] >= 0xB) {
    cpuid(0xB, 0, r);
    EXPECT("cpuid_b_x2apic_id_is_lapic_id", r[3] == id, r[3]);
  } else {
    skip("cpuid_b_x2apic_id_is_lapic_id", "no leaf 0xb");
  }

  lapic_write(0x80, 0x25);
  EXPECT("tpr_mmio_reads_back", lapic_read(0x80) == 0x25, lapic_read(0x80));

  gp = wrmsr_safe(0x1b, 0xFEE00000u | BASE_BSP);
  EXPECT("apic_global_disable_accepted", !gp, gp);
  EXPECT("cpuid1_apic_flag_follows_disable", !cpuid_apic_flag(), 0);
  EXPECT("disabled_apic_tpr_reads_back", lapic_read(0x80) == 0x25, lapic_read(0x80));
  EXPECT("disabled_to_x2apic_gp", wrmsr_safe(0x1b, 0xFEE00000u | BASE_BSP | BASE_EN | BASE_EXTD),
         0);
  EXPECT("extd_without_en_gp", wrmsr_safe(0x1b, 0xFEE00000u | BASE_BSP | BASE_EXTD), 0);
  gp = wrmsr_safe(0x1b, 0xFEE00000u | BASE_BSP | BASE_EN);
  EXPECT("disabled_to_xapic_accepted", !gp, gp);
  EXPECT("cpuid1_apic_flag_follows_enable", cpuid_apic_flag(), 0);
  EXPECT("apic_base_reserved_bit0_gp", wrmsr_safe(0x1b, 0xFEE00901u), 0);
  EXPECT("apic_base_reserved_bit9_gp", wrmsr_safe(0x1b, 0xFEE00B00u), 0);
  /* Whatever a lenient platform did above, put the APIC back. */
  wrmsr_safe(0x1b, 0xFEE00900u);
  lapic_write(0xF0, 0x1FF);
  lapic_write(0x80, 0);
}

/* Does CPUID advertise the feature that makes `msr` exist? */
static int advertised(uint32_t msr) {
  uint32_t r[4], max, ext = 0, ebx8 = 0, edx7 = 0;
  cpuid(0, 0, r);
  max = r[0];
  if (max >= 7) {
    cpuid(7, 0, r);
    edx7 = r[3];
  }
  cpuid(0x80000000, 0, r);
  ext = r[0];
  if (ext >= 0x80000008) {
    cpuid(0x80000008, 0, r);
    ebx8 = r[1];
  }
  switch (msr) {
    case 0x48:  /* SPEC_CTRL: Intel SPEC_CTRL, or AMD IBRS / STIBP / SSBD */
      return ((edx7 >> 26) & 1) || ((ebx8 >> 14) & 1) || ((ebx8 >> 15) & 1) ||
             ((ebx8 >> 24) & 1);
    case 0x49:  /* PRED_CMD: Intel SPEC_CTRL (IBPB) or AMD IBPB */
      return ((edx7 >> 26) & 1) || ((ebx8 >> 12) & 1);
    case 0x10b: /* FLUSH_CMD: L1D_FLUSH */
      return (edx7 >> 28) & 1;
  }
  return 0;
}

void check_x2apic_and_msrs(void) {
  uint32_t not_gp = 0, first = 0;
  for (uint32_t msr = 0x800; msr <= 0x8ff; ++msr) {
    uint64_t v;
    if (!rdmsr_safe(msr, &v) && not_gp++ == 0) first = msr;
  }
  EXPECT("x2apic_msr_reads_gp_in_xapic_mode", not_gp == 0, first);
  irq_count[0x40] = 0;
  int gp = wrmsr_safe(0x83f, 0x40);  /* SELF_IPI */
  wait_irqs(&irq_count[0x40], 1, 100000);
  EXPECT("x2apic_self_ipi_write_gp_in_xapic_mode", gp && irq_count[0x40] == 0, irq_count[0x40]);
  EXPECT("x2apic_tpr_write_gp_in_xapic_mode", wrmsr_safe(0x808, 0x10), 0);

  uint64_t v;
  EXPECT("spec_ctrl_read_gp_iff_not_in_cpuid", rdmsr_safe(0x48, &v) == !advertised(0x48),
         advertised(0x48));
  EXPECT("spec_ctrl_write_gp_iff_not_in_cpuid", wrmsr_safe(0x48, 0) == !advertised(0x48),
         advertised(0x48));
  EXPECT("pred_cmd_write_gp_iff_not_in_cpuid", wrmsr_safe(0x49, 1) == !advertised(0x49),
         advertised(0x49));
  EXPECT("flush_cmd_write_gp_iff_not_in_cpuid", wrmsr_safe(0x10b, 1) == !advertised(0x10b),
         advertised(0x10b));
}
