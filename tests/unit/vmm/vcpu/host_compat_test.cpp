#include "vmm/vcpu/host_compat.hpp"

#include <asm/kvm_para.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace kvmlet {
namespace {

// Bit numbers from the SDM (CPUID leaf 1 ECX) and Linux's Documentation/virt/kvm/x86/cpuid.rst.
constexpr std::uint32_t leaf1_ecx_cx16 = 1u << 13;
constexpr std::uint32_t kvm_pv_cleared = (1u << 7) | (1u << 9) | (1u << 11) | (1u << 12) | (1u << 13) |
                                         (1u << 14) | (1u << 16);  // PV_UNHALT .. HC_MAP_GPA_RANGE

// A directory that exists for the test's lifetime.
struct TempDir {
    std::string path;
    TempDir() {
        char name[] = "/tmp/kvmlet-host-compat-XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path = name;
    }
    ~TempDir() { ::rmdir(path.c_str()); }
};

kvm_cpuid_entry2 entry(std::uint32_t function, std::uint32_t value) {
    kvm_cpuid_entry2 e{};
    e.function = function;
    e.eax = e.ebx = e.ecx = e.edx = value;
    return e;
}

std::vector<kvm_cpuid_entry2> all_ones() {
    return {entry(0x1, 0xffff'ffff), entry(0x7, 0xffff'ffff), entry(KVM_CPUID_SIGNATURE, 0xffff'ffff),
            entry(KVM_CPUID_FEATURES, 0xffff'ffff)};
}

}  // namespace

TEST_CASE("host-compat mode is pvm when the module directory exists") {
    TempDir dir;
    CHECK(detect_host_compat(dir.path.c_str()) == HostCompat::pvm);
}

TEST_CASE("host-compat mode is none when the module directory is absent or not a directory") {
    TempDir dir;
    std::string missing = dir.path + "/kvm_pvm";
    CHECK(detect_host_compat(missing.c_str()) == HostCompat::none);

    std::string file = dir.path + "/file";
    FILE* f = std::fopen(file.c_str(), "w");
    REQUIRE(f);
    std::fclose(f);
    CHECK(detect_host_compat(file.c_str()) == HostCompat::none);
    ::unlink(file.c_str());
}

TEST_CASE("host-compat modes are named for the command line") {
    CHECK(std::string(name(HostCompat::pvm)) == "pvm");
    CHECK(std::string(name(HostCompat::none)) == "none");
}

TEST_CASE("no host-compat mode adds nothing to the kernel command line") {
    CHECK(compat_cmdline(HostCompat::none).empty());
}

TEST_CASE("pvm mode keeps the guest kernel off instructions the host cannot run") {
    std::string cmdline = compat_cmdline(HostCompat::pvm);
    auto has = [&](std::string const& word) {
        CAPTURE(cmdline, word);
        return (" " + cmdline + " ").find(" " + word + " ") != std::string::npos;
    };
    CHECK(has("noxsave"));
    CHECK(has("nofsgsbase"));
    CHECK(has("clearcpuid=popcnt,smap,erms,fsrm,ssse3,sse4_1,sse4_2,aes,pclmulqdq,sha_ni"));
    CHECK(has("kvmlet.pvm_quirks"));
    CHECK(cmdline.front() != ' ');
    CHECK(cmdline.back() != ' ');
}

TEST_CASE("pvm mode hides CX16 and the KVM paravirtual features the host cannot serve") {
    auto entries = all_ones();
    adjust_cpuid(HostCompat::pvm, entries);
    REQUIRE(entries.size() == 4);

    CHECK(entries[0].ecx == ~leaf1_ecx_cx16);
    CHECK(entries[0].eax == 0xffff'ffff);
    CHECK(entries[0].edx == 0xffff'ffff);

    CHECK(entries[3].eax == ~kvm_pv_cleared);
    CHECK((entries[3].eax & (1u << KVM_FEATURE_CLOCKSOURCE2)) != 0);
    CHECK((entries[3].eax & (1u << KVM_FEATURE_MSI_EXT_DEST_ID)) != 0);
    CHECK(entries[3].ebx == 0xffff'ffff);
    CHECK(entries[3].edx == 0xffff'ffff);

    // Leaves it has no business with are untouched.
    for (std::size_t i : {std::size_t{1}, std::size_t{2}}) {
        CAPTURE(i);
        CHECK(entries[i].eax == 0xffff'ffff);
        CHECK(entries[i].ebx == 0xffff'ffff);
        CHECK(entries[i].ecx == 0xffff'ffff);
        CHECK(entries[i].edx == 0xffff'ffff);
    }
}

TEST_CASE("without host-compat mode CPUID is left alone") {
    auto entries = all_ones();
    adjust_cpuid(HostCompat::none, entries);
    for (auto const& e : entries) {
        CAPTURE(e.function);
        CHECK(e.eax == 0xffff'ffff);
        CHECK(e.ebx == 0xffff'ffff);
        CHECK(e.ecx == 0xffff'ffff);
        CHECK(e.edx == 0xffff'ffff);
    }
}

}  // namespace kvmlet
