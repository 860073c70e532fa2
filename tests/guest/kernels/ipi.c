/* IPI ping-pong: cpu 0 sends vector PING to each other cpu in turn, which
 * answers with PONG; with one cpu, self-IPIs. Counts and times round trips
 * after WARMUP untimed rounds. Each counter has its own page, so across
 * nodes a round trip moves no guest page: it is two IPIs and nothing else.
 * Then the last cpu (on another node when spread) takes a level-triggered
 * interrupt from the IOAPIC (COM1's THRE on IRQ 4) and checks that its
 * LAPIC's EOI cleared the entry's remote IRR. */
#include "rt.h"

#define PING 0x40
#define PONG 0x41
#define WARMUP 5
#define ROUNDS 100
#define PAGE_WORDS 512

/* Written by cpu 0 only. */
static volatile uint64_t g_pongs __attribute__((aligned(4096)));
/* g_pings[cpu][0]: written by that cpu only, one page each. */
static volatile uint64_t g_pings[RT_MAX_CPUS][PAGE_WORDS] __attribute__((aligned(4096)));
static volatile uint64_t g_done __attribute__((aligned(4096)));
static rt_barrier g_barrier;
/* The level check: interrupts taken, and 1 + remote IRR after the EOI (0 = not run). */
static volatile uint64_t g_level_irqs __attribute__((aligned(4096)));
static volatile uint64_t g_level_result;

#define LEVEL 0x52
#define IOAPIC 0xFEC00000ull
#define COM1 0x3F8
#define IRQ4_LOW (0x10 + 2 * 4)

static void ioapic_write(uint32_t index, uint32_t v) {
  *(volatile uint32_t*)(uintptr_t)IOAPIC = index;
  *(volatile uint32_t*)(uintptr_t)(IOAPIC + 0x10) = v;
}
static uint32_t ioapic_read(uint32_t index) {
  *(volatile uint32_t*)(uintptr_t)IOAPIC = index;
  return *(volatile uint32_t*)(uintptr_t)(IOAPIC + 0x10);
}

static void on_level(unsigned vector) {
  (void)vector;
  rt_outb(COM1 + 1, 0x00); /* THRE interrupt off: the line drops before the EOI */
  rt_fetch_add(&g_level_irqs, 1);
}

/* Runs on this cpu with interrupts enabled; the runtime EOIs after on_level. */
static void level_check(void) {
  ioapic_write(IRQ4_LOW, 0x10000); /* masked while changing */
  ioapic_write(IRQ4_LOW + 1, rt_lapic_id() << 24);
  ioapic_write(IRQ4_LOW, 0x8000 | LEVEL); /* level, fixed, physical */
  rt_outb(COM1 + 4, 0x0B);                /* MCR: DTR, RTS, OUT2 */
  rt_outb(COM1 + 1, 0x02);                /* THRE interrupt on: IRQ 4 goes high */
  int got = rt_wait_at_least_for(&g_level_irqs, 1, RT_WAIT_CYCLES);
  uint32_t irr = ioapic_read(IRQ4_LOW) & 0x4000;
  ioapic_write(IRQ4_LOW, 0x10000);
  rt_store(&g_level_result, got ? 1 + (irr != 0) : 3);
}

static void on_ping(unsigned vector) {
  (void)vector;
  unsigned me = rt_lapic_id();
  rt_fetch_add(&g_pings[me][0], 1);
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
    rt_set_irq_handler(LEVEL, on_level);
  }
  rt_barrier_wait(&g_barrier, n);
  rt_irq_enable();
  if (cpu != 0) {
    int ok = rt_wait_at_least_for(&g_done, 1, 2 * RT_WAIT_CYCLES);
    if (ok && cpu == n - 1) level_check();
    rt_irq_disable();
    return ok ? 0 : 1;
  }
  uint64_t expected = 0, total = 0, min = ~0ull, max = 0;
  for (unsigned r = 0; r < WARMUP + ROUNDS; ++r) {
    for (unsigned t = (n == 1 ? 0 : 1); t < n; ++t) {
      uint64_t t0 = rt_rdtsc();
      if (n == 1) {
        rt_send_self_ipi(PONG);
      } else {
        rt_send_ipi(t, PING);
      }
      if (!rt_wait_at_least_for(&g_pongs, ++expected, RT_WAIT_CYCLES)) {
        rt_printf("ipi: no pong from cpu %u in round %u\n", t, r);
        return RT_EXIT_TIMEOUT;
      }
      uint64_t dt = rt_rdtsc() - t0;
      if (r < WARMUP) continue;
      total += dt;
      if (dt < min) min = dt;
      if (dt > max) max = dt;
    }
  }
  rt_irq_disable();
  rt_store(&g_done, 1);
  for (unsigned t = 1; t < n; ++t) {
    if (rt_load(&g_pings[t][0]) != WARMUP + ROUNDS) {
      rt_printf("ipi: cpu %u got %lu pings, expected %u\n", t, rt_load(&g_pings[t][0]),
                WARMUP + ROUNDS);
      return 1;
    }
  }
  if (n > 1) { /* the last cpu's level check; cpu 0 stays off the console meanwhile */
    if (!rt_wait_at_least_for(&g_level_result, 1, RT_WAIT_CYCLES)) {
      rt_printf("ipi: cpu %u never finished its level-interrupt check\n", n - 1);
      return RT_EXIT_TIMEOUT;
    }
    uint64_t res = rt_load(&g_level_result);
    if (res != 1 || rt_load(&g_level_irqs) != 1) {
      rt_printf("ipi: level interrupt on cpu %u: %s (%lu taken)\n", n - 1,
                res == 3 ? "never delivered" : "remote IRR still set after its EOI",
                rt_load(&g_level_irqs));
      return 1;
    }
    rt_printf("ipi: level interrupt on cpu %u: remote IRR cleared by its EOI\n", n - 1);
  }
  uint64_t timed = expected - WARMUP * (n == 1 ? 1 : n - 1);
  rt_printf("ipi: %lu round trips, %lu tsc cycles each (min %lu, max %lu)\n", timed,
            total / timed, min, max);
  return 0;
}
