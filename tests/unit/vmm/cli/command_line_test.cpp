#include "vmm/cli/command_line.hpp"

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "vmm/base/error.hpp"
#include "vmm/base/guest_address.hpp"

using namespace kvmlet;
using namespace kvmlet::cli;

namespace {

constexpr std::uint64_t host_memory = 16 * GiB;

Command parse(std::vector<char const*> const& args, std::uint64_t host = host_memory) {
    return parse_command_line(args, host);
}

MachineConfig run_config(std::vector<char const*> args, std::uint64_t host = host_memory) {
    args.insert(args.begin(), {"run", "--kernel", "vmlinux"});
    Command command = parse(args, host);
    REQUIRE(std::holds_alternative<RunCommand>(command));
    return std::get<RunCommand>(command).config;
}

// The message of the UsageError the arguments raise; fails the test if they raise none.
std::string usage_error(std::vector<char const*> const& args, std::uint64_t host = host_memory) {
    try {
        parse(args, host);
    } catch (UsageError const& e) {
        return e.what();
    }
    FAIL("no UsageError for these arguments");
    return {};
}

std::string run_error(std::vector<char const*> args, std::uint64_t host = host_memory) {
    args.insert(args.begin(), {"run", "--kernel", "vmlinux"});
    return usage_error(args, host);
}

}  // namespace

TEST_CASE("kvmlet run with only --kernel uses the MachineConfig defaults") {
    MachineConfig const config = run_config({});
    MachineConfig const defaults;
    CHECK(config.kernel == "vmlinux");
    CHECK(config.cmdline == defaults.cmdline);
    CHECK(config.cpus == defaults.cpus);
    CHECK(config.memory_bytes == defaults.memory_bytes);
    CHECK(config.cpu_template == defaults.cpu_template);
    CHECK(config.on_reboot == defaults.on_reboot);
    CHECK(config.verbose == defaults.verbose);
}

TEST_CASE("every run option is read in the --opt value form") {
    Command command =
        parse({"run", "--kernel", "/boot/bzImage", "--cmdline", "console=ttyS0 quiet", "--cpus", "4",
               "--memory", "1G", "--cpu-template", "minimal", "--on-reboot", "restart", "--verbose"});
    REQUIRE(std::holds_alternative<RunCommand>(command));
    MachineConfig const& config = std::get<RunCommand>(command).config;
    CHECK(config.kernel == "/boot/bzImage");
    CHECK(config.cmdline == "console=ttyS0 quiet");
    CHECK(config.cpus == 4);
    CHECK(config.memory_bytes == 1 * GiB);
    CHECK(config.cpu_template == CpuTemplate::minimal);
    CHECK(config.on_reboot == RebootAction::restart);
    CHECK(config.verbose);
}

TEST_CASE("every run option is read in the --opt=value form") {
    Command command =
        parse({"run", "--kernel=/boot/bzImage", "--cmdline=console=ttyS0 root=/dev/vda", "--cpus=64",
               "--memory=512MiB", "--cpu-template=minimal", "--on-reboot=restart"});
    REQUIRE(std::holds_alternative<RunCommand>(command));
    MachineConfig const& config = std::get<RunCommand>(command).config;
    CHECK(config.kernel == "/boot/bzImage");
    CHECK(config.cmdline == "console=ttyS0 root=/dev/vda");
    CHECK(config.cpus == 64);
    CHECK(config.memory_bytes == 512 * MiB);
    CHECK(config.cpu_template == CpuTemplate::minimal);
    CHECK(config.on_reboot == RebootAction::restart);
    CHECK_FALSE(config.verbose);
}

TEST_CASE("the enum options accept each of their choices") {
    CHECK(run_config({"--cpu-template", "host"}).cpu_template == CpuTemplate::host);
    CHECK(run_config({"--cpu-template", "minimal"}).cpu_template == CpuTemplate::minimal);
    CHECK(run_config({"--on-reboot", "exit"}).on_reboot == RebootAction::exit);
    CHECK(run_config({"--on-reboot", "restart"}).on_reboot == RebootAction::restart);
    CHECK(run_config({"--pit", "on"}).pit);
    CHECK_FALSE(run_config({"--pit", "off"}).pit);
    CHECK(run_config({}).pit);
}

