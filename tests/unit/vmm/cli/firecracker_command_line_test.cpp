#include "vmm/cli/firecracker_command_line.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "vmm/base/error.hpp"
#include "vmm/base/guest_address.hpp"

using namespace kvmlet;
using namespace kvmlet::cli;

namespace {

api::FirecrackerOptions options_of(std::vector<char const*> const& args) {
    Command command = parse_firecracker_command_line(std::span<char const* const>(args));
    REQUIRE(std::holds_alternative<FirecrackerCommand>(command));
    return std::get<FirecrackerCommand>(command).options;
}

std::string error_of(std::vector<char const*> const& args) {
    try {
        parse_firecracker_command_line(std::span<char const* const>(args));
    } catch (UsageError const& e) {
        return e.what();
    }
    return "no error";
}

}  // namespace

TEST_CASE("firecracker's flags fill the options, and the API socket has Firecracker's default",
          "[cli][firecracker]") {
    auto o = options_of({});
    CHECK(o.api_sock == "/run/firecracker.socket");
    CHECK_FALSE(o.config_file);
    o = options_of({"--api-sock", "/tmp/a.sock", "--config-file=vm.json", "--id", "vm-1", "--level", "Debug",
                    "--log-path", "log.txt", "--metadata", "md.json", "--boot-timer", "--no-seccomp",
                    "--start-time-us", "12", "--start-time-cpu-us", "3", "--parent-cpu-time-us", "4"});
    CHECK(o.api_sock == "/tmp/a.sock");
    CHECK(o.config_file == "vm.json");
    CHECK(o.id == "vm-1");
    CHECK(o.level == "Debug");
    CHECK(o.log_path == "log.txt");
    CHECK(o.metadata == "md.json");
    CHECK(o.seccomp == security::SeccompMode::off);
    CHECK(options_of({}).seccomp == security::SeccompMode::kill);
    o = options_of({"--no-api", "--config-file", "vm.json"});
    CHECK_FALSE(o.api_sock);
    CHECK_FALSE(o.show_level);
    CHECK_FALSE(o.module);
    o = options_of({"--show-level", "--show-log-origin", "--module", "devices/virtio/net"});
    CHECK(o.show_level);
    CHECK(o.show_log_origin);
    CHECK(o.module == "devices/virtio/net");
}

TEST_CASE("firecracker --version and --help stand alone", "[cli][firecracker]") {
    std::vector<char const*> version{"--api-sock", "s", "--version"};
    std::vector<char const*> help{"--help"};
    CHECK(std::holds_alternative<FirecrackerVersionCommand>(parse_firecracker_command_line(version)));
    CHECK(std::holds_alternative<FirecrackerHelpCommand>(parse_firecracker_command_line(help)));
    // Kata reads the version from the first line.
    std::string text = firecracker_version_text();
    CHECK(text.starts_with("Firecracker v1."));
    CHECK(text.find("\nkvmlet ") != std::string::npos);
}

TEST_CASE("firecracker command-line errors are one line naming the flag", "[cli][firecracker]") {
    CHECK(error_of({"--no-api"}) == "--no-api needs --config-file");
    CHECK(error_of({"--bogus"}) == "unknown option --bogus (see firecracker --help)");
    CHECK(error_of({"--api-sock"}) == "--api-sock: missing value (--api-sock PATH)");
    CHECK(error_of({"--id", "a b"}) == "--id a b: 1 to 64 characters of A-Z, a-z, 0-9, - and _");
    CHECK(error_of({"--id", "a", "--id", "b"}) == "--id: given more than once");
    CHECK(error_of({"--no-api=1"}) == "--no-api takes no value");
    CHECK(error_of({"--no-api", "--api-sock", "x", "--config-file", "y"}) ==
          "--no-api and --api-sock contradict each other");
}

TEST_CASE("kvmlet firecracker and kvmlet run --config/--api-sock take the Firecracker way",
          "[cli][firecracker]") {
    std::vector<char const*> args{"firecracker", "--api-sock", "s"};
    Command command = parse_command_line(args, 16 * GiB);
    REQUIRE(std::holds_alternative<FirecrackerCommand>(command));
    CHECK(std::get<FirecrackerCommand>(command).options.api_sock == "s");

    args = {"run", "--config", "vm.json", "-v"};
    command = parse_command_line(args, 16 * GiB);
    REQUIRE(std::holds_alternative<FirecrackerCommand>(command));
    auto const& o = std::get<FirecrackerCommand>(command).options;
    CHECK(o.config_file == "vm.json");
    CHECK_FALSE(o.api_sock);  // kvmlet run serves no API unless asked
    CHECK(o.verbose);

    args = {"run", "--api-sock", "s", "--kernel", "k"};
    CHECK_THROWS_WITH(parse_command_line(args, 16 * GiB),
                      "--kernel: not with --config or --api-sock (the config file or the API sets it)");
}
