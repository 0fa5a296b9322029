#include "vmm/memory/guest_memory.hpp"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/base/error.hpp"

namespace kvmlet {
namespace {
constexpr std::uint64_t page_size = 4096;

void check_ranges(std::span<RamRange const> ranges) {
    if (ranges.empty()) throw Error("guest memory: no RAM ranges");
    std::uint64_t previous_end = 0;
    for (auto const& r : ranges) {
        if (r.size == 0 || r.start.value % page_size != 0 || r.size % page_size != 0)
            throw Error(fmt::format("guest memory: range {:#x}+{:#x} is empty or not page-aligned",
                                    r.start.value, r.size));
        if (r.start.value < previous_end || !r.start.checked_add(r.size))
            throw Error(
                fmt::format("guest memory: range {:#x}+{:#x} overlaps or wraps", r.start.value, r.size));
        previous_end = r.start.value + r.size;
    }
}
}  // namespace

GuestMemory GuestMemory::create(std::span<RamRange const> ranges) {
    check_ranges(ranges);
    UniqueFd memfd(::memfd_create("kvmlet-guest-ram", MFD_CLOEXEC));
    if (!memfd.valid()) throw system_error("guest memory: memfd_create");

    std::uint64_t total = 0;
    for (auto const& r : ranges) total += r.size;
    if (::ftruncate(memfd.get(), static_cast<off_t>(total)) != 0)
        throw system_error(fmt::format("guest memory: cannot size RAM to {} MiB", total / (1024 * 1024)));

    GuestMemory memory(std::move(memfd), {});  // owns the mappings from here on, for clean-up
    std::uint64_t file_offset = 0;
    for (auto const& r : ranges) {
        // MAP_NORESERVE: pages are taken when the guest touches them, not up front.
        void* host = ::mmap(nullptr, r.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                            memory.memfd_.get(), static_cast<off_t>(file_offset));
        if (host == MAP_FAILED) throw system_error("guest memory: mmap");
        memory.regions_.push_back(GuestRegion{r.start, r.size, static_cast<std::byte*>(host), file_offset});
        file_offset += r.size;
    }
    return memory;
}

GuestMemory GuestMemory::map_private(std::span<RamRange const> ranges, UniqueFd file,
                                     std::string const& path) {
    check_ranges(ranges);
    std::uint64_t total = 0;
    for (auto const& r : ranges) total += r.size;
    struct stat st {};
    if (::fstat(file.get(), &st) != 0) throw system_error(fmt::format("memory file {}: fstat", path));
    if (!S_ISREG(st.st_mode)) throw Error(fmt::format("memory file {}: not a regular file", path));
    if (static_cast<std::uint64_t>(st.st_size) != total)
        throw Error(
            fmt::format("memory file {}: {} bytes, the snapshot's guest has {}", path, st.st_size, total));
    GuestMemory memory(std::move(file), {});
    memory.private_file_ = true;
    std::uint64_t file_offset = 0;
    for (auto const& r : ranges) {
        void* host = ::mmap(nullptr, r.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
                            memory.memfd_.get(), static_cast<off_t>(file_offset));
        if (host == MAP_FAILED) throw system_error(fmt::format("memory file {}: mmap", path));
        memory.regions_.push_back(GuestRegion{r.start, r.size, static_cast<std::byte*>(host), file_offset});
        file_offset += r.size;
    }
    return memory;
}

GuestMemory::GuestMemory(UniqueFd memfd, std::vector<GuestRegion> regions) noexcept
    : memfd_(std::move(memfd)), regions_(std::move(regions)) {}

GuestMemory::GuestMemory(GuestMemory&& other) noexcept
    : memfd_(std::move(other.memfd_)),
      regions_(std::move(other.regions_)),
      private_file_(other.private_file_) {
    other.regions_.clear();
}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
    if (this != &other) {
        unmap();
        memfd_ = std::move(other.memfd_);
        regions_ = std::move(other.regions_);
        private_file_ = other.private_file_;
        other.regions_.clear();
    }
    return *this;
}

GuestMemory::~GuestMemory() {
    unmap();
}

void GuestMemory::unmap() noexcept {
    for (auto const& r : regions_) ::munmap(r.host, r.size);
    regions_.clear();
}

std::uint64_t GuestMemory::total_size() const noexcept {
    std::uint64_t total = 0;
    for (auto const& r : regions_) total += r.size;
    return total;
}

std::optional<std::span<std::byte>> GuestMemory::slice(GuestAddress addr, std::uint64_t len) const noexcept {
    for (auto const& r : regions_) {
        if (auto offset = r.offset_of(addr, len))
            return std::span<std::byte>(r.host + *offset, static_cast<std::size_t>(len));
    }
    return std::nullopt;
}

bool GuestMemory::read_bytes(GuestAddress addr, std::span<std::byte> out) const noexcept {
    auto s = slice(addr, out.size());
    if (!s) return false;
    if (!out.empty()) std::memcpy(out.data(), s->data(), out.size());  // an empty span may have no data
    return true;
}

bool GuestMemory::write_bytes(GuestAddress addr, std::span<std::byte const> in) const noexcept {
    auto s = slice(addr, in.size());
    if (!s) return false;
    if (!in.empty()) std::memcpy(s->data(), in.data(), in.size());
    return true;
}

}  // namespace kvmlet