TEST_CASE("option -v is short for --verbose") {
    CHECK(run_config({"-v"}).verbose);
}

TEST_CASE("options may come in any order, --kernel last") {
    Command command = parse({"run", "--cpus", "2", "-v", "--kernel", "k"});
    REQUIRE(std::holds_alternative<RunCommand>(command));
    CHECK(std::get<RunCommand>(command).config.kernel == "k");
    CHECK(std::get<RunCommand>(command).config.cpus == 2);
}

TEST_CASE("an option value may start with a single dash or be empty in the = form") {
    CHECK(run_config({"--cmdline", "-quiet"}).cmdline == "-quiet");
    CHECK(run_config({"--cmdline=--foo"}).cmdline == "--foo");
    CHECK(run_config({"--cmdline="}).cmdline.empty());
    CHECK(run_config({"--cmdline=a=b"}).cmdline == "a=b");
}

TEST_CASE("run --help and run -h ask for the run help, even without --kernel") {
    CHECK(std::holds_alternative<RunHelpCommand>(parse({"run", "--help"})));
    CHECK(std::holds_alternative<RunHelpCommand>(parse({"run", "-h"})));
    CHECK(std::holds_alternative<RunHelpCommand>(parse({"run", "--cpus", "2", "--help"})));
}

TEST_CASE("option --help, -h and --version are top-level commands") {
    CHECK(std::holds_alternative<HelpCommand>(parse({"--help"})));
    CHECK(std::holds_alternative<HelpCommand>(parse({"-h"})));
    CHECK(std::holds_alternative<VersionCommand>(parse({"--version"})));
}

TEST_CASE("top-level mistakes are usage errors that point at kvmlet --help") {
    CHECK(usage_error({}) == "missing command (see kvmlet --help)");
    CHECK(usage_error({"boot"}) == "unknown command boot (see kvmlet --help)");
    CHECK(usage_error({"--kernel", "k"}) == "unknown option --kernel (see kvmlet --help)");
    CHECK(usage_error({"--version", "run"}) == "unexpected argument run after --version");
    CHECK(usage_error({""}) == "unknown command '' (see kvmlet --help)");
}

TEST_CASE("an unknown run option names itself, without its value") {
    CHECK(run_error({"--foo"}) == "unknown option --foo (see kvmlet run --help)");
    CHECK(run_error({"--foo=bar"}) == "unknown option --foo (see kvmlet run --help)");
    CHECK(run_error({"-x"}) == "unknown option -x (see kvmlet run --help)");
    CHECK(run_error({"--Kernel", "k"}) == "unknown option --Kernel (see kvmlet run --help)");
}

TEST_CASE("a run argument that is not an option is rejected") {
    CHECK(run_error({"extra"}) == "unexpected argument extra (see kvmlet run --help)");
    CHECK(run_error({"-"}) == "unexpected argument - (see kvmlet run --help)");
}

TEST_CASE("an option without its value is a usage error showing the expected form") {
    CHECK(usage_error({"run", "--kernel"}) == "--kernel: missing value (--kernel PATH)");
    CHECK(run_error({"--cpus"}) == "--cpus: missing value (--cpus N)");
    CHECK(run_error({"--memory", "--cpus", "2"}) == "--memory: missing value (--memory SIZE)");
    CHECK(run_error({"--on-reboot"}) == "--on-reboot: missing value (--on-reboot exit|restart)");
}

TEST_CASE("a flag given a value is a usage error") {
    CHECK(run_error({"--verbose=yes"}) == "--verbose=yes: --verbose takes no value");
}

TEST_CASE("an option given twice is a usage error, whatever its spelling") {
    CHECK(run_error({"--kernel", "other"}) == "--kernel: given more than once");
    CHECK(run_error({"--cpus=1", "--cpus", "1"}) == "--cpus: given more than once");
    CHECK(run_error({"-v", "--verbose"}) == "--verbose: given more than once");
}

TEST_CASE("kvmlet run without --kernel is a usage error") {
    CHECK(usage_error({"run"}) == "missing --kernel PATH (see kvmlet run --help)");
    CHECK(usage_error({"run", "--cpus", "2"}) == "missing --kernel PATH (see kvmlet run --help)");
}

