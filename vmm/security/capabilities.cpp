#include "vmm/security/capabilities.hpp"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kvmlet::security {
namespace {

bool kept(std::span<int const> keep, int cap) noexcept {
    return std::find(keep.begin(), keep.end(), cap) != keep.end();
}

std::string failure(char const* what) {
    return std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

std::string drop_capabilities(std::span<int const> keep) noexcept {
    // The bounding set first: it needs CAP_SETPCAP, which goes with the rest below. The kernel
    // knows capabilities 0 to the first one PR_CAPBSET_READ calls invalid.
    for (int cap = 0; ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; ++cap) {
        if (kept(keep, cap)) continue;
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EPERM) return failure("PR_CAPBSET_DROP");
    }
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return failure("PR_CAP_AMBIENT_CLEAR_ALL");
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
    if (::syscall(SYS_capget, &header, data) != 0) return failure("capget");
    __user_cap_data_struct next[_LINUX_CAPABILITY_U32S_3]{};
    for (int cap : keep) {
        auto const word = static_cast<std::size_t>(cap / 32);
        std::uint32_t const bit = 1u << (cap % 32);
        // Only what the thread has: capset cannot add.
        next[word].permitted |= data[word].permitted & bit;
        next[word].effective |= data[word].permitted & bit;
    }
    if (::syscall(SYS_capset, &header, next) != 0) return failure("capset");
    return {};
}

}  // namespace kvmlet::security
