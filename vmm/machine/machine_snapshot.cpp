// Machine's snapshots (issue 17): the state of a paused machine saved as sections of a state file
// plus its RAM in a memory file, and a machine built from them (docs/snapshot.md).
#include "vmm/machine/machine_snapshot.hpp"

#include <chrono>

#include "devices/virtio/net/mac_address.hpp"
#include "firmware/x86_64/layout.hpp"
#include "vmm/base/log.hpp"
#include "vmm/machine/machine.hpp"
#include "vmm/snapshot/dirty_pages.hpp"
#include "vmm/snapshot/kvm_state.hpp"
#include "vmm/snapshot/memory_file.hpp"

namespace kvmlet {
namespace {

constexpr char const* machine_section = "machine";
constexpr char const* vm_section = "kvm.vm";

std::string vcpu_section(std::size_t index) {
    return fmt::format("kvm.vcpu.{}", index);
}

// A section read with a reader that names it in errors.
template <class F>
auto read_section(snapshot::StateFile const& state, std::string const& name, F&& f) {
    StateReader in(state.section(name), name);
    return f(in);
}

// Every virtio device frozen (Transport::freeze) while it lives: what the devices' sections say
// and the memory file hold is one moment, though the event loop and the disks' workers run on.
class FrozenDevices {
public:
    explicit FrozenDevices(std::vector<std::unique_ptr<VirtioSlot>> const& slots) : slots_(slots) {
        for (auto const& slot : slots_) slot->transport().freeze();
    }
    FrozenDevices(FrozenDevices const&) = delete;
    FrozenDevices& operator=(FrozenDevices const&) = delete;
    ~FrozenDevices() {
        for (auto const& slot : slots_) slot->transport().thaw();
    }

private:
    std::vector<std::unique_ptr<VirtioSlot>> const& slots_;
};

// For the refusal of a kind whose state is not saved yet.
char const* device_kind(virtio::DeviceType type) {
    switch (type) {
        case virtio::DeviceType::net:
            return "net with MMDS";  // a network interface without MMDS is saveable
        case virtio::DeviceType::block:
            return "block";
        case virtio::DeviceType::console:
            return "console";
        case virtio::DeviceType::rng:
            return "rng";
        case virtio::DeviceType::vsock:
            return "vsock";
    }
    return "unknown";
}

constexpr std::uint32_t max_path_length = 4096;
constexpr std::uint32_t max_disk_id_length = 20;  // VIRTIO_BLK_ID_BYTES
constexpr std::uint32_t max_iface_id_length = 64;
constexpr std::uint32_t max_tap_name_length = 15;  // IFNAMSIZ - 1

void put_string(StateWriter& out, std::string const& text) {
    out.put_vector(std::vector<char>(text.begin(), text.end()));
}

std::string get_string(StateReader& in, std::uint32_t max_length) {
    auto const chars = in.get_vector<char>(max_length);
    std::string text(chars.begin(), chars.end());
    if (text.find('\0') != std::string::npos) throw in.malformed("a NUL character in a path or name");
    return text;
}

// The disks as the machine opens them (their rate limiters are the devices' state).
void save_disks(StateWriter& out, std::vector<DiskConfig> const& disks) {
    out.put(static_cast<std::uint32_t>(disks.size()));
    for (auto const& disk : disks) {
        put_string(out, disk.path);
        out.put_bool(disk.read_only);
        put_string(out, disk.id);
        out.put(static_cast<std::uint8_t>(disk.cache));
    }
}

std::vector<DiskConfig> load_disks(StateReader& in) {
    auto const count = in.get<std::uint32_t>();
    if (count > MachineConfig::max_disks) throw in.malformed(fmt::format("{} disks", count));
    std::vector<DiskConfig> disks(count);
    for (auto& disk : disks) {
        disk.path = get_string(in, max_path_length);
        disk.read_only = in.get_bool();
        disk.id = get_string(in, max_disk_id_length);
        auto const cache = in.get<std::uint8_t>();
        if (disk.path.empty() || cache > static_cast<std::uint8_t>(CacheMode::none))
            throw in.malformed("a disk without a path, or of an unknown cache mode");
        disk.cache = static_cast<CacheMode>(cache);
    }
    return disks;
}

// The interfaces as the machine built them: its id (or eth<N>), the TAP (absent: one kvmlet
// creates), the MAC the guest knows, the offloads offered (their state is the devices').
void save_nets(StateWriter& out, std::vector<NetInterfaceConfig> const& nets) {
    out.put(static_cast<std::uint32_t>(nets.size()));
    for (std::size_t i = 0; i < nets.size(); ++i) {
        put_string(out, nets[i].id.empty() ? fmt::format("eth{}", i) : nets[i].id);
        out.put_bool(nets[i].tap.has_value());
        if (nets[i].tap) put_string(out, *nets[i].tap);
        auto const mac = nets[i].mac ? virtio::net::MacAddress::parse(*nets[i].mac) : std::nullopt;
        out.put(mac.value_or(virtio::net::MacAddress{}).bytes);
        out.put_bool(nets[i].offloads);
    }
}

NetInterfaceConfig load_net(StateReader& in) {
    NetInterfaceConfig net;
    net.id = get_string(in, max_iface_id_length);
    if (in.get_bool()) net.tap = get_string(in, max_tap_name_length);
    virtio::net::MacAddress mac;
    mac.bytes = in.get<decltype(mac.bytes)>();
    net.offloads = in.get_bool();
    if (net.id.empty() || (net.tap && net.tap->empty()))
        throw in.malformed("a network interface without an id, or with an empty TAP name");
    if (mac.multicast() || mac == virtio::net::MacAddress{})
        throw in.malformed(
            fmt::format("network interface {}: MAC {} cannot be an interface's", net.id, mac.to_string()));
    net.mac = mac.to_string();
    return net;
}

std::vector<NetInterfaceConfig> load_nets(StateReader& in) {
    auto const count = in.get<std::uint32_t>();
    if (count > MachineConfig::max_nets) throw in.malformed(fmt::format("{} network interfaces", count));
    std::vector<NetInterfaceConfig> nets;
    for (std::uint32_t i = 0; i < count; ++i) {
        nets.push_back(load_net(in));
        for (std::uint32_t j = 0; j < i; ++j)
            if (nets[j].id == nets[i].id) throw in.malformed(fmt::format("iface_id {} twice", nets[i].id));
    }
    return nets;
}

// PUT /snapshot/load network_overrides: each names an interface of the snapshot.
void apply_net_overrides(std::vector<NetInterfaceConfig>& nets,
                         std::vector<RestoreFiles::NetOverride> const& overrides) {
    for (auto const& o : overrides) {
        auto it = std::find_if(nets.begin(), nets.end(), [&](auto const& n) { return n.id == o.iface_id; });
        if (it == nets.end())
            throw Error(
                fmt::format("network_overrides: the snapshot has no network interface {}", o.iface_id));
        it->tap = o.host_dev_name;
    }
}

}  // namespace

std::vector<std::byte> save_machine_shape(MachineConfig const& config) {
    StateWriter out;
    out.put(config.cpus);
    out.put(config.memory_bytes);
    out.put_bool(config.acpi);
    out.put(static_cast<std::uint8_t>(config.transport));
    // The virtio devices to build again, in make_virtio_devices' order; their state (rate
    // limiters included) is in their own sections.
    save_disks(out, config.disks);
    save_nets(out, config.nets);
    out.put_bool(config.console == ConsoleKind::virtio);
    out.put_bool(config.rng.has_value());
    return out.take();
}

MachineConfig restored_config(MachineConfig config, snapshot::StateFile const& state) {
    read_section(state, machine_section, [&](StateReader& in) {
        config.cpus = in.get<std::uint32_t>();
        config.memory_bytes = in.get<std::uint64_t>();
        config.acpi = in.get_bool();
        auto transport = in.get<std::uint8_t>();
        auto disks = load_disks(in);
        auto nets = load_nets(in);
        bool const virtio_console = in.get_bool();
        bool const rng = in.get_bool();
        in.finish();
        if (config.cpus == 0 || config.cpus > MachineConfig::max_cpus)
            throw in.malformed(fmt::format("{} vCPUs", config.cpus));
        if (config.memory_bytes < MachineConfig::min_memory || config.memory_bytes % 4096 != 0)
            throw in.malformed(fmt::format("{} bytes of RAM", config.memory_bytes));
        if (transport > static_cast<std::uint8_t>(VirtioTransport::mmio))
            throw in.malformed("unknown transport");
        config.transport = static_cast<VirtioTransport>(transport);
        // Its devices' state is in the snapshot, not in a configuration.
        config.disks = std::move(disks);
        apply_net_overrides(
            nets, config.restore ? config.restore->net_overrides : std::vector<RestoreFiles::NetOverride>{});
        config.nets = std::move(nets);
        config.vsock.reset();
        config.rng = rng ? std::optional(virtio::RngConfig{}) : std::nullopt;
        if (virtio_console)
            config.console = ConsoleKind::virtio;  // the guest's hvc0 stays; on stdin and stdout
        else if (config.console == ConsoleKind::virtio)
            config.console = ConsoleKind::serial;
    });
    return config;
}

snapshot::StateFile Machine::capture_state() {
    snapshot::StateFile state;
    state.add(machine_section, save_machine_shape(config_));
    StateWriter vm;
    snapshot::capture(vm_).save(vm);
    state.add(vm_section, vm.take());
    for (auto const& vcpu : vcpus_) {
        StateWriter out;
        snapshot::capture(vcpu->fd(), msr_indices_).save(out);
        state.add(vcpu_section(vcpu->index()), out.take());
    }
    for (auto const& [name, device] : persistent_) {
        StateWriter out;
        device->save(out);
        state.add(name, out.take());
    }
    return state;
}

std::optional<std::string> Machine::create_snapshot(SnapshotPaths const& paths) {
    if (state() != MachineState::paused) return "The microVM is not paused: pause it first (PATCH /vm).";
    // Devices whose state is not saved yet (issue 17's next milestones) would come back wrong.
    if (!config_.pit) return "Snapshots of a microVM without a PIT (--pit off) are not supported yet.";
    // Its RAM's memfd has holes where the handler has not filled a page, which are not zeros.
    if (uffd_) return "Snapshots of a microVM restored with the Uffd memory backend are not supported yet.";
    if (paths.diff && !memory_->tracks_dirty_pages())  // Firecracker's words
        return "Diff snapshots are not allowed on uVMs with dirty page tracking disabled.";
    for (auto const& slot : virtio_) {
        virtio::Device const& device = slot->transport().device();
        if (!device.saveable())
            return fmt::format(
                "Snapshots of a microVM with a virtio device of type {} ({}) are not supported yet.",
                static_cast<std::uint32_t>(device.type()), device_kind(device.type()));
    }
    try {
        auto const start = std::chrono::steady_clock::now();
        snapshot::require_capabilities(vm_);
        FrozenDevices const frozen(virtio_);
        snapshot::StateFile state = capture_state();
        state.write(paths.state);
        auto const memory = write_memory_file(paths);
        auto const took = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
        log::info("snapshot: {} ({} sections) and {} ({} MiB, {} KiB of it {}) written in {:.1f} ms",
                  paths.state, state.sections().size(), paths.memory, memory.size >> 20,
                  memory.written_bytes >> 10,
                  paths.diff ? "pages dirtied since the last snapshot" : "non-zero pages", took.count());
        return std::nullopt;
    } catch (Error const& e) {
        log::error("snapshot: {}", e.what());
        return std::string(e.what());
    }
}

// With dirty tracking, Full or Diff, the next Diff has what changes after this snapshot: the logs
// are taken (and cleared) here, and given back when the file cannot be written.
snapshot::MemoryFileStats Machine::write_memory_file(SnapshotPaths const& paths) {
    if (!memory_->tracks_dirty_pages()) return snapshot::write_memory_file(*memory_, paths.memory);
    auto const dirty = snapshot::take_dirty_pages(vm_, *memory_);
    try {
        return snapshot::write_memory_file(*memory_, paths.memory, paths.diff ? &dirty : nullptr);
    } catch (Error const&) {
        snapshot::give_back(*memory_, dirty);
        throw;
    }
}

// The VM's irqchip, PIT and clock first, then each vCPU (its LAPIC needs the irqchip), then the
// devices. Every section of the file must be used: one this kvmlet does not know is an error.
void Machine::restore_state(snapshot::StateFile const& state) {
    auto const start = std::chrono::steady_clock::now();
    std::vector<std::string> used{machine_section, vm_section};
    snapshot::restore(vm_, read_section(state, vm_section, &snapshot::VmState::load),
                      config_.restore->clock_realtime);
    for (auto const& vcpu : vcpus_) {
        std::string name = vcpu_section(vcpu->index());
        snapshot::restore(vcpu->fd(), read_section(state, name, &snapshot::VcpuState::load));
        used.push_back(std::move(name));
    }
    for (auto const& entry : persistent_) {  // not a structured binding: clang 14 cannot capture one
        Persistent* device = entry.second;
        read_section(state, entry.first, [device](StateReader& in) { device->load(in); });
        used.push_back(entry.first);
    }
    for (auto const& section : state.sections())
        if (std::find(used.begin(), used.end(), section.name) == used.end())
            throw Error(fmt::format("snapshot {}: section {} is not one this machine has",
                                    config_.restore->state.string(), section.name));
    // resume_vm false: the vCPUs park before their first KVM_RUN, until resume().
    if (!config_.restore->resume) pause_.request();
    auto const took = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
    log::info("snapshot: {} restored ({} vCPUs, {} MiB from {}); state loaded in {:.2f} ms",
              config_.restore->state.string(), vcpus_.size(), config_.memory_bytes >> 20,
              config_.restore->memory.string(), took.count());
}

}  // namespace kvmlet