TEST_CASE("an empty --kernel path is a usage error") {
    CHECK(usage_error({"run", "--kernel="}) == "--kernel '': empty path");
    CHECK(usage_error({"run", "--kernel", ""}) == "--kernel '': empty path");
}

TEST_CASE("option --cpus takes a plain decimal from 1 to 64") {
    CHECK(run_config({"--cpus", "1"}).cpus == 1);
    CHECK(run_config({"--cpus", "64"}).cpus == 64);
    CHECK(run_config({"--cpus", "007"}).cpus == 7);
    CHECK(run_error({"--cpus", "0"}) == "--cpus 0: must be 1 to 64");
    CHECK(run_error({"--cpus", "65"}) == "--cpus 65: must be 1 to 64");
    CHECK(run_error({"--cpus", "99999999999999999999999"}) ==
          "--cpus 99999999999999999999999: must be 1 to 64");
}

TEST_CASE("option --cpus rejects anything but decimal digits") {
    CHECK(run_error({"--cpus", "abc"}) == "--cpus abc: not a number");
    CHECK(run_error({"--cpus="}) == "--cpus '': not a number");
    for (char const* bad : {"0x10", "+4", "-1", " 4", "4 ", "4.0", "2k", "99999999999999999999x"}) {
        INFO(bad);
        CHECK(run_error({"--cpus", bad}) == fmt::format("--cpus {}: not a number", bad));
    }
}

TEST_CASE("option --cmdline takes up to 4096 bytes, verbatim") {
    std::string const longest(4096, 'a');
    std::string const too_long(4097, 'a');
    CHECK(run_config({"--cmdline", longest.c_str()}).cmdline == longest);
    CHECK(run_error({"--cmdline", too_long.c_str()}) == "--cmdline: 4097 bytes, more than the 4096 allowed");
}

TEST_CASE("option --memory reads binary suffixes in any case, with or without B or iB") {
    CHECK(run_config({"--memory", "64M"}).memory_bytes == 64 * MiB);
    CHECK(run_config({"--memory", "2g"}).memory_bytes == 2 * GiB);
    CHECK(run_config({"--memory", "512MB"}).memory_bytes == 512 * MiB);
    CHECK(run_config({"--memory", "512mib"}).memory_bytes == 512 * MiB);
    CHECK(run_config({"--memory", "8192K"}).memory_bytes == 8 * MiB);
    CHECK(run_config({"--memory", "8388608B"}).memory_bytes == 8 * MiB);
}

TEST_CASE("a bare --memory number is MiB, as in QEMU -m") {
    CHECK(run_config({"--memory", "256"}).memory_bytes == 256 * MiB);
}

TEST_CASE("option --memory must be at least 4 MiB") {
    CHECK(run_config({"--memory", "4M"}).memory_bytes == 4 * MiB);
    CHECK(run_config({"--memory", "4096K"}).memory_bytes == 4 * MiB);
    CHECK(run_error({"--memory", "4092K"}) == "--memory 4092K: must be at least 4 MiB");
    CHECK(run_error({"--memory", "0"}) == "--memory 0: must be at least 4 MiB");
}

TEST_CASE("option --memory must be a whole number of 4 KiB pages") {
    CHECK(run_config({"--memory", "4100K"}).memory_bytes == 4100 * KiB);
    CHECK(run_error({"--memory", "4097K"}) == "--memory 4097K: must be a multiple of 4 KiB");
    CHECK(run_error({"--memory", "4194305B"}) == "--memory 4194305B: must be a multiple of 4 KiB");
}

TEST_CASE("option --memory values too large for 64 bits are usage errors, not wrapped") {
    CHECK(run_error({"--memory", "99999999999999999999T"}) == "--memory 99999999999999999999T: too large");
    CHECK(run_error({"--memory", "16777216T"}) == "--memory 16777216T: too large");
    CHECK(run_error({"--memory", "17592186044416"}) == "--memory 17592186044416: too large");
}

