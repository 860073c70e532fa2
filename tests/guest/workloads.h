/* Workload bodies shared by guest kernels and host-side tests, so a ratio
 * "guest ring 3 vs host" compares the same source compiled the same way. */
#ifndef SSI_GUEST_WORKLOADS_H_
#define SSI_GUEST_WORKLOADS_H_

#include <stdint.h>

#define SSI_COMPUTE_ITERATIONS ((uint64_t)100000000)

/* A dependent integer chain the compiler cannot fold or vectorise. */
static inline uint64_t ssi_compute_loop(uint64_t iterations) {
  uint64_t x = 1;
  for (uint64_t i = 0; i < iterations; ++i) {
    x = x * 6364136223846793005ull + i;
    __asm__ volatile("" : "+r"(x));
  }
  return x;
}

#endif /* SSI_GUEST_WORKLOADS_H_ */
