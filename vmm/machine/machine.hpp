#pragma once
// Machine: assembles a VM from a MachineConfig (memory, firmware, devices, vCPUs) and runs it:
// one thread per vCPU, and the VMM thread (the caller of run()) on the event loop.
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <future>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "devices/legacy/acpi_power.hpp"
#include "devices/legacy/boot_timer.hpp"
#include "devices/legacy/i8042.hpp"
#include "devices/legacy/serial.hpp"
#include "devices/pci/pci_bus.hpp"
#include "firmware/x86_64/long_mode.hpp"
#include "vmm/bus/io_bus.hpp"
#include "vmm/event/console_input.hpp"
#include "vmm/event/fd_sink.hpp"
#include "vmm/event/process_signals.hpp"
#include "vmm/kvm/coalesced_ring.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/kvm/vm_fd.hpp"
#include "vmm/machine/coalesced_port.hpp"
#include "vmm/machine/gsi_routes.hpp"
#include "vmm/machine/irqfd_line.hpp"
#include "vmm/machine/machine_config.hpp"
#include "vmm/machine/virtio_slot.hpp"
#include "vmm/memory/guest_memory.hpp"
#include "vmm/snapshot/memory_file.hpp"
#include "vmm/snapshot/snapshot_file.hpp"
#include "vmm/snapshot/uffd_backend.hpp"
#include "vmm/vcpu/pause_gate.hpp"
#include "vmm/vcpu/stop_request.hpp"
#include "vmm/vcpu/vcpu.hpp"

namespace kvmlet {

// What the control API reports (Firecracker's GET /: "Not started", "Running", "Paused").
enum class MachineState {
    not_started,  // built, run() not called yet
    running,
    paused,   // pause() called and not resumed
    stopped,  // a stop was requested: run() is returning or has returned
};

class Machine {
public:
    // Builds the whole machine, or restores the snapshot config.restore names; throws Error (setup
    // errors) with one line for the user.
    Machine(MachineConfig const& config, KvmSystem const& kvm);
    Machine(Machine const&) = delete;
    Machine& operator=(Machine const&) = delete;
    ~Machine();

    // Runs the guest until it stops, and says why; a stop signal (already received or arriving)
    // stops it, SIGUSR2 dumps the vCPUs' registers. Call once.
    StopReason run(ProcessSignals& signals);
    // Guest console output that could not be written to stdout (a reader that went away or stopped
    // reading); final once run() returned.
    FdSink const& console_out() const noexcept { return console_out_; }

    // Lifecycle, for the control API. Thread-safe: callable from any thread (the API's, or the
    // VMM thread) while run() runs on the VMM thread, and harmless before run() and after it.
    //
    // pause() parks every vCPU at a safe point (out of KVM_RUN, between two exits) and returns once
    // all are parked; the guest then executes nothing, while the event loop goes on serving the
    // devices' completions, and the halt watchdog leaves the machine alone. A stop (a signal, the
    // console's Ctrl-A x) still ends run() promptly. Before run(), the vCPUs park before their
    // first KVM_RUN. resume() lets them go on and returns at once. Both are idempotent.
    void pause() noexcept;
    void resume() noexcept;
    bool paused() const noexcept { return pause_.requested(); }
    MachineState state() const noexcept;
    // Firecracker's SendCtrlAltDel, and the first step of a graceful stop: asks the guest to shut
    // down both ways a PC has. The i8042's keyboard sends Ctrl-Alt-Del (pressed, released) with
    // IRQ 1: a Linux guest reboots (or its init does what it was told to: systemd reboots, busybox
    // runs its ctrlaltdel action), and with reboot=k resets through the i8042, which ends run().
    // With ACPI, the power button is pressed too (the GED's interrupt; Linux reports KEY_POWER:
    // systemd-logind powers off, acpid runs its action). False, and nothing sent, when neither is
    // there: no ACPI, and a guest that has not enabled its keyboard or has not read the keys sent
    // before. A paused guest sees them when resumed.
    bool send_ctrl_alt_del() noexcept;

    // Each virtio device's counters, in the order they were made (make_virtio_devices: disks,
    // then network interfaces, console, rng, vsock, each kind in its config order). Any thread.
    struct DeviceMetrics {
        virtio::DeviceType type;
        std::vector<virtio::Metric> values;
    };
    std::vector<DeviceMetrics> device_metrics() const;
    // The disk at `index` (MachineConfig::disks' order) is backed by the image at `path` from now
    // on, with its other settings kept; the guest is told its new capacity. Any thread; returns
    // what went wrong (the image cannot be opened or locked, no such disk), changing nothing.
    std::optional<std::string> replace_disk(std::size_t index, std::string const& path);
    // Firecracker's PATCH of a drive's rate_limiter, or of an interface's rx_rate_limiter and
    // tx_rate_limiter (devices/virtio/rate_limiter.hpp: RateLimiterConfig's PATCH semantics), on
    // the running device, under its device lock. Any thread; returns what went wrong (no such
    // device).
    std::optional<std::string> update_disk_rate_limiter(std::size_t index,
                                                        virtio::RateLimiterConfig const& change);
    std::optional<std::string> update_net_rate_limiters(std::size_t index,
                                                        virtio::RateLimiterConfig const& rx,
                                                        virtio::RateLimiterConfig const& tx);

