#include "devices/legacy/serial.hpp"

#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <thread>
#include <vector>

namespace kvmlet {
namespace {

// Register offsets (PC16550D datasheet, Table II), spelled out here so the test does not trust
// the device's own constants.
constexpr std::uint64_t rbr = 0, thr = 0, dll = 0, ier = 1, dlm = 1, iir = 2, fcr = 2, lcr = 3, mcr = 4,
                        lsr = 5, msr = 6, scr = 7;

struct RecordingIrq final : IrqLine {
    void trigger() noexcept override { ++count; }
    std::atomic<int> count{0};
};

struct RecordingSink final : ByteSink {
    void write(std::span<std::byte const> bytes) noexcept override {
        for (auto b : bytes) out.push_back(std::to_integer<std::uint8_t>(b));
    }
    std::vector<std::uint8_t> out;
};

struct Uart {
    RecordingIrq irq;
    RecordingSink sink;
    Serial serial{irq, sink};

    std::uint8_t in(std::uint64_t offset) {
        std::byte b{0xaa};
        serial.read(IoAccess{com1_port + offset, offset}, std::span(&b, 1));
        return std::to_integer<std::uint8_t>(b);
    }
    void out(std::uint64_t offset, std::uint8_t value) {
        std::byte b{value};
        serial.write(IoAccess{com1_port + offset, offset}, std::span<std::byte const>(&b, 1));
    }
    std::size_t enqueue(std::vector<std::uint8_t> const& bytes) {
        std::vector<std::byte> raw;
        for (auto v : bytes) raw.push_back(std::byte{v});
        return serial.enqueue_input(raw);
    }
};

// What the port asked of a WriteBatching, in order.
struct RecordingBatching final : WriteBatching {
    void batch(bool on) noexcept override { calls.push_back(on); }
    std::vector<bool> calls;
};

std::vector<std::uint8_t> counting(std::size_t n, std::uint8_t first = 0) {
    std::vector<std::uint8_t> v;
    for (std::size_t i = 0; i < n; ++i) v.push_back(static_cast<std::uint8_t>(first + i));
    return v;
}

}  // namespace

TEST_CASE("A fresh serial port has an empty transmitter, no data and no pending interrupt") {
    Uart u;
    CHECK(u.in(lsr) == 0x60);  // THRE | TEMT
    CHECK(u.in(iir) == 0x01);
    CHECK(u.in(ier) == 0x00);
    CHECK(u.in(msr) == 0xb0);  // DCD | DSR | CTS
    CHECK_FALSE(u.serial.input_full());
    CHECK(u.irq.count == 0);
}

TEST_CASE("Bytes written to THR reach the byte sink in order without an interrupt when ETBEI is clear") {
    Uart u;
    u.out(thr, 'o');
    u.out(thr, 'k');
    CHECK(u.sink.out == std::vector<std::uint8_t>{'o', 'k'});
    CHECK(u.irq.count == 0);
    CHECK(u.in(lsr) == 0x60);
}

TEST_CASE("Enqueued input is read back in order and DR clears when it is drained") {
    Uart u;
    REQUIRE(u.enqueue({'a', 'b', 'c'}) == 3);
    CHECK((u.in(lsr)&0x01) == 0x01);
    CHECK(u.in(rbr) == 'a');
    CHECK(u.in(rbr) == 'b');
    CHECK(u.in(rbr) == 'c');
    CHECK(u.in(lsr) == 0x60);
    CHECK(u.in(rbr) == 0x00);  // reading an empty RBR neither crashes nor invents data
}

TEST_CASE("enqueue_input accepts only what fits and the rest can be offered again without loss") {
    Uart u;
    auto data = counting(Serial::rx_capacity + 36);
    CHECK(u.enqueue(data) == Serial::rx_capacity);
    CHECK(u.serial.input_full());
    CHECK(u.enqueue({0xee}) == 0);
    CHECK(u.in(rbr) == 0);  // frees one slot, so the ring wraps on the next push
    CHECK_FALSE(u.serial.input_full());
    CHECK(u.enqueue({data[Serial::rx_capacity], data[Serial::rx_capacity + 1]}) == 1);
    for (std::size_t i = 1; i <= Serial::rx_capacity; ++i) CHECK(u.in(rbr) == data[i]);
    CHECK(u.in(lsr) == 0x60);
    CHECK((u.in(lsr)&0x02) == 0);  // refusing input is not an overrun
}

TEST_CASE("Enabling ETBEI raises the THR-empty interrupt and reading IIR clears it") {
    Uart u;
    u.out(ier, 0x02);
    CHECK(u.irq.count == 1);
    CHECK(u.in(iir) == 0x02);
    CHECK(u.in(iir) == 0x01);
    u.out(ier, 0x02);  // already enabled: no new edge
    CHECK(u.irq.count == 1);
    u.out(ier, 0x00);
    u.out(ier, 0x02);
    CHECK(u.irq.count == 2);
}

TEST_CASE("Each byte transmitted with ETBEI set raises a new THR-empty interrupt") {
    Uart u;
    u.out(ier, 0x02);
    u.out(thr, 'x');  // clears the pending THRE, then the byte is sent and THRE is pending again
    u.out(thr, 'y');
    CHECK(u.irq.count == 3);
    CHECK(u.in(iir) == 0x02);
    CHECK(u.in(iir) == 0x01);
    CHECK(u.sink.out == std::vector<std::uint8_t>{'x', 'y'});
}

TEST_CASE("Received data raises an interrupt when ERBFI is enabled and stays pending until drained") {
    Uart u;
    REQUIRE(u.enqueue({'q'}) == 1);
    CHECK(u.irq.count == 0);
    CHECK(u.in(iir) == 0x01);
    u.out(ier, 0x01);  // data already waiting: enabling makes it pending
    CHECK(u.irq.count == 1);
    REQUIRE(u.enqueue({'r'}) == 1);
    CHECK(u.irq.count == 1);  // already pending: no second edge
    CHECK(u.in(iir) == 0x04);
    CHECK(u.in(iir) == 0x04);  // reading IIR does not clear received-data-available
    u.in(rbr);
    u.in(rbr);
    CHECK(u.in(iir) == 0x01);
    REQUIRE(u.enqueue({'s'}) == 1);
    CHECK(u.irq.count == 2);
}

TEST_CASE("IIR reports received data before THR empty") {
    Uart u;
    u.out(ier, 0x03);
    REQUIRE(u.enqueue({'z'}) == 1);
    CHECK(u.in(iir) == 0x04);
    CHECK(u.in(rbr) == 'z');
    CHECK(u.in(iir) == 0x02);
    CHECK(u.in(iir) == 0x01);
}

TEST_CASE("Enabling the FIFOs sets IIR bits 6 and 7 and FCR clears the receive FIFO") {
    Uart u;
    u.out(fcr, 0x01);
    CHECK(u.in(iir) == 0xc1);
    REQUIRE(u.enqueue({1, 2, 3}) == 3);
    u.out(fcr, 0x01 | 0x02);  // enabled, clear receive FIFO
    CHECK((u.in(lsr)&0x01) == 0);
    CHECK(u.in(iir) == 0xc1);
    REQUIRE(u.enqueue({4}) == 1);
    u.out(fcr, 0x00);  // disabling the FIFOs clears them too
    CHECK(u.in(iir) == 0x01);
    CHECK((u.in(lsr)&0x01) == 0);
}

TEST_CASE("DLAB maps offsets 0 and 1 to the divisor latch and back") {
    Uart u;
    u.out(ier, 0x05);
    u.out(lcr, 0x83);
    u.out(dll, 0x01);
    u.out(dlm, 0x02);
    CHECK(u.in(dll) == 0x01);
    CHECK(u.in(dlm) == 0x02);
    CHECK(u.in(lcr) == 0x83);
    CHECK(u.sink.out.empty());
    u.out(lcr, 0x03);
    CHECK(u.in(ier) == 0x05);
    u.out(thr, '!');
    CHECK(u.sink.out == std::vector<std::uint8_t>{'!'});
    u.out(lcr, 0x83);
    CHECK(u.in(dll) == 0x01);
}

TEST_CASE("Loopback returns transmitted bytes to RBR and mirrors MCR in MSR as Linux's probe expects") {
    Uart u;
    u.out(mcr, 0x10 | 0x0a);          // LOOP | OUT2 | RTS
    CHECK((u.in(msr)&0xf0) == 0x90);  // DCD | CTS
    u.out(mcr, 0x1f);
    CHECK((u.in(msr)&0xf0) == 0xf0);
    u.out(mcr, 0x10);
    CHECK((u.in(msr)&0xf0) == 0x00);
    u.out(ier, 0x01);
    u.out(thr, 0x5a);
    CHECK(u.sink.out.empty());
    CHECK(u.irq.count == 1);
    CHECK(u.in(iir) == 0x04);
    CHECK(u.in(rbr) == 0x5a);
    CHECK(u.enqueue({'h'}) == 0);  // serial input is disconnected in loopback
    CHECK(u.serial.input_full());
    u.out(mcr, 0x00);
    CHECK(u.in(msr) == 0xb0);
    CHECK(u.enqueue({'h'}) == 1);
}

TEST_CASE("A loopback byte arriving at a full receive FIFO sets OE and a line-status interrupt") {
    Uart u;
    u.out(mcr, 0x10);
    u.out(ier, 0x04);
    for (std::size_t i = 0; i < Serial::rx_capacity; ++i) u.out(thr, static_cast<std::uint8_t>(i));
    CHECK(u.irq.count == 0);
    u.out(thr, 0xff);  // dropped
    CHECK(u.irq.count == 1);
    CHECK(u.in(iir) == 0x06);
    CHECK(u.in(lsr) == (0x60 | 0x02 | 0x01));
    CHECK(u.in(lsr) == (0x60 | 0x01));  // reading LSR cleared OE
    CHECK(u.in(iir) == 0x01);
    for (std::size_t i = 0; i < Serial::rx_capacity; ++i) CHECK(u.in(rbr) == i);
    CHECK((u.in(lsr)&0x01) == 0);
}

TEST_CASE("The scratch register keeps the last value written") {
    Uart u;
    u.out(scr, 0xa5);
    CHECK(u.in(scr) == 0xa5);
    u.out(scr, 0x5a);
    CHECK(u.in(scr) == 0x5a);
}

TEST_CASE("Reserved bits of IER and MCR read as zero and LSR and MSR ignore writes") {
    Uart u;
    u.out(ier, 0xf0);
    CHECK(u.in(ier) == 0x00);
    u.out(mcr, 0xe3);
    CHECK(u.in(mcr) == 0x03);
    u.out(lsr, 0x00);
    u.out(msr, 0x00);
    CHECK(u.in(lsr) == 0x60);
    CHECK(u.in(msr) == 0xb0);
}

TEST_CASE("Accesses wider than one byte are ignored and read as all ones") {
    Uart u;
    REQUIRE(u.enqueue({'k'}) == 1);
    std::array<std::byte, 2> wide{std::byte{0}, std::byte{0}};
    u.serial.read(IoAccess{com1_port, rbr}, wide);
    CHECK(wide == std::array<std::byte, 2>{std::byte{0xff}, std::byte{0xff}});
    u.serial.write(IoAccess{com1_port, thr}, std::span<std::byte const>(wide));
    CHECK(u.sink.out.empty());
    CHECK(u.in(rbr) == 'k');  // the wide read did not consume the byte
    std::array<std::byte, 0> none{};
    u.serial.read(IoAccess{com1_port, rbr}, none);
    u.serial.write(IoAccess{com1_port, thr}, std::span<std::byte const>(none));
    CHECK(u.sink.out.empty());
}

TEST_CASE("Input offered from another thread arrives complete and in order") {
    Uart u;
    auto data = counting(1000, 7);
    std::thread host([&] {
        std::span<std::byte const> rest = std::as_bytes(std::span(data));
        while (!rest.empty()) rest = rest.subspan(u.serial.enqueue_input(rest));
    });
    std::vector<std::uint8_t> got;
    while (got.size() < data.size())
        if (u.in(lsr)&0x01) got.push_back(u.in(rbr));
    host.join();
    CHECK(got == data);
}

}  // namespace kvmlet

