/* The boot-info block ssi passes to an ELF test kernel (rdi = its address).
 * Shared by the VMM (C++) and the guest runtime (freestanding C), so it is
 * plain C with fixed-width fields and no padding surprises.
 *
 * ssi boot convention for ELF test kernels:
 *  - The BSP enters the ELF entry point in 64-bit long mode, CPL0, paging on
 *    with the kernel identity map (CR3 = kernel_cr3), interrupts off,
 *    cs=0x08, ds=es=fs=gs=ss=0x10, tr = this CPU's TSS (SSI_SEL_TSS0 + 16 * cpu),
 *    rdi = boot-info gpa, rsi = cpu index (0), rsp = boot_stack_top.
 *  - An application processor is started by the guest with INIT + SIPI
 *    (vector V) through its LAPIC. ssi starts it directly in the same 64-bit
 *    state at rip = V << 12 (no real-mode trampoline), with
 *    rdi = boot-info gpa, rsi = its cpu index, rsp = 0 (the code at V << 12
 *    must pick its own stack). The trampoline page is guest memory.
 *  - Both page-table roots identity-map [0, map_end) with 2 MiB pages; the
 *    user root also sets the U bit so ring-3 code can touch every page.
 *  - v3: on a machine of several nodes each node may have its own copy of
 *    both roots (node_kernel_cr3/node_user_cr3[n], 0 = use the shared
 *    ones); a CPU starts on its node's copy. Page walks may write to
 *    page-table pages (accessed/dirty bits; QEMU's emulated nested paging
 *    treats every walk as a write), and one copy per node keeps those writes
 *    on the node instead of passing the pages round between nodes.
 */
#ifndef SSI_BOOT_INFO_H_
#define SSI_BOOT_INFO_H_

#include <stdint.h>

#define SSI_BOOT_MAGIC 0x5353494230303031ull /* "SSIB0001" */
#define SSI_BOOT_VERSION 3u
#define SSI_MAX_VCPUS 64u
#define SSI_MAX_NODES 16u

/* GDT selectors (the same in every CPU). */
#define SSI_SEL_KERNEL_CODE 0x08
#define SSI_SEL_KERNEL_DATA 0x10
#define SSI_SEL_USER_DATA 0x2b /* index 5, RPL 3 */
#define SSI_SEL_USER_CODE 0x33 /* index 6, RPL 3 */
#define SSI_SEL_TSS0 0x40      /* CPU i uses SSI_SEL_TSS0 + 16 * i */

/* Debug-exit ports. */
#define SSI_PORT_DEBUG_EXIT 0xf4 /* QEMU isa-debug-exit: exit code = (v << 1) | 1 */
#define SSI_PORT_EXIT 0xf8       /* ssi: exit code = v & 0xff */
#define SSI_PORT_COM1 0x3f8

struct ssi_boot_info {
  uint64_t magic;           /* SSI_BOOT_MAGIC */
  uint32_t version;         /* SSI_BOOT_VERSION */
  uint32_t cpu_count;       /* number of vCPUs (cpu index 0..cpu_count-1 == APIC id) */
  uint64_t mem_bytes;       /* RAM size (RAM above 3 GiB continues at 4 GiB) */
  uint64_t ram_end;         /* highest RAM address + 1 */
  uint64_t map_end;         /* identity map covers [0, map_end) */
  uint64_t kernel_cr3;      /* page tables without the U bit */
  uint64_t user_cr3;        /* same mappings with the U bit on every page */
  uint64_t gdt_base;        /* the shared GDT (selectors above) */
  uint64_t tss_base;        /* TSS of cpu i at tss_base + i * tss_stride */
  uint32_t tss_stride;
  uint32_t node_count;      /* number of ssi nodes */
  uint64_t trampoline_gpa;  /* a free low page for the AP entry stub (SIPI vector = gpa >> 12) */
  uint64_t lapic_base;      /* 0xFEE00000 */
  uint64_t ioapic_base;     /* 0xFEC00000 */
  uint64_t kernel_end;      /* first free byte after the kernel's loaded segments */
  uint32_t cpu_node[SSI_MAX_VCPUS]; /* node that runs each cpu */
  /* v2: where guest RAM lives. Node n is the DSM home (the vNUMA node) of RAM
   * offsets [node_ram_start[n], node_ram_start[n + 1]); the last node's range
   * ends at mem_bytes. RAM offset == guest-physical address below 3 GiB. */
  uint64_t node_ram_start[SSI_MAX_NODES];
  /* v3: each node's copy of the two roots (0: the node uses the shared ones). */
  uint64_t node_kernel_cr3[SSI_MAX_NODES];
  uint64_t node_user_cr3[SSI_MAX_NODES];
};

#endif /* SSI_BOOT_INFO_H_ */
