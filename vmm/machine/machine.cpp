#include "vmm/machine/machine.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>

#include "devices/virtio/block/block_device.hpp"
#include "devices/virtio/net/net_device.hpp"
#include "firmware/x86_64/acpi_tables.hpp"
#include "firmware/x86_64/kernel_boot.hpp"
#include "firmware/x86_64/layout.hpp"
#include "firmware/x86_64/long_mode.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/mapped_file.hpp"
#include "vmm/base/timeline.hpp"
#include "vmm/kvm/background_close.hpp"
#include "vmm/machine/machine_snapshot.hpp"
#include "vmm/machine/virtio_devices.hpp"
#include "vmm/security/seccomp.hpp"
#include "vmm/snapshot/kvm_state.hpp"
#include "vmm/vcpu/host_compat.hpp"
#include "vmm/vcpu/x86_64/cpuid.hpp"
#include "vmm/vcpu/x86_64/setup.hpp"

namespace kvmlet {
namespace {

// The halt watchdog samples every vCPU, first soon after start, then less and less often.
constexpr auto halt_watch_first = std::chrono::milliseconds(10);
constexpr auto halt_watch_max = std::chrono::milliseconds(500);
// Consecutive samples with every vCPU dead before the machine counts as halted, so that a vCPU
// woken by another between two samples is not missed.
constexpr int halt_rounds_needed = 2;

// How long pause() waits for the vCPUs to park before it kicks them again (covers a kick that
// landed between a vCPU's look at the pause gate and its next KVM_RUN, and was cleared).
constexpr auto pause_kick_interval = std::chrono::milliseconds(20);

// PCI configuration mechanism #1: the address at 0xCF8, the data at 0xCFC-0xCFF.
constexpr std::uint16_t pci_config_port = 0xcf8;
constexpr std::uint16_t pci_config_ports = 8;

// A close-on-exec duplicate of fd, for an asio descriptor that will close it.
int duplicate_fd(int fd) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) throw system_error("fcntl(F_DUPFD_CLOEXEC)");
    return copy;
}

x86_64::EntryProtocol entry_protocol(BootProtocol protocol) {
    switch (protocol) {
        case BootProtocol::automatic:
            return x86_64::EntryProtocol::automatic;
        case BootProtocol::linux64:
            return x86_64::EntryProtocol::linux64;
        case BootProtocol::pvh:
            return x86_64::EntryProtocol::pvh;
    }
    return x86_64::EntryProtocol::automatic;
}

// Joins command-line parts with single spaces, skipping empty ones.
std::string join_cmdline(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (auto part : parts) {
        if (part.empty()) continue;
        if (!out.empty()) out += ' ';
        out += part;
    }
    return out;
}

}  // namespace

Machine::Machine(MachineConfig const& config, KvmSystem const& kvm)
    : Machine(config, kvm,
              config.restore ? std::optional(snapshot::StateFile::read(config.restore->state.string()))
                             : std::nullopt) {}

Machine::Machine(MachineConfig const& config, KvmSystem const& kvm,
                 std::optional<snapshot::StateFile> restore)
    : config_(restore ? restored_config(config, *restore) : config),
      host_compat_(config.host_compat.value_or(detect_host_compat())),
      stop_([this] { io_.stop(); }),
      vcpu_filter_(security::compile_ahead({.kind = security::ThreadKind::vcpu})),
      vm_(kvm.create_vm()),
      console_out_(STDOUT_FILENO),
      halt_watch_(io_),
      halt_watch_interval_(halt_watch_first) {
    Timeline& timeline = process_timeline();
    timeline.mark(Phase::vm_created);
    vm_.set_tss_address(x86_64::kvm_tss_start);
    vm_.set_identity_map_address(x86_64::kvm_identity_map_start);
    if (restore) snapshot::require_capabilities(vm_);
    // Memory before the irqchip: measured on kvm_pvm, KVM_SET_USER_MEMORY_REGION takes ~0.2 ms on a
    // VM without an irqchip and 4-12 ms with one. KVM only needs the irqchip before the vCPUs.
    create_memory(config_.memory_bytes);
    vm_.create_irqchip();
    if (config_.pit) vm_.create_pit();
    timeline.mark(Phase::memory_ready);
    create_devices();
    timeline.mark(Phase::devices_ready);
    if (!restore) {
        load_kernel();  // after the devices: the command line names the virtio-mmio ones
        timeline.mark(Phase::kernel_loaded);
    }
    msr_indices_ = kvm.msr_index_list();
    create_vcpus(kvm);
    if (restore) restore_state(*restore);
}

