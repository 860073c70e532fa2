/* Entry points, interrupt stubs and the ring-3 transitions of the guest
 * runtime (see rt.h). Every CPU enters _start under the ssi boot
 * convention: rdi = boot info, rsi = cpu index. */
#define RT_STACK_SHIFT 14 /* 16 KiB kernel stack per CPU */
#define STUB_SIZE 32

    .code64
    .section .text.boot, "ax"
    .globl _start
_start:
    cli
    cmp $16, %rsi                /* RT_MAX_CPUS: never run off the stack array */
    jae 2f
    lea rt_kernel_stacks(%rip), %rsp
    lea 1(%rsi), %rax
    shl $RT_STACK_SHIFT, %rax
    add %rax, %rsp
    call rt_start_cpu            /* (boot_info, cpu); does not return */
2:  hlt
    jmp 2b

/* Copied to the trampoline page (SIPI vector V = page >> 12). Works under
 * both AP start conventions:
 *  - ssi: the AP enters in 64-bit mode at the page (rdi/rsi already set);
 *  - real hardware / QEMU: the AP enters in real mode at V:0000; the 16-bit
 *    path goes straight to long mode with the boot page tables and GDT.
 * The first bytes decode in both modes and branch on which one runs:
 * 64-bit: xor eax; REX.W test rax,rax -> ZF=1; 16-bit: xor ax; dec ax;
 * test ax,ax -> ZF=0. The BSP patches the data fields before SIPI. */
    .globl rt_ap_stub, rt_ap_stub_end, rt_ap_gdtr, rt_ap_cr3, rt_ap_far, rt_ap_boot_info
    .globl rt_ap_long_real
    .code64
rt_ap_stub:
    .byte 0x31, 0xC0              /* xor %eax,%eax  |  xor %ax,%ax */
    .byte 0x48                    /* REX.W          |  dec %ax */
    .byte 0x85, 0xC0              /* test %rax,%rax |  test %ax,%ax */
    .byte 0x74, (ap_long_ssi - 1f) /* jz: taken only in 64-bit mode */
1:  .byte 0xEB, (ap_real - 2f)     /* jmp short (real mode) */
2:
ap_long_ssi:
    movabs $_start, %rax
    jmp *%rax

    .code16
ap_real:
    cli
    mov %cs, %ax
    mov %ax, %ds
    lgdtl (rt_ap_gdtr - rt_ap_stub)
    mov $0x20, %eax               /* CR4.PAE */
    mov %eax, %cr4
    movl (rt_ap_cr3 - rt_ap_stub), %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx         /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax                /* PE and PG at once: real -> long mode */
    or $0x80000001, %eax
    mov %eax, %cr0
    ljmpl *(rt_ap_far - rt_ap_stub)

    .code64
rt_ap_long_real:                  /* runs at the trampoline page, CS = 0x08 */
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov rt_ap_boot_info(%rip), %rdi
    movabs $0xFEE00020, %rax      /* LAPIC ID = cpu index (boot_info.h) */
    mov (%rax), %esi
    shr $24, %esi
    movabs $_start, %rax
    jmp *%rax

    .align 8
rt_ap_boot_info: .quad 0
rt_ap_far: .long 0                /* trampoline + (rt_ap_long_real - rt_ap_stub) */
    .word 0x08
rt_ap_gdtr: .word 0
    .long 0
rt_ap_cr3: .long 0
rt_ap_stub_end:

    .text
/* 256 interrupt stubs, STUB_SIZE bytes apart: push a dummy error code where
 * the CPU pushes none, then the vector. */
    .globl rt_stubs
    .align STUB_SIZE
rt_stubs:
    .set vec, 0
    .rept 256
    .align STUB_SIZE
    .if vec == 3
    testb $3, 8(%rsp)            /* int3 from ring 3: a user task finished */
    jnz rt_user_return
    .endif
    .if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp rt_trap_common
    .set vec, vec + 1
    .endr

rt_trap_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi               /* struct rt_frame* (16-byte aligned here) */
    call rt_trap
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp                /* vector + error code */
    iretq

/* uint64_t rt_enter_user(fn, arg, user_stack_top, uint64_t* tss_rsp0):
 * saves the kernel context on this stack, points TSS.rsp0 just below it,
 * and irets to CPL3 at rt_user_trampoline. */
    .globl rt_enter_user
rt_enter_user:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rax
    and $-16, %rsp               /* the CPU 16-aligns rsp0 anyway: keep it exact */
    push %rax                    /* saved kernel rsp */
    push %rax                    /* padding */
    mov %rsp, (%rcx)
    pushq $0x2b                  /* ss: user data */
    push %rdx                    /* rsp: user stack */
    pushfq
    andq $0x200, (%rsp)          /* keep IF, clear the rest */
    orq $0x2, (%rsp)
    pushq $0x33                  /* cs: user code */
    lea rt_user_trampoline(%rip), %rax
    push %rax
    mov %rdi, %rax
    mov %rsi, %rdi
    iretq

rt_user_trampoline:              /* CPL3 */
    call *%rax
    int3                         /* back to ring 0; result in rax */
    ud2

/* int3 from CPL3: the frame (rip, cs, rflags, rsp, ss) sits right below the
 * rsp0 that rt_enter_user saved: unwind to its caller with rax intact. */
rt_user_return:
    add $40, %rsp
    pop %r11
    pop %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret

    .section .bss
    .align 4096
    .globl rt_kernel_stacks
rt_kernel_stacks:
    .skip (16 + 1) << RT_STACK_SHIFT
    .section .note.GNU-stack, "", @progbits
