/* For checkpoint/restore of a full RAM (tests/checkpoint, benchmarks/guest/
 * checkpoint): cpu 0 fills guest RAM from 16 MiB up to 1 MiB below its end
 * (or 3 GiB) with a pattern of its addresses, prints rounds like ckpt (a test
 * checkpoints at one), then checks every word. Other cpus just return. */
#include "rt.h"

#define ROUNDS 20u

static uint64_t pattern(uint64_t a) { return (a >> 3) * 0x9E3779B97F4A7C15ull + 1; }

static volatile uint64_t g_spin;

int kernel_main(unsigned cpu) {
  if (cpu != 0) return 0;
  const struct ssi_boot_info* bi = rt_boot_info();
  uint64_t lo = 16ull << 20, hi = bi->mem_bytes;
  uint64_t kend = (bi->kernel_end + (2ull << 20) - 1) & ~((2ull << 20) - 1);
  if (kend > lo) lo = kend;
  if (hi > bi->map_end) hi = bi->map_end;
  if (hi > (3ull << 30)) hi = 3ull << 30;
  hi -= 1ull << 20;
  if (hi <= lo) {
    rt_printf("ckptfill: no RAM to fill\n");
    return 1;
  }
  for (uint64_t a = lo; a < hi; a += 8) *(volatile uint64_t*)a = pattern(a);
  rt_printf("ckptfill: filled %lu MiB\n", (hi - lo) >> 20);
  for (unsigned r = 1; r <= ROUNDS; ++r) {
    for (uint64_t i = 0; i < 2000000; ++i) g_spin = g_spin + 1;
    rt_printf("ckptfill: round %u of %u\n", r, ROUNDS);
  }
  uint64_t bad = 0;
  for (uint64_t a = lo; a < hi; a += 8) bad += *(volatile uint64_t*)a != pattern(a);
  rt_printf("ckptfill: verified %lu MiB, %lu bad words\n", (hi - lo) >> 20, bad);
  return bad == 0 ? 0 : 1;
}
