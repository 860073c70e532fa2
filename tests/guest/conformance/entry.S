/* Multiboot v1 entry of the conformance kernel: our own GDT (loaders differ:
 * QEMU's multiboot stub and ssi use other selectors), an IDT whose stubs call
 * trap() with the vector, and a #GP path that resumes at `recover_eip` so C
 * code can probe MSRs the way Linux's rdmsr_safe does. */
    .altmacro
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .text
    .code32
    .globl _start
_start:
    cli
    mov $stack_top, %esp
    mov %eax, %esi
    lgdt gdt_desc
    ljmp $0x08, $1f
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    call build_idt
    lidt idt_desc
    push %ebx
    push %esi
    call conform_main     /* never returns: it writes isa-debug-exit */
2:  hlt
    jmp 2b

/* IDT: 256 interrupt gates (DPL 0, selector 0x08) to the stubs below. */
build_idt:
    xor %ecx, %ecx
3:  mov stub_table(,%ecx,4), %eax
    mov %ax, idt(,%ecx,8)
    movw $0x08, idt+2(,%ecx,8)
    movw $0x8E00, idt+4(,%ecx,8)
    shr $16, %eax
    mov %ax, idt+6(,%ecx,8)
    inc %ecx
    cmp $256, %ecx
    jne 3b
    ret

/* #GP: with a recovery point set, resume there (registers untouched) and
 * count the fault; else report it like any other vector. */
gp_stub:
    cmpl $0, recover_eip
    je 4f
    push %eax
    mov recover_eip, %eax
    mov %eax, 8(%esp)     /* [eax][error code][eip][cs][eflags] */
    movl $0, recover_eip
    incl gp_count
    pop %eax
    add $4, %esp
    iret
4:  push $13
    jmp common

/* Vectors with an error code push it themselves; the rest push 0. */
.macro stub v
stub_\v:
    .if (\v == 8 || (\v >= 10 && \v <= 14) || \v == 17)
    .else
    push $0
    .endif
    push $\v
    jmp common
.endm

common:
    pusha
    push 40(%esp)         /* eip */
    push 40(%esp)         /* error code */
    push 40(%esp)         /* vector */
    call trap
    add $12, %esp
    popa
    add $8, %esp          /* vector and error code */
    iret

    .set i, 0
    .rept 256
    .if i != 13
    stub %i
    .endif
    .set i, i+1
    .endr

    .section .rodata
    .align 4
.macro entry v
    .long stub_\v
.endm
stub_table:
    .set i, 0
    .rept 256
    .if i == 13
    .long gp_stub
    .else
    entry %i
    .endif
    .set i, i+1
    .endr

    .align 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff   /* 0x08: flat 32-bit code */
    .quad 0x00cf92000000ffff   /* 0x10: flat data */
gdt_desc:
    .word 23
    .long gdt

    .data
    .align 4
    .globl recover_eip, gp_count
recover_eip: .long 0
gp_count: .long 0
idt_desc:
    .word 256 * 8 - 1
    .long idt

    .bss
    .align 16
idt: .space 256 * 8
    .space 16384
stack_top:
    .section .note.GNU-stack, "", @progbits
