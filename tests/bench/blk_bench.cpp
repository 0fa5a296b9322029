// Host-side throughput of the virtio-blk device model: 4 KiB reads and writes at random sectors
// of an image in the page cache, at queue depth 1 and 32, driven through a real split queue in
// real guest memory, next to plain pread/pwrite of the same file at the same offsets (what the
// device model cannot beat). Prints one JSON object; tools/bench/blk turns it into a report.
//
// Usage: kvmlet_blk_bench [--dir DIR] [--size-mib N] [--seconds S] [--rounds N] [--only NAME]
// (--only runs one row, e.g. device_read_qd1, for a profiler.)
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "devices/virtio/block/block_device.hpp"
#include "devices/virtio/split_ring_spec.hpp"
#include "tests/bench/bench_clock.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/unique_fd.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet {
namespace {

namespace blk = virtio::blk;

constexpr std::uint32_t request_bytes = 4096;
constexpr std::uint16_t queue_size = 256;
constexpr std::uint16_t max_depth = 32;
constexpr std::uint64_t ram_size = 16 * MiB;
// Guest-physical layout: rings, then one header, data buffer and status byte per slot.
constexpr std::uint64_t desc_at = 0x10000, avail_at = 0x11000, used_at = 0x12000;
constexpr std::uint64_t headers_at = 0x20000, status_at = 0x21000, data_at = 0x100000;
// virtio 1.2 §2.7.5 descriptor flags.
constexpr std::uint16_t desc_f_next = 1, desc_f_write = 2;

struct Options {
    std::string dir = "/dev/shm";
    std::uint64_t size_mib = 256;
    double seconds = 1.0;
    int rounds = 5;
    std::string only;
};

using bench::clock_s;

struct Sample {
    std::uint64_t requests = 0;
    double wall_s = 0;
    double cpu_s = 0;
};

// Runs batch() (which serves `per_batch` requests) until `seconds` of wall time have passed.
template <class F>
Sample timed(double seconds, std::uint64_t per_batch, F&& batch) {
    double const wall0 = clock_s(CLOCK_MONOTONIC), cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    Sample s;
    do {
        for (int i = 0; i < 64; ++i) batch();
        s.requests += 64 * per_batch;
        s.wall_s = clock_s(CLOCK_MONOTONIC) - wall0;
    } while (s.wall_s < seconds);
    s.cpu_s = clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    return s;
}

using virtio::RawDescriptor;

// The driver's side of the queue, minimal: slot i is the chain of descriptors 3i (header),
// 3i+1 (data) and 3i+2 (status), built once; a request only rewrites its header's sector.
class BenchDriver {
public:
    // The driver is the guest: it writes its rings with plain stores into RAM, as a guest would,
    // so that its own cost does not count against the device model.
    explicit BenchDriver(GuestMemory const& memory) : ram_(memory.slice(GuestAddress{0}, ram_size).value()) {}

    virtio::QueueConfig config() const {
        return {.size = queue_size,
                .desc = GuestAddress{desc_at},
                .avail = GuestAddress{avail_at},
                .used = GuestAddress{used_at},
                .ready = true};
    }
    void build_chains(std::uint32_t type) {
        for (std::uint16_t i = 0; i < max_depth; ++i) {
            std::uint16_t const d = static_cast<std::uint16_t>(3 * i);
            std::uint16_t const data_flags = type == blk::request_type::in ? desc_f_write : 0;
            put(desc_at + 16u * d,
                RawDescriptor{headers_at + 16u * i, 16, desc_f_next, static_cast<std::uint16_t>(d + 1)});
            put(desc_at + 16u * (d + 1u),
                RawDescriptor{data_at + std::uint64_t{request_bytes} * i, request_bytes,
                              static_cast<std::uint16_t>(data_flags | desc_f_next),
                              static_cast<std::uint16_t>(d + 2)});
            put(desc_at + 16u * (d + 2u), RawDescriptor{status_at + i, 1, desc_f_write, 0});
            put(headers_at + 16u * i, blk::RequestHeader{type, 0, 0});
        }
    }
    void submit(std::uint16_t slot, std::uint64_t sector) {
        put(headers_at + 16u * slot + 8, sector);
        put(avail_at + 4 + 2u * (avail_idx_ % queue_size), static_cast<std::uint16_t>(3 * slot));
        ++avail_idx_;
        std::atomic_thread_fence(std::memory_order_release);  // virtio 1.2 §2.7.13: ring entry before idx
        put(avail_at + 2, avail_idx_);
    }
    // Takes back `count` used chains and checks each one's status.
    void reap(std::uint16_t count) {
        auto const idx = get<std::uint16_t>(used_at + 2);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (static_cast<std::uint16_t>(idx - last_used_) != count)
            throw Error("blk bench: a request went missing");
        for (; last_used_ != idx; ++last_used_) {
            auto const id = get<std::uint32_t>(used_at + 4 + 8u * (last_used_ % queue_size));
            if (get<std::uint8_t>(status_at + id / 3) != blk::status::ok)
                throw Error("blk bench: a request failed");
        }
    }

private:
    template <class T>
    void put(std::uint64_t at, T const& value) {
        std::memcpy(ram_.data() + at, &value, sizeof value);
    }
    template <class T>
    T get(std::uint64_t at) const {
        T value;
        std::memcpy(&value, ram_.data() + at, sizeof value);
        return value;
    }

