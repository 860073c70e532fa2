/* Guest-level DSM costs, measured from ring 3 (native speed on every KVM):
 * what one remote page touch, one page ping-pong and private-page work cost
 * a guest whose vCPUs sit on different nodes. Every workload also checks its
 * data, so a wrong page is a failure, not a fast number.
 *
 * Cpu A = 0, cpu B = the first cpu on another node (cpu 1 when all share a
 * node: the single-node baseline). Times are TSC cycles; the TSC rate is
 * calibrated against the LAPIC timer, which counts at 1 GHz in real time.
 * Lines: "dsmbench: tsc_khz=K", then per workload
 * "dsmbench: NAME samples=N median_cycles=M min_cycles=L". */
#include "rt.h"

#define PAGE 4096ull
#define TOUCH_PAGES 32
#define PINGPONG_ROUNDS 200
#define PRIVATE_ITERATIONS 1000000ull
#define LAPIC_TMICT 0x380
#define LAPIC_TMCCT 0x390
#define LAPIC_DCR 0x3e0
#define LAPIC_LVT_TIMER 0x320

#define WAKE_VECTOR 0x42
#define TICK_VECTOR 0x43

static rt_barrier g_barrier;
static volatile uint64_t g_private_cycles[RT_MAX_CPUS];
static unsigned g_cpu_b;
static int g_failed;

/* Each node's test area: 2 MiB into its home RAM (node 0: above the kernel). */
static volatile uint64_t* node_area(unsigned node) {
  const struct ssi_boot_info* info = rt_boot_info();
  uint64_t start = info->node_ram_start[node] + (2ull << 20);
  if (node == 0 && start < info->kernel_end + (2ull << 20))
    start = (info->kernel_end + (4ull << 20)) & ~((2ull << 20) - 1);
  return (volatile uint64_t*)(uintptr_t)start;
}
/* Areas inside a node's test area, one per workload, page aligned. */
static volatile uint64_t* area_page(unsigned node, unsigned slot, unsigned page) {
  return node_area(node) + (slot * 64ull + page) * (PAGE / 8);
}

static volatile uint32_t* lapic_reg(unsigned off) {
  return (volatile uint32_t*)(uintptr_t)(rt_boot_info()->lapic_base + off);
}

/* TSC cycles per ms, against ~20 ms of the LAPIC timer (1 GHz, divide by 1). */
static uint64_t calibrate_tsc_khz(void) {
  *lapic_reg(LAPIC_LVT_TIMER) = 1u << 16; /* masked, one-shot */
  *lapic_reg(LAPIC_DCR) = 0xb;            /* divide by 1 */
  *lapic_reg(LAPIC_TMICT) = 0xffffffffu;
  uint32_t c0 = *lapic_reg(LAPIC_TMCCT);
  uint64_t t0 = rt_rdtsc(), t1 = t0;
  uint32_t c1 = c0;
  for (unsigned i = 0; i < 100000000u && c0 - c1 < 20000000u; ++i) {
    c1 = *lapic_reg(LAPIC_TMCCT);
    t1 = rt_rdtsc();
  }
  *lapic_reg(LAPIC_TMICT) = 0;
  uint64_t ns = c0 - c1;
  return ns ? (t1 - t0) * 1000000ull / ns : 0;
}

static void on_interrupt(unsigned vector) { (void)vector; }

/* A barrier whose waiters halt instead of spinning, woken by an IPI from the
 * last to arrive (and a 10 ms LAPIC tick, so a lost wake-up only delays).
 * While one cpu measures, the others must not take CPU time from the node
 * processes that serve its faults. */
