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
