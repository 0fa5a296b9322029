#pragma once
// Firecracker's logger settings (--level, --log-path, PUT /logger, the config file's "logger")
// applied to kvmlet's log.
#include "vmm/api/vm_resources.hpp"

namespace kvmlet::api {

// Sets the level and, with log_path, sends the log to that file (appended; created if missing)
// or named pipe (which must have a reader). Throws ConfigError.
void apply_logger(LoggerSettings const& settings);
// Whether apply_logger sent the log away from stderr: the error that ends kvmlet then goes to
// stderr as well, where whoever started it looks (Firecracker does the same).
bool log_goes_to_a_file() noexcept;

}  // namespace kvmlet::api
