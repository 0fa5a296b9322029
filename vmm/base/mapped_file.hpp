#pragma once
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>

namespace kvmlet {

// A whole regular file, read once into private memory that is then mapped read-only: later
// changes to the file do not reach the bytes (a loader checks them, then copies them). Throws
// Error prefixed with `what` ("kernel: ...").
class MappedFile {
public:
    MappedFile(std::filesystem::path const& path, std::string const& what);
    MappedFile(MappedFile const&) = delete;
    MappedFile& operator=(MappedFile const&) = delete;
    ~MappedFile();

    std::span<std::byte const> bytes() const noexcept { return {data_, size_}; }

private:
    std::byte const* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace kvmlet
