#pragma once
// One vCPU and its run loop: KVM_RUN, decode the exit once, serve it, repeat (STYLE.md §1).
#include <linux/filter.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <future>
#include <mutex>
#include <vector>

#include "vmm/bus/io_bus.hpp"
#include "vmm/kvm/coalesced_ring.hpp"
#include "vmm/kvm/vcpu_fd.hpp"
#include "vmm/memory/guest_memory.hpp"
#include "vmm/vcpu/host_compat.hpp"
#include "vmm/vcpu/pause_gate.hpp"
#include "vmm/vcpu/stop_request.hpp"

namespace kvmlet {

// What a periodic check found a vCPU doing (see Machine: the halt watchdog).
enum class RunState : int {
    unknown,  // not checked yet, or running
    alive,    // checked: running, or halted with interrupts enabled
    dead,     // checked: halted with interrupts disabled, or never started (waiting for SIPI)
};

struct VcpuContext {
    IoBus& pio;
    IoBus& mmio;
    GuestMemory const& memory;
    StopRequest& stop;
    PauseGate& pause;  // the vCPU parks here, before KVM_RUN, while the machine is paused
    HostCompat host_compat;
    // KVM's coalesced I/O ring, if any device batches writes through it: drained before every
    // exit is served, so devices see the guest's writes in order.
    CoalescedRing* coalesced = nullptr;
    // The vCPU filter compiled ahead (security::compile_ahead, a security::CompiledFilter), if
    // any: loaded, not compiled.
    std::shared_future<std::vector<sock_filter>> const* filter = nullptr;
};

// Replays the writes KVM batched in `ring` on the buses, in order (any thread).
void replay_coalesced(CoalescedRing& ring, IoBus& pio, IoBus& mmio) noexcept;

class Vcpu {
public:
    Vcpu(VcpuFd fd, std::uint32_t index, VcpuContext context) noexcept
        : fd_(std::move(fd)), index_(index), context_(context) {}

    VcpuFd& fd() noexcept { return fd_; }
    std::uint32_t index() const noexcept { return index_; }

    // The thread body: runs until a stop is requested, parked in the pause gate while a pause is.
    // Never throws.
    void run() noexcept;
    // From any thread, also while run() ends or after it ended: make KVM_RUN return soon; with
    // `check`, also sample the run state.
    void kick(bool check) noexcept;
    // From any thread: the vCPU writes its registers to stderr at its next exit (kvmlet's answer
    // to SIGUSR2: where is each vCPU of a guest that hangs?).
    void request_dump() noexcept;
    RunState run_state() const noexcept { return run_state_.load(std::memory_order_acquire); }
    void forget_run_state() noexcept { run_state_.store(RunState::unknown, std::memory_order_release); }
    // Internal errors the host-compatibility mode recovered from.
    std::uint64_t recovered() const noexcept { return recovered_.load(std::memory_order_relaxed); }

    // The signal used to interrupt KVM_RUN; its handler must be installed without SA_RESTART.
    static int kick_signal() noexcept;
    static void install_kick_handler();

private:
    enum class Next { resume, stop };
    Next handle(VcpuExit const& exit) noexcept;
    Next crash(std::string what) noexcept;
    void drain_coalesced() noexcept;
    void check_run_state() noexcept;
    void dump_registers() noexcept;

    VcpuFd fd_;
    std::uint32_t index_;
    VcpuContext context_;
    std::mutex thread_mutex_;      // a kick signals thread_ only while its run() has not ended
    bool thread_running_ = false;  // guarded by thread_mutex_
    pthread_t thread_{};
    std::atomic<bool> check_requested_{false};
    std::atomic<bool> dump_requested_{false};
    std::atomic<RunState> run_state_{RunState::unknown};
    std::atomic<std::uint64_t> recovered_{0};
};

}  // namespace kvmlet
