#include "vmm/snapshot/uffd_backend.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "vmm/base/error.hpp"

namespace kvmlet::snapshot {
namespace {

UniqueFd registered_uffd(GuestMemory const& memory) {
    UniqueFd uffd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
    if (!uffd.valid()) throw system_error("Uffd backend: userfaultfd");
    uffdio_api api{};
    api.api = UFFD_API;
    if (::ioctl(uffd.get(), UFFDIO_API, &api) != 0) throw system_error("Uffd backend: UFFDIO_API");
    for (auto const& region : memory.regions()) {
        uffdio_register reg{};
        // Safety: the range is the region's own mapping, which outlives the registration.
        reg.range.start = reinterpret_cast<std::uint64_t>(region.host);
        reg.range.len = region.size;
        reg.mode = UFFDIO_REGISTER_MODE_MISSING;
        if (::ioctl(uffd.get(), UFFDIO_REGISTER, &reg) != 0)
            throw system_error(
                fmt::format("Uffd backend: UFFDIO_REGISTER of {:#x}+{:#x}", region.start.value, region.size));
    }
    return uffd;
}

UniqueFd connected(std::string const& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof address.sun_path)
        throw Error(fmt::format("Uffd backend: socket path {} is empty or longer than {} bytes", path,
                                sizeof address.sun_path - 1));
    std::memcpy(address.sun_path, path.data(), path.size());
    UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!socket.valid()) throw system_error("Uffd backend: socket");
    // Safety: sockaddr_un is a sockaddr of its own size, as connect(2) takes it.
    if (::connect(socket.get(), reinterpret_cast<sockaddr const*>(&address), sizeof address) != 0)
        throw system_error(fmt::format("Uffd backend: no page-fault handler listening on {}", path));
    return socket;
}

void send_with_fd(int socket, std::string const& message, int fd, std::string const& path) {
    iovec iov{const_cast<char*>(message.data()), message.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))]{};
    msghdr header{};
    header.msg_iov = &iov;
    header.msg_iovlen = 1;
    header.msg_control = control;
    header.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    ssize_t sent;
    do {
        sent = ::sendmsg(socket, &header, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent != static_cast<ssize_t>(message.size()))
        throw system_error(fmt::format("Uffd backend: sending the regions to {}", path));
}

}  // namespace

std::string uffd_regions_json(GuestMemory const& memory) {
    std::string out = "[";
    for (auto const& region : memory.regions()) {
        if (out.size() > 1) out += ",";
        out += fmt::format(
            R"({{"base_host_virt_addr":{},"size":{},"offset":{},"page_size":{},"page_size_kib":{}}})",
            reinterpret_cast<std::uintptr_t>(region.host), region.size, region.file_offset,
            GuestMemory::page_size, GuestMemory::page_size / 1024);
    }
    return out + "]";
}

UffdBackend hand_to_uffd_handler(GuestMemory const& memory, std::string const& socket_path) {
    UffdBackend backend{registered_uffd(memory), connected(socket_path)};
    send_with_fd(backend.connection.get(), uffd_regions_json(memory), backend.uffd.get(), socket_path);
    return backend;
}

}  // namespace kvmlet::snapshot
