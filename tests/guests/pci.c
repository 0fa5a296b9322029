/* PCI configuration space for the tiny guests (see pci.h). */
#include "pci.h"

#include "guest.h"

enum {
    CONFIG_ADDRESS = 0xcf8,
    CONFIG_DATA = 0xcfc,
    CONFIG_ENABLE = 1u << 31,
    ECAM_SLOT_SHIFT = 15, /* bus << 20 | device << 15 | function << 12 | register */
};

static inline void outl(uint16_t port, uint32_t value)
{
    __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t value;
    __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline void outw(uint16_t port, uint16_t value)
{
    __asm__ volatile("outw %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint16_t inw(uint16_t port)
{
    uint16_t value;
    __asm__ volatile("inw %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

/* Selects the dword holding `offset`; the data ports then reach its bytes at offset % 4. */
static void select_register(uint8_t slot, uint8_t offset)
{
    outl(CONFIG_ADDRESS, CONFIG_ENABLE | (uint32_t)slot << 11 | (offset & 0xfcu));
}

uint32_t pci_read32(uint8_t slot, uint8_t offset)
{
    select_register(slot, offset);
    return inl(CONFIG_DATA);
}

void pci_write32(uint8_t slot, uint8_t offset, uint32_t value)
{
    select_register(slot, offset);
    outl(CONFIG_DATA, value);
}

uint16_t pci_read16(uint8_t slot, uint8_t offset)
{
    select_register(slot, offset);
    return inw((uint16_t)(CONFIG_DATA + (offset & 2)));
}

void pci_write16(uint8_t slot, uint8_t offset, uint16_t value)
{
    select_register(slot, offset);
    outw((uint16_t)(CONFIG_DATA + (offset & 2)), value);
}

uint8_t pci_read8(uint8_t slot, uint8_t offset)
{
    select_register(slot, offset);
    return inb((uint16_t)(CONFIG_DATA + (offset & 3)));
}

uint32_t pci_ecam_read32(uint8_t slot, uint16_t offset)
{
    return *(volatile uint32_t *)(PCI_ECAM_BASE + ((uintptr_t)slot << ECAM_SLOT_SHIFT) + offset);
}

uint8_t pci_first_capability(uint8_t slot)
{
    if (!(pci_read16(slot, PCI_STATUS) & PCI_STATUS_CAPABILITIES)) return 0;
    return pci_read8(slot, PCI_CAPABILITIES_POINTER) & 0xfc; /* §6.7: the low two bits are reserved */
}

uint8_t pci_next_capability(uint8_t slot, uint8_t cap)
{
    return pci_read8(slot, (uint8_t)(cap + PCI_CAP_NEXT)) & 0xfc;
}

static int bar_is_64bit(uint32_t low)
{
    return (low & PCI_BAR_TYPE_MASK) == PCI_BAR_TYPE_64BIT;
}

uint64_t pci_bar_address(uint8_t slot, uint8_t index)
{
    uint8_t reg = (uint8_t)(PCI_BAR0 + 4 * index);
    uint32_t low = pci_read32(slot, reg);
    uint64_t high = bar_is_64bit(low) ? pci_read32(slot, (uint8_t)(reg + 4)) : 0;
    return high << 32 | (low & ~(uint32_t)PCI_BAR_FLAGS);
}

void pci_set_bar_address(uint8_t slot, uint8_t index, uint64_t address)
{
    uint8_t reg = (uint8_t)(PCI_BAR0 + 4 * index);
    int is_64bit = bar_is_64bit(pci_read32(slot, reg));
    pci_write32(slot, reg, (uint32_t)address); /* the flag bits are read-only */
    if (is_64bit) pci_write32(slot, (uint8_t)(reg + 4), (uint32_t)(address >> 32));
}

uint64_t pci_bar_size(uint8_t slot, uint8_t index)
{
    uint8_t reg = (uint8_t)(PCI_BAR0 + 4 * index);
    uint32_t low = pci_read32(slot, reg);
    if (low & PCI_BAR_IO) return 0;
    int is_64bit = bar_is_64bit(low);
    uint32_t high = is_64bit ? pci_read32(slot, (uint8_t)(reg + 4)) : 0;
    uint16_t command = pci_read16(slot, PCI_COMMAND);
    pci_write16(slot, PCI_COMMAND, command & (uint16_t)~PCI_COMMAND_MEMORY);

    pci_write32(slot, reg, 0xffffffffu);
    uint64_t mask = pci_read32(slot, reg) & ~(uint32_t)PCI_BAR_FLAGS;
    if (is_64bit) {
        pci_write32(slot, (uint8_t)(reg + 4), 0xffffffffu);
        mask |= (uint64_t)pci_read32(slot, (uint8_t)(reg + 4)) << 32;
        pci_write32(slot, (uint8_t)(reg + 4), high);
    } else {
        mask |= 0xffffffff00000000ull; /* a 32-bit BAR's upper half reads as fixed zeros */
    }
    pci_write32(slot, reg, low);
    pci_write16(slot, PCI_COMMAND, command);
    return mask ? ~mask + 1 : 0;
}