    std::span<std::byte> ram_;
    std::uint16_t avail_idx_ = 0;
    std::uint16_t last_used_ = 0;
};

// A disk asks its host for nothing.
struct NullHost final : virtio::DeviceHost {
    void watch(int, Readiness, Callback) noexcept override {}
    void after(std::chrono::nanoseconds, Callback) noexcept override {}
    void post(Callback) noexcept override {}
    void kick(std::size_t) noexcept override {}
};

struct NullInterrupt final : virtio::Interrupt {
    void used_buffers(std::size_t) noexcept override { ++interrupts; }
    void config_changed() noexcept override {}
    void needs_reset() noexcept override { broken = true; }
    std::uint64_t interrupts = 0;
    bool broken = false;
};

// Random 4 KiB-aligned offsets, the same sequence for every run.
class Offsets {
public:
    explicit Offsets(std::uint64_t file_size) : blocks_(file_size / request_bytes) {
        std::mt19937_64 random(42);
        for (auto& o : offsets_) o = random() % blocks_ * request_bytes;
    }
    std::uint64_t next() noexcept { return offsets_[next_++ % offsets_.size()]; }
    void rewind() noexcept { next_ = 0; }

private:
    std::uint64_t blocks_;
    std::vector<std::uint64_t> offsets_ = std::vector<std::uint64_t>(1 << 16);
    std::size_t next_ = 0;
};

std::string make_image(Options const& o) {
    std::string path = o.dir + "/kvmlet-blk-bench.XXXXXX";
    int fd = ::mkstemp(path.data());
    if (fd < 0) throw system_error("blk bench: mkstemp in " + o.dir);
    std::vector<char> chunk(MiB, 'k');
    for (std::uint64_t i = 0; i < o.size_mib; ++i) {
        if (::pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(i * MiB)) !=
            static_cast<ssize_t>(MiB))
            throw system_error("blk bench: writing " + path);
    }
    ::fsync(fd);  // start from a clean page cache: no writeback of the fill during the runs
    ::close(fd);
    return path;
}

Sample raw_run(int fd, bool write, Offsets& offsets, double seconds) {
    alignas(4096) static char buffer[request_bytes];
    offsets.rewind();
    return timed(seconds, max_depth, [&] {
        for (int i = 0; i < max_depth; ++i) {
            auto const pos = static_cast<off_t>(offsets.next());
            ssize_t n =
                write ? ::pwrite(fd, buffer, request_bytes, pos) : ::pread(fd, buffer, request_bytes, pos);
            if (n != request_bytes) throw system_error("blk bench: raw I/O");
        }
    });
}

struct DeviceRig {
    GuestMemory memory;
    BenchDriver driver{memory};
    NullInterrupt irq;
    NullHost host;
    virtio::BlockDevice device;

    explicit DeviceRig(std::string const& path)
        : memory(GuestMemory::create(std::vector<RamRange>{{GuestAddress{0}, ram_size}})),
          device(Disk({.path = path})) {
        std::vector<virtio::SplitQueue> queues;
        auto q = virtio::SplitQueue::activate(memory, driver.config(), queue_size, true, false);
        if (!q) throw Error("blk bench: " + q.error());
        queues.push_back(std::move(q).value());
        if (!device.activate({memory, std::move(queues), device.features(), irq, host}))
            throw Error("blk bench: activate");
    }
};