Machine::~Machine() {
    stop_vcpus();
    // The VM's teardown (13-23 ms of in-kernel irqchip and PIT on a kvm-pvm host) runs in a
    // closer process beside ours; the members below close their copies as before.
    std::vector<int> vm_fds{vm_.fd()};
    for (auto const& vcpu : vcpus_) vm_fds.push_back(vcpu->fd().number());
    if (vm_.fd() < 0) return;
    closer_release_ = close_in_background(vm_fds);
    if (!closer_release_.valid()) log::debug("VM teardown: no closer process, the VM is torn down here");
}

void Machine::create_memory(std::uint64_t size) {
    auto ranges = x86_64::ram_ranges(size);
    if (config_.restore && !config_.restore->uffd) {
        std::string const path = config_.restore->memory.string();
        UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!file.valid()) throw system_error(fmt::format("memory file {}: cannot open it", path));
        memory_.emplace(GuestMemory::map_private(ranges, std::move(file), path));
    } else {
        memory_.emplace(GuestMemory::create(ranges));
    }
    // Before anything touches RAM: every page is the handler's to fill.
    if (config_.restore && config_.restore->uffd)
        uffd_.emplace(snapshot::hand_to_uffd_handler(*memory_, config_.restore->memory.string()));
    // Tracking from before the kernel is loaded: a Diff without a Full before it has every page.
    if (config_.track_dirty_pages) memory_->track_dirty_pages();
    std::uint32_t slot = 0;  // slot i is region i (snapshot::take_dirty_pages)
    for (auto const& region : memory_->regions())
        vm_.set_memory_region(slot++, region.start, region.size, region.host, config_.track_dirty_pages);
}

void Machine::load_kernel() {
    MappedFile image(config_.kernel, "kernel");
    std::optional<MappedFile> initrd;
    if (config_.initrd) initrd.emplace(*config_.initrd, "initrd");
    x86_64::KernelBootConfig boot_config{
        .kernel = image.bytes(),
        .initrd = initrd ? std::optional(initrd->bytes()) : std::nullopt,
        .cmdline = join_cmdline({config_.cmdline, virtio_cmdline_, compat_cmdline(host_compat_)}),
        .cpus = config_.cpus,
        .entry = entry_protocol(config_.boot_protocol),
        .acpi_rsdp = write_acpi_tables(),
    };
    // Linux uses ECAM only where e820 (or ACPI) says the range is reserved.
    if (pci_) boot_config.reserved.push_back({x86_64::pci_ecam_start, x86_64::pci_ecam_size});
    auto boot = x86_64::load_kernel(*memory_, boot_config);
    log::debug("kernel: {} at {:#x}-{:#x}, entry {:#x}; command line: {}", boot.protocol,
               boot.kernel_start.value, boot.kernel_end.value, boot.cpu.rip, boot_config.cmdline);
    boot_state_ = boot.cpu;
}

// What the DSDT, MADT and MCFG describe: the CPUs, the PCI bus and its slots with INTx, or the
// virtio-mmio windows.
std::optional<GuestAddress> Machine::write_acpi_tables() {
    if (!config_.acpi) return std::nullopt;
    x86_64::AcpiConfig acpi;
    acpi.cpus = config_.cpus;
    acpi.pci = pci_ != nullptr;
    acpi.ram_size = config_.memory_bytes;
    acpi.power_button = power_button_irq_ != nullptr;
    for (auto const& slot : virtio_) {
        if (auto pci_slot = slot->pci_slot()) acpi.pci_slots.push_back(*pci_slot);
        if (auto mmio = slot->mmio_placement())
            acpi.virtio_mmio.push_back({mmio->base, mmio->size, mmio->gsi});
    }
    return x86_64::write_acpi_tables(*memory_, acpi);
}

