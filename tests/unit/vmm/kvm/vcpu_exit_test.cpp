#include "vmm/kvm/vcpu_exit.hpp"

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <new>

namespace kvmlet {
namespace {

constexpr std::size_t page = 4096;

// Stands in for the kvm_run mapping of a vCPU fd: three zeroed pages, the PIO data page after the
// kvm_run structure as KVM lays it out.
struct RunMapping {
    static constexpr std::size_t size = 3 * page;
    alignas(page) std::array<std::byte, size> bytes{};
    kvm_run* run = new (bytes.data()) kvm_run{};

    std::byte* at(std::uint64_t offset) { return bytes.data() + offset; }
    VcpuExit decode() { return decode_exit(*run, size); }
};

std::unique_ptr<RunMapping> mapping() {
    return std::make_unique<RunMapping>();
}

void set_io(kvm_run& run, std::uint8_t direction, std::uint16_t port, std::uint8_t size, std::uint32_t count,
            std::uint64_t data_offset) {
    run.exit_reason = KVM_EXIT_IO;
    run.io.direction = direction;
    run.io.port = port;
    run.io.size = size;
    run.io.count = count;
    run.io.data_offset = data_offset;
}

void set_mmio(kvm_run& run, bool is_write, std::uint64_t address, std::uint32_t len) {
    run.exit_reason = KVM_EXIT_MMIO;
    run.mmio.is_write = is_write ? 1 : 0;
    run.mmio.phys_addr = address;
    run.mmio.len = len;
}

std::uint32_t unsupported_reason(VcpuExit const& exit) {
    auto const* u = std::get_if<Unsupported>(&exit);
    return u ? u->reason : 0xffff'ffffu;
}

}  // namespace

TEST_CASE("a PIO out exit exposes the data KVM wrote at data_offset") {
    auto m = mapping();
    set_io(*m->run, KVM_EXIT_IO_OUT, 0x3f8, 1, 1, page);
    *m->at(page) = std::byte{'A'};
    auto exit = m->decode();
    auto const* out = std::get_if<IoOut>(&exit);
    REQUIRE(out);
    CHECK(out->port == 0x3f8);
    CHECK(out->size == 1);
    CHECK(out->count == 1);
    REQUIRE(out->data.size() == 1);
    CHECK(out->data.data() == m->at(page));
    CHECK(out->data[0] == std::byte{'A'});
}

TEST_CASE("a rep PIO in exit gives size * count writable bytes inside the mapping") {
    auto m = mapping();
    set_io(*m->run, KVM_EXIT_IO_IN, 0x1f0, 2, 4, page + 0x10);
    auto exit = m->decode();
    auto const* in = std::get_if<IoIn>(&exit);
    REQUIRE(in);
    CHECK(in->port == 0x1f0);
    CHECK(in->size == 2);
    CHECK(in->count == 4);
    REQUIRE(in->data.size() == 8);
    CHECK(in->data.data() == m->at(page + 0x10));
    std::fill(in->data.begin(), in->data.end(), std::byte{0x77});
    CHECK(*m->at(page + 0x10 + 7) == std::byte{0x77});
    CHECK(*m->at(page + 0x10 + 8) == std::byte{0});
}

TEST_CASE("PIO data ending exactly at the end of the mapping is accepted") {
    auto m = mapping();
    set_io(*m->run, KVM_EXIT_IO_OUT, 0x80, 4, 1, RunMapping::size - 4);
    auto exit = m->decode();
    auto const* out = std::get_if<IoOut>(&exit);
    REQUIRE(out);
    CHECK(out->data.size() == 4);
    CHECK(out->data.data() + out->data.size() == m->at(RunMapping::size));
}

TEST_CASE("PIO data running past the mapping is unsupported") {
    auto m = mapping();
    SECTION("one byte too many") {
        set_io(*m->run, KVM_EXIT_IO_OUT, 0x80, 4, 1, RunMapping::size - 3);
    }
    SECTION("rep count too large") {
        set_io(*m->run, KVM_EXIT_IO_IN, 0x80, 2, 4097, page);
    }
    SECTION("data_offset just past the end") {
        set_io(*m->run, KVM_EXIT_IO_IN, 0x80, 1, 1, RunMapping::size);
    }
    SECTION("data_offset far past the end") {
        set_io(*m->run, KVM_EXIT_IO_OUT, 0x80, 1, 1, UINT64_MAX);
    }
    SECTION("size * count beyond 32 bits") {
        set_io(*m->run, KVM_EXIT_IO_OUT, 0x80, 4, UINT32_MAX, page);
    }
    CHECK(unsupported_reason(m->decode()) == KVM_EXIT_IO);
}

TEST_CASE("PIO with a size other than 1, 2 or 4 or a zero count is unsupported") {
    auto m = mapping();
    SECTION("size 0") {
        set_io(*m->run, KVM_EXIT_IO_OUT, 0x80, 0, 1, page);
    }
    SECTION("size 3") {
        set_io(*m->run, KVM_EXIT_IO_OUT, 0x80, 3, 1, page);
    }
    SECTION("size 8") {
        set_io(*m->run, KVM_EXIT_IO_IN, 0x80, 8, 1, page);
    }
    SECTION("count 0") {
        set_io(*m->run, KVM_EXIT_IO_IN, 0x80, 1, 0, page);
    }
    CHECK(unsupported_reason(m->decode()) == KVM_EXIT_IO);
}

TEST_CASE("an MMIO write exposes the address and the bytes in kvm_run") {
    auto m = mapping();
    set_mmio(*m->run, true, 0xd000'0010, 4);
    m->run->mmio.data[0] = 0x11;
    m->run->mmio.data[3] = 0x44;
    auto exit = m->decode();
    auto const* w = std::get_if<MmioWrite>(&exit);
    REQUIRE(w);
    CHECK(w->address == 0xd000'0010);
    REQUIRE(w->data.size() == 4);
    CHECK(static_cast<void const*>(w->data.data()) == static_cast<void const*>(m->run->mmio.data));
    CHECK(w->data[0] == std::byte{0x11});
    CHECK(w->data[3] == std::byte{0x44});
}

TEST_CASE("an MMIO read of 8 bytes is filled in kvm_run") {
    auto m = mapping();
    set_mmio(*m->run, false, 0xfee0'0000, 8);
    auto exit = m->decode();
    auto const* r = std::get_if<MmioRead>(&exit);
    REQUIRE(r);
    CHECK(r->address == 0xfee0'0000);
    REQUIRE(r->data.size() == 8);
    r->data[7] = std::byte{0x99};
    CHECK(m->run->mmio.data[7] == 0x99);
}

TEST_CASE("MMIO of 0 or more than 8 bytes is unsupported") {
    auto m = mapping();
    auto len = GENERATE(0u, 9u, 0xffff'ffffu);
    auto is_write = GENERATE(false, true);
    CAPTURE(len, is_write);
    set_mmio(*m->run, is_write, 0x1000, len);
    CHECK(unsupported_reason(m->decode()) == KVM_EXIT_MMIO);
}

TEST_CASE("halt, shutdown and interrupt exits decode to their types") {
    auto m = mapping();
    m->run->exit_reason = KVM_EXIT_HLT;
    CHECK(std::holds_alternative<Halt>(m->decode()));
    m->run->exit_reason = KVM_EXIT_SHUTDOWN;
    CHECK(std::holds_alternative<Shutdown>(m->decode()));
    m->run->exit_reason = KVM_EXIT_INTR;
    CHECK(std::holds_alternative<Interrupted>(m->decode()));
}

TEST_CASE("a system event keeps its type") {
    auto m = mapping();
    auto type = GENERATE(std::uint32_t{KVM_SYSTEM_EVENT_SHUTDOWN}, std::uint32_t{KVM_SYSTEM_EVENT_RESET},
                         std::uint32_t{KVM_SYSTEM_EVENT_CRASH});
    m->run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
    m->run->system_event.type = type;
    auto exit = m->decode();
    auto const* e = std::get_if<SystemEvent>(&exit);
    REQUIRE(e);
    CHECK(e->type == type);
}

TEST_CASE("a failed entry keeps the hardware reason") {
    auto m = mapping();
    m->run->exit_reason = KVM_EXIT_FAIL_ENTRY;
    m->run->fail_entry.hardware_entry_failure_reason = 0x8000'0021;
    auto exit = m->decode();
    auto const* f = std::get_if<FailEntry>(&exit);
    REQUIRE(f);
    CHECK(f->hardware_reason == 0x8000'0021);
}

TEST_CASE("an emulation failure with instruction bytes copies them") {
    auto m = mapping();
    auto& run = *m->run;
    run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
    run.emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
    run.emulation_failure.ndata = 3;
    run.emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
    run.emulation_failure.insn_size = 2;
    run.emulation_failure.insn_bytes[0] = 0x9b;
    run.emulation_failure.insn_bytes[1] = 0xcc;
    run.emulation_failure.insn_bytes[2] = 0x55;  // beyond insn_size: not copied
    auto exit = m->decode();
    auto const* e = std::get_if<InternalError>(&exit);
    REQUIRE(e);
    CHECK(e->suberror == KVM_INTERNAL_ERROR_EMULATION);
    CHECK(e->ndata == 3);
    CHECK(e->data[0] == KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES);
    CHECK(e->instruction_size == 2);
    CHECK(e->instruction[0] == 0x9b);
    CHECK(e->instruction[1] == 0xcc);
    CHECK(e->instruction[2] == 0);
}

TEST_CASE("an emulation failure claiming more than 15 instruction bytes is clamped to 15") {
    auto m = mapping();
    auto& run = *m->run;
    run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
    run.emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
    run.emulation_failure.ndata = 3;
    run.emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
    run.emulation_failure.insn_size = 200;
    for (std::uint8_t i = 0; i < 15; ++i)
        run.emulation_failure.insn_bytes[i] = static_cast<std::uint8_t>(i + 1);
    auto exit = m->decode();
    auto const* e = std::get_if<InternalError>(&exit);
    REQUIRE(e);
    CHECK(e->instruction_size == 15);
    CHECK(e->instruction[0] == 1);
    CHECK(e->instruction[14] == 15);
}

TEST_CASE("an emulation failure without the instruction-bytes flag or with too little data reports none") {
    auto m = mapping();
    auto& run = *m->run;
    run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
    run.emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
    run.emulation_failure.insn_size = 1;
    run.emulation_failure.insn_bytes[0] = 0xcc;
    SECTION("no flag") {
        run.emulation_failure.ndata = 3;
        run.emulation_failure.flags = 0;
    }
    SECTION("ndata too small for the bytes") {
        run.emulation_failure.ndata = 2;
        run.emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
    }
    auto exit = m->decode();
    auto const* e = std::get_if<InternalError>(&exit);
    REQUIRE(e);
    CHECK(e->instruction_size == 0);
    CHECK(e->instruction[0] == 0);
}

TEST_CASE("another internal error keeps its data, with ndata clamped to 16") {
    auto m = mapping();
    auto& run = *m->run;
    run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
    run.internal.suberror = KVM_INTERNAL_ERROR_SIMUL_EX;
    run.internal.ndata = 1000;
    for (std::uint64_t i = 0; i < 16; ++i) run.internal.data[i] = 0x100 + i;
    // Even with the flag bit set in data[0], only an emulation failure carries instruction bytes.
    run.internal.data[0] = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
    auto exit = m->decode();
    auto const* e = std::get_if<InternalError>(&exit);
    REQUIRE(e);
    CHECK(e->suberror == KVM_INTERNAL_ERROR_SIMUL_EX);
    CHECK(e->ndata == 16);
    CHECK(e->data[0] == KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES);
    CHECK(e->data[15] == 0x10f);
    CHECK(e->instruction_size == 0);
}

TEST_CASE("an internal error copies only ndata words") {
    auto m = mapping();
    auto& run = *m->run;
    run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
    run.internal.suberror = KVM_INTERNAL_ERROR_DELIVERY_EV;
    run.internal.ndata = 2;
    run.internal.data[0] = 7;
    run.internal.data[1] = 8;
    run.internal.data[2] = 9;
    auto exit = m->decode();
    auto const* e = std::get_if<InternalError>(&exit);
    REQUIRE(e);
    CHECK(e->ndata == 2);
    CHECK(e->data[1] == 8);
    CHECK(e->data[2] == 0);
}

TEST_CASE("an exit reason kvmlet does not handle is unsupported and keeps the reason") {
    auto m = mapping();
    auto reason = GENERATE(std::uint32_t{KVM_EXIT_UNKNOWN}, std::uint32_t{KVM_EXIT_DEBUG},
                           std::uint32_t{KVM_EXIT_IRQ_WINDOW_OPEN}, std::uint32_t{0x1234});
    m->run->exit_reason = reason;
    CHECK(unsupported_reason(m->decode()) == reason);
}

}  // namespace kvmlet
