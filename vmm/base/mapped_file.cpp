#include "vmm/base/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "vmm/base/error.hpp"
#include "vmm/base/input_file.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet {
namespace {

// Reads the whole file with large read(2)s: where files come over 9p without a page cache (the
// emulated KVM host of tools/kvm-host), a file mapping is filled one 4 KiB request per page fault,
// and Debian's 53 MB vmlinux took 48 s to load there; these reads take under 2 s.
void read_all(int fd, std::byte* data, std::size_t size, std::string const& context) {
    std::size_t done = 0;
    while (done < size) {
        ssize_t n = ::pread(fd, data + done, size - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw system_error(context);
        if (n == 0) throw Error(fmt::format("{}: the file shrank while it was read", context));
        done += static_cast<std::size_t>(n);
    }
}

}  // namespace

MappedFile::MappedFile(std::filesystem::path const& path, std::string const& what) {
    std::string const context = fmt::format("{}: {}", what, path.string());
    UniqueFd const fd = open_input_file(path, O_RDONLY, InputKinds::regular_file, context);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw system_error(context);
    if (st.st_size == 0) throw Error(fmt::format("{} is empty", context));
    size_ = static_cast<std::size_t>(st.st_size);
    void* data = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) throw system_error(fmt::format("{}: cannot allocate {} bytes", context, size_));
    data_ = static_cast<std::byte const*>(data);
    try {
        read_all(fd.get(), static_cast<std::byte*>(data), size_, context);
    } catch (...) {
        ::munmap(data, size_);
        throw;
    }
    ::mprotect(data, size_, PROT_READ);
}

MappedFile::~MappedFile() {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace kvmlet
