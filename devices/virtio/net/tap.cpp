#include "devices/virtio/net/tap.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>  // before linux/if_tun.h, which would pull in the kernel's if.h
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "devices/virtio/net/net_spec.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::virtio::net {
namespace {

constexpr char const* tun_device = "/dev/net/tun";
constexpr int vnet_header_size = sizeof(Header);

Error tap_error(std::string const& name, std::string const& what) {
    return Error(fmt::format("net: TAP {}: {}", name, what));
}

UniqueFd open_tun(std::string const& name) {
    UniqueFd fd{::open(tun_device, O_RDWR | O_NONBLOCK | O_CLOEXEC)};
    if (fd.valid()) return fd;
    int const err = errno;
    if (err == ENOENT || err == ENODEV)
        throw tap_error(name, fmt::format("{} is missing (is the tun module loaded?)", tun_device));
    throw tap_error(name, fmt::format("opening {}: {}", tun_device, std::strerror(err)));
}

// Why TUNSETIFF failed, in the user's terms.
std::string attach_failure(int err, bool creating) {
    switch (err) {
        case EBUSY:
            return "already in use (a TAP without multi_queue serves one process)";
        case EPERM:
            return creating ? "creating a TAP needs CAP_NET_ADMIN"
                            : "permission denied (the TAP belongs to another user or group)";
        case EINVAL:
            return "not a TAP interface (a TUN, or no tun/tap device at all)";
        default:
            return fmt::format("TUNSETIFF: {}", std::strerror(err));
    }
}

// TUNSETIFF with our flags; returns the interface flags the kernel reports afterwards.
short attach(int fd, std::string& name, bool creating) {
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (::ioctl(fd, TUNSETIFF, &request) < 0) throw tap_error(name, attach_failure(errno, creating));
    name = request.ifr_name;  // the kernel fills in the number of a pattern
    if (::ioctl(fd, TUNGETIFF, &request) < 0)
        throw tap_error(name, fmt::format("TUNGETIFF: {}", std::strerror(errno)));
    int size = vnet_header_size;
    if (::ioctl(fd, TUNSETVNETHDRSZ, &size) < 0)
        throw tap_error(name, fmt::format("TUNSETVNETHDRSZ {}: {}", size, std::strerror(errno)));
    return request.ifr_flags;
}

void bring_up(std::string const& name) {
    UniqueFd sock{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    if (!sock.valid()) throw tap_error(name, fmt::format("socket: {}", std::strerror(errno)));
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    if (::ioctl(sock.get(), SIOCGIFFLAGS, &request) < 0)
        throw tap_error(name, fmt::format("SIOCGIFFLAGS: {}", std::strerror(errno)));
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
    if (::ioctl(sock.get(), SIOCSIFFLAGS, &request) < 0)
        throw tap_error(name, fmt::format("bringing it up: {}", std::strerror(errno)));
}

void check_name(std::string const& name) {
    if (name.empty() || name.size() >= IFNAMSIZ || name.find('/') != std::string::npos)
        throw tap_error(name,
                        fmt::format("not an interface name (1 to {} characters, no '/')", IFNAMSIZ - 1));
}

}  // namespace

Tap Tap::open(std::string const& name) {
    check_name(name);
    if (name.find('%') != std::string::npos)
        throw tap_error(name, "'%' names a TAP to create, not one to open");
    if (::if_nametoindex(name.c_str()) == 0)
        throw tap_error(name,
                        fmt::format("no such interface (create it: ip tuntap add dev {} mode tap)", name));
    UniqueFd fd = open_tun(name);
    std::string attached = name;
    // A TAP made with `ip tuntap add` is persistent; a non-persistent one here means the
    // interface went away after the check above and TUNSETIFF created a new one: closing the
    // descriptor removes it again.
    if (!(attach(fd.get(), attached, false) & IFF_PERSIST))
        throw tap_error(name, "no such interface (it disappeared while kvmlet attached to it)");
    return Tap(std::move(fd), std::move(attached));
}

Tap Tap::create(std::string const& pattern) {
    check_name(pattern);
    UniqueFd fd = open_tun(pattern);
    std::string name = pattern;
    attach(fd.get(), name, true);
    bring_up(name);
    return Tap(std::move(fd), std::move(name));
}

ssize_t Tap::send(std::span<iovec const> packet) noexcept {
    ssize_t const n = packet.size() == 1
                          ? ::write(fd_.get(), packet[0].iov_base, packet[0].iov_len)
                          : ::writev(fd_.get(), packet.data(), static_cast<int>(packet.size()));
    return n < 0 ? -errno : n;
}

ssize_t Tap::receive(std::span<iovec const> buffers) noexcept {
    ssize_t const n = buffers.size() == 1
                          ? ::read(fd_.get(), buffers[0].iov_base, buffers[0].iov_len)
                          : ::readv(fd_.get(), buffers.data(), static_cast<int>(buffers.size()));
    return n < 0 ? -errno : n;
}

unsigned Tap::tun_flags(Offloads offloads) noexcept {
    if (!offloads.csum) return 0;
    return TUN_F_CSUM | (offloads.tso4 ? TUN_F_TSO4 : 0u) | (offloads.tso6 ? TUN_F_TSO6 : 0u);
}

Result<void> Tap::set_offloads(Offloads offloads) noexcept {
    if (::ioctl(fd_.get(), TUNSETOFFLOAD, static_cast<unsigned long>(tun_flags(offloads))) < 0)
        return unexpected(fmt::format("TUNSETOFFLOAD: {}", std::strerror(errno)));
    return {};
}

}  // namespace kvmlet::virtio::net
