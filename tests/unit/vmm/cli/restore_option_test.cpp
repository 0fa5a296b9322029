// kvmlet run --restore SNAPSHOT --mem PATH (issue 17): parsed into MachineConfig::restore, without
// --kernel; the options that shape the machine are refused with it.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "vmm/base/error.hpp"
#include "vmm/base/guest_address.hpp"
#include "vmm/cli/command_line.hpp"

using namespace kvmlet;
using namespace kvmlet::cli;

namespace {

std::string usage_error(std::vector<char const*> const& args) {
    try {
        parse_command_line(args, 16 * GiB);
    } catch (UsageError const& e) {
        return e.what();
    }
    FAIL("no UsageError for these arguments");
    return {};
}

}  // namespace

TEST_CASE("kvmlet run --restore with --mem needs no kernel and names both files") {
    Command command = parse_command_line(
        std::vector<char const*>{"run", "--restore", "vm.snap", "--mem=vm.mem", "--console", "none"},
        16 * GiB);
    REQUIRE(std::holds_alternative<RunCommand>(command));
    MachineConfig const& config = std::get<RunCommand>(command).config;
    REQUIRE(config.restore.has_value());
    CHECK(config.restore->state == "vm.snap");
    CHECK(config.restore->memory == "vm.mem");
    CHECK(config.restore->resume);
    CHECK(config.console == ConsoleKind::none);
}

TEST_CASE("kvmlet run --restore refuses a missing --mem and the options the snapshot sets") {
    CHECK(usage_error({"run", "--restore", "vm.snap"}) ==
          "--restore: missing --mem PATH (the snapshot's memory file)");
    CHECK(usage_error({"run", "--kernel", "k", "--mem", "vm.mem"}) == "--mem: only with --restore");
    CHECK(usage_error({"run", "--restore", "vm.snap", "--mem", "m", "--kernel", "k"}) ==
          "--kernel: not with --restore (the snapshot sets the machine)");
    CHECK(usage_error({"run", "--restore", "vm.snap", "--mem", "m", "--cpus", "2"}) ==
          "--cpus: not with --restore (the snapshot sets the machine)");
    CHECK(usage_error({"run", "--restore", "vm.snap", "--mem", "m", "--api-sock", "s"}) ==
          "--restore: not with --config or --api-sock (the config file or the API sets it)");
    CHECK(usage_error({"run", "--restore", ""}) == "--restore '': empty path");
}