TEST_CASE("option --memory above the host's memory is a usage error naming the host's size") {
    std::uint64_t const host = 16357392 * KiB;  // about 15.6 GiB
    CHECK(run_config({"--memory", "16357392K"}, host).memory_bytes == host);
    CHECK(run_error({"--memory", "16357396K"}, host) == "--memory 16357396K: exceeds host memory (15.6 GiB)");
    CHECK(run_error({"--memory", "100G"}, host) == "--memory 100G: exceeds host memory (15.6 GiB)");
    CHECK(run_error({"--memory", "17592186044415"}, host).ends_with("exceeds host memory (15.6 GiB)"));
}

TEST_CASE("option --memory that is not a size is a usage error with examples") {
    for (char const* bad : {"abc", "12X", "M", "1.5G", "1 G", "-1G", "1GiBs", "1KK", ""}) {
        INFO(bad);
        CHECK(run_error({"--memory", bad}) ==
              fmt::format("--memory {}: not a size (examples: 512M, 2G)", *bad ? bad : "''"));
    }
}

TEST_CASE("a bad enum value lists the choices") {
    CHECK(run_error({"--cpu-template", "fast"}) == "--cpu-template fast: must be host or minimal");
    CHECK(run_error({"--on-reboot=halt"}) == "--on-reboot halt: must be exit or restart");
    CHECK(run_error({"--on-reboot", "EXIT"}) == "--on-reboot EXIT: must be exit or restart");
}

TEST_CASE("a null argument pointer is an empty argument, not a crash") {
    CHECK(usage_error({nullptr}) == "unknown command '' (see kvmlet --help)");
    CHECK(usage_error({"run", "--kernel", nullptr}) == "--kernel '': empty path");
}

TEST_CASE("random argument lists raise nothing but UsageError") {
    std::vector<char const*> const pool{"run",
                                        "--kernel",
                                        "k",
                                        "--kernel=",
                                        "--cpus",
                                        "0",
                                        "64",
                                        "--cpus=9",
                                        "--memory",
                                        "4M",
                                        "1T",
                                        "--memory=4095K",
                                        "--cmdline",
                                        "--cmdline=",
                                        "--cpu-template",
                                        "minimal",
                                        "--on-reboot=",
                                        "-v",
                                        "--verbose=",
                                        "-h",
                                        "--help",
                                        "--version",
                                        "--",
                                        "-",
                                        "",
                                        "=",
                                        "--=",
                                        nullptr};
    std::mt19937 random{12345};
    std::uniform_int_distribution<std::size_t> pick{0, pool.size() - 1};
    std::uniform_int_distribution<std::size_t> length{0, 8};
    for (int round = 0; round < 20000; ++round) {
        std::vector<char const*> args(length(random));
        for (auto& arg : args) arg = pool[pick(random)];
        if (round % 2 == 0) args.insert(args.begin(), "run");
        try {
            parse(args);
        } catch (UsageError const&) {
        }
    }
    SUCCEED("only UsageError escaped");
}

TEST_CASE("kvmlet run --seccomp is kill unless told log or off, and goes with --config and --api-sock too") {
    auto mode = [](std::vector<char const*> args) {
        args.insert(args.begin(), {"run", "--kernel", "vmlinux"});
        Command command = parse(args);
        REQUIRE(std::holds_alternative<RunCommand>(command));
        return std::get<RunCommand>(command).seccomp;
    };
    CHECK(mode({}) == security::SeccompMode::kill);
    CHECK(mode({"--seccomp", "log"}) == security::SeccompMode::log);
    CHECK(mode({"--seccomp=off"}) == security::SeccompMode::off);
    CHECK(run_error({"--seccomp", "strict"}) == "--seccomp strict: must be kill, log or off");
    Command command = parse({"run", "--config", "vm.json", "--seccomp", "off"});
    REQUIRE(std::holds_alternative<FirecrackerCommand>(command));
    CHECK(std::get<FirecrackerCommand>(command).options.seccomp == security::SeccompMode::off);
    command = parse({"run", "--api-sock", "/tmp/s"});
    REQUIRE(std::holds_alternative<FirecrackerCommand>(command));
    CHECK(std::get<FirecrackerCommand>(command).options.seccomp == security::SeccompMode::kill);
}
