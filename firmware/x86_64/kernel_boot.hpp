#pragma once
// Loads a kernel the way a PC boot loader would: an ELF (a tiny guest or Linux's vmlinux) through
// the Linux 64-bit entry or, when the ELF carries the Xen PVH note, the PVH 32-bit entry; or a
// bzImage through its 64-bit entry. Writes everything the kernel reads at entry into guest RAM
// (kernel, initrd, command line, zero page or hvm_start_info, e820, MP table, GDT and page tables)
// and returns the boot vCPU's registers. ACPI tables are the caller's (acpi_tables.hpp): it passes
// on the RSDP's address and the ranges e820 must report reserved. Every failure throws one
// kvmlet::Error line ("kernel: ...", "initrd: ...", "cmdline: ...").
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "firmware/x86_64/e820.hpp"
#include "firmware/x86_64/initrd.hpp"
#include "firmware/x86_64/long_mode.hpp"
#include "vmm/base/guest_address.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

enum class EntryProtocol {
    automatic,  // PVH when the ELF has the PVH note, else linux64
    linux64,    // 64-bit entry, RSI = zero page (Documentation/arch/x86/boot.rst)
    pvh,        // 32-bit entry, EBX = hvm_start_info (Xen's PVH boot ABI); ELF kernels only
};

struct KernelBootConfig {
    std::span<std::byte const> kernel;  // ELF (tiny guest, vmlinux) or bzImage
    std::optional<std::span<std::byte const>> initrd;
    std::string cmdline;  // final: the VMM appends its own parts before calling
    std::uint32_t cpus = 1;
    EntryProtocol entry = EntryProtocol::automatic;
    // For the zero page's acpi_rsdp_addr and PVH's rsdp_paddr; none: the kernel scans for an RSDP.
    std::optional<GuestAddress> acpi_rsdp = {};
    // Besides the BIOS area, for e820 (the PCI ECAM window, when there is PCI).
    std::vector<E820Reservation> reserved = {};
};

struct KernelBoot {
    // 64-bit, paging on, RSI = zero page (linux64); or 32-bit protected mode, paging off,
    // RBX = hvm_start_info (pvh). The vCPU layer must load rbx and rsi as well as rip and rsp.
    BootCpuState cpu;
    char const* protocol;  // "linux64 (ELF)", "linux64 (bzImage)" or "pvh"
    // What the kernel occupies until it reads its memory map: an ELF's segments; a bzImage's
    // protected-mode code at 1 MiB up to the end of its decompression area (runtime start + init_size).
    GuestAddress kernel_start;
    GuestAddress kernel_end;
    std::optional<InitrdPlacement> initrd;
};

KernelBoot load_kernel(GuestMemory const& memory, KernelBootConfig const& config);

}  // namespace kvmlet::x86_64
