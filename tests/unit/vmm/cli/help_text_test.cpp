#include "vmm/cli/help_text.hpp"

#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "vmm/cli/run_options.hpp"

using namespace kvmlet;
using namespace kvmlet::cli;

TEST_CASE("usage names the run command and --version") {
    std::string const text = usage();
    CHECK(text.starts_with("Usage: kvmlet run [OPTIONS]"));
    CHECK(text.find("kvmlet --version") != std::string::npos);
    CHECK(text.find("kvmlet run --help") != std::string::npos);
}

TEST_CASE("run help shows every option with its value name") {
    std::string const text = run_help();
    for (auto const& spec : run_options()) {
        INFO(spec.name);
        CHECK(text.find(fmt::format("{} {}", spec.name, spec.value_name)) != std::string::npos);
        if (!spec.short_name.empty())
            CHECK(text.find(fmt::format("{}, {}", spec.short_name, spec.name)) != std::string::npos);
    }
}

TEST_CASE("run help shows the defaults of a default MachineConfig") {
    std::string const text = run_help();
    CHECK(text.find("number of vCPUs, 1 to 64 (default: 1)") != std::string::npos);
    CHECK(text.find("(default: 128 MiB)") != std::string::npos);
    CHECK(text.find("(default: host)") != std::string::npos);
    CHECK(text.find("(default: exit)") != std::string::npos);
    CHECK(text.find("image (required)") != std::string::npos);
}

TEST_CASE("run help states the limits the parser enforces") {
    std::string const text = run_help();
    CHECK(text.find(fmt::format("at most {} bytes", max_cmdline_bytes)) != std::string::npos);
    CHECK(text.find(fmt::format("1 to {}", MachineConfig::max_cpus)) != std::string::npos);
    CHECK(text.find("from 4 MiB to host RAM, a multiple of 4 KiB") != std::string::npos);
}

TEST_CASE("run help lists the exit statuses and the console keys") {
    std::string const text = run_help();
    CHECK(text.find("Exit status:\n  0  guest powered off, reset or halted\n") != std::string::npos);
    CHECK(text.find("  1  setup error (file, image, host resource)\n") != std::string::npos);
    CHECK(text.find("  2  bad command line\n") != std::string::npos);
    CHECK(text.find("  3  guest crashed (triple fault, KVM internal error, emulation failure)\n") !=
          std::string::npos);
    CHECK(
        text.find(
            "Console: the serial port COM1 is on stdin/stdout; Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A") !=
        std::string::npos);
}
