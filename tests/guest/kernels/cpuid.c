/* Every CPU executes CPUID for the leaves that tell a kernel which
 * instruction families it may use and prints one line per leaf; the host
 * test (tests/guest/cpuid_kvm_test.cpp) compares them with `ssi cpuid`.
 * Line format (parsed there):
 *   cpuid: cpu C apic A leaf 0xLLLLLLLL.S eax=0x.. ebx=0x.. ecx=0x.. edx=0x.. */
#include "rt.h"

static const uint32_t kLeaves[][2] = {
    {0x1, 0}, {0x7, 0}, {0xD, 0}, {0xD, 1}, {0x80000001, 0},
};

static volatile uint64_t g_done;

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

int kernel_main(unsigned cpu) {
  const struct ssi_boot_info* info = rt_boot_info();
  for (unsigned i = 0; i < sizeof kLeaves / sizeof kLeaves[0]; ++i) {
    uint32_t r[4];
    cpuid(kLeaves[i][0], kLeaves[i][1], r);
    rt_printf("cpuid: cpu %u apic %u leaf 0x%08x.%u eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x\n",
              cpu, rt_lapic_id(), kLeaves[i][0], kLeaves[i][1], r[0], r[1], r[2], r[3]);
  }
  rt_fetch_add(&g_done, 1);
  if (cpu != 0) return 0;
  if (!rt_wait_at_least_for(&g_done, info->cpu_count, RT_WAIT_CYCLES)) return RT_EXIT_TIMEOUT;
  rt_printf("cpuid: all %u cpus dumped\n", info->cpu_count);
  return 0;
}