void Machine::create_devices() {
    com1_irq_ = std::make_unique<IrqfdLine>(vm_, com1_irq);
    ByteSink& serial_out =
        config_.console == ConsoleKind::none ? static_cast<ByteSink&>(discard_) : console_out_;
    serial_ = std::make_shared<Serial>(*com1_irq_, serial_out);
    pio_.insert(serial_, com1_port, Serial::port_count);
    persistent_.emplace_back("dev.serial", serial_.get());

    keyboard_irq_ = std::make_unique<IrqfdLine>(vm_, x86_64::i8042_keyboard_irq);
    i8042_ = std::make_shared<I8042>(*keyboard_irq_, [this] { stop_.request(StopKind::reset); });
    pio_.insert(i8042_, x86_64::i8042_data_port, I8042::port_length);
    pio_.insert(i8042_, x86_64::i8042_command_port, I8042::port_length);
    persistent_.emplace_back("dev.i8042", i8042_.get());

    boot_timer_ = std::make_shared<BootTimer>(
        &since_process_start, [](ProcessTimes at) { process_timeline().mark(Phase::boot_timer, at); });
    pio_.insert(boot_timer_, BootTimer::pio_port, BootTimer::pio_length);
    mmio_.insert(boot_timer_, x86_64::boot_timer_mmio.value, BootTimer::mmio_length);
    persistent_.emplace_back("dev.boot_timer", boot_timer_.get());
    if (config_.acpi) {
        acpi_power_ = std::make_shared<AcpiPower>(
            AcpiPower::Ports{x86_64::acpi_sleep_control_port, x86_64::acpi_sleep_status_port,
                             x86_64::acpi_reset_port},
            AcpiPower::Values{x86_64::acpi_s5_sleep_type, x86_64::acpi_reset_value},
            AcpiPower::Callbacks{[this] { stop_.request(StopKind::power_off); },
                                 [this] { stop_.request(StopKind::reset); }});
        for (std::uint16_t port :
             {x86_64::acpi_sleep_control_port, x86_64::acpi_sleep_status_port, x86_64::acpi_reset_port})
            pio_.insert(acpi_power_, port, AcpiPower::port_length);
        // The power button has no registers: a press is one edge on the GED's interrupt.
        power_button_irq_ = std::make_unique<IrqfdLine>(vm_, x86_64::acpi_power_button_irq);
    }
    if (config_.transport == VirtioTransport::pci) create_pci_bus();
    create_virtio_devices();
    // After the functions: its load routes their BARs as their loaded configuration says.
    if (pci_) persistent_.emplace_back("pci", pci_.get());
}

// One root bus: configuration through 0xCF8 and ECAM, BARs in the windows of x86_64/layout.hpp.
void Machine::create_pci_bus() {
    GuestAddress const high = x86_64::pci_mmio64_start(config_.memory_bytes);
    pci::Windows const windows{x86_64::pci_mmio32_start.value, x86_64::pci_mmio32_end.value, high.value,
                               high.value + x86_64::pci_mmio64_size};
    pci_ = std::make_shared<pci::PciBus>(windows);
    gsi_routes_ = std::make_unique<GsiRoutes>(vm_);
    pio_.insert(pci::make_config_io(pci_), pci_config_port, pci_config_ports);
    mmio_.insert(pci::make_ecam(pci_), x86_64::pci_ecam_start.value, x86_64::pci_ecam_size);
    auto window = pci::make_bar_window(pci_);
    mmio_.insert(window, windows.mmio32_start, windows.mmio32_end - windows.mmio32_start);
    mmio_.insert(window, windows.mmio64_start, windows.mmio64_end - windows.mmio64_start);
}

VirtioSlot& Machine::add_virtio(std::shared_ptr<virtio::Device> device) {
    VirtioSlotContext const context{vm_, *memory_, io_};
    if (config_.transport == VirtioTransport::pci) {
        virtio_.push_back(VirtioSlot::on_pci(context, *pci_, *gsi_routes_, std::move(device)));
        if (auto* state = dynamic_cast<Persistent*>(&virtio_.back()->transport()))
            persistent_.emplace_back(fmt::format("virtio-pci.{}", *virtio_.back()->pci_slot()), state);
        return *virtio_.back();
    }
    auto index = static_cast<std::uint32_t>(virtio_.size());
    virtio_.push_back(VirtioSlot::on_mmio(context, mmio_, index, std::move(device)));
    if (auto* state = dynamic_cast<Persistent*>(&virtio_.back()->transport()))
        persistent_.emplace_back(fmt::format("virtio.{}", index), state);
    // With ACPI the DSDT describes the device; without, the command line does.
    if (!config_.acpi) virtio_cmdline_ = join_cmdline({virtio_cmdline_, virtio_.back()->kernel_cmdline()});
    return *virtio_.back();
}

