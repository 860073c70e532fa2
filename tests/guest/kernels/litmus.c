/* x86-TSO litmus tests, bodies in ring 3 (native), on groups of cpus:
 * pairs (0,1), (2,3)... and, for IRIW, quads (0..3), (4..7)...
 *  SB+mfence: x=1; mfence; r0=y  ||  y=1; mfence; r1=x   forbidden: r0=0 && r1=0
 *  MP:        data=1; flag=1     ||  r0=flag; r1=data    forbidden: r0=1 && r1=0
 *  LB:        r0=y; x=1          ||  r1=x; y=1           forbidden: r0=1 && r1=1
 *  2+2W:      x=1; y=2           ||  y=1; x=2            forbidden: x=1 && y=1 at the end
 *  IRIW:      x=1 || y=1 || r0=x; r1=y || r2=y; r3=x     forbidden: r0=1 r1=0 r2=1 r3=0
 * Plain SB (no fence) may show r0=r1=0 on TSO: counted, not an error.
 * With one cpu the pair tests run their sides one after the other (a sanity
 * run only); IRIW needs four cpus and is reported as skipped below that.
 * A round is one instance of a test on its own variables. Rounds run in
 * batches: the group meets, every member runs its side of BATCH rounds back
 * to back, the group meets again and member 0 checks the batch. Across nodes
 * every meeting costs page transfers, so this keeps the sides running at the
 * same time while paying for a meeting once per batch, not per round. Each
 * array of a batch (x, y, each reader's results, each meeting counter) has a
 * page of its own: a unit of coherence of its own. */
#include "rt.h"

#define ROUNDS ((uint64_t)10000)
#define BATCH 100 /* rounds per meeting; divides ROUNDS */
#define MEET_CYCLES RT_WAIT_CYCLES /* a lost partner fails the run; a slow one does not */
#define FAILED (~0ull)
#define PAGE 4096

enum { kSbFence, kSbPlain, kMp, kLb, k2p2W, kIriw, kTests };
static const char* const kNames[kTests] = {"SB+mfence", "SB (no fence)", "MP",
                                           "LB",        "2+2W",          "IRIW"};

struct batch_page {
  volatile uint64_t v[BATCH];
} __attribute__((aligned(PAGE)));

struct meet_page {
  volatile uint64_t v;
} __attribute__((aligned(PAGE)));

struct group {
  struct batch_page x, y;
  struct batch_page r[4];    /* each reader's results on its own page */
  struct meet_page arrive[4]; /* meeting counters, one page per member */
};

static struct group g_groups[RT_MAX_CPUS / 2];
static uint64_t g_hits[RT_MAX_CPUS / 2][kTests];
/* Each cpu's meeting count; it only grows, so no reset can race a partner
 * still waiting at the previous meeting. */
static uint64_t g_step[RT_MAX_CPUS];
static unsigned g_test;
static rt_barrier g_barrier;

static unsigned group_size(void) { return g_test == kIriw ? 4 : 2; }

/* Barrier of the `size` members in ring 3: member s announces step k and
 * waits until every other member has announced it too. */
static int meet(struct group* g, unsigned side, unsigned size, uint64_t k) {
  __atomic_store_n(&g->arrive[side].v, k, __ATOMIC_SEQ_CST);
  for (unsigned other = 0; other < size; ++other) {
    if (other == side) continue;
    if (!rt_wait_at_least_for(&g->arrive[other].v, k, MEET_CYCLES)) return 0;
  }
  return 1;
}

static void reset(struct group* g) {
  for (unsigned i = 0; i < BATCH; ++i) {
    g->x.v[i] = g->y.v[i] = 0;
    for (unsigned k = 0; k < 4; ++k) g->r[k].v[i] = 0;
  }
}

