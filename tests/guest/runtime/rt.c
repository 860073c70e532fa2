/* Guest runtime core: per-CPU start-up, IDT, LAPIC, SMP bring-up, traps,
 * ring-3 tasks. See rt.h. */
#include "rt.h"

#define LAPIC_ID 0x20
#define LAPIC_EOI 0xB0
#define LAPIC_SVR 0xF0
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_DIV 0x3E0
#define ICR_INIT 0x00004500u    /* INIT, level assert */
#define ICR_STARTUP 0x00004600u /* SIPI */
#define ICR_FIXED 0x00004000u   /* fixed, assert */
#define ICR_NMI 0x00004400u     /* NMI, assert (the vector field is ignored) */
#define ICR_SELF (1u << 18)
#define TIMER_PERIODIC (1u << 17)
#define TIMER_MASKED (1u << 16)
#define USER_STACK_SIZE (64 * 1024)
#define STUB_SIZE 32

struct rt_frame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

struct __attribute__((packed)) idt_entry {
  uint16_t off_lo, selector;
  uint8_t ist, type_attr;
  uint16_t off_mid;
  uint32_t off_hi, zero;
};

struct __attribute__((packed)) table_ptr {
  uint16_t limit;
  uint64_t base;
};

extern char rt_stubs[];
extern char rt_ap_stub[], rt_ap_stub_end[], rt_ap_long_real[];
extern char rt_ap_gdtr[], rt_ap_cr3[], rt_ap_far[], rt_ap_boot_info[];
extern uint64_t rt_enter_user(rt_user_fn fn, uint64_t arg, uint64_t user_stack_top,
                              uint64_t* tss_rsp0);

static const struct ssi_boot_info* g_info;
static struct idt_entry g_idt[256] __attribute__((aligned(16)));
static rt_irq_handler g_handlers[256];
static volatile uint64_t g_online;   /* CPUs that finished start-up */
static volatile uint64_t g_finished; /* APs whose kernel_main returned */
static uint8_t g_user_stacks[RT_MAX_CPUS][USER_STACK_SIZE] __attribute__((aligned(4096)));

const struct ssi_boot_info* rt_boot_info(void) { return g_info; }
unsigned rt_cpu_count(void) { return g_info->cpu_count; }

void rt_exit(int code) {
  for (;;) {
    rt_outb(SSI_PORT_EXIT, (uint8_t)code);
    /* Not under ssi (QEMU with isa-debug-exit): exit status (code << 1) | 1. */
    __asm__ volatile("outl %0, %1" : : "a"((uint32_t)code), "Nd"((uint16_t)SSI_PORT_DEBUG_EXIT));
    __asm__ volatile("cli; hlt");
  }
}

static volatile uint32_t* lapic(uint32_t reg) {
  return (volatile uint32_t*)(uintptr_t)(g_info->lapic_base + reg);
}

uint32_t rt_lapic_id(void) { return *lapic(LAPIC_ID) >> 24; }

static void icr_send(uint32_t dest_apic, uint32_t low) {
  *lapic(LAPIC_ICR_HIGH) = dest_apic << 24;
  *lapic(LAPIC_ICR_LOW) = low;  /* the write to ICR low sends */
}

void rt_send_ipi(unsigned dest_cpu, unsigned vector) { icr_send(dest_cpu, ICR_FIXED | vector); }
void rt_send_nmi(unsigned dest_cpu) { icr_send(dest_cpu, ICR_NMI); }
void rt_send_self_ipi(unsigned vector) { icr_send(0, ICR_FIXED | ICR_SELF | vector); }
void rt_set_irq_handler(unsigned vector, rt_irq_handler h) { g_handlers[vector & 0xFF] = h; }

void rt_timer_periodic(unsigned vector, uint32_t count) {
  *lapic(LAPIC_TIMER_DIV) = 0xB; /* divide by 1 */
  *lapic(LAPIC_LVT_TIMER) = TIMER_PERIODIC | vector;
  *lapic(LAPIC_TIMER_INIT) = count;
}

