/* LAPIC timer tick: cpu 0 arms a periodic timer and sleeps in hlt until
 * TICKS interrupts arrived; reports the TSC time per tick. */
#include "rt.h"

#define TIMER_VECTOR 0x30
#define TICKS 10
#define PERIOD 1000000u /* bus ticks: 1 ms at ssi's 1 GHz LAPIC clock */
#define MAX_WAKEUPS 10000

static volatile uint64_t g_ticks;

static void on_tick(unsigned vector) {
  (void)vector;
  rt_fetch_add(&g_ticks, 1);
}

int kernel_main(unsigned cpu) {
  if (cpu != 0) return 0;
  rt_set_irq_handler(TIMER_VECTOR, on_tick);
  uint64_t t0 = rt_rdtsc();
  rt_timer_periodic(TIMER_VECTOR, PERIOD);
  unsigned wakeups = 0;
  while (rt_load(&g_ticks) < TICKS && wakeups++ < MAX_WAKEUPS) rt_wait_for_interrupt();
  rt_timer_stop();
  uint64_t t1 = rt_rdtsc();
  uint64_t ticks = rt_load(&g_ticks);
  rt_printf("timer: %lu ticks after %u wakeups, %lu tsc cycles per tick\n", ticks, wakeups,
            ticks ? (t1 - t0) / ticks : 0);
  return ticks >= TICKS ? 0 : 1;
}
