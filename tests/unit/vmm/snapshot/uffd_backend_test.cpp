// The Uffd backend's handshake (Firecracker's handler protocol): the regions as JSON, and a
// handler that is not there is one error line.
#include "vmm/snapshot/uffd_backend.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "vmm/base/error.hpp"

namespace kvmlet::snapshot {

TEST_CASE("The Uffd handshake describes each region: its host address, size, file offset and page size") {
    std::array<RamRange, 2> ranges{RamRange{GuestAddress{0}, 1 * MiB},
                                   RamRange{GuestAddress{4 * MiB}, 2 * MiB}};
    GuestMemory memory = GuestMemory::create(ranges);
    auto const regions = nlohmann::json::parse(uffd_regions_json(memory));
    REQUIRE(regions.is_array());
    REQUIRE(regions.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        auto const& r = regions[i];
        CHECK(r.at("base_host_virt_addr").get<std::uint64_t>() ==
              reinterpret_cast<std::uintptr_t>(memory.regions()[i].host));
        CHECK(r.at("size").get<std::uint64_t>() == memory.regions()[i].size);
        CHECK(r.at("page_size").get<std::uint64_t>() == 4096);
        CHECK(r.at("page_size_kib").get<std::uint64_t>() == 4);
    }
    CHECK(regions[0].at("offset").get<std::uint64_t>() == 0);
    CHECK(regions[1].at("offset").get<std::uint64_t>() == 1 * MiB);  // after the first in the file
}

TEST_CASE("The Uffd backend without a handler listening, or with a socket path too long, is an error") {
    GuestMemory memory = GuestMemory::create(std::array<RamRange, 1>{RamRange{GuestAddress{0}, 1 * MiB}});
    CHECK_THROWS_WITH(hand_to_uffd_handler(memory, "/nonexistent/kvmlet-uffd.sock"),
                      Catch::Contains("no page-fault handler listening on /nonexistent/kvmlet-uffd.sock"));
    CHECK_THROWS_WITH(hand_to_uffd_handler(memory, std::string(200, 'x')), Catch::Contains("longer than"));
}

}  // namespace kvmlet::snapshot
