#pragma once
// Firecracker's logger settings (--level, --log-path, PUT /logger, the config file's "logger")
// applied to kvmlet's log.
#include "vmm/api/vm_resources.hpp"

namespace kvmlet::api {

// Sets the level and, with log_path, sends the log to that file (appended; created if missing)
// or named pipe (which must have a reader). Throws ConfigError.
void apply_logger(LoggerSettings const& settings);

}  // namespace kvmlet::api
