/* IPI ping-pong: cpu 0 sends vector PING to each other cpu in turn, which
 * answers with PONG; with one cpu, self-IPIs. Counts and times round trips. */
#include "rt.h"

#define PING 0x40
#define PONG 0x41
#define ROUNDS 20

static volatile uint64_t g_pongs;
static volatile uint64_t g_pings[RT_MAX_CPUS];
static volatile uint64_t g_done;
static rt_barrier g_barrier;

static void on_ping(unsigned vector) {
  (void)vector;
  unsigned me = rt_lapic_id();
  rt_fetch_add(&g_pings[me], 1);
  rt_send_ipi(0, PONG);
}

static void on_pong(unsigned vector) {
  (void)vector;
  rt_fetch_add(&g_pongs, 1);
}

int kernel_main(unsigned cpu) {
  unsigned n = rt_cpu_count();
  if (cpu == 0) {
    rt_set_irq_handler(PING, on_ping);
    rt_set_irq_handler(PONG, on_pong);
  }
  rt_barrier_wait(&g_barrier, n);
  rt_irq_enable();
  if (cpu != 0) {
    int ok = rt_wait_at_least_for(&g_done, 1, 2 * RT_WAIT_CYCLES);
    rt_irq_disable();
    return ok ? 0 : 1;
  }
  uint64_t expected = 0, t0 = rt_rdtsc();
  for (unsigned r = 0; r < ROUNDS; ++r) {
    for (unsigned t = (n == 1 ? 0 : 1); t < n; ++t) {
      if (n == 1) {
        rt_send_self_ipi(PONG);
      } else {
        rt_send_ipi(t, PING);
      }
      if (!rt_wait_at_least_for(&g_pongs, ++expected, RT_WAIT_CYCLES)) {
        rt_printf("ipi: no pong from cpu %u in round %u\n", t, r);
        return RT_EXIT_TIMEOUT;
      }
    }
  }
  uint64_t t1 = rt_rdtsc();
  rt_irq_disable();
  rt_store(&g_done, 1);
  for (unsigned t = 1; t < n; ++t) {
    if (rt_load(&g_pings[t]) != ROUNDS) {
      rt_printf("ipi: cpu %u got %lu pings, expected %u\n", t, rt_load(&g_pings[t]), ROUNDS);
      return 1;
    }
  }
  rt_printf("ipi: %lu round trips, %lu tsc cycles each\n", expected, (t1 - t0) / expected);
  return 0;
}
