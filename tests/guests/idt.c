/* An interrupt descriptor table for the tiny guests (see idt.h). */
#include "idt.h"

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attributes;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct idt_gate) == 16, "SDM vol. 3A, figure 6-8");

enum {
    IDT_VECTORS = 256,
    KERNEL_CODE_SELECTOR = 0x10,        /* kvmlet's boot GDT: 64-bit code */
    GATE_PRESENT_INTERRUPT_DPL0 = 0x8e, /* P=1, DPL=0, type 0xE: interrupts stay off in the handler */
};

static struct idt_gate idt[IDT_VECTORS] __attribute__((aligned(16)));

enum { EXCEPTION_VECTORS = 32 };

/* One stub per exception vector: the CPU pushes an error code for #DF, #TS, #NP, #SS, #GP, #PF,
 * #AC, #CP, #VC and #SX (SDM vol. 3A, table 6-1); the others push a 0 in its place, so that every
 * stub hands exception_entry the same frame. */
extern void (*const exception_stubs[EXCEPTION_VECTORS])(void);
void (*idt_exception_handler)(const struct exception_frame *); /* read by exception_entry */
__asm__(".text\n"
        ".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
        "exception_stub_\\v:\n"
        "  .if \\v != 8 && (\\v < 10 || \\v > 14) && \\v != 17 && \\v != 21 && \\v != 29 && \\v != 30\n"
        "  push $0\n"
        "  .endif\n"
        "  push $\\v\n"
        "  jmp exception_entry\n"
        ".endr\n"
        "exception_entry:\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call *idt_exception_handler(%rip)\n"
        "1: cli\n"
        "  hlt\n"
        "  jmp 1b\n"
        ".section .rodata\n"
        ".balign 8\n"
        "exception_stubs:\n"
        ".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
        "  .quad exception_stub_\\v\n"
        ".endr\n"
        ".text\n");

void idt_set_gate(uint8_t vector, void (*entry)(void))
{
    uint64_t handler = (uint64_t)(uintptr_t)entry;
    struct idt_gate *gate = &idt[vector];
    gate->offset_low = (uint16_t)handler;
    gate->selector = KERNEL_CODE_SELECTOR;
    gate->ist = 0;
    gate->type_attributes = GATE_PRESENT_INTERRUPT_DPL0;
    gate->offset_mid = (uint16_t)(handler >> 16);
    gate->offset_high = (uint32_t)(handler >> 32);
    gate->reserved = 0;
}

void idt_load(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) idtr = {sizeof idt - 1, (uint64_t)(uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(idtr) : "memory");
}

void idt_catch_exceptions(void (*handler)(const struct exception_frame *), uint8_t ist)
{
    idt_exception_handler = handler;
    for (uint32_t v = 0; v < EXCEPTION_VECTORS; ++v) {
        idt_set_gate((uint8_t)v, exception_stubs[v]);
        idt[v].ist = ist;
    }
}
