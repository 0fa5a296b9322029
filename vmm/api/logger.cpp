#include "vmm/api/logger.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "vmm/base/log.hpp"

namespace kvmlet::api {
namespace {

std::atomic<bool> log_redirected{false};

log::Level level_of(std::string const& name) {
    // Off still shows errors: kvmlet's one error line is how a failed start is reported.
    if (name == "Error" || name == "Off") return log::Level::error;
    if (name == "Warning") return log::Level::warn;
    if (name == "Info") return log::Level::info;
    return log::Level::debug;  // Debug, Trace
}

}  // namespace

void apply_logger(LoggerSettings const& settings) {
    log::set_level(level_of(settings.level));
    // Firecracker's settings: show_level defaults to false there, and so here once a logger is set.
    log::set_decoration({.show_level = settings.show_level,
                         .show_origin = settings.show_log_origin,
                         .module = settings.module});
    if (!settings.log_path) return;
    // O_NONBLOCK: a named pipe without a reader is an error now, not a hang.
    int fd = ::open(settings.log_path->c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600);
    if (fd < 0)
        throw ConfigError(fmt::format("logger.log_path {}: {}", *settings.log_path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode))) {
        ::close(fd);
        throw ConfigError(fmt::format("logger.log_path {}: not a file or named pipe", *settings.log_path));
    }
    // Lines are written whole (log.cpp); a pipe that fills up drops them rather than block kvmlet.
    log::set_output(fd);  // kept open for the rest of the process
    log_redirected.store(true);
}

bool log_goes_to_a_file() noexcept {
    return log_redirected.load();
}

}  // namespace kvmlet::api
