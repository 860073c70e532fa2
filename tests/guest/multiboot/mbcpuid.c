/* mbcpuid: the cpuid kernel's dump (tests/guest/kernels/cpuid.c) as a
 * QEMU-convention multiboot kernel (32-bit, no ssi runtime), so that
 * cpuid_kvm_test checks the multiboot guest kind too. Only the BSP runs
 * (the APs wait for a SIPI nobody sends). Same line format; the APIC id is
 * read from the LAPIC (0xFEE00020), not from CPUID. Exit: isa-debug-exit 0. */
#include <stdint.h>

#include "../conformance/conform.h"  // outb, inb, lapic_read

static void put(char c) {
  for (int i = 0; i < 100000 && !(inb(0x3f8 + 5) & 0x20); ++i) {
  }
  outb(0x3f8, (uint8_t)c);
}
static void put_str(const char* s) {
  while (*s) put(*s++);
}
static void put_hex(uint32_t v) {  // "%08x"
  for (int shift = 28; shift >= 0; shift -= 4) put("0123456789abcdef"[(v >> shift) & 0xf]);
}

void mb_main(uint32_t magic, const void* info) {
  static const uint32_t leaves[][2] = {{0x1, 0}, {0x7, 0}, {0xD, 0}, {0xD, 1}, {0x80000001, 0}};
  (void)magic;
  (void)info;
  uint32_t apic = lapic_read(0x20) >> 24;
  for (unsigned i = 0; i < sizeof leaves / sizeof leaves[0]; ++i) {
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid"
                     : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
                     : "a"(leaves[i][0]), "c"(leaves[i][1]));
    put_str("cpuid: cpu 0 apic ");
    put((char)('0' + apic % 10));  // the BSP: APIC id 0
    const char* names[] = {" leaf 0x", " eax=0x", " ebx=0x", " ecx=0x", " edx=0x"};
    const uint32_t values[] = {leaves[i][0], a, b, c, d};
    for (unsigned f = 0; f < 5; ++f) {
      put_str(names[f]);
      put_hex(values[f]);
      if (f == 0) put_str(leaves[i][1] ? ".1" : ".0");
    }
    put('\n');
  }
  outb(0xf4, 0);
  for (;;) __asm__ volatile("cli; hlt");
}
