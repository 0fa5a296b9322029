#pragma once
// Test helpers: ELF64 images built in memory, for the loader tests.
#include <elf.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <vector>

namespace kvmlet::test {

inline std::vector<std::byte> pattern(std::size_t size, unsigned seed) {
    std::vector<std::byte> data(size);
    for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<std::byte>((seed + i * 7) & 0xff);
    return data;
}

// Builds an ELF64 x86-64 executable in memory: header, program headers, then each segment's data.
// `tamper` edits the headers after layout, before they are serialised, to make bad images.
class ElfBuilder {
public:
    using Tamper = std::function<void(Elf64_Ehdr&, std::span<Elf64_Phdr>)>;  // a span: no resizing

    ElfBuilder& entry(std::uint64_t vaddr) {
        entry_ = vaddr;
        return *this;
    }

    ElfBuilder& segment(std::uint64_t vaddr, std::uint64_t paddr, std::vector<std::byte> data,
                        std::uint64_t memsz, std::uint32_t type = PT_LOAD) {
        Elf64_Phdr ph{};
        ph.p_type = type;
        ph.p_flags = PF_R | PF_W | PF_X;
        ph.p_vaddr = vaddr;
        ph.p_paddr = paddr;
        ph.p_filesz = data.size();
        ph.p_memsz = memsz;
        ph.p_align = 0x1000;
        headers_.push_back(ph);
        data_.push_back(std::move(data));
        return *this;
    }

    std::vector<std::byte> build(Tamper const& tamper = {}) const {
        Elf64_Ehdr eh = header();
        std::vector<Elf64_Phdr> phs = headers_;
        std::uint64_t offset = sizeof(Elf64_Ehdr) + phs.size() * sizeof(Elf64_Phdr);
        for (std::size_t i = 0; i < phs.size(); ++i) {
            phs[i].p_offset = offset;
            offset += data_[i].size();
        }
        if (tamper) tamper(eh, phs);
        // One buffer of the final size (GCC 12 warns falsely about vector::insert of bytes).
        std::vector<std::byte> image(offset);
        std::memcpy(image.data(), &eh, sizeof eh);
        std::memcpy(image.data() + sizeof eh, phs.data(), phs.size() * sizeof(Elf64_Phdr));
        std::size_t at = sizeof eh + headers_.size() * sizeof(Elf64_Phdr);
        for (auto const& d : data_) {
            std::copy(d.begin(), d.end(), image.begin() + static_cast<std::ptrdiff_t>(at));
            at += d.size();
        }
        return image;
    }

private:
    Elf64_Ehdr header() const {
        Elf64_Ehdr eh{};
        std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
        eh.e_ident[EI_CLASS] = ELFCLASS64;
        eh.e_ident[EI_DATA] = ELFDATA2LSB;
        eh.e_ident[EI_VERSION] = EV_CURRENT;
        eh.e_type = ET_EXEC;
        eh.e_machine = EM_X86_64;
        eh.e_version = EV_CURRENT;
        eh.e_entry = entry_;
        eh.e_phoff = sizeof(Elf64_Ehdr);
        eh.e_ehsize = sizeof(Elf64_Ehdr);
        eh.e_phentsize = sizeof(Elf64_Phdr);
        eh.e_phnum = static_cast<std::uint16_t>(headers_.size());
        return eh;
    }

    std::uint64_t entry_ = 0;
    std::vector<Elf64_Phdr> headers_;
    std::vector<std::vector<std::byte>> data_;
};

}  // namespace kvmlet::test
