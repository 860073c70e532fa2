/* Multiboot v1 entry of the mbtest kernel (32-bit protected mode, paging
 * off, eax = 0x2BADB002, ebx = info block; the stack is ours to set up). */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* modules page aligned, memory info wanted */

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
    push %ebx
    push %eax
    call mb_main          /* never returns: it writes isa-debug-exit */
1:  hlt
    jmp 1b

    .bss
    .align 16
    .space 16384
stack_top:
    .section .note.GNU-stack, "", @progbits
