#pragma once
// KVM's variable-length ioctl structs (kvm_cpuid2, kvm_msrs), laid out as the kernel sees them.
//
// Why not the header's own types: in linux-libc-dev 6.1, __DECLARE_FLEX_ARRAY expands in C++ to a
// struct holding an empty struct (size 1 in C++, 0 in C), which moves `entries` from offset 8 to 12
// and makes sizeof(kvm_cpuid2) 12, so the ioctl numbers derived from it are wrong too (the kernel
// answers EINVAL). These definitions follow the C layout and are pinned with static_asserts.
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace kvmlet::kvm_abi {

struct FlexHeader {
    std::uint32_t count;  // nent / nmsrs
    std::uint32_t padding;
};
static_assert(sizeof(FlexHeader) == 8);
static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msr_entry) == 16);
static_assert(sizeof(kvm_irq_routing_entry) == 48);

// kvm_xsave's legacy 4 KiB region alone: the header's struct ends in a flexible array (for
// KVM_GET_XSAVE2), which C++ cannot hold inside another struct.
struct XsaveArea {
    std::uint32_t region[1024];
};
static_assert(sizeof(XsaveArea) == 4096);
inline constexpr unsigned long get_xsave = _IOR(KVMIO, 0xa4, XsaveArea);
inline constexpr unsigned long set_xsave = _IOW(KVMIO, 0xa5, XsaveArea);

// The ioctl numbers, with the C size of the header (8 bytes).
inline constexpr unsigned long get_supported_cpuid = _IOWR(KVMIO, 0x05, FlexHeader);
inline constexpr unsigned long set_cpuid2 = _IOW(KVMIO, 0x90, FlexHeader);
inline constexpr unsigned long get_cpuid2 = _IOWR(KVMIO, 0x91, FlexHeader);
// kvm_msr_list's header is its u32 count alone (4 bytes in C).
inline constexpr unsigned long get_msr_index_list = _IOWR(KVMIO, 0x02, std::uint32_t);
inline constexpr unsigned long set_msrs = _IOW(KVMIO, 0x89, FlexHeader);
inline constexpr unsigned long get_msrs = _IOWR(KVMIO, 0x88, FlexHeader);
inline constexpr unsigned long set_gsi_routing = _IOW(KVMIO, 0x6a, FlexHeader);  // kvm_irq_routing

// A header followed by `capacity` entries in one zeroed buffer.
template <class Entry>
class FlexBuffer {
public:
    explicit FlexBuffer(std::size_t capacity)
        : capacity_(capacity),
          storage_(std::make_unique<std::byte[]>(sizeof(FlexHeader) + capacity * sizeof(Entry))) {
        set_count(static_cast<std::uint32_t>(capacity));
    }
    void* data() noexcept { return storage_.get(); }
    std::uint32_t count() const noexcept {
        FlexHeader h;
        std::memcpy(&h, storage_.get(), sizeof h);
        return h.count;
    }
    void set_count(std::uint32_t count) noexcept {
        FlexHeader h{count, 0};
        std::memcpy(storage_.get(), &h, sizeof h);
    }
    void set_entries(std::span<Entry const> entries) noexcept {
        set_count(static_cast<std::uint32_t>(entries.size()));
        std::memcpy(storage_.get() + sizeof(FlexHeader), entries.data(), entries.size_bytes());
    }
    std::vector<Entry> entries() const {
        std::vector<Entry> out(std::min<std::size_t>(count(), capacity_));
        std::memcpy(out.data(), storage_.get() + sizeof(FlexHeader), out.size() * sizeof(Entry));
        return out;
    }

private:
    std::size_t capacity_;
    std::unique_ptr<std::byte[]> storage_;
};

}  // namespace kvmlet::kvm_abi
