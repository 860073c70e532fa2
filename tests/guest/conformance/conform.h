/* The conformance kernel's small runtime (32-bit, no libc): serial output,
 * port/MMIO/MSR/CPUID access with #GP probing, and a check registry that
 * prints one line per check: "conform: NAME ok|skip (why)|FAIL (what)". */
#pragma once
#include <stdint.h>

#define LAPIC 0xFEE00000u
#define IOAPIC 0xFEC00000u

extern volatile uint32_t recover_eip, gp_count;
extern volatile uint32_t irq_count[256];
extern volatile uint64_t irq_tsc[256];
extern volatile uint32_t irq_eip[256];

static inline void outb(uint16_t port, uint8_t v) {
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint32_t mmio_read(uint32_t addr) { return *(volatile uint32_t*)addr; }
static inline void mmio_write(uint32_t addr, uint32_t v) { *(volatile uint32_t*)addr = v; }
static inline uint32_t lapic_read(uint32_t off) { return mmio_read(LAPIC + off); }
static inline void lapic_write(uint32_t off, uint32_t v) { mmio_write(LAPIC + off, v); }

/* rdmsr / wrmsr that report #GP (1) instead of faulting, like Linux's *_safe. */
static inline int rdmsr_safe(uint32_t msr, uint64_t* v) {
  uint32_t lo = 0, hi = 0, before = gp_count;
  __asm__ volatile("movl $1f, recover_eip\n\trdmsr\n1:\n\tmovl $0, recover_eip"
                   : "+a"(lo), "+d"(hi) : "c"(msr) : "memory");
  *v = ((uint64_t)hi << 32) | lo;
  return gp_count != before;
}
static inline int wrmsr_safe(uint32_t msr, uint64_t v) {
  uint32_t before = gp_count;
  __asm__ volatile("movl $1f, recover_eip\n\twrmsr\n1:\n\tmovl $0, recover_eip"
                   : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
  return gp_count != before;
}
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}

void puts_(const char* s);
void puthex(uint32_t v);
/* Waits until *counter reaches `want` with interrupts on; bounded. */
int wait_irqs(volatile uint32_t* counter, uint32_t want, uint32_t spins);
void spin(uint32_t n);

/* One check result line. */
void ok(const char* name);
void skip(const char* name, const char* why);
void fail(const char* name, const char* what, uint32_t value);
#define EXPECT(name, cond, value)           \
  do {                                      \
    if (cond) ok(name);                     \
    else fail(name, #cond, (uint32_t)(value)); \
  } while (0)

void check_apic_base(void);
void check_x2apic_and_msrs(void);
void check_interrupts(void);
void check_timer(void);
void check_ioapic(void);
