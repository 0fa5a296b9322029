#pragma once
// Setup errors (before the first KVM_RUN) are thrown with context; main() prints the message as
// one line and exits with the status that goes with its kind (STYLE.md §4).
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace kvmlet {

// Process exit statuses, documented in `kvmlet run --help`.
enum class ExitStatus : int {
    ok = 0,           // guest powered off, reset, or halted for good
    setup_error = 1,  // a file, an image, a host resource
    usage_error = 2,  // bad command line
    guest_crash = 3,  // triple fault, KVM internal error, unrecoverable emulation failure
};

class Error : public std::runtime_error {
public:
    explicit Error(std::string message, ExitStatus status = ExitStatus::setup_error)
        : std::runtime_error(std::move(message)), status_(status) {}
    ExitStatus status() const noexcept { return status_; }

private:
    ExitStatus status_;
};

class UsageError : public Error {
public:
    explicit UsageError(std::string message) : Error(std::move(message), ExitStatus::usage_error) {}
};

// "what: strerror(errno)" for a failed system call, captured right after the call.
inline Error system_error(std::string const& what, int err = errno) {
    return Error(fmt::format("{}: {}", what, std::strerror(err)));
}

}  // namespace kvmlet
