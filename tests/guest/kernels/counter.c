/* Every vCPU adds 1 to a shared counter PER_CPU times with lock xadd from
 * ring 3; the total must be exact. */
#include "rt.h"

#define PER_CPU ((uint64_t)100000)

static volatile uint64_t g_counter;
static rt_barrier g_barrier;

static uint64_t add_many(uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) __atomic_fetch_add(&g_counter, 1, __ATOMIC_SEQ_CST);
  return n;
}

int kernel_main(unsigned cpu) {
  unsigned n = rt_cpu_count();
  rt_barrier_wait(&g_barrier, n);
  uint64_t t0 = rt_rdtsc();
  uint64_t done = rt_run_user(cpu, add_many, PER_CPU);
  uint64_t t1 = rt_rdtsc();
  rt_barrier_wait(&g_barrier, n);
  rt_printf("counter: cpu %u added %lu in %lu tsc cycles\n", cpu, done, t1 - t0);
  if (cpu != 0) return 0;
  uint64_t total = rt_load(&g_counter);
  rt_printf("counter: total=%lu expected=%lu\n", total, PER_CPU * n);
  return total == PER_CPU * n ? 0 : 1;
}
