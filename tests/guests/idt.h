/* An interrupt descriptor table for the tiny guests: 64-bit interrupt gates (Intel SDM vol. 3A,
 * 6.14.1) to entry stubs that save the caller-saved registers, call a C handler and return with
 * iretq. Vectors without a gate stay not-present: an exception there becomes a triple fault,
 * which kvmlet reports with a register dump. */
#ifndef KVMLET_TESTS_GUESTS_IDT_H
#define KVMLET_TESTS_GUESTS_IDT_H

#include <stdint.h>

/* IDT_ENTRY(entry, handler) defines `void entry(void)`, a stub for an interrupt gate that calls
 * the non-static `void handler(void)`. The CPU aligns RSP to 16 and pushes 5 qwords; 9 more
 * pushes keep the call aligned (SysV ABI). */
#define IDT_ENTRY(entry, handler)                                                                  \
    void entry(void);                                                                              \
    __asm__(".text\n"                                                                              \
            ".global " #entry "\n" #entry ":\n"                                                    \
            "  push %rax; push %rcx; push %rdx; push %rsi; push %rdi\n"                            \
            "  push %r8; push %r9; push %r10; push %r11\n"                                         \
            "  call " #handler "\n"                                                                \
            "  pop %r11; pop %r10; pop %r9; pop %r8\n"                                             \
            "  pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %rax\n"                                 \
            "  iretq\n")

/* Points `vector` at `entry` (an IDT_ENTRY stub). */
void idt_set_gate(uint8_t vector, void (*entry)(void));
/* Loads the table (lidt); gates may still be added afterwards. */
void idt_load(void);

#endif
