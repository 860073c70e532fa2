/* A ring-3 compute loop of 10^8 iterations on cpu 0: proves workloads run
 * natively (the host test compares against the same loop on the host). */
#include "rt.h"
#include "workloads.h"

static uint64_t g_cycles;

static uint64_t compute(uint64_t iterations) {
  uint64_t t0 = rt_rdtsc();
  uint64_t x = ssi_compute_loop(iterations);
  g_cycles = rt_rdtsc() - t0;
  return x;
}

int kernel_main(unsigned cpu) {
  if (cpu != 0) return 0;
  uint64_t x = rt_run_user(cpu, compute, SSI_COMPUTE_ITERATIONS);
  rt_printf("compute: iterations=%lu tsc_cycles=%lu result=%#lx\n", SSI_COMPUTE_ITERATIONS,
            g_cycles, x);
  return 0;
}
