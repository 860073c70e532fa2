/* Every vCPU prints its id; the BSP checks that all of them did. */
#include "rt.h"

static volatile uint64_t g_said;

int kernel_main(unsigned cpu) {
  const struct ssi_boot_info* info = rt_boot_info();
  rt_printf("hello from cpu %u of %u (apic %u, node %u)\n", cpu, info->cpu_count, rt_lapic_id(),
            info->cpu_node[cpu]);
  rt_fetch_add(&g_said, 1);
  if (cpu != 0) return 0;
  if (!rt_wait_at_least_for(&g_said, info->cpu_count, RT_WAIT_CYCLES)) return 1;
  rt_printf("hello: all %u cpus said hello, %lu MiB RAM\n", info->cpu_count,
            info->mem_bytes >> 20);
  for (unsigned n = 1; n < info->node_count && n < SSI_MAX_NODES; ++n)
    rt_printf("hello: node %u is home of RAM from %lu MiB\n", n, info->node_ram_start[n] >> 20);
  return 0;
}
