// Fuzz target: a split virtqueue (devices/virtio/queue.cpp) and the chain streams
// (devices/virtio/chain_io.cpp) fed guest RAM the fuzzer wrote. Input format: fuzz_support.hpp
// (QueueHeader); flag bit 2 reads every chain without writing to it.
//
// Beyond "no crash, no hang, no access outside RAM" (ASan), it checks what queue.hpp promises
// about every chain it hands out, and that ChainReader returns exactly the chain's readable bytes.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/queue.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace kvmlet::fuzz {
namespace {

constexpr std::uint16_t max_size = 256;
constexpr std::uint8_t flag_read_only = 4;
// Bytes streamed per chain at most: enough to cross many buffers, small enough to stay fast
// (a chain may describe up to 4 GiB).
constexpr std::uint64_t stream_cap = 3 * ram_size;

// xorshift32, for chunk sizes: deterministic per input.
std::uint32_t next_random(std::uint32_t& state) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

std::size_t chunk_size(std::uint32_t& state, std::uint64_t remaining) {
    std::uint32_t const r = next_random(state);
    switch (r % 8) {
        case 0:
            return 0;
        case 1:
            return static_cast<std::size_t>(std::min<std::uint64_t>(remaining, 4096));
        case 2:
            return static_cast<std::size_t>(std::min<std::uint64_t>(remaining + 1, 4096));
        default:
            return (r >> 8) % 40 + 1;
    }
}

// Fills `out` with the bytes at [pos, pos + out.size()) of the chain's buffers of one direction,
// gathered independently of ChainReader; false when some of them are outside RAM or the buffers
// end first.
bool reference_read(GuestMemory const& memory, std::vector<virtio::Descriptor> const& buffers,
                    std::uint64_t pos, std::span<std::byte> out) {
    std::size_t const n = out.size();
    std::size_t done = 0;
    std::uint64_t start = 0;  // of the current buffer, in stream positions
    for (auto const& d : buffers) {
        if (done == n) break;
        std::uint64_t const end = start + d.len;
        if (pos + done < end) {
            std::uint64_t const offset = pos + done - start;
            std::size_t const take =
                static_cast<std::size_t>(std::min<std::uint64_t>(n - done, d.len - offset));
            if (!memory.read_bytes(GuestAddress{d.addr.value + offset}, out.subspan(done, take)))
                return false;
            done += take;
        }
        start = end;
    }
    return done == n;
}

void check_chain(virtio::DescriptorChain const& chain, std::uint16_t size) {
    KVMLET_FUZZ_CHECK(chain.head < size);
    KVMLET_FUZZ_CHECK(!chain.descriptors.empty() && chain.descriptors.size() <= size);
    std::uint64_t total = 0;
    bool seen_writable = false;
    for (auto const& d : chain.descriptors) {
        KVMLET_FUZZ_CHECK(d.addr.value + d.len >= d.addr.value);
        // Entirely in RAM (checked at pop), by the fuzzer's own arithmetic, not GuestMemory's.
        KVMLET_FUZZ_CHECK(d.addr.value <= ram_size && d.len <= ram_size - d.addr.value);
        KVMLET_FUZZ_CHECK(d.device_writable || !seen_writable);
        seen_writable = seen_writable || d.device_writable;
        total += d.len;
    }
    KVMLET_FUZZ_CHECK(total <= 0xffff'ffffull);
}

void stream_readable(GuestMemory const& memory, virtio::DescriptorChain const& chain, std::uint32_t& random) {
    std::vector<virtio::Descriptor> readable;
    for (auto const& d : chain.descriptors)
        if (!d.device_writable) readable.push_back(d);
    std::uint64_t total = 0;
    for (auto const& d : readable) total += d.len;

    virtio::ChainReader reader(memory, chain);
    KVMLET_FUZZ_CHECK(reader.remaining() == total);
    std::uint64_t pos = 0;
    // Reused across chunks, and compared with memcmp: a chain streams up to stream_cap bytes in
    // chunks of a few bytes, and an allocation per chunk or a traced comparison per byte took
    // most of the target's time.
    static std::vector<std::byte> buffer;
    static std::vector<std::byte> expected;
    while (pos < stream_cap) {
        std::size_t const n = chunk_size(random, reader.remaining());
        buffer.assign(n, std::byte{0xa5});
        expected.assign(n, std::byte{0x5a});
        bool const ok = reader.read(buffer);
        KVMLET_FUZZ_CHECK(ok == reference_read(memory, readable, pos, expected));
        if (!ok) return;  // the reader's position after a failed read is unspecified
        KVMLET_FUZZ_CHECK(n == 0 || std::memcmp(buffer.data(), expected.data(), n) == 0);
        pos += n;
        KVMLET_FUZZ_CHECK(reader.remaining() == total - pos);
        if (reader.remaining() == 0) {
            std::array<std::byte, 1> one{};
            KVMLET_FUZZ_CHECK(!reader.read(one));
            return;
        }
    }
}

// Fills the writable buffers with a pattern; returns the bytes written (the used length).
std::uint32_t stream_writable(GuestMemory const& memory, virtio::DescriptorChain const& chain,
                              std::uint32_t& random) {
    std::uint64_t total = 0;
    for (auto const& d : chain.descriptors)
        if (d.device_writable) total += d.len;
    virtio::ChainWriter writer(memory, chain);
    KVMLET_FUZZ_CHECK(writer.remaining() == total && writer.written() == 0);
    std::vector<std::byte> buffer;
    while (writer.written() < stream_cap) {
        std::size_t const n = chunk_size(random, writer.remaining());
        buffer.assign(n, static_cast<std::byte>(writer.written()));
        std::uint32_t const before = writer.written();
        if (!writer.write(buffer)) {
            // Either too much, or a piece outside RAM (which only ever ends past 64 KiB here).
            return writer.written();
        }
        KVMLET_FUZZ_CHECK(writer.written() == before + n);
        KVMLET_FUZZ_CHECK(writer.remaining() == total - writer.written());
        if (writer.remaining() == 0) {
            std::array<std::byte, 1> one{};
            KVMLET_FUZZ_CHECK(!writer.write(one));
            break;
        }
    }
    return writer.written();
}

}  // namespace
}  // namespace kvmlet::fuzz

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    using namespace kvmlet;
    using namespace kvmlet::fuzz;
    quiet_logs();
    ByteReader in({data, size});
    auto const header = take_queue_header(in);
    take_ram_image(in);
    GuestMemory const& memory = ram();
    auto queue =
        virtio::SplitQueue::activate(memory, header.config, max_size, header.event_idx, header.indirect);
    if (!queue) return 0;
    std::uint16_t const queue_size = queue->size();
    std::uint32_t random = 0x9e37'79b9u ^ static_cast<std::uint32_t>(size);
    for (int round = 0; round < max_rounds; ++round) {
        // When nothing but the queue itself writes to the rings, one pass serves at most `size`
        // chains, good or bad (each consumes an avail entry, and at most `size` are pending).
        // Writable buffers may point into the avail ring, though, and then the device's own writes
        // publish more entries, as a driver adding buffers concurrently would: those passes just
        // get a generous bound.
        bool const strict = (header.flags & flag_read_only) && !(header.flags & flag_explicit_layout);
        std::uint32_t served = 0;
        std::uint64_t const bad_before = queue->bad_chains();
        while (auto chain = queue->pop()) {
            ++served;
            KVMLET_FUZZ_CHECK(!strict || served <= queue_size);
            if (served > 8u * queue_size) break;
            check_chain(*chain, queue_size);
            stream_readable(memory, *chain, random);
            std::uint32_t const written =
                header.flags & flag_read_only ? 0 : stream_writable(memory, *chain, random);
            queue->add_used(chain->head, written);
        }
        KVMLET_FUZZ_CHECK(!strict || served + (queue->bad_chains() - bad_before) <= queue_size);
        (void)queue->needs_interrupt();
        KVMLET_FUZZ_CHECK(!queue->needs_interrupt());  // nothing used since the last call
        if (queue->broken()) {
            KVMLET_FUZZ_CHECK(!queue->pop());
            break;
        }
        if (!apply_patch(in)) break;
    }
    return 0;
}