static void quiet_barrier(unsigned cpu, unsigned n) {
  uint64_t gen = rt_load(&g_barrier.generation);
  if (rt_fetch_add(&g_barrier.arrived, 1) + 1 == n) {
    rt_store(&g_barrier.arrived, 0);
    rt_store(&g_barrier.generation, gen + 1);
    for (unsigned c = 0; c < n; ++c)
      if (c != cpu) rt_send_ipi(c, WAKE_VECTOR);
    return;
  }
  rt_timer_periodic(TICK_VECTOR, 10000000u);
  uint64_t deadline = rt_rdtsc() + RT_WAIT_CYCLES;
  while (rt_load(&g_barrier.generation) == gen && rt_rdtsc() < deadline) rt_wait_for_interrupt();
  rt_timer_stop();
  if (rt_load(&g_barrier.generation) == gen) {
    rt_printf("dsmbench: quiet barrier timeout on cpu %u\n", cpu);
    rt_exit(RT_EXIT_TIMEOUT);
  }
}

static uint64_t pattern(uint64_t page, uint64_t word) { return (page << 20) ^ (word * 0x9e37ull) ^ 0x5a5a; }

struct samples {
  uint64_t v[TOUCH_PAGES];
  unsigned n;
};

static void report(const char* name, struct samples* s) {
  for (unsigned i = 1; i < s->n; ++i) /* insertion sort: n is small */
    for (unsigned j = i; j > 0 && s->v[j - 1] > s->v[j]; --j) {
      uint64_t t = s->v[j];
      s->v[j] = s->v[j - 1];
      s->v[j - 1] = t;
    }
  rt_printf("dsmbench: %s samples=%u median_cycles=%lu min_cycles=%lu\n", name, s->n,
            s->v[s->n / 2], s->v[0]);
}

/* --- ring-3 workloads; arg = slot of the area they use --- */

static uint64_t fill_pages(uint64_t slot) {
  for (unsigned p = 0; p < TOUCH_PAGES; ++p)
    for (unsigned w = 0; w < PAGE / 8; w += 64) area_page(0, (unsigned)slot, p)[w] = pattern(p, w);
  return 0;
}

/* A page of its own: B writes it between samples, while the other cpus read
 * the barrier's page. */
static union {
  struct samples s;
  char page[PAGE];
} g_samples_page __attribute__((aligned(4096)));
#define g_samples g_samples_page.s
/* Times one load per page (the first touch of each page), then checks them. */
static uint64_t read_each_page(uint64_t slot) {
  uint64_t bad = 0;
  for (unsigned p = 0; p < TOUCH_PAGES; ++p) {
    volatile uint64_t* page = area_page(0, (unsigned)slot, p);
    uint64_t t0 = rt_rdtsc();
    uint64_t v = page[0];
    uint64_t t1 = rt_rdtsc();
    g_samples.v[p] = t1 - t0;
    bad += v != (slot >= 2 ? 0 : pattern(p, 0));
  }
  g_samples.n = TOUCH_PAGES;
  return bad;
}

static uint64_t write_each_page(uint64_t slot) {
  for (unsigned p = 0; p < TOUCH_PAGES; ++p) {
    volatile uint64_t* page = area_page(0, (unsigned)slot, p);
    uint64_t t0 = rt_rdtsc();
    page[8] = p + 1;
    uint64_t t1 = rt_rdtsc();
    g_samples.v[p] = t1 - t0;
  }
  g_samples.n = TOUCH_PAGES;
  return 0;
}

/* Ping-pong on one word: A moves it from even to odd, B from odd to even. */
static uint64_t pingpong(uint64_t parity) {
  volatile uint64_t* word = area_page(0, 3, 0);
  uint64_t t0 = rt_rdtsc();
  for (uint64_t r = 0; r < PINGPONG_ROUNDS; ++r) {
    uint64_t want = 2 * r + parity;
    for (uint64_t spin = 0; *word != want; ++spin)
      if (spin > 4000000000ull) return 0;
    *word = want + 1;
  }
  return rt_rdtsc() - t0;
}

static uint64_t private_work(uint64_t cpu) {
  const struct ssi_boot_info* info = rt_boot_info();
  volatile uint64_t* mine = area_page(info->cpu_node[cpu], 4, (unsigned)cpu);
  uint64_t t0 = rt_rdtsc();
  for (uint64_t i = 0; i < PRIVATE_ITERATIONS; ++i) mine[0] = mine[0] + 1;
  g_private_cycles[cpu] = rt_rdtsc() - t0;
  return mine[0] == PRIVATE_ITERATIONS;
}

