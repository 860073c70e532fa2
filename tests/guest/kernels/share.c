/* Two vCPUs sharing pages (docs/mobility.md, --placement auto): both add to
 * counters on SHARED_PAGES pages (homed on node 0, with the kernel); cpu 1
 * in ROUNDS rounds of ROUND_OPS, printing its TSC cycles per round, cpu 0
 * until cpu 1 is done. Started
 * on different nodes, every add is a page moving between them; once cpu 1
 * runs beside cpu 0 (moved by the placement policy) a round costs what it
 * does on one node. It also reads the node port each round and prints
 * where it ran. Checks the counters are exact. */
#include "rt.h"

#define NODE_PORT 0x5c0
#define SHARED_PAGES 4
#define ROUND_OPS 50
#define ROUNDS 60

static volatile uint64_t g_shared[SHARED_PAGES][512] __attribute__((aligned(4096)));
static rt_barrier g_barrier;
static volatile uint64_t g_done __attribute__((aligned(4096)));
static volatile uint64_t g_total_ops;

static inline uint32_t node_now(void) {
  uint32_t v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"((uint16_t)NODE_PORT));
  return v;
}

int kernel_main(unsigned cpu) {
  unsigned n = rt_cpu_count();
  rt_barrier_wait(&g_barrier, n);
  /* cpu 1 does ROUNDS timed rounds; cpu 0 keeps writing the same pages
   * until it is done, so every round of cpu 1 competes with it. */
  uint64_t mine = 0;
  for (unsigned r = 0; cpu == 1 ? r < ROUNDS : !rt_load(&g_done); ++r) {
    uint64_t t0 = rt_rdtsc();
    for (unsigned i = 0; i < ROUND_OPS; ++i) rt_fetch_add(&g_shared[i % SHARED_PAGES][cpu], 1);
    mine += ROUND_OPS;
    uint64_t t1 = rt_rdtsc();
    if (cpu == 1) rt_printf("share: round %u cycles=%lu node=%u\n", r, t1 - t0, node_now());
  }
  if (cpu == 1) rt_store(&g_done, 1);
  rt_fetch_add(&g_total_ops, mine);
  rt_barrier_wait(&g_barrier, n);
  if (cpu != 0) return 0;
  uint64_t total = 0;
  for (unsigned p = 0; p < SHARED_PAGES; ++p)
    for (unsigned c = 0; c < n; ++c) total += rt_load(&g_shared[p][c]);
  uint64_t expected = rt_load(&g_total_ops);
  rt_printf("share: total=%lu expected=%lu\n", total, expected);
  return total == expected ? 0 : 1;
}
