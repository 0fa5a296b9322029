// The shared long-option parsing and --help table of vmm/base/long_flag.hpp.
#include "vmm/base/long_flag.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <string_view>
#include <vector>

namespace kvmlet {
namespace {

struct Flag {
    std::string_view name;
    std::string_view value_name;
    std::string_view help;
    bool repeatable = false;
};

constexpr std::array<Flag, 3> flags{{
    {"--id", "ID", "the id", false},
    {"--cgroup", "FILE=VALUE", "a cgroup file to write\nrepeatable", true},
    {"--daemonize", "", "leave the session", false},
}};

TEST_CASE("the flag table lists each flag with its value, pads to the column and indents more lines") {
    CHECK(long_flag_help(flags, 14) ==
          "  --id ID        the id\n"
          "  --cgroup FILE=VALUE a cgroup file to write\n"
          "                 repeatable\n"  // under the first line of its help
          "  --daemonize    leave the session\n");
    CHECK(long_flag_help_row("--version", "print the version", 10) == "  --version  print the version\n");
}

TEST_CASE("long flags take a value after a space or an equals sign, and refuse repeats of single ones") {
    std::array<char const*, 6> args{"--id", "a", "--cgroup=x=1", "--cgroup", "y=2", "--daemonize"};
    std::vector<std::string_view> seen;
    std::vector<std::pair<std::string_view, std::string_view>> got;
    for (std::size_t i = 0; i < args.size(); ++i) {
        auto [spec, value] = take_long_flag(args, i, flags, seen, "test --help");
        got.emplace_back(spec->name, value);
    }
    CHECK(got == std::vector<std::pair<std::string_view, std::string_view>>{
                     {"--id", "a"}, {"--cgroup", "x=1"}, {"--cgroup", "y=2"}, {"--daemonize", ""}});
    std::array<char const*, 2> twice{"--id=a", "--id=b"};
    std::size_t i = 0;
    take_long_flag(twice, i, flags, seen = {}, "test --help");
    i = 1;
    CHECK_THROWS_WITH(take_long_flag(twice, i, flags, seen, "test --help"), "--id: given more than once");
    std::array<char const*, 1> unknown{"--nope"};
    i = 0;
    CHECK_THROWS_WITH(take_long_flag(unknown, i, flags, seen, "test --help"),
                      "unknown option --nope (see test --help)");
}

}  // namespace
}  // namespace kvmlet
