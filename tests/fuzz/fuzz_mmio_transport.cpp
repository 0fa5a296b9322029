// Fuzz target: the virtio-mmio register file (devices/virtio/mmio_transport.cpp) driving a real
// virtio-blk device over a scratch image, as a guest driver (or a confused one) would.
//
// Input: u16 ram_len and that many bytes of RAM image at guest address 0, then up to max_ops
// operations, each an op byte and its operands:
//   op & 7 == 0  write u32 `value` to register `offset_byte * 4` (offsets 0x000-0x3fc)
//   op & 7 == 1  read the 32-bit register at `offset_byte * 4`
//   op & 7 == 2  write: u16 offset (0-0xfff), width 1 << ((op >> 3) & 3), then that many bytes
//   op & 7 == 3  read: u16 offset, width as above
//   op & 7 == 4  patch RAM: u16 address, u8 length, bytes (the driver filling rings and buffers)
//   op & 7 == 5  notify queue u8 the way an ioeventfd does (MmioTransport::notify)
//   op & 7 == 6  a whole driver bring-up (§3.1.1) in register writes: u8 queue size log2, u8
//                feature choice (bit 0 EVENT_IDX, 1 INDIRECT_DESC, 2 FLUSH, 3 DISCARD,
//                4 WRITE_ZEROES, 5 drop VERSION_1), queue 0 in the compact layout
//                (fuzz_support.hpp), ending with DRIVER_OK
//   op & 7 == 7  write status 0 (reset)
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "devices/irq_line.hpp"
#include "devices/virtio/block/block_device.hpp"
#include "devices/virtio/mmio_spec.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/fuzz/temp_disk.hpp"

namespace kvmlet::fuzz {
namespace {

constexpr int max_ops = 512;
constexpr std::uint64_t window_base = 0xd000'0000;  // any address: only offsets matter

namespace reg = virtio::mmio::reg;

class CountingIrq final : public IrqLine {
public:
    void trigger() noexcept override { ++edges; }
    std::uint64_t edges = 0;
};

std::shared_ptr<virtio::BlockDevice> const& block_device() {
    static std::shared_ptr<virtio::BlockDevice> const device = std::make_shared<virtio::BlockDevice>(
        *temp_disk({.path = {}, .read_only = false, .id = "mmio-fuzz", .cache = CacheMode::writeback}));
    return device;
}

class Driver {
public:
    explicit Driver(virtio::MmioTransport& transport) : transport_(transport) {}

    void write(std::uint64_t offset, std::span<std::byte const> data) {
        transport_.write({window_base + offset, offset}, data);
    }
    void write32(std::uint64_t offset, std::uint32_t value) {
        write(offset, std::as_bytes(std::span{&value, 1}));
    }
    void write64(std::uint64_t offset, std::uint64_t value) {
        write32(offset, static_cast<std::uint32_t>(value));
        write32(offset + 4, static_cast<std::uint32_t>(value >> 32));
    }
    std::uint32_t read32(std::uint64_t offset) {
        std::uint32_t value = 0;
        read(offset, std::as_writable_bytes(std::span{&value, 1}));
        return value;
    }
    void read(std::uint64_t offset, std::span<std::byte> data) {
        transport_.read({window_base + offset, offset}, data);
    }

    void bring_up(std::uint8_t size_log2, std::uint8_t choice) {
        std::uint64_t features = 0;
        if (!(choice & 0x20)) features |= virtio::bit(virtio::feature::version_1);
        if (choice & 1) features |= virtio::bit(virtio::feature::ring_event_idx);
        if (choice & 2) features |= virtio::bit(virtio::feature::ring_indirect_desc);
        if (choice & 4) features |= virtio::bit(virtio::blk::feature::flush);
        if (choice & 8) features |= virtio::bit(virtio::blk::feature::discard);
        if (choice & 0x10) features |= virtio::bit(virtio::blk::feature::write_zeroes);
        auto const layout = compact_layout(static_cast<std::uint16_t>(1u << (size_log2 % 10)));
        namespace st = virtio::status;
        write32(reg::status, 0);
        write32(reg::status, st::acknowledge);
        write32(reg::status, st::acknowledge | st::driver);
        write32(reg::driver_features_sel, 0);
        write32(reg::driver_features, static_cast<std::uint32_t>(features));
        write32(reg::driver_features_sel, 1);
        write32(reg::driver_features, static_cast<std::uint32_t>(features >> 32));
        write32(reg::status, st::acknowledge | st::driver | st::features_ok);
        write32(reg::queue_sel, 0);
        write32(reg::queue_num, layout.size);
        write64(reg::queue_desc_low, layout.desc.value);
        write64(reg::queue_driver_low, layout.avail.value);
        write64(reg::queue_device_low, layout.used.value);
        write32(reg::queue_ready, 1);
        write32(reg::status, st::acknowledge | st::driver | st::features_ok | st::driver_ok);
        static_assert(reg::queue_desc_high == reg::queue_desc_low + 4 &&
                      reg::queue_driver_high == reg::queue_driver_low + 4 &&
                      reg::queue_device_high == reg::queue_device_low + 4);
    }

private:
    virtio::MmioTransport& transport_;
};

}  // namespace
}  // namespace kvmlet::fuzz

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    using namespace kvmlet;
    using namespace kvmlet::fuzz;
    quiet_logs();
    ByteReader in({data, size});
    take_ram_image(in);
    CountingIrq irq;
    virtio::MmioTransport transport(ram(), block_device(), irq);
    Driver driver(transport);
    KVMLET_FUZZ_CHECK(driver.read32(reg::magic_value) == 0x7472'6976);

    for (int op_count = 0; op_count < max_ops && !in.empty(); ++op_count) {
        auto const op = in.take<std::uint8_t>();
        std::size_t const width = std::size_t{1} << ((op >> 3) & 3);
        switch (op & 7) {
            case 0: {
                std::uint64_t const offset = std::uint64_t{in.take<std::uint8_t>()} * 4;
                driver.write32(offset, in.take<std::uint32_t>());
                break;
            }
            case 1:
                (void)driver.read32(std::uint64_t{in.take<std::uint8_t>()} * 4);
                break;
            case 2:
            case 3: {
                // The bus only hands the device accesses inside its window.
                std::uint64_t const offset = std::min<std::uint64_t>(
                    in.take<std::uint16_t>() & 0xfff, virtio::MmioTransport::window_size - width);
                std::uint64_t value = in.take<std::uint64_t>();
                auto bytes = std::as_writable_bytes(std::span{&value, 1}).first(width);
                if ((op & 7) == 2)
                    driver.write(offset, bytes);
                else
                    driver.read(offset, bytes);
                break;
            }
            case 4:
                (void)apply_patch(in);
                break;
            case 5:
                transport.notify(in.take<std::uint8_t>());
                break;
            case 6: {
                auto const size_log2 = in.take<std::uint8_t>();
                driver.bring_up(size_log2, in.take<std::uint8_t>());
                break;
            }
            default:
                driver.write32(reg::status, 0);
                break;
        }
    }
    // Reset leaves nothing behind: the next input starts with an inactive device.
    driver.write32(reg::status, 0);
    KVMLET_FUZZ_CHECK(!transport.active() && transport.status() == 0);
    KVMLET_FUZZ_CHECK(driver.read32(reg::interrupt_status) == 0);
    return 0;
}
