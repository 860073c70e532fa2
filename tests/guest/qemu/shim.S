/* A 64 KiB "BIOS" for QEMU that boots an ssi test kernel the way ssi does,
 * so guest kernels can be exercised under TCG on hosts without /dev/kvm.
 * QEMU's generic loader has already put ssi's boot area (page tables, GDT,
 * TSSes, boot info) at 0 and the kernel at its ELF addresses. From the reset
 * vector: real mode -> long mode directly, then the kernel entry with
 * rdi = boot info, rsi = 0 (the ssi BSP convention). */
#define BOOT_INFO 0x5000
#define BOOT_INFO_KERNEL_CR3 (BOOT_INFO + 0x28) /* offsetof(ssi_boot_info, kernel_cr3) */
#define GDT_BASE 0x1000
#define GDT_LIMIT (0x40 + 16 * 16 - 1)           /* up to 16 CPUs' TSS descriptors */
#define KERNEL_ENTRY 0x100000                    /* tests/guest/runtime/link.ld */

    .code16
    .text
    .globl _shim_start
_shim_start:                      /* linked at 0xF0000, the ROM's alias below 1 MiB */
    cli
    xor %ax, %ax
    mov %ax, %ds
    lgdtl %cs:(gdtr - _shim_start)
    mov $0x20, %eax               /* CR4.PAE */
    mov %eax, %cr4
    movl BOOT_INFO_KERNEL_CR3, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx         /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax          /* PE + PG */
    mov %eax, %cr0
    ljmpl $0x08, $long64

    .code64
long64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $BOOT_INFO, %edi
    xor %esi, %esi
    mov $KERNEL_ENTRY, %eax
    jmp *%rax

gdtr:
    .word GDT_LIMIT
    .long GDT_BASE

    .code16
    .org 0xFFF0                   /* reset vector: F000:FFF0 */
    ljmp $0xF000, $(_shim_start - 0xF0000)
    .org 0xFFFF
    .byte 0
    .section .note.GNU-stack, "", @progbits
