#include "vmm/vcpu/x86_64/cpuid.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>
#include <vector>

namespace kvmlet::x86_64 {
namespace {

// Bit positions from the SDM (Vol. 2A, CPUID), spelled out here so the test does not trust the
// code's own constants.
constexpr std::uint32_t bit(unsigned n) {
    return std::uint32_t{1} << n;
}
constexpr std::uint32_t leaf1_ecx_sse3 = bit(0), leaf1_ecx_fma = bit(12), leaf1_ecx_popcnt = bit(23),
                        leaf1_ecx_xsave = bit(26), leaf1_ecx_osxsave = bit(27), leaf1_ecx_avx = bit(28),
                        leaf1_ecx_hypervisor = bit(31);
constexpr std::uint32_t leaf1_edx_sse2 = bit(26), leaf1_edx_htt = bit(28);
constexpr std::uint32_t ext1_edx_pdpe1gb = bit(26), ext1_edx_rdtscp = bit(27), ext1_edx_lm = bit(29);
constexpr std::uint32_t level_type_smt = 1, level_type_core = 2;

kvm_cpuid_entry2 entry(std::uint32_t function, std::uint32_t index, std::uint32_t eax, std::uint32_t ebx,
                       std::uint32_t ecx, std::uint32_t edx) {
    kvm_cpuid_entry2 e{};
    e.function = function;
    e.index = index;
    e.eax = eax;
    e.ebx = ebx;
    e.ecx = ecx;
    e.edx = edx;
    return e;
}

// A host that supports everything in its leaves: every feature bit set, so a template that clears
// a bit shows up as a zero.
std::vector<kvm_cpuid_entry2> supported() {
    std::vector<kvm_cpuid_entry2> s;
    s.push_back(entry(0x0, 0, 0x1f, 0x756e'6547, 0x6c65'746e, 0x4965'6e69));  // "GenuineIntel"
    // Leaf 1 EBX: APIC ID 0x77 and 8 logical CPUs from the host, CLFLUSH size 8, brand index 0x34.
    s.push_back(entry(0x1, 0, 0x000a'0655, 0x7708'0834, 0x7fff'ffff, 0xffff'ffff & ~leaf1_edx_htt));
    // Leaf 4: an L1 data cache (type 1, level 1) and an L3 (type 3, level 3), host shares both.
    s.push_back(entry(0x4, 0, 0xfc00'4121, 0x01c0'003f, 0x3f, 0));
    s.push_back(entry(0x4, 3, 0xfc3f'c163, 0x04c0'003f, 0x7fff, 0x6));
    s.push_back(entry(0x7, 0, 0x2, 0xffff'ffff, 0xffff'ffff, 0xffff'ffff));
    s.push_back(entry(0xb, 0, 0x1, 0x2, 0x100, 0x99));
    s.push_back(entry(0xb, 1, 0x5, 0x10, 0x201, 0x99));
    s.push_back(entry(0xb, 2, 0x0, 0x0, 0x2, 0x99));
    s.push_back(entry(0xd, 0, 0x2e7, 0xa88, 0xa88, 0));
    s.push_back(entry(0xd, 1, 0xf, 0, 0, 0));
    s.push_back(entry(0x1f, 0, 0x1, 0x2, 0x100, 0x99));
    s.push_back(entry(0x1f, 1, 0x5, 0x10, 0x201, 0x99));
    s.push_back(entry(0x8000'0001, 0, 0, 0, 0xffff'ffff, 0xffff'ffff));
    s.push_back(entry(0x8000'0008, 0, 0x3030, 0, 0x0000'f00f, 0));
    return s;
}

std::optional<kvm_cpuid_entry2> find(std::vector<kvm_cpuid_entry2> const& entries, std::uint32_t function,
                                     std::uint32_t index = 0) {
    for (auto const& e : entries)
        if (e.function == function && e.index == index) return e;
    return std::nullopt;
}

std::vector<kvm_cpuid_entry2> build(std::uint32_t apic_id, std::uint32_t cpus,
                                    CpuTemplate t = CpuTemplate::host) {
    auto s = supported();
    return build_cpuid(s, t, CpuTopology{apic_id, cpus});
}

}  // namespace

TEST_CASE("leaf 1 EBX carries the vCPU's APIC ID and the vCPU count, keeping its low half") {
    auto leaf1 = find(build(5, 8), 0x1);
    REQUIRE(leaf1);
    CHECK(leaf1->ebx >> 24 == 5);
    CHECK(((leaf1->ebx >> 16) & 0xff) == 8);
    CHECK((leaf1->ebx & 0xffff) == 0x0834);

    auto single = find(build(0, 1), 0x1);
    REQUIRE(single);
    CHECK(single->ebx >> 24 == 0);
    CHECK(((single->ebx >> 16) & 0xff) == 1);
}

TEST_CASE("leaf 1 sets HTT only for more than one vCPU") {
    auto one = find(build(0, 1), 0x1);
    auto two = find(build(1, 2), 0x1);
    REQUIRE(one);
    REQUIRE(two);
    CHECK((one->edx & leaf1_edx_htt) == 0);
    CHECK((two->edx & leaf1_edx_htt) != 0);
}

TEST_CASE("leaf 1 HTT is cleared for one vCPU even when the host reports it") {
    auto s = supported();
    for (auto& e : s)
        if (e.function == 1) e.edx |= leaf1_edx_htt;
    auto leaf1 = find(build_cpuid(s, CpuTemplate::host, CpuTopology{0, 1}), 0x1);
    REQUIRE(leaf1);
    CHECK((leaf1->edx & leaf1_edx_htt) == 0);
}

TEST_CASE("leaf 1 always sets the hypervisor bit") {
    auto s = supported();
    for (auto& e : s)
        if (e.function == 1) e.ecx &= ~leaf1_ecx_hypervisor;
    for (auto t : {CpuTemplate::host, CpuTemplate::minimal}) {
        auto leaf1 = find(build_cpuid(s, t, CpuTopology{0, 1}), 0x1);
        REQUIRE(leaf1);
        CHECK((leaf1->ecx & leaf1_ecx_hypervisor) != 0);
    }
}

TEST_CASE("leaf 0xB describes one thread per core and all vCPUs as cores of one package") {
    auto entries = build(3, 4);
    auto smt = find(entries, 0xb, 0);
    auto core = find(entries, 0xb, 1);
    auto end = find(entries, 0xb, 2);
    REQUIRE(smt);
    REQUIRE(core);
    REQUIRE(end);

    CHECK(smt->eax == 0);
    CHECK(smt->ebx == 1);
    CHECK(smt->ecx == ((level_type_smt << 8) | 0));
    CHECK(smt->edx == 3);

    CHECK(core->eax == 2);
    CHECK(core->ebx == 4);
    CHECK(core->ecx == ((level_type_core << 8) | 1));
    CHECK(core->edx == 3);

    // Level type 0 ends the enumeration; the x2APIC ID is reported at every subleaf.
    CHECK(end->eax == 0);
    CHECK(end->ebx == 0);
    CHECK(end->ecx == 2);
    CHECK(end->edx == 3);
}

TEST_CASE("leaf 0xB core level shift is the number of bits that hold every APIC ID") {
    struct Case {
        std::uint32_t cpus;
        std::uint32_t shift;
    };
    auto c = GENERATE(Case{1, 0}, Case{2, 1}, Case{3, 2}, Case{4, 2}, Case{5, 3}, Case{64, 6});
    CAPTURE(c.cpus);
    auto core = find(build(c.cpus - 1, c.cpus), 0xb, 1);
    REQUIRE(core);
    CHECK(core->eax == c.shift);
    CHECK(core->ebx == c.cpus);
    CHECK(core->edx == c.cpus - 1);
}

TEST_CASE("leaf 0x1F gets the same topology as leaf 0xB") {
    auto entries = build(6, 7);
    for (std::uint32_t index : {0u, 1u}) {
        auto b = find(entries, 0xb, index);
        auto f = find(entries, 0x1f, index);
        REQUIRE(b);
        REQUIRE(f);
        CHECK(f->eax == b->eax);
        CHECK(f->ebx == b->ebx);
        CHECK(f->ecx == b->ecx);
        CHECK(f->edx == 6);
    }
}

TEST_CASE("leaf 4 reports the vCPU count as cores per package and shares only the L3") {
    auto entries = build(0, 4);
    auto l1 = find(entries, 0x4, 0);
    auto l3 = find(entries, 0x4, 3);
    REQUIRE(l1);
    REQUIRE(l3);
    CHECK(l1->eax >> 26 == 3);
    CHECK(((l1->eax >> 14) & 0xfff) == 0);
    CHECK((l1->eax & 0x3fff) == 0x0121);  // cache type and level kept
    CHECK(l3->eax >> 26 == 3);
    CHECK(((l3->eax >> 14) & 0xfff) == 3);
    CHECK((l3->eax & 0x3fff) == 0x0163);
    CHECK(l3->ebx == 0x04c0'003f);  // geometry untouched
    CHECK(l3->ecx == 0x7fff);
}

TEST_CASE("leaf 4 cores field for one and for 64 vCPUs") {
    auto one = find(build(0, 1), 0x4, 3);
    auto many = find(build(0, 64), 0x4, 3);
    REQUIRE(one);
    REQUIRE(many);
    CHECK(one->eax >> 26 == 0);
    CHECK(((one->eax >> 14) & 0xfff) == 0);
    CHECK(many->eax >> 26 == 63);
    CHECK(((many->eax >> 14) & 0xfff) == 63);
}

TEST_CASE("leaf 0x80000008 ECX reports the core count and APIC ID size") {
    auto ext8 = find(build(0, 6), 0x8000'0008);
    REQUIRE(ext8);
    CHECK((ext8->ecx & 0xff) == 5);
    CHECK(((ext8->ecx >> 12) & 0xf) == 3);
    CHECK(ext8->eax == 0x3030);
}

TEST_CASE("the minimal template clears leaf 7 and the AVX and XSAVE bits and drops leaf 0xD") {
    auto entries = build(0, 1, CpuTemplate::minimal);
    auto leaf7 = find(entries, 0x7);
    REQUIRE(leaf7);
    CHECK(leaf7->eax == 0);
    CHECK(leaf7->ebx == 0);
    CHECK(leaf7->ecx == 0);
    CHECK(leaf7->edx == 0);

    auto leaf1 = find(entries, 0x1);
    REQUIRE(leaf1);
    CHECK((leaf1->ecx & leaf1_ecx_avx) == 0);
    CHECK((leaf1->ecx & leaf1_ecx_xsave) == 0);
    CHECK((leaf1->ecx & leaf1_ecx_osxsave) == 0);
    CHECK((leaf1->ecx & leaf1_ecx_fma) == 0);
    CHECK((leaf1->ecx & leaf1_ecx_popcnt) == 0);

    CHECK_FALSE(find(entries, 0xd, 0));
    CHECK_FALSE(find(entries, 0xd, 1));

    auto ext1 = find(entries, 0x8000'0001);
    REQUIRE(ext1);
    CHECK((ext1->edx & ext1_edx_rdtscp) == 0);
    CHECK((ext1->edx & ext1_edx_pdpe1gb) == 0);
}

TEST_CASE("the minimal template keeps the x86-64 baseline") {
    auto entries = build(0, 2, CpuTemplate::minimal);
    auto leaf1 = find(entries, 0x1);
    auto ext1 = find(entries, 0x8000'0001);
    REQUIRE(leaf1);
    REQUIRE(ext1);
    CHECK((leaf1->edx & leaf1_edx_sse2) != 0);
    CHECK((leaf1->ecx & leaf1_ecx_sse3) != 0);
    CHECK((leaf1->edx & leaf1_edx_htt) != 0);
    CHECK((ext1->edx & ext1_edx_lm) != 0);
    // Leaves it does not filter, and their order, are kept; leaf 0xD goes (2 entries) and the
    // topology leaves 0xB and 0x1F get three subleaves each (the fake host offers 3 and 2).
    REQUIRE(entries.size() == supported().size() - 2 + 1);
    CHECK(entries[0].function == 0x0);
    CHECK(entries[0].ebx == 0x756e'6547);
}

TEST_CASE("the minimal template cannot add a feature the host lacks") {
    auto s = supported();
    for (auto& e : s)
        if (e.function == 1) e.edx &= ~leaf1_edx_sse2;
    auto leaf1 = find(build_cpuid(s, CpuTemplate::minimal, CpuTopology{0, 1}), 0x1);
    REQUIRE(leaf1);
    CHECK((leaf1->edx & leaf1_edx_sse2) == 0);
}

TEST_CASE("the host template passes feature leaves through") {
    auto entries = build(0, 1, CpuTemplate::host);
    REQUIRE(entries.size() == supported().size() + 1);  // leaf 0x1F: subleaves 0-2, not 0-1
    auto leaf7 = find(entries, 0x7);
    auto leaf1 = find(entries, 0x1);
    REQUIRE(leaf7);
    REQUIRE(leaf1);
    CHECK(leaf7->ebx == 0xffff'ffff);
    CHECK((leaf1->ecx & leaf1_ecx_avx) != 0);
    CHECK(find(entries, 0xd, 0));
    auto ext1 = find(entries, 0x8000'0001);
    REQUIRE(ext1);
    CHECK(ext1->edx == 0xffff'ffff);
}

TEST_CASE("leaf 0xB has three subleaves even when the host offers only the first") {
    std::vector<kvm_cpuid_entry2> s{entry(0x0, 0, 0xd, 0, 0, 0), entry(0xb, 0, 0, 0, 0, 1)};
    auto entries = build_cpuid(s, CpuTemplate::host, CpuTopology{3, 4});
    auto core = find(entries, 0xb, 1);
    auto end = find(entries, 0xb, 2);
    REQUIRE(core);
    REQUIRE(end);
    CHECK(core->ebx == 4);
    CHECK(core->edx == 3);
    CHECK((core->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0);
    CHECK(((end->ecx >> 8) & 0xff) == 0);
}

TEST_CASE("leaf 0x8000001E gives each vCPU its own core on node 0") {
    std::vector<kvm_cpuid_entry2> s{entry(0x8000'001e, 0, 0x55, 0x0101, 0x0303, 0)};
    auto amd = find(build_cpuid(s, CpuTemplate::host, CpuTopology{5, 8}), 0x8000'001e);
    REQUIRE(amd);
    CHECK(amd->eax == 5);
    CHECK(amd->ebx == 5);
    CHECK(amd->ecx == 0);
}

TEST_CASE("the TSC frequency goes into leaf 0x40000010 and the hypervisor's maximum leaf covers it") {
    std::vector<kvm_cpuid_entry2> s{entry(0x4000'0000, 0, 0x4000'0001, 0x4b4d'564b, 0x564b'4d56, 0x4d),
                                    entry(0x4000'0010, 0, 1, 2, 0, 0)};
    auto entries = build_cpuid(s, CpuTemplate::host, CpuTopology{0, 1}, 2'445'404u);
    auto base = find(entries, 0x4000'0000);
    REQUIRE(base);
    CHECK(base->eax == 0x4000'0010);
    CHECK(std::count_if(entries.begin(), entries.end(),
                        [](auto const& e) { return e.function == 0x4000'0010; }) == 1);
    auto timing = find(entries, 0x4000'0010);
    REQUIRE(timing);
    CHECK(timing->eax == 2'445'404u);
    CHECK(timing->ebx == 1'000'000u);
}

TEST_CASE("without a TSC frequency or hypervisor leaves no timing leaf is added") {
    std::vector<kvm_cpuid_entry2> with_base{entry(0x4000'0000, 0, 0x4000'0001, 0, 0, 0)};
    CHECK_FALSE(find(build_cpuid(with_base, CpuTemplate::host, CpuTopology{0, 1}), 0x4000'0010));
    std::vector<kvm_cpuid_entry2> no_base{entry(0x0, 0, 0xd, 0, 0, 0)};
    CHECK_FALSE(find(build_cpuid(no_base, CpuTemplate::host, CpuTopology{0, 1}, 1000u), 0x4000'0010));
}

}  // namespace kvmlet::x86_64
