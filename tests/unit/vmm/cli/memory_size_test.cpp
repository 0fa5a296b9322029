#include "vmm/cli/memory_size.hpp"

#include <catch2/catch.hpp>

#include "vmm/base/guest_address.hpp"

using namespace kvmlet;
using namespace kvmlet::cli;

namespace {

std::uint64_t size_of(std::string_view text) {
    auto const size = parse_memory_size(text);
    INFO(text);
    REQUIRE(size.has_value());
    return *size;
}

std::string error_of(std::string_view text) {
    auto const size = parse_memory_size(text);
    INFO(text);
    REQUIRE_FALSE(size.has_value());
    return size.error();
}

}  // namespace

TEST_CASE("each unit letter is a power of 1024, in either case") {
    CHECK(size_of("3k") == 3 * KiB);
    CHECK(size_of("3K") == 3 * KiB);
    CHECK(size_of("3m") == 3 * MiB);
    CHECK(size_of("3G") == 3 * GiB);
    CHECK(size_of("3t") == 3 * 1024 * GiB);
}

TEST_CASE("a unit letter may be followed by B or iB, meaning the same") {
    CHECK(size_of("5KB") == 5 * KiB);
    CHECK(size_of("5KiB") == 5 * KiB);
    CHECK(size_of("5kib") == 5 * KiB);
    CHECK(size_of("5GIB") == 5 * GiB);
}

TEST_CASE("B alone means bytes and no unit means MiB") {
    CHECK(size_of("4097B") == 4097);
    CHECK(size_of("4097b") == 4097);
    CHECK(size_of("7") == 7 * MiB);
    CHECK(size_of("0") == 0);
}

TEST_CASE("sizes up to 2^64 - 1 bytes parse and anything larger is too large") {
    CHECK(size_of("18446744073709551615B") == UINT64_MAX);
    CHECK(error_of("18446744073709551616B") == "too large");
    CHECK(size_of("17592186044415") == UINT64_MAX / MiB * MiB);
    CHECK(error_of("17592186044416") == "too large");
    CHECK(size_of("16777215T") == 16777215 * (1024 * GiB));
    CHECK(error_of("16777216T") == "too large");
    CHECK(error_of("99999999999999999999999999T") == "too large");
}

TEST_CASE("text that is not a number with a known unit is not a size") {
    for (char const* bad : {"", "G", "x1G", "1X", "1GG", "1Gb ", " 1G", "+1G", "-1G", "1.5G", "1iB", "1Bi",
                            "1P", "0x10M", "99999999999999999999999999Q"}) {
        CHECK(error_of(bad) == "not a size (examples: 512M, 2G)");
    }
}

TEST_CASE("sizes are shown in the largest binary unit, to one decimal when needed") {
    CHECK(format_memory_size(0) == "0 B");
    CHECK(format_memory_size(1023) == "1023 B");
    CHECK(format_memory_size(1024) == "1 KiB");
    CHECK(format_memory_size(4 * KiB) == "4 KiB");
    CHECK(format_memory_size(128 * MiB) == "128 MiB");
    CHECK(format_memory_size(1536 * MiB) == "1.5 GiB");
    CHECK(format_memory_size(16357392 * KiB) == "15.6 GiB");
    CHECK(format_memory_size(2048 * GiB) == "2 TiB");
    CHECK(format_memory_size(UINT64_MAX) == "16 EiB");
}
