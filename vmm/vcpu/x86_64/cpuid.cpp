#include "vmm/vcpu/x86_64/cpuid.hpp"

#include <algorithm>
#include <bit>

namespace kvmlet::x86_64 {
namespace {

constexpr std::uint32_t bit(unsigned n) {
    return std::uint32_t{1} << n;
}

// Leaf 1 (Intel SDM Vol. 2A, CPUID, Table 3-10/3-11).
namespace leaf1 {
constexpr std::uint32_t ecx_sse3 = bit(0), ecx_ssse3 = bit(9), ecx_x2apic = bit(21),
                        ecx_tsc_deadline = bit(24), ecx_hypervisor = bit(31);
constexpr std::uint32_t edx_fpu = bit(0), edx_vme = bit(1), edx_de = bit(2), edx_pse = bit(3),
                        edx_tsc = bit(4), edx_msr = bit(5), edx_pae = bit(6), edx_mce = bit(7),
                        edx_cx8 = bit(8), edx_apic = bit(9), edx_sep = bit(11), edx_mtrr = bit(12),
                        edx_pge = bit(13), edx_mca = bit(14), edx_cmov = bit(15), edx_pat = bit(16),
                        edx_pse36 = bit(17), edx_clfsh = bit(19), edx_mmx = bit(23), edx_fxsr = bit(24),
                        edx_sse = bit(25), edx_sse2 = bit(26), edx_htt = bit(28);
}  // namespace leaf1
// Leaf 0x8000'0001 (AMD64 APM Vol. 3, E.4.2).
namespace ext1 {
constexpr std::uint32_t ecx_lahf = bit(0);
constexpr std::uint32_t edx_syscall = bit(11), edx_nx = bit(20), edx_lm = bit(29);
}  // namespace ext1

// The `minimal` template: the x86-64 baseline (psABI "x86-64" level) plus what a guest needs to
// know it is virtualised. No AVX, no XSAVE, no leaf 7 features.
constexpr std::uint32_t minimal_leaf1_ecx =
    leaf1::ecx_sse3 | leaf1::ecx_ssse3 | leaf1::ecx_x2apic | leaf1::ecx_tsc_deadline | leaf1::ecx_hypervisor;
constexpr std::uint32_t minimal_leaf1_edx =
    leaf1::edx_fpu | leaf1::edx_vme | leaf1::edx_de | leaf1::edx_pse | leaf1::edx_tsc | leaf1::edx_msr |
    leaf1::edx_pae | leaf1::edx_mce | leaf1::edx_cx8 | leaf1::edx_apic | leaf1::edx_sep | leaf1::edx_mtrr |
    leaf1::edx_pge | leaf1::edx_mca | leaf1::edx_cmov | leaf1::edx_pat | leaf1::edx_pse36 | leaf1::edx_clfsh |
    leaf1::edx_mmx | leaf1::edx_fxsr | leaf1::edx_sse | leaf1::edx_sse2 | leaf1::edx_htt;
constexpr std::uint32_t minimal_ext1_ecx = ext1::ecx_lahf;
constexpr std::uint32_t minimal_ext1_edx = ext1::edx_syscall | ext1::edx_nx | ext1::edx_lm;

// Leaf 0xB/0x1F level types (SDM: "V2 Extended Topology Enumeration Leaf").
constexpr std::uint32_t level_type_smt = 1, level_type_core = 2;

std::uint32_t bits_for(std::uint32_t count) {
    return count <= 1 ? 0 : std::bit_width(count - 1);
}

void set_topology_leaf1(kvm_cpuid_entry2& e, CpuTopology t) {
    e.ebx = (e.ebx & 0x0000'ffffu) | (t.apic_id << 24) | (std::min(t.cpu_count, 255u) << 16);
    e.ecx |= leaf1::ecx_hypervisor;
    if (t.cpu_count > 1)
        e.edx |= leaf1::edx_htt;
    else
        e.edx &= ~leaf1::edx_htt;
}

void set_topology_leaf4(kvm_cpuid_entry2& e, CpuTopology t) {
    // EAX[31:26]: cores per package - 1; EAX[25:14]: logical processors sharing this cache - 1.
    std::uint32_t cache_level = (e.eax >> 5) & 0x7;
    std::uint32_t sharing = cache_level >= 3 ? t.cpu_count - 1 : 0;
    e.eax = (e.eax & 0x3fffu) | ((sharing & 0xfffu) << 14) | (((t.cpu_count - 1) & 0x3fu) << 26);
}

// Leaf 0xB (and 0x1F when KVM offers it), subleaf `index`: SMT level (one thread per core), core
// level (all vCPUs are cores of one package), then an invalid level that ends the enumeration.
kvm_cpuid_entry2 extended_topology(std::uint32_t function, std::uint32_t index, CpuTopology t) {
    kvm_cpuid_entry2 e{};
    e.function = function;
    e.index = index;
    e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    e.edx = t.apic_id;
    switch (index) {
        case 0:
            e.ebx = 1;
            e.ecx = (level_type_smt << 8) | index;
            break;
        case 1:
            e.eax = bits_for(t.cpu_count);
            e.ebx = t.cpu_count;
            e.ecx = (level_type_core << 8) | index;
            break;
        default:
            e.ecx = index;
            break;
    }
    return e;
}

// Leaf 0x8000'001E, AMD's extended APIC ID and core/node identifiers (AMD APM Vol. 3, E.4.14):
// every vCPU is its own core of node 0.
void set_topology_amd(kvm_cpuid_entry2& e, CpuTopology t) {
    e.eax = t.apic_id;
    e.ebx = t.apic_id & 0xffu;  // core ID; threads per core - 1 = 0
    e.ecx = 0;                  // node 0, one node per processor
    e.edx = 0;
}

void apply_minimal(kvm_cpuid_entry2& e) {
    switch (e.function) {
        case 0x1:
            e.ecx &= minimal_leaf1_ecx;
            e.edx &= minimal_leaf1_edx;
            break;
        case 0x7:
            e.eax = e.ebx = e.ecx = e.edx = 0;
            break;
        case 0x8000'0001:
            e.ecx &= minimal_ext1_ecx;
            e.edx &= minimal_ext1_edx;
            break;
        default:
            break;
    }
}

constexpr std::uint32_t hypervisor_base_leaf = 0x4000'0000;
constexpr std::uint32_t hypervisor_timing_leaf = 0x4000'0010;
constexpr std::uint32_t kvm_lapic_bus_khz = 1'000'000;  // KVM's local APIC timer counts at 1 GHz

// Adds (or replaces) the timing leaf and raises the hypervisor's maximum leaf to include it.
void set_timing_leaf(std::vector<kvm_cpuid_entry2>& entries, std::uint32_t tsc_khz) {
    bool has_base = false;
    for (auto& e : entries) {
        if (e.function == hypervisor_base_leaf) {
            has_base = true;
            e.eax = std::max(e.eax, hypervisor_timing_leaf);
        }
    }
    if (!has_base) return;  // no hypervisor leaves at all: nowhere to announce it
    std::erase_if(entries, [](auto const& e) { return e.function == hypervisor_timing_leaf; });
    kvm_cpuid_entry2 timing{};
    timing.function = hypervisor_timing_leaf;
    timing.eax = tsc_khz;
    timing.ebx = kvm_lapic_bus_khz;
    entries.push_back(timing);
}

}  // namespace

std::vector<kvm_cpuid_entry2> build_cpuid(std::span<kvm_cpuid_entry2 const> supported,
                                          CpuTemplate cpu_template, CpuTopology topology,
                                          std::optional<std::uint32_t> tsc_khz) {
    std::vector<kvm_cpuid_entry2> entries;
    entries.reserve(supported.size());
    for (auto e : supported) {
        // No XSAVE in the minimal template, so its state-component leaf goes too.
        if (cpu_template == CpuTemplate::minimal && e.function == 0xd) continue;
        if (cpu_template == CpuTemplate::minimal) apply_minimal(e);
        switch (e.function) {
            case 0x1:
                set_topology_leaf1(e, topology);
                break;
            case 0x4:
                set_topology_leaf4(e, topology);
                break;
            case 0xb:
            case 0x1f:
                continue;  // replaced whole below: KVM may offer only subleaf 0
            case 0x8000'001e:
                set_topology_amd(e, topology);
                break;
            case 0x8000'0008:
                // ECX[7:0]: number of cores - 1; ECX[15:12]: APIC ID bits (AMD APM Vol. 3, E.4.7).
                e.ecx = (e.ecx & ~0xf0ffu) | (bits_for(topology.cpu_count) << 12) |
                        ((topology.cpu_count - 1) & 0xffu);
                break;
            default:
                break;
        }
        entries.push_back(e);
    }
    for (std::uint32_t function : {0xbu, 0x1fu}) {
        bool offered = std::any_of(supported.begin(), supported.end(),
                                   [&](auto const& e) { return e.function == function; });
        if (!offered) continue;
        for (std::uint32_t index = 0; index < 3; ++index)
            entries.push_back(extended_topology(function, index, topology));
    }
    if (tsc_khz) set_timing_leaf(entries, *tsc_khz);
    return entries;
}

}  // namespace kvmlet::x86_64
