/* vCPU mobility (docs/mobility.md): cpu 1 keeps counting while the host
 * moves it between nodes (ssi move). After each chunk of its counter loop
 * it reads the node port (the node running it now, docs/guests.md) and
 * records every change; between chunks it sleeps in hlt until cpu 0's next
 * IPI (so it is moved while running and while halted), and its periodic
 * LAPIC timer keeps ticking (the timer moves with it). cpu 0 sends one IPI
 * at a time and waits for cpu 1 to count it: an IPI lost in a move shows
 * as a timeout. It ends when cpu 1 saw WANT_CHANGES node changes (or a
 * time cap) and checks: exact counter, nodes 0 and 1 seen, no IPI lost. */
#include "rt.h"

#define NODE_PORT 0x5c0
#define IPI_VECTOR 0x41
#define TIMER_VECTOR 0x31
#define TIMER_PERIOD 10000000u /* 10 ms at ssi's 1 GHz LAPIC clock */
#define CHUNK ((uint64_t)20000)
#define WANT_CHANGES 8
/* A time cap (TSC cycles, ~100 s at 2.5 GHz): the host may stop moving. */
#define CAP_CYCLES 250000000000ull
/* How long cpu 0 waits for one IPI to be taken (~4 s at 2.5 GHz). */
#define IPI_WAIT_CYCLES 10000000000ull
#define IPI_WAITS 6

/* Each on a page of its own: cpu 1's counter page follows it between nodes
 * through the DSM, never shared with cpu 0's traffic. */
static volatile uint64_t g_counter __attribute__((aligned(4096)));
static volatile uint64_t g_ipis_taken __attribute__((aligned(4096)));
static volatile uint64_t g_ticks;
static volatile uint64_t g_done __attribute__((aligned(4096)));
static rt_barrier g_barrier;

static inline uint32_t node_now(void) {
  uint32_t v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"((uint16_t)NODE_PORT));
  return v;
}

static void on_ipi(unsigned vector) {
  (void)vector;
  rt_fetch_add(&g_ipis_taken, 1);
}

static void on_tick(unsigned vector) {
  (void)vector;
  rt_fetch_add(&g_ticks, 1);
}

/* Pages in the last node's share of RAM (its homes): after each chunk cpu
 * 1 adds one to a counter in the next of them, so that memory homed on
 * node 1 is written from every node it visits (and, when node 1 retires,
 * must survive the handover of its homes); checked at the end. */
#define SCRATCH_PAGES 64
static volatile uint64_t* scratch_page(unsigned i) {
  const struct ssi_boot_info* bi = rt_boot_info();
  uint64_t base = bi->node_count > 1 ? bi->node_ram_start[bi->node_count - 1] : bi->mem_bytes / 2;
  return (volatile uint64_t*)(base + (uint64_t)i * 4096);
}

static int wanderer(void) {
  uint64_t t0 = rt_rdtsc(), counted = 0, chunks = 0;
  uint64_t scratch_want[SCRATCH_PAGES] = {0};
  unsigned changes = 0, seen = 0;
  uint32_t node = node_now();
  seen |= 1u << (node & 31);
  rt_timer_periodic(TIMER_VECTOR, TIMER_PERIOD);
  rt_printf("wander: cpu 1 starts on node %u\n", node);
  while (changes < WANT_CHANGES && rt_rdtsc() - t0 < CAP_CYCLES) {
    for (uint64_t i = 0; i < CHUNK; ++i) {
      rt_fetch_add(&g_counter, 1);
      ++counted;
    }
    ++chunks;
    *scratch_page(chunks % SCRATCH_PAGES) += 1;
    ++scratch_want[chunks % SCRATCH_PAGES];
    uint32_t n = node_now();
    if (n != node) {
      ++changes;
      seen |= 1u << (n & 31);
      rt_printf("wander: cpu 1 on node %u after %lu counts (change %u)\n", n, counted, changes);
      node = n;
    }
    rt_wait_for_interrupt(); /* cpu 0's next IPI or the timer wakes it */
  }
  rt_timer_stop();
  rt_store(&g_done, 1);
  uint64_t total = rt_load(&g_counter);
  unsigned scratch_bad = 0;
  for (unsigned i = 0; i < SCRATCH_PAGES; ++i) scratch_bad += *scratch_page(i) != scratch_want[i];
  rt_printf("wander: chunks=%lu counted=%lu counter=%lu changes=%u nodes_seen_mask=%u ticks=%lu "
            "scratch_bad=%u\n",
            chunks, counted, total, changes, seen, rt_load(&g_ticks), scratch_bad);
  /* Nodes 0 and 1 at least (a retired node's vCPU goes on on a third). */
  return total == counted && changes >= WANT_CHANGES && (seen & 3u) == 3u && scratch_bad == 0 ? 0 : 1;
}

static volatile uint64_t g_result = 2;

int kernel_main(unsigned cpu) {
  if (rt_cpu_count() != 2) {
    if (cpu == 0) rt_printf("wander: needs 2 cpus\n");
    return 1;
  }
  rt_set_irq_handler(IPI_VECTOR, on_ipi);
  rt_set_irq_handler(TIMER_VECTOR, on_tick);
  rt_barrier_wait(&g_barrier, 2);
  if (cpu == 1) {
    rt_irq_enable();
    rt_store(&g_result, (uint64_t)wanderer());
    rt_barrier_wait(&g_barrier, 2);
    return 0;
  }
  uint64_t sent = 0, lost = 0;
  while (!rt_load(&g_done)) {
    rt_send_ipi(1, IPI_VECTOR);
    ++sent;
    /* A move may pause cpu 1 for seconds under emulation: late is not
     * lost; only an IPI still not taken after IPI_WAITS waits is. */
    unsigned waits = 0;
    while (!rt_wait_at_least_for(&g_ipis_taken, sent - lost, IPI_WAIT_CYCLES) && !rt_load(&g_done) &&
           ++waits < IPI_WAITS) {
    }
    if (rt_load(&g_ipis_taken) < sent - lost) {
      if (rt_load(&g_done)) { /* it stopped taking them: not lost */
        --sent;
        break;
      }
      ++lost;
      rt_printf("wander: IPI %lu not taken in time\n", sent);
    }
  }
  rt_barrier_wait(&g_barrier, 2);
  uint64_t taken = rt_load(&g_ipis_taken);
  rt_printf("wander: ipis sent=%lu taken=%lu lost=%lu\n", sent, taken, lost);
  uint64_t r = rt_load(&g_result);
  rt_printf("wander: %s\n", r == 0 && lost == 0 && taken == sent ? "ok" : "FAILED");
  return r == 0 && lost == 0 && taken == sent ? 0 : 1;
}
