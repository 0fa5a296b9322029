/* Runs the two instructions Linux executes at every boot that this development host cannot emulate
 * at CPL0 (/work/shared/HOST.md): int3 (Linux's int3_selftest) and fwait (fpu__drop). kvmlet's
 * host-compatibility mode recovers both: int3 is stepped over and #BP injected, so the handler
 * below must run exactly once; fwait with no pending x87 exception is stepped over. On real KVM
 * both run natively with the same output. */
#include "guest.h"

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attributes;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

enum {
    VECTOR_BREAKPOINT = 3,
    KERNEL_CODE_SELECTOR = 0x10,          /* kvmlet's boot GDT: 64-bit code */
    GATE_PRESENT_INTERRUPT_DPL0 = 0x8e,   /* P=1, DPL=0, type 0xE (SDM Vol. 3A, 6.14.1) */
};

static struct idt_gate idt[32] __attribute__((aligned(16)));
volatile uint32_t breakpoints;

void breakpoint_handler(void) { breakpoints++; }
void breakpoint_entry(void);

/* The CPU aligns RSP to 16 and pushes 5 qwords; 9 more pushes keep the call aligned. */
__asm__(".text\n"
        ".global breakpoint_entry\n"
        "breakpoint_entry:\n"
        "  push %rax; push %rcx; push %rdx; push %rsi; push %rdi\n"
        "  push %r8; push %r9; push %r10; push %r11\n"
        "  call breakpoint_handler\n"
        "  pop %r11; pop %r10; pop %r9; pop %r8\n"
        "  pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %rax\n"
        "  iretq\n");

static void install_breakpoint_gate(void)
{
    uint64_t handler = (uint64_t)(uintptr_t)breakpoint_entry;
    struct idt_gate *gate = &idt[VECTOR_BREAKPOINT];
    gate->offset_low = (uint16_t)handler;
    gate->selector = KERNEL_CODE_SELECTOR;
    gate->type_attributes = GATE_PRESENT_INTERRUPT_DPL0;
    gate->offset_mid = (uint16_t)(handler >> 16);
    gate->offset_high = (uint32_t)(handler >> 32);
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) idtr = {sizeof idt - 1, (uint64_t)(uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

void guest_main(void)
{
    install_breakpoint_gate();
    __asm__ volatile("int3" ::: "memory");
    serial_puts(breakpoints == 1 ? "breakpoint handled once\r\n" : "breakpoint count wrong\r\n");
    __asm__ volatile("fwait" ::: "memory");
    serial_puts("fwait passed\r\n");
    guest_reset();
}
