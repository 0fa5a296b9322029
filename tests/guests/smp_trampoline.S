/* Real-mode entry of the application processors of the smp guest (see smp.c).
 *
 * The SIPI starts each AP here with CS = 0x1000 (base 0x10000, where guest.ld puts this
 * section), IP = 0, interrupts off. Every AP takes the console lock, prints "cpu <APIC ID> up",
 * counts itself in ap_count, releases the lock and halts with interrupts disabled. The stack
 * below is shared, so it is used only while holding the lock. */
    .section .trampoline, "awx"
    .code16
    .globl ap_trampoline
ap_trampoline:
    cli
    movw %cs, %ax
    movw %ax, %ds
    movw %ax, %ss
    movw $(ap_stack_top - ap_trampoline), %sp

1:  movl $1, %eax                         /* xchg with memory is always locked */
    xchgl %eax, (ap_lock - ap_trampoline)
    testl %eax, %eax
    jnz 1b

    movw $(msg_cpu - ap_trampoline), %si
    call ap_puts
    movl $1, %eax                         /* CPUID leaf 1: EBX[31:24] = initial APIC ID */
    xorl %ecx, %ecx
    cpuid
    shrl $24, %ebx
    movw %bx, %ax
    call ap_put_dec
    movw $(msg_up - ap_trampoline), %si
    call ap_puts
    incl (ap_count - ap_trampoline)
    movl $0, (ap_lock - ap_trampoline)

2:  cli
    hlt
    jmp 2b

/* %al: the byte to send on COM1. Preserves every register but the flags. */
ap_putc:
    pushw %ax
    pushw %cx
    pushw %dx
    movb %al, %ah
    movw $0x3fd, %dx                      /* COM1 line status register */
    movw $0xffff, %cx                     /* bounded wait for THR empty */
1:  inb %dx, %al
    testb $0x20, %al
    jnz 2f
    decw %cx
    jnz 1b
2:  movw $0x3f8, %dx                      /* COM1 transmit holding register */
    movb %ah, %al
    outb %al, %dx
    popw %dx
    popw %cx
    popw %ax
    ret

/* %ds:%si: a NUL-terminated string. Clobbers %si and %al. */
ap_puts:
1:  movb (%si), %al
    testb %al, %al
    jz 2f
    call ap_putc
    incw %si
    jmp 1b
2:  ret

/* %ax: the number to print in decimal. Clobbers %ax, %bx, %cx, %dx. */
ap_put_dec:
    xorw %cx, %cx
    movw $10, %bx
1:  xorw %dx, %dx
    divw %bx
    pushw %dx
    incw %cx
    testw %ax, %ax
    jnz 1b
2:  popw %ax
    addb $'0', %al
    call ap_putc
    decw %cx
    jnz 2b
    ret
trampoline_code_end:                      /* data from here on (check_guest_elf.sh) */

    .balign 4
    .globl ap_lock, ap_count
ap_lock:    .long 0                       /* console lock, shared with the BSP */
ap_count:   .long 0                       /* APs that reported, written under ap_lock */
msg_cpu:    .asciz "cpu "
msg_up:     .asciz " up\r\n"

    .balign 16
ap_stack:   .skip 256
ap_stack_top:

    .section .note.GNU-stack, "", @progbits