namespace kvmlet {
namespace {

TEST_CASE("A serial port's saved state loads into a new one: registers, divisor and unread input") {
    Uart a;
    a.out(lcr, 0x80);  // DLAB: the divisor
    a.out(dll, 0x0c);
    a.out(dlm, 0x01);
    a.out(lcr, 0x03);  // 8N1
    a.out(ier, 0x01);  // received data available
    a.out(scr, 0x5a);
    a.out(fcr, 0x01);
    REQUIRE(a.enqueue({'a', 'b', 'c'}) == 3);
    CHECK(a.in(rbr) == 'a');
    StateWriter out;
    a.serial.save(out);

    Uart b;
    StateReader in(out.bytes(), "dev.serial");
    b.serial.load(in);
    CHECK(b.in(scr) == 0x5a);
    CHECK(b.in(lcr) == 0x03);
    CHECK(b.in(ier) == 0x01);
    CHECK((b.in(iir)&0x0f) == 0x04);  // received data available, as in the saved port
    CHECK(b.in(rbr) == 'b');
    CHECK(b.in(rbr) == 'c');
    CHECK((b.in(lsr)&0x01) == 0);
    b.out(lcr, 0x83);
    CHECK(b.in(dll) == 0x0c);
    CHECK(b.in(dlm) == 0x01);
}

TEST_CASE("A serial state that is short, too long or has buffer indexes out of range is refused") {
    Uart a;
    StateWriter out;
    a.serial.save(out);
    auto bytes = out.take();

    Uart b;
    std::vector<std::byte> shorter(bytes.begin(), bytes.end() - 1);
    StateReader short_in(shorter, "dev.serial");
    CHECK_THROWS_WITH(b.serial.load(short_in), Catch::Contains("dev.serial: ends after"));
    std::vector<std::byte> longer = bytes;
    longer.push_back(std::byte{0});
    StateReader long_in(longer, "dev.serial");
    CHECK_THROWS_WITH(b.serial.load(long_in), "snapshot section dev.serial: 1 bytes left over");
    std::vector<std::byte> bad_count = bytes;
    bad_count[Serial::rx_capacity + 4] = std::byte{65};  // the receive count (u32 after head)
    StateReader bad_in(bad_count, "dev.serial");
    CHECK_THROWS_WITH(b.serial.load(bad_in), Catch::Contains("receive buffer index out of range"));
}

TEST_CASE("THR writes are batched only while ETBEI is clear and loopback is off") {
    Uart u;
    RecordingBatching batching;
    u.serial.batch_transmit(batching);
    CHECK(batching.calls == std::vector<bool>{true});  // a fresh port: IER = 0, no loopback
    u.out(ier, 0x01);                                  // received-data interrupt only: still on
    u.out(lcr, 0x03);
    u.out(thr, 'x');
    CHECK(batching.calls == std::vector<bool>{true});
    u.out(ier, 0x03);  // ETBEI: a THR write is followed by an interrupt, so every write must exit
    CHECK(batching.calls == std::vector<bool>{true, false});
    u.out(ier, 0x01);
    CHECK(batching.calls == std::vector<bool>{true, false, true});
    u.out(mcr, 0x10);  // loopback: a THR write becomes received data the guest reads at once
    CHECK(batching.calls == std::vector<bool>{true, false, true, false});
    u.out(mcr, 0x0b);
    CHECK(batching.calls == std::vector<bool>{true, false, true, false, true});
    u.out(lcr, 0x83);  // DLAB: offset 1 is DLM, IER is unchanged
    u.out(dlm, 0x02);
    CHECK(batching.calls.size() == 5);
}

TEST_CASE("A loaded serial state sets batching from its IER and MCR") {
    Uart a;
    a.out(ier, 0x02);
    StateWriter out;
    a.serial.save(out);
    auto bytes = out.take();

    Uart b;
    RecordingBatching batching;
    b.serial.batch_transmit(batching);
    StateReader in(bytes, "dev.serial");
    b.serial.load(in);
    CHECK(batching.calls == std::vector<bool>{true, false});
}

}  // namespace
}  // namespace kvmlet
