#include "devices/virtio/vsock/unix_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vmm/base/error.hpp"

namespace kvmlet::virtio::vsock {
namespace {

bool make_address(std::string const& path, sockaddr_un& address) noexcept {
    if (!fits_socket_address(path)) return false;
    address = sockaddr_un{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return true;
}

UniqueFd stream_socket() {
    return UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

// A socket file at `path` that refuses connections is a stale one: removed. Anything else there
// stays, and bind() then says why.
void remove_stale_socket(std::string const& path, sockaddr_un const& address) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
    UniqueFd probe = stream_socket();
    if (!probe.valid()) throw system_error("vsock: socket");
    // Safety: sockaddr_un is the address type connect() takes for AF_UNIX.
    if (::connect(probe.get(), reinterpret_cast<sockaddr const*>(&address), sizeof address) == 0 ||
        errno != ECONNREFUSED)
        throw Error(fmt::format("vsock: {}: another process listens on it", path));
    if (::unlink(path.c_str()) != 0) throw system_error(fmt::format("vsock: removing stale socket {}", path));
}

}  // namespace

bool fits_socket_address(std::string const& path) noexcept {
    return !path.empty() && path.size() < sizeof(sockaddr_un::sun_path);
}

UniqueFd listen_unix(std::filesystem::path const& path, int backlog) {
    std::string const name = path.string();
    sockaddr_un address{};
    if (!make_address(name, address))
        throw Error(fmt::format("vsock: socket path '{}' is empty or longer than {} bytes", name,
                                sizeof(sockaddr_un::sun_path) - 1));
    remove_stale_socket(name, address);
    UniqueFd fd = stream_socket();
    if (!fd.valid()) throw system_error("vsock: socket");
    // Safety: as above.
    if (::bind(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof address) != 0)
        throw system_error(fmt::format("vsock: binding {}", name));
    if (::chmod(name.c_str(), 0600) != 0) throw system_error(fmt::format("vsock: chmod {}", name));
    if (::listen(fd.get(), backlog) != 0) throw system_error(fmt::format("vsock: listening on {}", name));
    return fd;
}

int connect_unix(std::string const& path, UniqueFd& out) noexcept {
    sockaddr_un address{};
    if (!make_address(path, address)) return ENAMETOOLONG;
    UniqueFd fd = stream_socket();
    if (!fd.valid()) return errno;
    // Safety: as above.
    if (::connect(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof address) != 0) return errno;
    out = std::move(fd);
    return 0;
}

std::string port_path(std::filesystem::path const& uds_path, std::uint32_t port) {
    return fmt::format("{}_{}", uds_path.string(), port);
}

}  // namespace kvmlet::virtio::vsock
