#include "devices/legacy/boot_timer.hpp"

#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <string>

#include "vmm/base/log.hpp"

namespace kvmlet {
namespace {

constexpr std::uint64_t port = 0x3f0;

std::uint64_t g_ticks = 0;

// Each call is one millisecond and a half later in wall time, and 0.25 ms later in CPU time.
ProcessTimes fake_clock() noexcept {
    ++g_ticks;
    return ProcessTimes{g_ticks * 1500, g_ticks * 250};
}

void out(BootTimer& timer, std::uint64_t offset, std::uint8_t value) {
    std::byte b{value};
    timer.write(IoAccess{port + offset, offset}, std::span<std::byte const>(&b, 1));
}

// Runs `body` with stderr (where log lines go) redirected to a temporary file; returns what it wrote.
template <class F>
std::string capture_stderr(F&& body) {
    std::FILE* file = std::tmpfile();
    REQUIRE(file != nullptr);
    int saved = ::dup(STDERR_FILENO);
    ::dup2(::fileno(file), STDERR_FILENO);
    auto old_level = log::level();
    log::set_level(log::Level::info);
    body();
    log::set_level(old_level);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::string text;
    std::rewind(file);
    for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file)) text.push_back(static_cast<char>(c));
    std::fclose(file);
    return text;
}

}  // namespace

TEST_CASE("Only the byte 123 written at offset 0 records a boot time") {
    g_ticks = 0;
    BootTimer timer(&fake_clock);
    std::string logged = capture_stderr([&] {
        out(timer, 0, 122);
        out(timer, 1, 123);
        std::array<std::byte, 2> wide{std::byte{123}, std::byte{0}};
        timer.write(IoAccess{port, 0}, std::span<std::byte const>(wide));
        CHECK(timer.count() == 0);
        CHECK_FALSE(timer.first().has_value());
        out(timer, 0, 123);
    });
    CHECK(timer.count() == 1);
    REQUIRE(timer.first().has_value());
    CHECK(timer.first()->wall_us == 1500);
    CHECK(timer.first()->cpu_us == 250);
    CHECK(logged == "kvmlet: Guest-boot-time =   1500 us 1 ms,    250 CPU us 0 CPU ms\n");
}

TEST_CASE("Every boot-complete write logs one line and counts, while first() keeps the first") {
    g_ticks = 0;
    BootTimer timer(&fake_clock);
    std::string logged = capture_stderr([&] {
        out(timer, 0, 123);
        out(timer, 0, 123);
        out(timer, 0, 123);
    });
    CHECK(timer.count() == 3);
    CHECK(timer.first()->wall_us == 1500);
    CHECK(logged ==
          "kvmlet: Guest-boot-time =   1500 us 1 ms,    250 CPU us 0 CPU ms\n"
          "kvmlet: Guest-boot-time =   3000 us 3 ms,    500 CPU us 0 CPU ms\n"
          "kvmlet: Guest-boot-time =   4500 us 4 ms,    750 CPU us 0 CPU ms\n");
}

TEST_CASE("Boot timer reads return zeros at any width") {
    BootTimer timer(&fake_clock);
    std::array<std::byte, 4> data{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    timer.read(IoAccess{0xc000'0000, 0}, data);
    CHECK(data == std::array<std::byte, 4>{});
}

TEST_CASE("The default boot timer clock measures from process start") {
    BootTimer timer;
    capture_stderr([&] { out(timer, 0, 123); });
    REQUIRE(timer.first().has_value());
    ProcessTimes later = since_process_start();
    CHECK(timer.first()->wall_us <= later.wall_us);
    CHECK(timer.first()->cpu_us <= later.cpu_us);
    CHECK(timer.first()->cpu_us > 0);
}

}  // namespace kvmlet
