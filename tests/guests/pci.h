/* PCI configuration space for the tiny guests, bus 0 function 0 only: through configuration
 * mechanism #1 (ports 0xCF8/0xCFC, PCI Local Bus 3.0 §3.2.2.3.2) and through ECAM (PCIe 5.0
 * §7.2.2), the capability list (§6.7) and BAR sizing (§6.2.5.1). */
#ifndef KVMLET_TESTS_GUESTS_PCI_H
#define KVMLET_TESTS_GUESTS_PCI_H

#include <stdint.h>

/* kvmlet's bus 0 ECAM (firmware/x86_64/layout.hpp: pci_ecam_start). */
#define PCI_ECAM_BASE 0xe0000000ul

enum {
    PCI_SLOTS = 32,
    PCI_ABSENT = 0xffffffffu, /* what an absent function's registers read */

    /* §6.1 type 0 header. */
    PCI_VENDOR_ID = 0x00,
    PCI_COMMAND = 0x04,
    PCI_STATUS = 0x06,
    PCI_CLASS_REVISION = 0x08, /* revision ID, then the 3-byte class code */
    PCI_BAR0 = 0x10,
    PCI_CAPABILITIES_POINTER = 0x34,
    PCI_HEADER_SIZE = 0x40, /* capabilities start after it */

    /* §6.2.2 Command, §6.2.3 Status. */
    PCI_COMMAND_MEMORY = 1 << 1,
    PCI_COMMAND_BUS_MASTER = 1 << 2,
    PCI_COMMAND_INTX_DISABLE = 1 << 10,
    PCI_STATUS_CAPABILITIES = 1 << 4,

    /* §6.2.5.1 memory BAR flags. */
    PCI_BAR_FLAGS = 0xf,
    PCI_BAR_IO = 1 << 0,
    PCI_BAR_TYPE_MASK = 3 << 1,
    PCI_BAR_TYPE_64BIT = 2 << 1,

    /* Capability IDs (PCI Code and ID Assignment Specification §2); a capability's next pointer
     * is its byte 1. */
    PCI_CAP_VENDOR = 0x09,
    PCI_CAP_MSIX = 0x11,
    PCI_CAP_NEXT = 1,
    PCI_CAP_MAX = 48, /* (256 - 64) / 4: more entries than that means a loop */
};

/* Mechanism #1: any dword-aligned register of function 0 of `slot` on bus 0. */
uint32_t pci_read32(uint8_t slot, uint8_t offset);
void pci_write32(uint8_t slot, uint8_t offset, uint32_t value);
uint16_t pci_read16(uint8_t slot, uint8_t offset);
void pci_write16(uint8_t slot, uint8_t offset, uint16_t value);
uint8_t pci_read8(uint8_t slot, uint8_t offset);

/* ECAM: the same registers as memory. */
uint32_t pci_ecam_read32(uint8_t slot, uint16_t offset);

/* The first capability's offset, 0 when there is none; then the one after `cap`. */
uint8_t pci_first_capability(uint8_t slot);
uint8_t pci_next_capability(uint8_t slot, uint8_t cap);

/* The size of memory BAR `index` (a 64-bit BAR takes `index` and `index + 1`) by writing
 * all-ones and reading back the mask, with memory decoding off meanwhile; the BAR and the
 * command register are restored. 0 for an unimplemented or I/O BAR. */
uint64_t pci_bar_size(uint8_t slot, uint8_t index);
/* The address memory BAR `index` holds, and a new one for it (memory decoding should be off). */
uint64_t pci_bar_address(uint8_t slot, uint8_t index);
void pci_set_bar_address(uint8_t slot, uint8_t index, uint64_t address);

#endif