void rt_timer_stop(void) {
  *lapic(LAPIC_LVT_TIMER) = TIMER_MASKED;
  *lapic(LAPIC_TIMER_INIT) = 0;
}

void rt_spin_lock(rt_spinlock* l) {
  while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE)) {
    while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED)) rt_pause();
  }
}

void rt_spin_unlock(rt_spinlock* l) { __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE); }

int rt_wait_at_least(const volatile uint64_t* p, uint64_t target, uint64_t max_spins) {
  for (uint64_t i = 0; i < max_spins; ++i) {
    if (rt_load(p) >= target) return 1;
    rt_pause();
  }
  return rt_load(p) >= target;
}

int rt_wait_at_least_for(const volatile uint64_t* p, uint64_t target, uint64_t tsc_cycles) {
  uint64_t start = rt_rdtsc();
  while (rt_load(p) < target) {
    if (rt_rdtsc() - start > tsc_cycles) return rt_load(p) >= target;
    rt_pause();
  }
  return 1;
}

void rt_barrier_wait(rt_barrier* b, unsigned n) {
  uint64_t gen = rt_load(&b->generation);
  if (rt_fetch_add(&b->arrived, 1) + 1 == n) {
    rt_store(&b->arrived, 0);
    rt_store(&b->generation, gen + 1);
    return;
  }
  if (!rt_wait_at_least_for(&b->generation, gen + 1, RT_WAIT_CYCLES)) {
    rt_printf("rt: barrier timeout\n");
    rt_exit(RT_EXIT_TIMEOUT);
  }
}

static void set_gate(unsigned v, unsigned dpl) {
  uint64_t addr = (uint64_t)(uintptr_t)(rt_stubs + v * STUB_SIZE);
  g_idt[v].off_lo = (uint16_t)addr;
  g_idt[v].selector = SSI_SEL_KERNEL_CODE;
  g_idt[v].ist = 0;
  g_idt[v].type_attr = (uint8_t)(0x80 | (dpl << 5) | 0xE); /* present, interrupt gate */
  g_idt[v].off_mid = (uint16_t)(addr >> 16);
  g_idt[v].off_hi = (uint32_t)(addr >> 32);
  g_idt[v].zero = 0;
}

static uint16_t gdt_limit(void) { return (uint16_t)(8 * (8 + 2 * g_info->cpu_count) - 1); }

/* Under ssi the VMM loaded TR already. A CPU that came up through real mode
 * (QEMU, hardware) has none: load this CPU's TSS, which ssi marked busy. */
static void load_task_register(unsigned cpu) {
  uint16_t tr;
  __asm__ volatile("str %0" : "=r"(tr));
  if (tr != 0) return;
  uint16_t sel = (uint16_t)(SSI_SEL_TSS0 + 16 * cpu);
  volatile uint64_t* desc = (volatile uint64_t*)(uintptr_t)(g_info->gdt_base + sel);
  *desc &= ~(2ull << 40); /* busy (0xB) -> available (0x9) */
  __asm__ volatile("ltr %0" : : "r"(sel));
}

static void load_cpu_tables(unsigned cpu) {
  struct table_ptr idtr = {sizeof(g_idt) - 1, (uint64_t)(uintptr_t)g_idt};
  __asm__ volatile("lidt %0" : : "m"(idtr));
  load_task_register(cpu);
  /* User page tables everywhere: ring-3 tasks need the U bit on every level.
   * This node's own copy where ssi made one (boot_info.h, v3). */
  uint64_t cr3 = g_info->node_user_cr3[g_info->cpu_node[cpu]];
  __asm__ volatile("mov %0, %%cr3" : : "r"(cr3 ? cr3 : g_info->user_cr3) : "memory");
  *lapic(LAPIC_SVR) = 0x1FF; /* software-enable, spurious vector 0xFF */
}

