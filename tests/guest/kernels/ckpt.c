/* For checkpoint/restore (tests/checkpoint): like counter, but in ROUNDS
 * rounds with a barrier and a console line after each, so a test can ask for
 * a checkpoint at "ckpt: round 2 " and know most of the work is still to do.
 * The total must be exact after any checkpoint/restore in between. */
#include "rt.h"

#define ROUNDS 40u
#define PER_ROUND ((uint64_t)50000)

static volatile uint64_t g_counter;
static rt_barrier g_barrier;

static uint64_t add_many(uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) __atomic_fetch_add(&g_counter, 1, __ATOMIC_SEQ_CST);
  return n;
}

int kernel_main(unsigned cpu) {
  unsigned n = rt_cpu_count();
  rt_barrier_wait(&g_barrier, n);
  for (unsigned r = 1; r <= ROUNDS; ++r) {
    rt_run_user(cpu, add_many, PER_ROUND);
    rt_barrier_wait(&g_barrier, n);
    if (cpu == 0) rt_printf("ckpt: round %u of %u counter=%lu\n", r, ROUNDS, rt_load(&g_counter));
    rt_barrier_wait(&g_barrier, n);
  }
  if (cpu != 0) return 0;
  uint64_t total = rt_load(&g_counter);
  rt_printf("ckpt: total=%lu expected=%lu\n", total, PER_ROUND * ROUNDS * n);
  return total == PER_ROUND * ROUNDS * n ? 0 : 1;
}
