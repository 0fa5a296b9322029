#include "vmm/base/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "vmm/base/error.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet {

MappedFile::MappedFile(std::filesystem::path const& path, std::string const& what) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) throw system_error(fmt::format("{}: {}", what, path.string()));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw system_error(fmt::format("{}: {}", what, path.string()));
    if (!S_ISREG(st.st_mode)) throw Error(fmt::format("{}: {} is not a regular file", what, path.string()));
    if (st.st_size == 0) throw Error(fmt::format("{}: {} is empty", what, path.string()));
    size_ = static_cast<std::size_t>(st.st_size);
    void* data = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (data == MAP_FAILED) throw system_error(fmt::format("{}: cannot map {}", what, path.string()));
    data_ = static_cast<std::byte const*>(data);
}

MappedFile::~MappedFile() {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace kvmlet
