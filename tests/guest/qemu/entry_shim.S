/* A 64 KiB "BIOS" for QEMU that enters a kernel in the state one of ssi's
 * loaders or its boot builder computed, so they are exercised under TCG on
 * hosts without /dev/kvm. The test has put guest RAM as ssi's loader left it at 0 (QEMU
 * generic loader) plus a hand-off block at 0x500, filled from the loader's
 * EntryState:
 *   0x500 u16 GDT limit, u32 GDT base (ssi's GDT in the image)
 *   0x508 u32 mode: 1 = 32-bit protected mode (multiboot), 2 = 64-bit (Linux)
 *   0x50C u32 entry, 0x510 eax, 0x514 ebx, 0x518 esi, 0x51C cr3 (mode 2)
 *   0x520 u16 code selector, 0x522 u16 data selector
 *   0x524 scratch: the far pointer (u32 offset, u16 selector) the shim jumps through
 *   0x52C u32 edi (mode 2: ssi test kernels take their boot info there) */
#define HANDOFF 0x500

    .code16
    .text
    .globl _shim_start
_shim_start:                      /* linked at 0xF0000, the ROM's alias below 1 MiB */
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov $0x7000, %sp               /* some stack below the boot parameters */
    lgdtl HANDOFF
    cmpl $2, HANDOFF + 0x08
    je long_mode
    mov %cr0, %eax
    or $1, %eax                   /* PE */
    mov %eax, %cr0
    movl $prot32, HANDOFF + 0x24
    jmp far_jump

    .code32
prot32:
    movzwl HANDOFF + 0x22, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %fs
    mov %eax, %gs
    mov %eax, %ss
    mov HANDOFF + 0x10, %eax
    mov HANDOFF + 0x14, %ebx
    mov HANDOFF + 0x18, %esi
    jmp *HANDOFF + 0x0C

    .code16
long_mode:
    mov $0x20, %eax               /* CR4.PAE */
    mov %eax, %cr4
    movl HANDOFF + 0x1C, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx         /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax          /* PE + PG */
    mov %eax, %cr0
    movl $long64, HANDOFF + 0x24
    jmp far_jump

far_jump:                         /* cs = the loader's code selector */
    movw HANDOFF + 0x20, %ax
    movw %ax, HANDOFF + 0x28
    ljmpl *HANDOFF + 0x24

    .code64
long64:
    movzwl HANDOFF + 0x22, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov HANDOFF + 0x18, %esi      /* zero-extends: rsi = boot_params / cpu index */
    mov HANDOFF + 0x2C, %edi
    mov $0x7000, %esp             /* QEMU has ROM below 1 MiB, where ssi's BSP stack is */
    mov HANDOFF + 0x0C, %eax
    jmp *%rax

    .code16
    .org 0xFFF0                   /* reset vector: F000:FFF0 */
    ljmp $0xF000, $(_shim_start - 0xF0000)
    .org 0xFFFF
    .byte 0
    .section .note.GNU-stack, "", @progbits