Sample device_run(DeviceRig& rig, bool write, std::uint16_t depth, Offsets& offsets, double seconds) {
    rig.driver.build_chains(write ? blk::request_type::out : blk::request_type::in);
    offsets.rewind();
    return timed(seconds, depth, [&] {
        for (std::uint16_t i = 0; i < depth; ++i) rig.driver.submit(i, offsets.next() / blk::sector_size);
        rig.device.process_queue(0);
        rig.driver.reap(depth);
    });
}

struct Row {
    char const* name;
    bool device;
    bool write;
    std::uint16_t depth;  // device rows only: raw I/O is one request at a time
};
constexpr Row rows[] = {
    {"raw_read", false, false, 0},       {"raw_write", false, true, 0},
    {"device_read_qd1", true, false, 1}, {"device_read_qd32", true, false, 32},
    {"device_write_qd1", true, true, 1}, {"device_write_qd32", true, true, 32},
};

// One round: every row once, raw and device alternating within the round so drift hits both.
void run_round(Options const& o, std::string const& path, Offsets& offsets, bool last_round) {
    UniqueFd fd{::open(path.c_str(), O_RDWR | O_CLOEXEC)};
    if (!fd.valid()) throw system_error("blk bench: open " + path);
    DeviceRig rig(path);  // the raw fd takes no lock, so both can be open at once
    std::vector<std::string> samples;
    for (auto const& row : rows) {
        if (!o.only.empty() && o.only != row.name) continue;
        Sample s = row.device ? device_run(rig, row.write, row.depth, offsets, o.seconds)
                              : raw_run(fd.get(), row.write, offsets, o.seconds);
        samples.push_back(
            fmt::format(R"(    {{"name": "{}", "requests": {}, "wall_s": {:.6f}, "cpu_s": {:.6f}}})",
                        row.name, s.requests, s.wall_s, s.cpu_s));
    }
    if (rig.irq.broken) throw Error("blk bench: the queue broke");
    std::printf("   [\n%s\n   ]%s\n", fmt::format("{}", fmt::join(samples, ",\n")).c_str(),
                last_round ? "" : ",");
    std::fflush(stdout);
}

void run(Options const& o) {
    std::string const path = make_image(o);
    struct statfs fs {};
    ::statfs(o.dir.c_str(), &fs);
    std::printf(
        "{\n  \"image\": \"%s\", \"image_bytes\": %llu, \"fs_magic\": \"%#lx\", \"request_bytes\": %u,\n",
        path.c_str(), static_cast<unsigned long long>(o.size_mib * MiB),
        static_cast<unsigned long>(fs.f_type), request_bytes);
    std::printf("  \"seconds_per_run\": %.3f, \"rounds\": [\n", o.seconds);
    Offsets offsets(o.size_mib * MiB);
    for (int round = 0; round < o.rounds; ++round) run_round(o, path, offsets, round + 1 == o.rounds);
    std::printf("  ]\n}\n");
    ::unlink(path.c_str());
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string_view flag = argv[i];
        char const* value = argv[i + 1];
        if (flag == "--dir") {
            o.dir = value;
        } else if (flag == "--size-mib") {
            o.size_mib = std::strtoull(value, nullptr, 10);
        } else if (flag == "--seconds") {
            o.seconds = std::strtod(value, nullptr);
        } else if (flag == "--rounds") {
            o.rounds = std::atoi(value);
        } else if (flag == "--only") {
            o.only = value;
        } else {
            throw UsageError(fmt::format("unknown option {}", flag));
        }
    }
    if (argc % 2 == 0)
        throw UsageError("options take a value: --dir DIR --size-mib N --seconds S --rounds N");
    if (o.size_mib == 0 || o.seconds <= 0 || o.rounds < 1)
        throw UsageError("sizes, seconds and rounds must be > 0");
    return o;
}

}  // namespace
}  // namespace kvmlet

int main(int argc, char** argv) {
    try {
        kvmlet::run(kvmlet::parse(argc, argv));
        return 0;
    } catch (kvmlet::Error const& e) {
        std::fprintf(stderr, "kvmlet_blk_bench: %s\n", e.what());
        return static_cast<int>(e.status());
    }
}
