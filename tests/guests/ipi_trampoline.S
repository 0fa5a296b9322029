/* Application-processor entry of the ipi guest (see ipi.h): real mode -> 32-bit protected mode
 * -> 64-bit long mode (Intel SDM vol. 3A, 9.9.1 and 9.8.5), then ap_main(APIC ID) on a stack of
 * its own. Every AP runs this at once, so nothing here is written: the stack is picked by APIC ID.
 * Only the real-mode part lives in .trampoline (below 1 MiB, where a SIPI can start it); the
 * 32-bit and 64-bit parts are in .text. The 32-bit part avoids the instructions whose encoding
 * means something else in 64-bit mode (moffs moves, ljmp), so check_guest_elf.sh's 64-bit
 * disassembly of .text decodes it as the instructions it is. */
#include "ipi.h"

#define CODE32_SELECTOR 0x08
#define CODE64_SELECTOR 0x10
#define DATA_SELECTOR 0x18
#define CR0_PE 0x1
#define CR0_MP 0x2
#define CR0_ET 0x10
#define CR0_NE 0x20
#define CR0_PG 0x80000000
/* The BSP's CR0 as kvmlet sets it: caches on. INIT leaves CD and NW set (SDM vol. 3A, table 9-1);
 * or-ing PE into that would run the AP with caching disabled. */
#define CR0_PROTECTED (CR0_PE | CR0_MP | CR0_ET | CR0_NE)
#define CR4_PAE 0x20
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100

    .section .trampoline, "awx"
    .code16
    .globl ipi_trampoline
ipi_trampoline:                           /* CS = 0x1000 (base 0x10000), IP = 0, interrupts off */
    cli
    movw %cs, %ax
    movw %ax, %ds
    lgdtl (ap_gdtr - ipi_trampoline)
    movl $CR0_PROTECTED, %eax
    movl %eax, %cr0
    ljmpl $CODE32_SELECTOR, $ap_protected_mode
trampoline_code_end:                      /* data from here on (check_guest_elf.sh) */

    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00cf9b000000ffff              /* 0x08: 32-bit code, flat 4 GiB */
    .quad 0x00af9b000000ffff              /* 0x10: 64-bit code */
    .quad 0x00cf93000000ffff              /* 0x18: data, flat 4 GiB */
ap_gdt_end:
    .balign 4
    .globl ipi_ap_cr3
ipi_ap_cr3: .long 0
ap_gdtr:
    .word ap_gdt_end - ap_gdt - 1
    .long ap_gdt                          /* linear address: lgdtl in real mode reads 32 bits */

    .text
    .code32
ap_protected_mode:
    movl $DATA_SELECTOR, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $ipi_ap_cr3, %ebx
    movl (%ebx), %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl $1, %eax                         /* CPUID leaf 1: EBX[31:24] = initial APIC ID */
    xorl %ecx, %ecx
    cpuid
    shrl $24, %ebx
    cmpl $IPI_MAX_CPUS, %ebx
    jae 1f
    leal 1(%ebx), %eax                    /* top of this AP's stack: ap_stacks + (id + 1) * size */
    imull $IPI_AP_STACK_SIZE, %eax
    leal ap_stacks(%eax), %esp
    movl %cr0, %eax
    orl $CR0_PG, %eax
    movl %eax, %cr0
    pushl $CODE64_SELECTOR                /* far return = far jump, without the ljmp opcode */
    pushl $ap_long_mode
    lret
1:  cli
    hlt
    jmp 1b

    .code64
ap_long_mode:
    movl %esp, %esp                       /* zero the upper halves: undefined after the switch */
    movl %ebx, %edi
    xorl %ebp, %ebp
    call ap_main

    .bss
    .balign 16
ap_stacks:
    .skip IPI_MAX_CPUS * IPI_AP_STACK_SIZE

    .section .note.GNU-stack, "", @progbits
