#include "firmware/x86_64/reset_vector.hpp"

#include <span>

#include "firmware/x86_64/layout.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::x86_64 {

void write_reset_vector(GuestMemory const& memory) {
    if (!memory.write_bytes(reset_vector_start, std::as_bytes(std::span{reset_vector_code})))
        throw Error(fmt::format("reset vector: guest RAM does not reach {:#x}", reset_vector_start.value));
}

}  // namespace kvmlet::x86_64
