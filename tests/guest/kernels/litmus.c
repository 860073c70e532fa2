/* x86-TSO litmus tests, bodies in ring 3 (native), cpus paired (0,1), (2,3)...
 *  SB+mfence: x=1; mfence; r0=y  ||  y=1; mfence; r1=x   forbidden: r0=0 && r1=0
 *  MP:        data=1; flag=1     ||  r0=flag; r1=data    forbidden: r0=1 && r1=0
 * Plain SB (no fence) may show r0=r1=0 on TSO: counted, not an error.
 * With one cpu the bodies run one after the other (a sanity run only). */
#include "rt.h"

#define ROUNDS ((uint64_t)20000)
#define USER_SPINS ((uint64_t)2000000000) /* native spins; ~1 s: a lost partner fails the run */
#define FAILED (~0ull)

enum { kSbFence, kSbPlain, kMp, kTests };

struct pair {
  volatile uint64_t x, y;
  volatile uint64_t r[2];
  volatile uint64_t arrive[2];
  uint64_t hits[kTests]; /* forbidden (or, for plain SB, relaxed) outcomes */
} __attribute__((aligned(64)));

static struct pair g_pairs[RT_MAX_CPUS / 2];
/* Each cpu's meeting count; it only grows, so no reset can race a partner
 * still waiting at the previous meeting. */
static uint64_t g_step[RT_MAX_CPUS];
static unsigned g_test;
static rt_barrier g_barrier;

/* Two-party barrier in ring 3: side s announces step k, waits for the other. */
static int meet(struct pair* p, unsigned side, uint64_t k) {
  __atomic_store_n(&p->arrive[side], k, __ATOMIC_SEQ_CST);
  for (uint64_t i = 0; i < USER_SPINS; ++i) {
    if (__atomic_load_n(&p->arrive[side ^ 1], __ATOMIC_ACQUIRE) >= k) return 1;
    __asm__ volatile("pause");
  }
  return 0;
}

static void body(struct pair* p, unsigned side) {
  switch (g_test) {
    case kSbFence:
    case kSbPlain: {
      volatile uint64_t* mine = side ? &p->y : &p->x;
      volatile uint64_t* other = side ? &p->x : &p->y;
      *mine = 1;
      if (g_test == kSbFence) __asm__ volatile("mfence" ::: "memory");
      p->r[side] = *other;
      break;
    }
    case kMp:
      if (side == 0) {
        p->x = 1; /* data */
        p->y = 1; /* flag */
      } else {
        p->r[0] = p->y;
        p->r[1] = p->x;
      }
      break;
  }
}

static int forbidden(const struct pair* p) {
  if (g_test == kMp) return p->r[0] == 1 && p->r[1] == 0;
  return p->r[0] == 0 && p->r[1] == 0;
}

/* arg = cpu; runs ROUNDS rounds of the current test against its partner. */
static uint64_t run_rounds(uint64_t cpu) {
  struct pair* p = &g_pairs[cpu / 2];
  unsigned side = (unsigned)(cpu & 1);
  uint64_t step = g_step[cpu];
  for (uint64_t round = 0; round < ROUNDS; ++round) {
    if (side == 0) p->x = p->y = p->r[0] = p->r[1] = 0;
    if (!meet(p, side, ++step)) return FAILED;
    body(p, side);
    if (!meet(p, side, ++step)) return FAILED;
    if (side == 0 && forbidden(p)) p->hits[g_test]++;
  }
  g_step[cpu] = step;
  return 0;
}

static uint64_t run_alone(uint64_t unused) {
  (void)unused;
  struct pair* p = &g_pairs[0];
  for (uint64_t round = 0; round < ROUNDS; ++round) {
    p->x = p->y = p->r[0] = p->r[1] = 0;
    body(p, 0);
    body(p, 1);
    if (forbidden(p)) p->hits[g_test]++;
  }
  return 0;
}

static const char* const kNames[kTests] = {"SB+mfence", "SB (no fence)", "MP"};

int kernel_main(unsigned cpu) {
  unsigned n = rt_cpu_count();
  unsigned paired = n & ~1u; /* an odd last cpu sits out */
  int rc = 0;
  for (unsigned t = 0; t < kTests; ++t) {
    if (cpu == 0) g_test = t;
    rt_barrier_wait(&g_barrier, n);
    uint64_t res = 0;
    if (n == 1) {
      res = rt_run_user(cpu, run_alone, 0);
    } else if (cpu < paired) {
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
    uint64_t hits = 0;
    for (unsigned p = 0; p < (n == 1 ? 1 : paired / 2); ++p) hits += g_pairs[p].hits[t];
    if (t == kSbPlain) {
      rt_printf("litmus %s: rounds=%lu relaxed=%lu (allowed on TSO)\n", kNames[t], ROUNDS, hits);
    } else {
      rt_printf("litmus %s: rounds=%lu forbidden=%lu\n", kNames[t], ROUNDS, hits);
      if (hits) rc = 1;
    }
  }
  return rc;
}