void Machine::create_virtio_devices() {
    std::size_t net = 0;
    for (auto& device : make_virtio_devices(config_, virtio_console_out_)) {
        // The MAC the guest knows, also when it was drawn at random: a snapshot keeps it.
        if (auto const* nic = dynamic_cast<virtio::NetDevice const*>(device.get()))
            config_.nets.at(net++).mac = nic->config().mac.to_string();
        bool const input = device->takes_console_input();
        VirtioSlot& slot = add_virtio(std::move(device));
        if (input && !console_input_slot_) console_input_slot_ = &slot;
    }
}

// To the virtio device that takes it (under its lock), else to the 8250.
std::size_t Machine::deliver_console_input(std::span<std::byte const> bytes) {
    if (console_input_slot_) {
        return console_input_slot_->transport().console_input(bytes);
    }
    return serial_->enqueue_input(bytes);
}

void Machine::create_vcpus(KvmSystem const& kvm) {
    auto supported = kvm.supported_cpuid();
    VcpuContext context{pio_, mmio_, *memory_, stop_, pause_, host_compat_};
    context.filter = &vcpu_filter_;
    std::optional<std::uint32_t> tsc_khz;
    for (std::uint32_t index = 0; index < config_.cpus; ++index) {
        VcpuFd fd = vm_.create_vcpu(index);
        if (index == 0) {
            tsc_khz = fd.tsc_khz();
            context.coalesced = batch_serial_writes(fd);
        }
        auto cpuid = x86_64::build_cpuid(supported, config_.cpu_template, {index, config_.cpus}, tsc_khz);
        adjust_cpuid(host_compat_, cpuid);
        x86_64::configure_vcpu(fd, cpuid);
        if (index == 0) x86_64::set_boot_state(fd, boot_state_);
        vcpus_.push_back(std::make_unique<Vcpu>(std::move(fd), index, context));
    }
}

// With KVM's coalesced port I/O, the 8250 lets its THR writes be batched while the guest cannot
// notice (Serial::batch_transmit): Linux's boot console then costs one exit per byte, not two. The
// ring is a page of every vCPU's kvm_run mapping (the first vCPU's serves all).
CoalescedRing* Machine::batch_serial_writes(VcpuFd const& first_vcpu) {
    if (vm_.check_extension(KVM_CAP_COALESCED_PIO) <= 0) return nullptr;
    int const page_offset = vm_.check_extension(KVM_CAP_COALESCED_MMIO);
    if (page_offset <= 0) return nullptr;
    std::span<std::byte> page = first_vcpu.mapped_page(static_cast<std::size_t>(page_offset));
    if (page.empty()) return nullptr;
    coalesced_ring_ = std::make_unique<CoalescedRing>(page, com1_port, 1, true);
    coalesced_com1_ = std::make_unique<CoalescedPort>(vm_, static_cast<std::uint16_t>(com1_port));
    serial_->batch_transmit(*coalesced_com1_);
    // A byte still in the ring was written before anything the virtio console is asked to print.
    virtio_console_out_.run_before([this] { replay_coalesced(*coalesced_ring_, pio_, mmio_); });
    return coalesced_ring_.get();
}

void Machine::start_vcpus() {
    Vcpu::install_kick_handler();
    // vCPU threads leave process signals to the VMM thread; only the kick reaches them.
    sigset_t blocked, previous;
    sigemptyset(&blocked);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR2, SIGCHLD, SIGPIPE}) sigaddset(&blocked, sig);
    ::pthread_sigmask(SIG_BLOCK, &blocked, &previous);
    for (auto& vcpu : vcpus_) threads_.emplace_back([v = vcpu.get()] { v->run(); });
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void Machine::stop_vcpus() noexcept {
    if (threads_.empty()) return;
    if (!stop_.requested()) stop_.request(StopKind::signal, "machine destroyed");
    pause_.close();  // parked vCPUs go, see the stop and end
    kick_vcpus();
    for (auto& thread : threads_) thread.join();
    threads_.clear();
}

