#include "vmm/memory/guest_memory.hpp"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "vmm/base/error.hpp"

namespace kvmlet {
namespace {
constexpr std::uint64_t page_size = GuestMemory::page_size;

std::size_t bitmap_words(std::uint64_t region_size) noexcept {
    return static_cast<std::size_t>((region_size / page_size + 63) / 64);
}

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
      private_file_(other.private_file_),
      dirty_(std::move(other.dirty_)) {
    other.regions_.clear();
}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
    if (this != &other) {
        unmap();
        memfd_ = std::move(other.memfd_);
        regions_ = std::move(other.regions_);
        private_file_ = other.private_file_;
        dirty_ = std::move(other.dirty_);
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

std::optional<GuestMemory::Found> GuestMemory::find(GuestAddress addr, std::uint64_t len) const noexcept {
    for (std::size_t i = 0; i < regions_.size(); ++i) {
        if (auto offset = regions_[i].offset_of(addr, len)) return Found{i, *offset};
    }
    return std::nullopt;
}

std::optional<std::span<std::byte>> GuestMemory::slice(GuestAddress addr, std::uint64_t len) const noexcept {
    auto at = find(addr, len);
    if (!at) return std::nullopt;
    mark_dirty(*at, len);
    return std::span<std::byte>(regions_[at->region].host + at->offset, static_cast<std::size_t>(len));
}

bool GuestMemory::read_bytes(GuestAddress addr, std::span<std::byte> out) const noexcept {
    auto at = find(addr, out.size());
    if (!at) return false;
    // An empty span may have no data.
    if (!out.empty()) std::memcpy(out.data(), regions_[at->region].host + at->offset, out.size());
    return true;
}

bool GuestMemory::write_bytes(GuestAddress addr, std::span<std::byte const> in) const noexcept {
    auto s = slice(addr, in.size());
    if (!s) return false;
    if (!in.empty()) std::memcpy(s->data(), in.data(), in.size());
    return true;
}

void GuestMemory::track_dirty_pages() {
    if (tracks_dirty_pages()) return;
    std::vector<std::unique_ptr<std::atomic<std::uint64_t>[]>> maps;
    for (auto const& r : regions_) {
        std::size_t const words = bitmap_words(r.size);
        maps.push_back(std::make_unique<std::atomic<std::uint64_t>[]>(words));
        for (std::size_t w = 0; w < words; ++w) maps.back()[w].store(0, std::memory_order_relaxed);
    }
    dirty_ = std::move(maps);
}

// [offset, offset + len) is inside the region (find checked it); len 0 marks nothing.
void GuestMemory::mark_dirty(Found at, std::uint64_t len) const noexcept {
    if (dirty_.empty() || len == 0) return;
    auto* words = dirty_[at.region].get();
    std::uint64_t const last = (at.offset + len - 1) / page_size;
    for (std::uint64_t page = at.offset / page_size; page <= last; ++page)
        words[page / 64].fetch_or(std::uint64_t{1} << (page % 64), std::memory_order_relaxed);
}

std::vector<std::uint64_t> GuestMemory::take_dirty_pages(std::size_t region) const noexcept {
    if (dirty_.empty() || region >= regions_.size()) return {};
    std::vector<std::uint64_t> bitmap(bitmap_words(regions_[region].size));
    for (std::size_t w = 0; w < bitmap.size(); ++w)
        bitmap[w] = dirty_[region][w].exchange(0, std::memory_order_relaxed);
    return bitmap;
}

void GuestMemory::mark_dirty_pages(std::size_t region, std::span<std::uint64_t const> bitmap) const noexcept {
    if (dirty_.empty() || region >= regions_.size()) return;
    std::size_t const words = std::min(bitmap.size(), bitmap_words(regions_[region].size));
    for (std::size_t w = 0; w < words; ++w) dirty_[region][w].fetch_or(bitmap[w], std::memory_order_relaxed);
}

}  // namespace kvmlet