    // Firecracker's PUT /snapshot/create: writes the state file and the memory file of a paused
    // machine (docs/snapshot.md), with `diff` only the pages dirtied since the last snapshot (the
    // machine tracks dirty pages). Any thread; the guest stays paused. Returns what went wrong:
    // not paused, a device whose state cannot be saved yet, a file that cannot be written.
    struct SnapshotPaths {
        std::string state;
        std::string memory;
        bool diff = false;
    };
    std::optional<std::string> create_snapshot(SnapshotPaths const& paths);

private:
    Machine(MachineConfig const& config, KvmSystem const& kvm, std::optional<snapshot::StateFile> restore);
    void restore_state(snapshot::StateFile const& state);
    snapshot::StateFile capture_state();
    snapshot::MemoryFileStats write_memory_file(SnapshotPaths const& paths);
    template <class D>
    std::pair<VirtioSlot*, D*> nth_device(std::size_t index) const noexcept;
    void create_memory(std::uint64_t size);
    void load_kernel();
    std::optional<GuestAddress> write_acpi_tables();
    void create_devices();
    void create_virtio_devices();
    void create_pci_bus();
    VirtioSlot& add_virtio(std::shared_ptr<virtio::Device> device);
    std::size_t deliver_console_input(std::span<std::byte const> bytes);
    void create_vcpus(KvmSystem const& kvm);
    CoalescedRing* batch_serial_writes(VcpuFd const& first_vcpu);
    void start_vcpus();
    void stop_vcpus() noexcept;
    void kick_vcpus() noexcept;
    void watch_for_halt();
    void confine_vmm_thread() noexcept;
    void on_stop_signal(ProcessSignals& signals, boost::asio::posix::stream_descriptor& again,
                        boost::asio::steady_timer& grace);

    MachineConfig config_;
    HostCompat host_compat_;
    boost::asio::io_context io_;
    StopRequest stop_;
    PauseGate pause_;
    std::atomic<bool> started_{false};  // run() was called
    // The closer's release (close_in_background): declared before vm_ and the vCPUs, so it is
    // closed after every descriptor of the VM this process holds.
    UniqueFd closer_release_;
    // The vCPUs' seccomp filter (a security::CompiledFilter), compiled on a thread of its own
    // while the VM is built.
    std::shared_future<std::vector<sock_filter>> vcpu_filter_;
    VmFd vm_;
    std::optional<GuestMemory> memory_;
    std::optional<snapshot::UffdBackend> uffd_;  // a restore whose pages a handler fills
    x86_64::BootCpuState boot_state_;
    IoBus pio_{"PIO"};
    IoBus mmio_{"MMIO"};

    FdSink console_out_;
    // The virtio console's output: after the 8250's batched writes (they come first in the guest).
    OrderedSink virtio_console_out_{console_out_};
    DiscardSink discard_;
    std::unique_ptr<IrqfdLine> com1_irq_;
    std::unique_ptr<IrqfdLine> keyboard_irq_;
    std::unique_ptr<IrqfdLine> power_button_irq_;  // with ACPI
    std::shared_ptr<Serial> serial_;
    std::shared_ptr<I8042> i8042_;
    std::shared_ptr<BootTimer> boot_timer_;
    std::shared_ptr<AcpiPower> acpi_power_;
    std::unique_ptr<ConsoleInput> console_in_;

    std::shared_ptr<pci::PciBus> pci_;
    std::unique_ptr<GsiRoutes> gsi_routes_;

    // Declared after memory_ and the buses: destroyed (workers stopped) before them.
    std::vector<std::unique_ptr<VirtioSlot>> virtio_;
    std::string virtio_cmdline_;
    // The virtio device that takes console input (--console virtio), if any.
    VirtioSlot* console_input_slot_ = nullptr;

    // The devices whose state a snapshot keeps, each under its section name.
    std::vector<std::pair<std::string, Persistent*>> persistent_;
    std::vector<std::uint32_t> msr_indices_;  // the MSRs a snapshot saves (KVM's index list)

    // The 8250's batched THR writes (KVM's coalesced port I/O), when KVM has it; the vCPUs below
    // drain the ring, so it outlives them.
    std::unique_ptr<CoalescedRing> coalesced_ring_;
    std::unique_ptr<CoalescedPort> coalesced_com1_;

    std::vector<std::unique_ptr<Vcpu>> vcpus_;
    std::vector<std::thread> threads_;
    boost::asio::steady_timer halt_watch_;
    std::chrono::milliseconds halt_watch_interval_;
    int all_dead_rounds_ = 0;
};

}  // namespace kvmlet