// The signal interrupts a KVM_RUN in progress; immediate_exit covers a kick that lands between a
// vCPU's stop or pause check and its next KVM_RUN.
void Machine::kick_vcpus() noexcept {
    for (auto& vcpu : vcpus_) vcpu->kick(false);
}

void Machine::pause() noexcept {
    pause_.request();
    do {
        kick_vcpus();
    } while (!pause_.wait_until_parked(pause_kick_interval));
}

void Machine::resume() noexcept {
    pause_.release();
}

MachineState Machine::state() const noexcept {
    if (stop_.requested()) return MachineState::stopped;
    if (!started_.load(std::memory_order_acquire)) return MachineState::not_started;
    return pause_.requested() ? MachineState::paused : MachineState::running;
}

std::vector<Machine::DeviceMetrics> Machine::device_metrics() const {
    std::vector<DeviceMetrics> out;
    for (auto const& slot : virtio_) {
        virtio::Device const& device = slot->transport().device();
        out.push_back({device.type(), device.metrics()});
    }
    return out;
}

std::optional<std::string> Machine::replace_disk(std::size_t index, std::string const& path) {
    std::size_t seen = 0;
    for (auto const& slot : virtio_) {
        auto* block = dynamic_cast<virtio::BlockDevice*>(&slot->transport().device());
        if (block == nullptr || seen++ != index) continue;
        DiskConfig config = block->disk().config();
        config.path = path;
        try {
            Disk disk(std::move(config));  // opened and locked here, on the caller's thread
            bool replaced =
                slot->transport().locked_with_registers([&] { return block->replace_disk(std::move(disk)); });
            if (!replaced) return fmt::format("disk {}: read-only setting differs", path);
        } catch (Error const& e) {
            return std::string(e.what());
        }
        config_.disks[index].path = path;  // what a snapshot's machine section names
        log::info("disk {}: now backed by {}", index, path);
        return std::nullopt;
    }
    return fmt::format("no disk {}", index);
}

// The device at `index` among those of type D (their order in MachineConfig), with its slot.
template <class D>
std::pair<VirtioSlot*, D*> Machine::nth_device(std::size_t index) const noexcept {
    std::size_t seen = 0;
    for (auto const& slot : virtio_) {
        auto* device = dynamic_cast<D*>(&slot->transport().device());
        if (device != nullptr && seen++ == index) return {slot.get(), device};
    }
    return {nullptr, nullptr};
}

std::optional<std::string> Machine::update_disk_rate_limiter(std::size_t index,
                                                             virtio::RateLimiterConfig const& change) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
    auto const found = nth_device<virtio::BlockDevice>(index);
    virtio::BlockDevice* block = found.second;
    if (block == nullptr) return fmt::format("no disk {}", index);
    found.first->transport().locked([&] { block->update_rate_limiter(change); });
    log::info("disk {}: rate limiter updated", index);
    return std::nullopt;
}

std::optional<std::string> Machine::update_net_rate_limiters(std::size_t index,
                                                             virtio::RateLimiterConfig const& rx,
                                                             virtio::RateLimiterConfig const& tx) {
    auto const found = nth_device<virtio::NetDevice>(index);
    virtio::NetDevice* net = found.second;
    if (net == nullptr) return fmt::format("no network interface {}", index);
    found.first->transport().locked([&] { net->update_rate_limiters(rx, tx); });
    log::info("network interface {}: rate limiters updated", index);
    return std::nullopt;
}

bool Machine::send_ctrl_alt_del() noexcept {
    bool const keys = i8042_->press_ctrl_alt_del();
    if (power_button_irq_ == nullptr) return keys;
    power_button_irq_->trigger();
    return true;
}

void Machine::watch_for_halt() {
    halt_watch_.expires_after(halt_watch_interval_);
    halt_watch_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        if (pause_.requested()) {
            // Parked vCPUs are not halted; sample them afresh once they run again.
            all_dead_rounds_ = 0;
            for (auto& vcpu : vcpus_) vcpu->forget_run_state();
            watch_for_halt();
            return;
        }
        bool all_dead = true;
        for (auto& vcpu : vcpus_) all_dead = all_dead && vcpu->run_state() == RunState::dead;
        all_dead_rounds_ = all_dead ? all_dead_rounds_ + 1 : 0;
        if (all_dead_rounds_ >= halt_rounds_needed) {
            stop_.request(StopKind::halted);
            return;
        }
        for (auto& vcpu : vcpus_) {
            vcpu->forget_run_state();
            vcpu->kick(true);
        }
        // Sample again quickly while the vCPUs look dead, to confirm; otherwise back off.
        halt_watch_interval_ =
            all_dead ? halt_watch_first : std::min(halt_watch_interval_ * 2, halt_watch_max);
        watch_for_halt();
    });
}