void rt_trap(struct rt_frame* f) {
  if (f->vector == 2 && g_handlers[2]) { /* NMI a kernel expects: no EOI */
    g_handlers[2](2);
    return;
  }
  if (f->vector < 32) {
    rt_printf("rt: cpu %u: exception %lu error %#lx at rip %#lx cs %#lx\n", rt_lapic_id(),
              f->vector, f->error, f->rip, f->cs);
    rt_exit(RT_EXIT_EXCEPTION);
  }
  if (f->vector == 0xFF) return; /* spurious: no EOI */
  if (g_handlers[f->vector]) g_handlers[f->vector]((unsigned)f->vector);
  *lapic(LAPIC_EOI) = 0;
}

uint64_t rt_run_user(unsigned cpu, rt_user_fn fn, uint64_t arg) {
  uint64_t* rsp0 = (uint64_t*)(uintptr_t)(g_info->tss_base + cpu * g_info->tss_stride + 4);
  uint64_t top = (uint64_t)(uintptr_t)&g_user_stacks[cpu][USER_STACK_SIZE];
  return rt_enter_user(fn, arg, top, rsp0);
}

static void start_aps(void) {
  unsigned n = g_info->cpu_count;
  unsigned long len = (unsigned long)(rt_ap_stub_end - rt_ap_stub);
  char* page = (char*)(uintptr_t)g_info->trampoline_gpa;
  memcpy(page, rt_ap_stub, len);
  /* Data for the real-mode path (boot.S); the ssi path ignores it. */
  uint64_t boot_info = (uint64_t)(uintptr_t)g_info;
  uint32_t far_offset = (uint32_t)(g_info->trampoline_gpa + (uint64_t)(rt_ap_long_real - rt_ap_stub));
  uint16_t limit = gdt_limit();
  uint32_t gdt_base = (uint32_t)g_info->gdt_base, cr3 = (uint32_t)g_info->user_cr3;
  memcpy(page + (rt_ap_boot_info - rt_ap_stub), &boot_info, 8);
  memcpy(page + (rt_ap_far - rt_ap_stub), &far_offset, 4);
  memcpy(page + (rt_ap_gdtr - rt_ap_stub), &limit, 2);
  memcpy(page + (rt_ap_gdtr - rt_ap_stub) + 2, &gdt_base, 4);
  memcpy(page + (rt_ap_cr3 - rt_ap_stub), &cr3, 4);
  uint32_t vector = (uint32_t)(g_info->trampoline_gpa >> 12);
  for (unsigned cpu = 1; cpu < n; ++cpu) {
    icr_send(cpu, ICR_INIT);
    icr_send(cpu, ICR_STARTUP | vector);
  }
  if (!rt_wait_at_least_for(&g_online, n, RT_WAIT_CYCLES)) {
    rt_printf("rt: only %lu of %u cpus came online\n", rt_load(&g_online), n);
    rt_exit(RT_EXIT_TIMEOUT);
  }
}

void rt_start_cpu(const struct ssi_boot_info* info, unsigned cpu) __attribute__((noreturn));
void rt_start_cpu(const struct ssi_boot_info* info, unsigned cpu) {
  if (cpu == 0) {
    g_info = info;
    if (info->magic != SSI_BOOT_MAGIC || info->version != SSI_BOOT_VERSION) rt_exit(2);
    if (info->cpu_count > RT_MAX_CPUS) {
      rt_printf("rt: %u cpus, runtime supports %u\n", info->cpu_count, RT_MAX_CPUS);
      rt_exit(2);
    }
    for (unsigned v = 0; v < 256; ++v) set_gate(v, v == 3 ? 3 : 0); /* int3 allowed from CPL3 */
  }
  load_cpu_tables(cpu);
  rt_fetch_add(&g_online, 1);
  if (cpu == 0) start_aps();
  int rc = kernel_main(cpu);
  if (cpu != 0) {
    rt_fetch_add(&g_finished, 1);
    for (;;) __asm__ volatile("cli; hlt");
  }
  if (!rt_wait_at_least_for(&g_finished, g_info->cpu_count - 1, RT_WAIT_CYCLES)) {
    rt_printf("rt: only %lu APs finished\n", rt_load(&g_finished));
    rt_exit(RT_EXIT_TIMEOUT);
  }
  rt_exit(rc);
}
