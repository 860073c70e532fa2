/* conform: a QEMU-convention multiboot test kernel that probes what a guest
 * can observe of the platform (LAPIC, APIC_BASE, x2APIC MSRs, MSR policy,
 * int $n, logical IPIs, LAPIC timer) and prints one line per check. The
 * harness compares those lines under ssi and under QEMU (the reference)
 * with tests/guest/conformance/expected.txt. Exit (isa-debug-exit 0xf4):
 * the number of failed checks, so 0 -> process exit 1. 32-bit, no libgcc. */
#include "conform.h"

#define COM1 0x3f8
#define DEBUG_EXIT 0xf4

volatile uint32_t irq_count[256];
volatile uint64_t irq_tsc[256]; /* TSC when the vector was last taken */
volatile uint32_t irq_eip[256];
static uint32_t failures;

static void putc_(char c) {
  for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); ++i) {
  }
  outb(COM1, (uint8_t)c);
}
void puts_(const char* s) {
  while (*s) putc_(*s++);
}
void puthex(uint32_t v) {
  puts_("0x");
  for (int i = 28; i >= 0; i -= 4) putc_("0123456789abcdef"[(v >> i) & 0xF]);
}

void ok(const char* name) {
  puts_("conform: ");
  puts_(name);
  puts_(" ok\n");
}
void skip(const char* name, const char* why) {
  puts_("conform: ");
  puts_(name);
  puts_(" skip (");
  puts_(why);
  puts_(")\n");
}
void fail(const char* name, const char* what, uint32_t value) {
  ++failures;
  puts_("conform: ");
  puts_(name);
  puts_(" FAIL (");
  puts_(what);
  puts_(", value ");
  puthex(value);
  puts_(")\n");
}

static void __attribute__((noreturn)) finish(void) {
  puts_("conform: done, failed ");
  puthex(failures);
  putc_('\n');
  outb(DEBUG_EXIT, (uint8_t)(failures > 255 ? 255 : failures));
  for (;;) __asm__ volatile("cli; hlt");
}

void spin(uint32_t n) {
  for (volatile uint32_t i = 0; i < n; ++i) __asm__ volatile("pause");
}

int wait_irqs(volatile uint32_t* counter, uint32_t want, uint32_t spins) {
  __asm__ volatile("sti");
  for (uint32_t i = 0; i < spins && *counter < want; ++i) __asm__ volatile("pause");
  __asm__ volatile("cli");
  return *counter >= want;
}

/* Called by every IDT stub but the recovering #GP path. */
void trap(uint32_t vector, uint32_t error, uint32_t eip) {
  if (vector < 32) {
    puts_("conform: unexpected exception ");
    puthex(vector);
    puts_(" error ");
    puthex(error);
    puts_(" at ");
    puthex(eip);
    putc_('\n');
    ++failures;
    finish();
  }
  irq_tsc[vector] = rdtsc();
  ++irq_count[vector];
  irq_eip[vector] = eip;
  /* LAPIC sources get an EOI; `int $n` (0x21) and spurious (0xff) do not. */
  if (vector >= 0x40 && vector < 0xf0) lapic_write(0xB0, 0);
}

/* What every protected-mode OS does first: move the 8259 pair off the CPU
 * exception vectors (0x20/0x28) and mask all 16 lines (the BIOS left IRQ0,
 * the PIT, unmasked at vector 8). */
static void mask_pics(void) {
  static const uint8_t icw[2][4] = {{0x11, 0x20, 0x04, 0x01}, {0x11, 0x28, 0x02, 0x01}};
  for (int pic = 0; pic < 2; ++pic) {
    uint16_t cmd = pic ? 0xA0 : 0x20;
    outb(cmd, icw[pic][0]);
    for (int i = 1; i < 4; ++i) outb((uint16_t)(cmd + 1), icw[pic][i]);
    outb((uint16_t)(cmd + 1), 0xFF);
  }
}

void conform_main(uint32_t magic, const void* info) {
  (void)info;
  mask_pics();
  puts_("conform: start\n");
  if (magic != 0x2BADB002) fail("multiboot_magic", "magic", magic);
  lapic_write(0xF0, 0x1FF);  /* software-enable, spurious vector 0xff */
  check_apic_base();
  check_x2apic_and_msrs();
  check_interrupts();
  check_timer();
  check_ioapic();
  EXPECT("pic_masks_read_back", inb(0x21) == 0xFF && inb(0xA1) == 0xFF, inb(0x21));
  outb(0xA1, 0xA5);  /* an open bus would read 0xff whatever was written */
  EXPECT("pic_slave_mask_is_a_register", inb(0xA1) == 0xA5, inb(0xA1));
  outb(0xA1, 0xFF);
  finish();
}
