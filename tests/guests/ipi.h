/* The ipi guest's application-processor entry (ipi_trampoline.S), shared with ipi.c: a SIPI
 * starts an AP in real mode at ipi_trampoline; it switches to 64-bit mode with its own GDT (the
 * same selectors as kvmlet's boot GDT: 32-bit code 0x08, 64-bit code 0x10, data 0x18), the page
 * tables the BSP left in ipi_ap_cr3, and a stack of its own, then calls ap_main(APIC ID). */
#ifndef KVMLET_TESTS_GUESTS_IPI_H
#define KVMLET_TESTS_GUESTS_IPI_H

/* APIC IDs 0..15: all in x2APIC logical cluster 0 (SDM vol. 3A, 10.12.10.2). An AP with a larger
 * ID halts in the trampoline. */
#define IPI_MAX_CPUS 16
#define IPI_AP_STACK_SIZE 8192

#ifndef __ASSEMBLER__
#include <stdint.h>

extern char ipi_trampoline[];
/* CR3 for the APs (below 4 GiB: they load it in 32-bit mode); the BSP writes it before the SIPI. */
extern volatile uint32_t ipi_ap_cr3;

/* Called on each AP in 64-bit mode, interrupts off; never returns. */
__attribute__((noreturn)) void ap_main(uint32_t apic_id);
#endif

#endif
