#pragma once
// How a microVM is run the Firecracker way (`firecracker ...`, `kvmlet firecracker ...`,
// `kvmlet run --config/--api-sock`): where its API listens and where its config comes from.
#include <optional>
#include <string>

#include "vmm/security/seccomp.hpp"

namespace kvmlet::api {

struct FirecrackerOptions {
    std::optional<std::string> api_sock = "/run/firecracker.socket";  // nullopt: --no-api
    std::optional<std::string> config_file;                           // boots at once when given
    std::string id = "anonymous-instance";
    std::optional<std::string> metadata;  // a JSON file: the initial MMDS contents
    std::optional<std::string> level;     // the logger's level (Error, Warning, Info, Debug, Trace, Off)
    std::optional<std::string> log_path;
    bool show_level = false;
    bool show_log_origin = false;
    std::optional<std::string> module;  // the logger's module filter (a source directory)
    bool enable_pci = false;            // virtio-pci rather than Firecracker's virtio-mmio
    bool verbose = false;
    security::SeccompMode seccomp = security::SeccompMode::kill;  // --no-seccomp: off
};

}  // namespace kvmlet::api
