#include "vmm/vcpu/vcpu.hpp"

#include <signal.h>

#include <cstdio>
#include <type_traits>

#include "vmm/base/log.hpp"
#include "vmm/base/timeline.hpp"
#include "vmm/security/seccomp.hpp"
#include "vmm/vcpu/x86_64/dump.hpp"

namespace kvmlet {
namespace {

template <class... Fs>
struct Overloaded : Fs... {
    using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

constexpr std::uint64_t rflags_interrupt_enable = 1u << 9;  // RFLAGS.IF (SDM Vol. 1, 3.4.3)

void ignore_signal(int) {}

}  // namespace

int Vcpu::kick_signal() noexcept {
    return SIGUSR1;
}

void Vcpu::install_kick_handler() {
    struct sigaction action {};
    action.sa_handler = ignore_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    if (::sigaction(kick_signal(), &action, nullptr) != 0) throw system_error("sigaction");
}

void Vcpu::kick(bool check) noexcept {
    if (check) check_requested_.store(true, std::memory_order_release);
    fd_.request_immediate_exit();
    std::lock_guard lock(thread_mutex_);
    if (thread_running_) ::pthread_kill(thread_, kick_signal());
}

void Vcpu::request_dump() noexcept {
    dump_requested_.store(true, std::memory_order_release);
    kick(false);
}

namespace {

ExitReason exit_reason(VcpuExit const& exit) noexcept {
    return std::visit(Overloaded{
                          [](IoIn const&) { return ExitReason::pio; },
                          [](IoOut const&) { return ExitReason::pio; },
                          [](MmioRead const&) { return ExitReason::mmio; },
                          [](MmioWrite const&) { return ExitReason::mmio; },
                          [](Halt const&) { return ExitReason::hlt; },
                          [](Shutdown const&) { return ExitReason::shutdown; },
                          [](SystemEvent const&) { return ExitReason::system_event; },
                          [](FailEntry const&) { return ExitReason::fail_entry; },
                          [](InternalError const&) { return ExitReason::internal_error; },
                          [](Interrupted const&) { return ExitReason::signal; },
                          [](Unsupported const&) { return ExitReason::other; },
                      },
                      exit);
}

}  // namespace

void Vcpu::run() noexcept {
    {
        std::lock_guard lock(thread_mutex_);
        thread_ = ::pthread_self();
        thread_running_ = true;
    }
    char thread_name[16];  // the kernel's limit, with the NUL
    std::snprintf(thread_name, sizeof thread_name, "vcpu %u", index_);
    ::pthread_setname_np(::pthread_self(), thread_name);
    security::CompiledFilter const* compiled =
        context_.filter != nullptr && context_.filter->valid() ? &context_.filter->get() : nullptr;
    security::confine({.kind = security::ThreadKind::vcpu}, compiled);  // before the first KVM_RUN
    if (compiled != nullptr && !compiled->empty())
        log::debug("vCPU {}: seccomp filter loaded as compiled ahead ({} BPF instructions)", index_,
                   compiled->size());
    Timeline& timeline = process_timeline();
    timeline.mark(Phase::first_kvm_run);
    PauseGateMember member(context_.pause);
    while (!context_.stop.requested()) {
        context_.pause.park_if_requested();
        if (context_.stop.requested()) break;
        VcpuExit exit = fd_.run();
        timeline.count_exit(exit_reason(exit));
        drain_coalesced();
        if (handle(exit) == Next::stop) break;
    }
    std::lock_guard lock(thread_mutex_);
    thread_running_ = false;
}

void replay_coalesced(CoalescedRing& ring, IoBus& pio, IoBus& mmio) noexcept {
    ring.drain([&](CoalescedWrite const& w) { (w.pio ? pio : mmio).write(w.address, w.data); });
}

// The writes KVM batched (any vCPU's) happened before this exit: replayed first, in order.
void Vcpu::drain_coalesced() noexcept {
    if (context_.coalesced) replay_coalesced(*context_.coalesced, context_.pio, context_.mmio);
}

void Vcpu::check_run_state() noexcept {
    try {
        kvm_mp_state mp = fd_.mp_state();
        bool dead = false;
        if (mp.mp_state == KVM_MP_STATE_HALTED)
            dead = (fd_.regs().rflags & rflags_interrupt_enable) == 0;
        else if (mp.mp_state == KVM_MP_STATE_UNINITIALIZED || mp.mp_state == KVM_MP_STATE_INIT_RECEIVED)
            dead = true;
        run_state_.store(dead ? RunState::dead : RunState::alive, std::memory_order_release);
    } catch (std::exception const& e) {
        log::debug("vCPU {}: cannot read its state: {}", index_, e.what());
    }
}

void Vcpu::dump_registers() noexcept {
    try {
        kvm_mp_state mp = fd_.mp_state();
        char const* state = mp.mp_state == KVM_MP_STATE_HALTED     ? "halted"
                            : mp.mp_state == KVM_MP_STATE_RUNNABLE ? "runnable"
                                                                   : "waiting";
        // Asked for: written whatever the log level.
        log::write(log::Level::info, fmt::format("vCPU {} ({}, on request):\n{}", index_, state,
                                                 x86_64::dump_state(fd_, context_.memory)));
    } catch (std::exception const& e) {
        log::warn("vCPU {}: cannot read its registers: {}", index_, e.what());
    }
}

Vcpu::Next Vcpu::crash(std::string what) noexcept {
    std::string message = fmt::format("vCPU {}: {}", index_, what);
    try {
        message += '\n';
        message += x86_64::dump_state(fd_, context_.memory);
    } catch (std::exception const& e) {
        message += fmt::format("\n(registers unavailable: {})", e.what());
    }
    context_.stop.request(StopKind::crashed, std::move(message));
    return Next::stop;
}

Vcpu::Next Vcpu::handle(VcpuExit const& exit) noexcept {
    return std::visit(
        Overloaded{
            [&](IoIn const& io) {
                for (std::uint32_t i = 0; i < io.count; ++i)
                    context_.pio.read(io.port, io.data.subspan(i * io.size, io.size));
                return Next::resume;
            },
            [&](IoOut const& io) {
                for (std::uint32_t i = 0; i < io.count; ++i)
                    context_.pio.write(io.port, io.data.subspan(i * io.size, io.size));
                return Next::resume;
            },
            [&](MmioRead const& m) {
                context_.mmio.read(m.address, m.data);
                return Next::resume;
            },
            [&](MmioWrite const& m) {
                context_.mmio.write(m.address, m.data);
                return Next::resume;
            },
            [&](Halt const&) {
                // Only reachable without an in-kernel LAPIC: nothing could wake this vCPU.
                context_.stop.request(StopKind::halted, fmt::format("vCPU {}: hlt", index_));
                return Next::stop;
            },
            [&](Shutdown const&) { return crash(x86_64::describe_triple_fault()); },
            [&](SystemEvent const& e) {
                if (e.type == KVM_SYSTEM_EVENT_RESET)
                    context_.stop.request(StopKind::reset);
                else if (e.type == KVM_SYSTEM_EVENT_SHUTDOWN)
                    context_.stop.request(StopKind::power_off);
                else
                    return crash(fmt::format("system event {} (guest crash)", e.type));
                return Next::stop;
            },
            [&](FailEntry const& f) {
                if (f.hardware_reason & VcpuFd::run_failed_flag)
                    return crash(fmt::format("KVM_RUN failed: {}",
                                             std::strerror(static_cast<int>(f.hardware_reason & 0xffff))));
                return crash(fmt::format("VM entry failed, hardware reason {:#x}", f.hardware_reason));
            },
            [&](InternalError const& e) {
                if (recover(context_.host_compat, e, fd_, context_.memory) == Recovery::recovered) {
                    recovered_.fetch_add(1, std::memory_order_relaxed);
                    return Next::resume;
                }
                return crash(x86_64::describe_internal_error(e));
            },
            [&](Interrupted const&) {
                if (check_requested_.exchange(false, std::memory_order_acq_rel)) check_run_state();
                if (dump_requested_.exchange(false, std::memory_order_acq_rel)) dump_registers();
                return Next::resume;
            },
            [&](Unsupported const& u) {
                return crash(fmt::format("unexpected KVM exit reason {}", u.reason));
            },
        },
        exit);
}

}  // namespace kvmlet
