// Fuzz target: a Firecracker config file (vmm/api/vm_resources.cpp). The input is the file's text.
// Reading it may only fail with ConfigError; what it reads must survive the round trip through
// GET /vm/config's JSON (to_json, then read again: the same JSON), and building the machine's
// config from it may only fail with ConfigError.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "vmm/api/vm_resources.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    using namespace kvmlet::api;
    std::string_view text(reinterpret_cast<char const*>(data), size);
    VmResources resources;
    try {
        resources = read_vm_resources(parse_json(text, "fuzz"));
    } catch (ConfigError const&) {
        return 0;
    }
    Json once = to_json(resources);
    Json twice;
    try {
        twice = to_json(read_vm_resources(once));
    } catch (ConfigError const&) {
        std::abort();  // what kvmlet wrote, kvmlet must read back
    }
    if (once != twice) std::abort();
    try {
        (void)to_machine_config(resources);
    } catch (ConfigError const&) {
    }
    return 0;
}
