#include "vmm/base/input_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include "vmm/base/error.hpp"

namespace kvmlet {
namespace {

bool accepts(InputKinds accepted, mode_t mode) noexcept {
    if (S_ISREG(mode)) return true;
    return accepted == InputKinds::regular_file_or_block_device && S_ISBLK(mode);
}

std::string_view expected(InputKinds accepted) noexcept {
    return accepted == InputKinds::regular_file ? "a regular file" : "a regular file or block device";
}

void check_kind(mode_t mode, InputKinds accepted, std::string const& context) {
    if (!accepts(accepted, mode))
        throw Error(fmt::format("{}: not {} ({})", context, expected(accepted), describe_file_kind(mode)));
}

}  // namespace

std::string_view describe_file_kind(mode_t mode) noexcept {
    switch (mode & S_IFMT) {
        case S_IFREG:
            return "a regular file";
        case S_IFDIR:
            return "a directory";
        case S_IFIFO:
            return "a FIFO";
        case S_IFSOCK:
            return "a socket";
        case S_IFCHR:
            return "a character device";
        case S_IFBLK:
            return "a block device";
        case S_IFLNK:
            return "a symbolic link";
        default:
            return "an unknown kind of file";
    }
}

void check_input_kind(std::filesystem::path const& path, InputKinds accepted, std::string const& context) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw system_error(context);
    check_kind(st.st_mode, accepted, context);
}

UniqueFd open_input_file(std::filesystem::path const& path, int flags, InputKinds accepted,
                         std::string const& context) {
    // Before the open: a socket cannot be opened at all (ENXIO), and a device node is not touched.
    check_input_kind(path, accepted, context);
    UniqueFd fd(::open(path.c_str(), flags | O_NONBLOCK | O_CLOEXEC));
    if (!fd.valid()) throw system_error(context);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw system_error(context);
    check_kind(st.st_mode, accepted, context);
    int const status = ::fcntl(fd.get(), F_GETFL);
    if (status < 0 || ::fcntl(fd.get(), F_SETFL, status & ~O_NONBLOCK) != 0) throw system_error(context);
    return fd;
}

}  // namespace kvmlet
