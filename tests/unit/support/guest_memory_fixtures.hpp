#pragma once
// Test helpers: guest memory for the loader tests, and reads from it that REQUIRE success.
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "firmware/x86_64/layout.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::test {

// One RAM range of `size` bytes at guest address 0: no MMIO hole, however large.
inline GuestMemory flat_ram(std::uint64_t size) {
    RamRange const ranges[] = {{GuestAddress{0}, size}};
    return GuestMemory::create(ranges);
}

// `size` bytes of RAM laid out as the x86-64 machine does: split around the 32-bit MMIO hole.
inline GuestMemory x86_ram(std::uint64_t size) {
    return GuestMemory::create(x86_64::ram_ranges(size));
}

// The T at guest address `at`; the read must succeed.
template <class T>
T guest(GuestMemory const& memory, std::uint64_t at) {
    auto const value = memory.read<T>(GuestAddress{at});
    REQUIRE(value);
    return *value;
}

// `size` bytes from guest address `at`; the read must succeed.
inline std::vector<std::byte> guest_bytes(GuestMemory const& memory, std::uint64_t at, std::size_t size) {
    std::vector<std::byte> out(size);
    REQUIRE(memory.read_bytes(GuestAddress{at}, out));
    return out;
}

}  // namespace kvmlet::test
