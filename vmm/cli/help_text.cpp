#include "vmm/cli/help_text.hpp"

#include <fmt/format.h>

#include "vmm/cli/run_options.hpp"

namespace kvmlet::cli {

namespace {

constexpr std::size_t option_column = 31;  // where an option's description starts

// "  -v, --verbose", "  --cpus N".
std::string option_synopsis(OptionSpec const& spec) {
    std::string synopsis = "  ";
    if (!spec.short_name.empty()) synopsis += fmt::format("{}, ", spec.short_name);
    synopsis += spec.name;
    if (!spec.flag()) synopsis += fmt::format(" {}", spec.value_name);
    return synopsis;
}

// Continuation lines of a multi-line help text start at the description column.
std::string indented(std::string_view help) {
    std::string text;
    for (char const c : help) {
        text += c;
        if (c == '\n') text.append(option_column, ' ');
    }
    return text;
}

std::string option_line(OptionSpec const& spec, MachineConfig const& defaults) {
    std::string line = option_synopsis(spec);
    line += line.size() + 2 <= option_column ? std::string(option_column - line.size(), ' ')
                                             : "\n" + std::string(option_column, ' ');
    line += indented(spec.help);
    if (spec.required) line += " (required)";
    if (spec.repeatable) line += " (repeatable)";
    if (spec.default_text != nullptr) line += fmt::format(" (default: {})", spec.default_text(defaults));
    return line + "\n";
}

}  // namespace

std::string usage() {
    return "Usage: kvmlet run [OPTIONS]    boot a Linux kernel in a new KVM virtual machine\n"
           "       kvmlet firecracker ...  the same, with Firecracker's command line, config file\n"
           "                               and API (also when kvmlet is called 'firecracker')\n"
           "       kvmlet jail ...         run a VMM in a jail, with Firecracker's jailer flags\n"
           "                               (also when kvmlet is called 'jailer'; kvmlet jail --help)\n"
           "       kvmlet snapshot-merge BASE DIFF\n"
           "                               write a Diff snapshot's memory file over its base one,\n"
           "                               in place: BASE becomes the Diff's full memory file\n"
           "       kvmlet --version        print the version\n"
           "       kvmlet --help           print this help\n"
           "\n"
           "See 'kvmlet run --help' for the run options.\n";
}

std::string run_help() {
    std::string text =
        "Usage: kvmlet run --kernel PATH [OPTIONS]\n"
        "\n"
        "Boot a Linux kernel in a new KVM virtual machine.\n"
        "\n"
        "Options (--opt VALUE or --opt=VALUE; a value starting with -- needs the = form):\n";
    MachineConfig const defaults;
    for (auto const& spec : run_options()) text += option_line(spec, defaults);
    text +=
        "\n"
        "Exit status:\n"
        "  0  guest powered off, reset or halted\n"
        "  1  setup error (file, image, host resource)\n"
        "  2  bad command line\n"
        "  3  guest crashed (triple fault, KVM internal error, emulation failure)\n"
        "  148  kvmlet made a system call its seccomp filter forbids (--seccomp kill)\n"
        "\n"
        "Console: the serial port COM1 is on stdin/stdout; Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A.\n";
    return text;
}

}  // namespace kvmlet::cli