/* Member `side`'s part of round i of the batch. */
static void body(struct group* g, unsigned side, unsigned i) {
  volatile uint64_t* x = &g->x.v[i];
  volatile uint64_t* y = &g->y.v[i];
  volatile uint64_t* r0 = &g->r[0].v[i];
  volatile uint64_t* r1 = &g->r[1].v[i];
  switch (g_test) {
    case kSbFence:
    case kSbPlain:
      *(side ? y : x) = 1;
      if (g_test == kSbFence) __asm__ volatile("mfence" ::: "memory");
      *(side ? r1 : r0) = *(side ? x : y);
      break;
    case kMp:
      if (side == 0) {
        *x = 1; /* data */
        *y = 1; /* flag */
      } else {
        *r0 = *y;
        *r1 = *x;
      }
      break;
    case kLb:
      *(side ? r1 : r0) = *(side ? x : y);
      *(side ? y : x) = 1;
      break;
    case k2p2W:
      *(side ? y : x) = 1;
      *(side ? x : y) = 2;
      break;
    case kIriw:
      if (side == 0) *x = 1;
      if (side == 1) *y = 1;
      if (side == 2) {
        *r0 = *x;
        *r1 = *y;
      }
      if (side == 3) {
        g->r[2].v[i] = *y;
        g->r[3].v[i] = *x;
      }
      break;
  }
}

static int forbidden(const struct group* g, unsigned i) {
  uint64_t r0 = g->r[0].v[i], r1 = g->r[1].v[i], r2 = g->r[2].v[i], r3 = g->r[3].v[i];
  switch (g_test) {
    case kMp: return r0 == 1 && r1 == 0;
    case kLb: return r0 == 1 && r1 == 1;
    case k2p2W: return g->x.v[i] == 1 && g->y.v[i] == 1;
    case kIriw: return r0 == 1 && r1 == 0 && r2 == 1 && r3 == 0;
    default: return r0 == 0 && r1 == 0;
  }
}

/* arg = cpu; ROUNDS rounds of the current test with the other members of its group. */
static uint64_t run_rounds(uint64_t cpu) {
  unsigned size = group_size();
  unsigned id = (unsigned)(cpu / size);
  struct group* g = &g_groups[id];
  unsigned side = (unsigned)(cpu % size);
  uint64_t step = g_step[cpu];
  for (uint64_t batch = 0; batch < ROUNDS / BATCH; ++batch) {
    if (side == 0) reset(g);
    if (!meet(g, side, size, ++step)) return FAILED;
    for (unsigned i = 0; i < BATCH; ++i) body(g, side, i);
    if (!meet(g, side, size, ++step)) return FAILED;
    if (side == 0)
      for (unsigned i = 0; i < BATCH; ++i) g_hits[id][g_test] += (uint64_t)forbidden(g, i);
  }
  g_step[cpu] = step;
  return 0;
}

static uint64_t run_alone(uint64_t unused) {
  (void)unused;
  struct group* g = &g_groups[0];
  for (uint64_t batch = 0; batch < ROUNDS / BATCH; ++batch) {
    reset(g);
    for (unsigned i = 0; i < BATCH; ++i) {
      body(g, 0, i);
      body(g, 1, i);
      g_hits[0][g_test] += (uint64_t)forbidden(g, i);
    }
  }
  return 0;
}

int kernel_main(unsigned cpu) {
  unsigned n = rt_cpu_count();
  int rc = 0;
  for (unsigned t = 0; t < kTests; ++t) {
    if (cpu == 0) g_test = t;
    rt_barrier_wait(&g_barrier, n);
    unsigned size = group_size();
    unsigned grouped = n / size * size; /* cpus past the last full group sit out */
    uint64_t res = 0;
    if (n == 1 && t != kIriw) {
      res = rt_run_user(cpu, run_alone, 0);
    } else if (cpu < grouped) {
      res = rt_run_user(cpu, run_rounds, cpu);
    }
    if (res == FAILED) {
      rt_printf("litmus: cpu %u lost its partner in %s\n", cpu, kNames[t]);
      rc = RT_EXIT_TIMEOUT;
    }
    rt_barrier_wait(&g_barrier, n);
  }
  if (cpu != 0) return rc;
  for (unsigned t = 0; t < kTests; ++t) {
    unsigned size = t == kIriw ? 4 : 2;
    unsigned groups = n == 1 ? (t == kIriw ? 0 : 1) : n / size;
    if (groups == 0) {
      rt_printf("litmus %s: skipped (needs %u cpus)\n", kNames[t], size);
      continue;
    }
    uint64_t hits = 0;
    for (unsigned p = 0; p < groups; ++p) hits += g_hits[p][t];
    if (t == kSbPlain) {
      rt_printf("litmus %s: rounds=%lu relaxed=%lu (allowed on TSO)\n", kNames[t], ROUNDS, hits);
    } else {
      rt_printf("litmus %s: rounds=%lu forbidden=%lu\n", kNames[t], ROUNDS, hits);
      if (hits) rc = 1;
    }
  }
  return rc;
}
