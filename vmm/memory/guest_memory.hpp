#pragma once
// GuestMemory: the only door into guest RAM (STYLE.md §3). RAM is one memfd, mapped once per
// region; every access is bounds-checked against a single region, so no access can reach host
// memory outside guest RAM, and none can span the gap between two regions.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "vmm/base/guest_address.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet {

struct RamRange {
    GuestAddress start;
    std::uint64_t size;
};

struct GuestRegion {
    GuestAddress start;
    std::uint64_t size;
    std::byte* host;            // start of the mapping
    std::uint64_t file_offset;  // offset of this region in the memfd

    // The offset of [addr, addr + len) in this region, or nullopt if it does not fit entirely.
    std::optional<std::uint64_t> offset_of(GuestAddress addr, std::uint64_t len) const noexcept {
        if (addr.value < start.value) return std::nullopt;
        std::uint64_t offset = addr.value - start.value;
        if (offset > size || len > size - offset) return std::nullopt;
        return offset;
    }
};

class GuestMemory {
public:
    // Creates RAM for the given ranges (sorted, non-overlapping, page-aligned). Throws Error.
    static GuestMemory create(std::span<RamRange const> ranges);
    // RAM for the given ranges mapped MAP_PRIVATE from `file` (a snapshot's memory file: the
    // ranges' bytes one after another): pages load from the file when first touched and the
    // guest's writes are copy-on-write, never reaching the file. Throws Error unless the file is
    // a regular file of exactly the ranges' total size.
    static GuestMemory map_private(std::span<RamRange const> ranges, UniqueFd file, std::string const& path);

    GuestMemory(GuestMemory&&) noexcept;
    GuestMemory& operator=(GuestMemory&&) noexcept;
    GuestMemory(GuestMemory const&) = delete;
    GuestMemory& operator=(GuestMemory const&) = delete;
    ~GuestMemory();

    std::span<GuestRegion const> regions() const noexcept { return regions_; }
    std::uint64_t total_size() const noexcept;
    int memfd() const noexcept { return memfd_.get(); }
    // True when RAM is a private mapping of a file (map_private): memfd() is that file, and its
    // holes say nothing of what the guest wrote since.
    bool private_file() const noexcept { return private_file_; }

    // Host bytes for [addr, addr + len), all inside one region; nullopt otherwise. The caller may
    // write through them: with dirty tracking on, their pages count as dirtied.
    std::optional<std::span<std::byte>> slice(GuestAddress addr, std::uint64_t len) const noexcept;
    bool contains(GuestAddress addr, std::uint64_t len) const noexcept { return find(addr, len).has_value(); }

    // Dirty tracking (Diff snapshots, docs/snapshot.md): from now on every page the VMM writes
    // through this object (write_bytes, write, slice: devices and loaders, on any thread) is marked
    // in a bitmap per region, one bit per 4 KiB page, 64 to a word, in KVM's KVM_GET_DIRTY_LOG
    // layout. What the guest itself writes is KVM's dirty log; both together are what changed.
    void track_dirty_pages();
    bool tracks_dirty_pages() const noexcept { return !dirty_.empty(); }
    // Region `region`'s marks, cleared as they are taken (empty without tracking).
    std::vector<std::uint64_t> take_dirty_pages(std::size_t region) const noexcept;
    // Marks again the pages set in `bitmap` (a take's, given back when a snapshot failed).
    void mark_dirty_pages(std::size_t region, std::span<std::uint64_t const> bitmap) const noexcept;
    static constexpr std::uint64_t page_size = 4096;

    [[nodiscard]] bool read_bytes(GuestAddress addr, std::span<std::byte> out) const noexcept;
    [[nodiscard]] bool write_bytes(GuestAddress addr, std::span<std::byte const> in) const noexcept;

    // Copies a T out of guest memory (never a reference into it: the guest may change it).
    template <class T>
    std::optional<T> read(GuestAddress addr) const noexcept {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        if (!read_bytes(addr, std::as_writable_bytes(std::span{&value, 1}))) return std::nullopt;
        return value;
    }

    template <class T>
    [[nodiscard]] bool write(GuestAddress addr, T const& value) const noexcept {
        static_assert(std::is_trivially_copyable_v<T>);
        return write_bytes(addr, std::as_bytes(std::span{&value, 1}));
    }

private:
    struct Found {
        std::size_t region;
        std::uint64_t offset;
    };
    GuestMemory(UniqueFd memfd, std::vector<GuestRegion> regions) noexcept;
    void unmap() noexcept;
    std::optional<Found> find(GuestAddress addr, std::uint64_t len) const noexcept;
    void mark_dirty(Found at, std::uint64_t len) const noexcept;

    UniqueFd memfd_;
    std::vector<GuestRegion> regions_;
    bool private_file_ = false;
    // Per region, one bit per page; empty until track_dirty_pages().
    std::vector<std::unique_ptr<std::atomic<std::uint64_t>[]>> dirty_;
};

}  // namespace kvmlet
