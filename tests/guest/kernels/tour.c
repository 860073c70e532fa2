/* The README's first guest: every vCPU says which node it runs on, then all
 * of them update shared memory from ring 3 at once (one shared counter with
 * lock xadd, and each CPU fills its own page with a pattern); the BSP checks
 * the exact count and every other CPU's page: memory is coherent across the
 * nodes. */
#include "rt.h"

#define PER_CPU ((uint64_t)20000)
#define PAGE_WORDS 512

static volatile uint64_t g_counter;
static volatile uint64_t g_pages[RT_MAX_CPUS][PAGE_WORDS] __attribute__((aligned(4096)));
static rt_barrier g_barrier;

static uint64_t pattern(uint64_t cpu, uint64_t i) { return (cpu << 32) ^ (i * 0x9e3779b97f4a7c15ull); }

static uint64_t work(uint64_t cpu) {
  for (uint64_t i = 0; i < PAGE_WORDS; ++i) g_pages[cpu][i] = pattern(cpu, i);
  for (uint64_t i = 0; i < PER_CPU; ++i) __atomic_fetch_add(&g_counter, 1, __ATOMIC_SEQ_CST);
  return 0;
}

int kernel_main(unsigned cpu) {
  const struct ssi_boot_info* info = rt_boot_info();
  unsigned n = rt_cpu_count();
  rt_printf("tour: cpu %u of %u runs on node %u\n", cpu, n, info->cpu_node[cpu]);
  rt_barrier_wait(&g_barrier, n);
  rt_run_user(cpu, work, cpu);
  rt_barrier_wait(&g_barrier, n);
  if (cpu != 0) return 0;
  uint64_t total = rt_load(&g_counter);
  unsigned bad = 0;
  for (unsigned c = 0; c < n; ++c)
    for (unsigned i = 0; i < PAGE_WORDS; ++i) bad += g_pages[c][i] != pattern(c, i);
  rt_printf("tour: counter=%lu expected=%lu, %u cpus' pages read back with %u wrong words\n",
            total, PER_CPU * n, n, bad);
  rt_printf("tour: %s across %u node(s)\n",
            total == PER_CPU * n && bad == 0 ? "memory is coherent" : "COHERENCE FAILURE",
            info->node_count);
  return total == PER_CPU * n && bad == 0 ? 0 : 1;
}