static void check(int ok, const char* what) {
  if (!ok) {
    rt_printf("dsmbench: FAILED %s\n", what);
    g_failed = 1;
  }
}

int kernel_main(unsigned cpu) {
  const struct ssi_boot_info* info = rt_boot_info();
  unsigned n = rt_cpu_count();
  if (cpu == 0) {
    g_cpu_b = n > 1 ? 1 : 0;
    for (unsigned c = 1; c < n; ++c)
      if (info->cpu_node[c] != info->cpu_node[0]) {
        g_cpu_b = c;
        break;
      }
    rt_printf("dsmbench: %u cpus on %u nodes; cpu A=0 on node %u, cpu B=%u on node %u\n", n,
              info->node_count, info->cpu_node[0], g_cpu_b, info->cpu_node[g_cpu_b]);
    rt_printf("dsmbench: tsc_khz=%lu\n", calibrate_tsc_khz());
    rt_set_irq_handler(WAKE_VECTOR, on_interrupt);
    rt_set_irq_handler(TICK_VECTOR, on_interrupt);
  }
  rt_barrier_wait(&g_barrier, n);
  unsigned b = g_cpu_b;
  if (n > 1 && b != 0) {
    /* 1. A (on the home of slot 0) writes pages; B reads each: home wrote last. */
    if (cpu == 0) rt_run_user(cpu, fill_pages, 0);
    quiet_barrier(cpu, n);
    if (cpu == b) {
      check(rt_run_user(cpu, read_each_page, 0) == 0, "read_home_wrote data");
      report("read_home_wrote", &g_samples);
    }
    quiet_barrier(cpu, n);
    /* 2. B writes pages A and B both hold: a write fault with one sharer. */
    if (cpu == b) {
      rt_run_user(cpu, write_each_page, 0);
      report("write_one_sharer", &g_samples);
    }
    quiet_barrier(cpu, n);
    /* 3. B reads pages nobody wrote: a zero-filled first touch. */
    if (cpu == b) {
      check(rt_run_user(cpu, read_each_page, 2) == 0, "first_touch_zero data");
      report("first_touch_zero", &g_samples);
    }
    quiet_barrier(cpu, n);
    /* 3b. A reads pages of its own node nobody wrote: the same first touch
     * with no other node involved (its node's DSM zero-fills it locally;
     * with one node, plain KVM memory). */
    if (cpu == 0) {
      check(rt_run_user(cpu, read_each_page, 5) == 0, "local_first_touch data");
      report("local_first_touch", &g_samples);
    }
    quiet_barrier(cpu, n);
    /* 4. Ping-pong of one word between A and B. */
    uint64_t cycles = 0;
    if (cpu == 0 || cpu == b) {
      cycles = rt_run_user(cpu, pingpong, cpu == 0 ? 0 : 1);
      check(cycles != 0, "pingpong did not finish");
    }
    if (cpu == 0)
      rt_printf("dsmbench: pingpong rounds=%u round_trip_cycles=%lu\n", PINGPONG_ROUNDS,
                cycles / PINGPONG_ROUNDS);
    rt_barrier_wait(&g_barrier, n);
  }
  /* 5. Every cpu works on its own page, homed on its own node. */
  rt_barrier_wait(&g_barrier, n);
  check(rt_run_user(cpu, private_work, cpu) == 1, "private count");
  rt_barrier_wait(&g_barrier, n);
  if (cpu != 0) return 0;
  uint64_t slowest = 0;
  for (unsigned c = 0; c < n; ++c)
    if (g_private_cycles[c] > slowest) slowest = g_private_cycles[c];
  rt_printf("dsmbench: private cpus=%u iterations=%llu slowest_cycles=%lu\n", n,
            PRIVATE_ITERATIONS, slowest);
  rt_printf("dsmbench: %s\n", g_failed ? "FAILED" : "all checks passed");
  return g_failed;
}
