/* An interrupt descriptor table for the tiny guests: 64-bit interrupt gates (Intel SDM vol. 3A,
 * 6.14.1) to entry stubs that save the caller-saved registers, call a C handler and return with
 * iretq. Vectors without a gate stay not-present: an exception there becomes a triple fault,
 * which kvmlet reports with a register dump (on AMD hosts KVM resets the vCPU at the triple
 * fault, so that dump shows the reset state, not the fault: idt_catch_exceptions() says more). */
#ifndef KVMLET_TESTS_GUESTS_IDT_H
#define KVMLET_TESTS_GUESTS_IDT_H

#include <stdint.h>

/* What the CPU pushes on an interrupt without an error code in 64-bit mode (SDM vol. 3A, 6.14.2). A
 * handler may change `rip`: iretq returns there. */
struct interrupt_frame {
    uint64_t rip, cs, rflags, rsp, ss;
};

/* IDT_ENTRY(entry, handler) defines `void entry(void)`, a stub for an interrupt gate that calls
 * the non-static handler, `void handler(void)` or `void handler(struct interrupt_frame *)`. The CPU
 * aligns RSP to 16 and pushes 5 qwords; 9 more pushes keep the call aligned (SysV ABI), and the
 * frame is right above them. */
#define IDT_ENTRY(entry, handler)                                                                  \
    void entry(void);                                                                              \
    __asm__(".text\n"                                                                              \
            ".global " #entry "\n" #entry ":\n"                                                    \
            "  push %rax; push %rcx; push %rdx; push %rsi; push %rdi\n"                            \
            "  push %r8; push %r9; push %r10; push %r11\n"                                         \
            "  lea 72(%rsp), %rdi\n"                                                               \
            "  call " #handler "\n"                                                                \
            "  pop %r11; pop %r10; pop %r9; pop %r8\n"                                             \
            "  pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %rax\n"                                 \
            "  iretq\n")

/* An exception as idt_catch_exceptions() hands it over: the vector, the error code (0 for the
 * vectors without one), then what the CPU pushed. */
struct exception_frame {
    uint64_t vector, error_code;
    struct interrupt_frame cpu;
};

/* Gates for the 32 exception vectors to stubs that call `handler`, which must not return. With
 * `ist` 1..7 the CPU switches to the stack in that slot of its TSS's interrupt stack table first
 * (SDM vol. 3A, 6.14.5), so that an exception caused by a bad RSP is reported too (the caller loads
 * a TSS on every CPU); 0 keeps the current stack. */
void idt_catch_exceptions(void (*handler)(const struct exception_frame *), uint8_t ist);

/* Points `vector` at `entry` (an IDT_ENTRY stub). */
void idt_set_gate(uint8_t vector, void (*entry)(void));
/* Loads the table (lidt); gates may still be added afterwards. */
void idt_load(void);

#endif
