/* Entry of every tiny guest. kvmlet starts the BSP here in 64-bit mode with paging on
 * (identity map of the low 4 GiB), interrupts off and RSP in kvmlet's own low memory; switch
 * to a stack inside the image and call the guest's C code. */
    .section .text.start, "ax"
    .code64
    .globl _start
_start:
    movq $stack_top, %rsp
    xorl %ebp, %ebp
    call guest_main
1:  cli
    hlt
    jmp 1b

    .section .bss
    .balign 16
stack_bottom:
    .skip 16384
stack_top:

    .section .note.GNU-stack, "", @progbits
