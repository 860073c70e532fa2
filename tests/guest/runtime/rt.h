/* ssi guest test runtime: what a test kernel (tests/guest/kernels/) uses.
 * Freestanding C, 64-bit long mode, entered under the ssi boot convention
 * (ssi/include/ssi/boot_info.h). Setup and devices run at CPL0 (emulated,
 * ~1 us per instruction on kvm_pvm); workloads run in ring 3 through
 * rt_run_user(), which runs natively there (docs/vcpu.md, KVM fact #7). */
#ifndef SSI_GUEST_RT_H_
#define SSI_GUEST_RT_H_

#include <stdarg.h>
#include <stdint.h>

#include "ssi/boot_info.h"

#define RT_MAX_CPUS 16
#define RT_EXIT_TIMEOUT 3     /* a bounded wait ran out */
#define RT_EXIT_EXCEPTION 0x7f /* unexpected CPU exception */

/* Every test kernel defines this; it runs on every CPU (cpu 0 = BSP after the
 * APs are online). cpu 0's return value becomes ssi's exit code once every
 * AP has returned too. */
int kernel_main(unsigned cpu);

/* --- machine --- */
const struct ssi_boot_info* rt_boot_info(void);
unsigned rt_cpu_count(void);
void rt_exit(int code) __attribute__((noreturn));
static inline uint64_t rt_rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}
static inline void rt_pause(void) { __asm__ volatile("pause"); }
static inline void rt_outb(uint16_t port, uint8_t v) {
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t rt_inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

/* --- console (COM1, polled; one lock so lines from different CPUs do not mix) --- */
void rt_printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int rt_vsnprintf(char* buf, unsigned size, const char* fmt, va_list ap);

/* --- atomics and locks (lock-prefixed instructions; no cmpxchg16b) --- */
static inline uint64_t rt_fetch_add(volatile uint64_t* p, uint64_t v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline uint64_t rt_load(const volatile uint64_t* p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void rt_store(volatile uint64_t* p, uint64_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
typedef struct {
  volatile uint32_t locked;
} rt_spinlock;
void rt_spin_lock(rt_spinlock* l);
void rt_spin_unlock(rt_spinlock* l);

/* Spins (with pause) until *p >= target or max_spins ran out; 1 on success. */
int rt_wait_at_least(const volatile uint64_t* p, uint64_t target, uint64_t max_spins);
/* The same, bounded by time (TSC cycles) instead of a spin count: a spin
 * costs ~1 us under an instruction emulator and ~1 ns natively, and other
 * cpus may be slow to come (remote page faults cost ms under emulation), so
 * only a time bound tells a hang from slowness. RT_WAIT_CYCLES: ~400 s at
 * 2.5 GHz (4 nodes in the KVM test VM have needed over 100 s at a barrier
 * of the counter kernel, where every increment is a remote write fault);
 * the tests' own time limits are longer still. */
#define RT_WAIT_CYCLES 1000000000000ull
int rt_wait_at_least_for(const volatile uint64_t* p, uint64_t target, uint64_t tsc_cycles);
/* A reusable barrier for `n` participants (bounded: exits with RT_EXIT_TIMEOUT). */
typedef struct {
  volatile uint64_t arrived;
  volatile uint64_t generation;
} rt_barrier;
void rt_barrier_wait(rt_barrier* b, unsigned n);

/* --- interrupts (userspace LAPIC in ssi at 0xFEE00000) --- */
typedef void (*rt_irq_handler)(unsigned vector);
void rt_set_irq_handler(unsigned vector, rt_irq_handler h);
void rt_send_ipi(unsigned dest_cpu, unsigned vector);
void rt_send_self_ipi(unsigned vector);
/* An NMI to `dest_cpu`; rt_set_irq_handler(2, h) makes h its handler (run
 * with NMIs blocked until it returns; without one an NMI is fatal). */
void rt_send_nmi(unsigned dest_cpu);
uint32_t rt_lapic_id(void);
/* Periodic LAPIC timer on this CPU: `count` bus ticks per period (divide by 1). */
void rt_timer_periodic(unsigned vector, uint32_t count);
void rt_timer_stop(void);
static inline void rt_irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void rt_irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void rt_wait_for_interrupt(void) { __asm__ volatile("sti; hlt; cli" ::: "memory"); }

/* --- ring 3 --- */
/* Runs fn(arg) at CPL3 on this CPU's user stack and returns its result: the
 * task ends with int3 through a DPL3 gate (never syscall: on kvm_pvm no
 * system-call instruction reaches ring 0; docs/vcpu.md). */
typedef uint64_t (*rt_user_fn)(uint64_t arg);
uint64_t rt_run_user(unsigned cpu, rt_user_fn fn, uint64_t arg);

/* --- libc bits the compiler may call --- */
void* memset(void* d, int c, unsigned long n);
void* memcpy(void* d, const void* s, unsigned long n);

#endif /* SSI_GUEST_RT_H_ */
