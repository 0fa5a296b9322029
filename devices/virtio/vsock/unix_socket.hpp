#pragma once
// The host side of hybrid vsock: Unix stream sockets, never blocking the event loop.
#include <cstdint>
#include <filesystem>
#include <string>

#include "vmm/base/unique_fd.hpp"

namespace kvmlet::virtio::vsock {

// Whether `path` fits a sockaddr_un (with its NUL).
bool fits_socket_address(std::string const& path) noexcept;

// A listening socket at `path`: non-blocking, close-on-exec, mode 0600 (set before listen(), so
// nobody connects through a wider mode). A socket file nobody listens on (a previous run's) is
// replaced; another listener's socket or any other file is an error. Throws Error.
UniqueFd listen_unix(std::filesystem::path const& path, int backlog);

// Connects to the socket at `path` without waiting: a Unix stream connect either completes at
// once or fails (EAGAIN when the listener's backlog is full). The socket is non-blocking and
// close-on-exec. Returns 0 or the errno.
int connect_unix(std::string const& path, UniqueFd& out) noexcept;

// `<uds_path>_<port>`: where a guest's connection to host port `port` goes.
std::string port_path(std::filesystem::path const& uds_path, std::uint32_t port);

}  // namespace kvmlet::virtio::vsock