// A stop signal: stop now, or (with stop_grace, a running guest and a keyboard that takes the
// keys) ask the guest to shut down first, and stop when the grace runs out or a second signal
// comes. The guest's own reset or power-off, if it comes first, is the machine's stop reason.
void Machine::on_stop_signal(ProcessSignals& signals, boost::asio::posix::stream_descriptor& again,
                             boost::asio::steady_timer& grace) {
    std::string reason = signals.stop_reason().message;
    if (!config_.stop_grace || config_.stop_grace->count() == 0 || paused() || !send_ctrl_alt_del()) {
        stop_.request(StopKind::signal, reason);
        return;
    }
    log::info(
        "{}: asked the guest to shut down (Ctrl-Alt-Del, power button); stopping it in {} ms, or at a second "
        "signal",
        reason, config_.stop_grace->count());
    grace.expires_after(*config_.stop_grace);
    grace.async_wait([this, reason](boost::system::error_code ec) {
        if (!ec) stop_.request(StopKind::signal, reason + ", and the guest did not shut down in time");
    });
    again.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                     [this, reason](boost::system::error_code ec) {
                         if (!ec) stop_.request(StopKind::signal, reason + " twice");
                     });
}

// With --on-reboot restart this thread builds the next machine and starts its threads: its
// filter must pass what they do, and it keeps CAP_NET_ADMIN for a tap=auto to be made again.
void Machine::confine_vmm_thread() noexcept {
    bool const restarts = config_.on_reboot == RebootAction::restart;
    bool const makes_taps = std::any_of(config_.nets.begin(), config_.nets.end(),
                                        [](NetInterfaceConfig const& net) { return !net.tap; });
    security::confine({.kind = security::ThreadKind::vmm,
                       .builds_machines = restarts,
                       .keep_net_admin = restarts && makes_taps});
}

StopReason Machine::run(ProcessSignals& signals) {
    using boost::asio::posix::stream_descriptor;
    started_.store(true, std::memory_order_release);
    // Duplicates: the descriptors close theirs, the process keeps its own.
    stream_descriptor stop_watch(io_, duplicate_fd(signals.stop_fd()));
    stream_descriptor again_watch(io_, duplicate_fd(signals.again_fd()));
    boost::asio::steady_timer grace(io_);
    stop_watch.async_wait(stream_descriptor::wait_read, [&](boost::system::error_code ec) {
        if (!ec) on_stop_signal(signals, again_watch, grace);
    });
    if (config_.console != ConsoleKind::none) {
        console_in_ = std::make_unique<ConsoleInput>(
            io_, STDIN_FILENO,
            [this](std::span<std::byte const> bytes) { return deliver_console_input(bytes); },
            [this] { stop_.request(StopKind::quit); });
        console_in_->start();
    }
    stream_descriptor dump_watch(io_, duplicate_fd(signals.dump_fd()));
    std::function<void()> wait_for_dump = [&] {
        dump_watch.async_wait(stream_descriptor::wait_read, [&](boost::system::error_code ec) {
            if (ec) return;
            if (signals.take_dump_request())
                for (auto& vcpu : vcpus_) vcpu->request_dump();
            wait_for_dump();
        });
    };
    wait_for_dump();
    // Every thread of the machine starts here, before this thread confines itself: a thread
    // inherits its creator's filter (they stack), so none is the child of a confined thread.
    console_out_.start();
    for (auto& slot : virtio_) slot->start();
    start_vcpus();
    watch_for_halt();
    confine_vmm_thread();
    io_.run();
    stop_vcpus();
    for (auto& slot : virtio_) slot->stop();
    console_out_.finish();  // bounded; before main() reports the output that was dropped
    return stop_.reason().value_or(StopReason{StopKind::crashed, "stopped without a reason"});
}

}  // namespace kvmlet
