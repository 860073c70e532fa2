/* The few libc functions gcc may emit calls to in freestanding code. Word
 * loops, not rep movsb/stosb: the kvm_pvm emulator runs those a byte at a
 * time (docs/vcpu.md, KVM fact #7). Built with -fno-tree-loop-distribute-patterns so gcc
 * does not turn these loops back into calls to themselves. */
#include "rt.h"

void* memset(void* d, int c, unsigned long n) {
  unsigned char* p = d;
  uint64_t word = 0x0101010101010101ull * (unsigned char)c;
  while (n && ((uintptr_t)p & 7)) *p++ = (unsigned char)c, --n;
  for (; n >= 8; n -= 8, p += 8) *(uint64_t*)p = word;
  while (n--) *p++ = (unsigned char)c;
  return d;
}

void* memcpy(void* d, const void* s, unsigned long n) {
  unsigned char* dp = d;
  const unsigned char* sp = s;
  for (; n >= 8; n -= 8, dp += 8, sp += 8) {
    uint64_t w;
    __builtin_memcpy(&w, sp, 8);
    __builtin_memcpy(dp, &w, 8);
  }
  while (n--) *dp++ = *sp++;
  return d;
}
