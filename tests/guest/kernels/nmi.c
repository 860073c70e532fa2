/* NMIs between vCPUs (across nodes when the last cpu sits on another node):
 * cpu 0 sends NMIs to the last cpu, first one at a time (each waits for
 * the handler: round trips), then a burst of BURST without waiting. A CPU
 * latches at most one NMI while another is in service, so a burst may
 * deliver fewer than it sent; what must hold is that the burst ends
 * promptly, at least one of it arrives, and the target still answers one
 * NMI at a time afterwards. */
#include "rt.h"

#define ROUND_TRIPS 200
#define BURST 20000

/* The counter and the done flag have a page of their own: what the target
 * writes must not share a page with what the sender reads during the burst
 * (the runtime's globals), or every delivered NMI would also move a page
 * between nodes, and the burst would measure the DSM, not NMI delivery. */
static struct {
  volatile uint64_t nmis;
  volatile uint64_t done;
} g_shared __attribute__((aligned(4096)));
#define g_nmis g_shared.nmis
#define g_done g_shared.done
static rt_barrier g_barrier;

static void on_nmi(unsigned vector) {
  (void)vector;
  rt_fetch_add(&g_nmis, 1);
}

/* One NMI to `cpu`, answered: 1 on success. */
static int round_trip(unsigned cpu) {
  uint64_t before = rt_load(&g_nmis);
  rt_send_nmi(cpu);
  return rt_wait_at_least_for(&g_nmis, before + 1, RT_WAIT_CYCLES);
}

int kernel_main(unsigned cpu) {
  unsigned n = rt_cpu_count();
  if (n == 1) {
    rt_printf("nmi: skipped (needs 2 cpus)\n");
    return 0;
  }
  unsigned target = n - 1;
  if (cpu == 0) rt_set_irq_handler(2, on_nmi);
  rt_barrier_wait(&g_barrier, n);
  if (cpu != 0) {
    /* The target (and any other cpu) idles in HLT, as an idle OS CPU does
     * (a spinning vCPU would hold one of the host's CPUs the whole test);
     * an NMI wakes it whatever IF says, and cpu 0 sends one more after
     * setting g_done. Bounded by the TSC like rt_wait_at_least_for. */
    uint64_t start = rt_rdtsc();
    while (!rt_load(&g_done) && rt_rdtsc() - start < 2 * RT_WAIT_CYCLES) rt_wait_for_interrupt();
    return rt_load(&g_done) ? 0 : 1;
  }
  const struct ssi_boot_info* info = rt_boot_info();
  rt_printf("nmi: cpu 0 on node %u -> cpu %u on node %u\n", info->cpu_node[0], target,
            info->cpu_node[target]);
  uint64_t t0 = rt_rdtsc();
  for (unsigned r = 0; r < ROUND_TRIPS; ++r)
    if (!round_trip(target)) {
      rt_printf("nmi: no answer to NMI %u\n", r);
      return RT_EXIT_TIMEOUT;
    }
  uint64_t t1 = rt_rdtsc();
  uint64_t before = rt_load(&g_nmis);
  for (unsigned i = 0; i < BURST; ++i) rt_send_nmi(target);
  uint64_t t2 = rt_rdtsc();
  /* Let the burst drain: the count must stop moving within the bound. */
  uint64_t last = rt_load(&g_nmis), stable_since = rt_rdtsc();
  for (uint64_t t = stable_since; t - stable_since < 200000000ull && t - t2 < RT_WAIT_CYCLES;
       t = rt_rdtsc()) {
    uint64_t now = rt_load(&g_nmis);
    if (now != last) {
      last = now;
      stable_since = t;
    }
    rt_pause();
  }
  uint64_t delivered = last - before;
  int alive = round_trip(target) && round_trip(target);
  rt_store(&g_done, 1);
  for (unsigned c = 1; c < n; ++c) rt_send_nmi(c); /* wake the halted cpus */
  rt_printf("nmi: %u round trips, %lu tsc cycles each\n", ROUND_TRIPS, (t1 - t0) / ROUND_TRIPS);
  rt_printf("nmi: burst of %u sent in %lu tsc cycles, %lu delivered, target %s\n", BURST, t2 - t1,
            delivered, alive ? "answers after it" : "DOES NOT ANSWER after it");
  return delivered >= 1 && delivered <= BURST && alive ? 0 : 1;
}
