// The allow-lists, one function per thread kind, each system call with who needs it. Found by
// tracing the test suites (strace -f, thread names in /proc/<pid>/task/*/comm) and reading the
// code; a call not listed ends kvmlet in kill mode, naming it and the kind (seccomp.cpp). x86_64
// numbers (SYS_*). Argument checks as Firecracker has them: ioctl request numbers, no PROT_EXEC
// in mmap and mprotect, socket families, signals only to kvmlet's own threads. The ioctls with a
// variable-length struct use kvm_abi's numbers (C++ sizes linux/kvm.h's structs differently).
#include "vmm/security/seccomp_filters.hpp"

#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "vmm/kvm/flex_structs.hpp"

namespace kvmlet::security {
namespace {

using Rules = std::vector<SyscallRule>;

constexpr std::uint64_t all_bits = ~std::uint64_t{0};

SyscallRule any(long number) {
    return {number, std::nullopt};
}

SyscallRule ioctl(unsigned long request) {
    return {SYS_ioctl, SyscallRule::Arg{1, all_bits, request}};
}

void add(Rules& to, Rules const& more) {
    to.insert(to.end(), more.begin(), more.end());
}

// What every confined thread may do: use memory (never executable), locks and the clock, log to
// stderr, end itself or the process.
Rules common() {
    return {
        any(SYS_write),                                     // the log (stderr), the SIGSYS report
        any(SYS_futex),                                     // mutexes, condition variables, thread joins
        any(SYS_brk),                                       // malloc
        {SYS_mmap, SyscallRule::Arg{2, PROT_EXEC, 0}},      // malloc of large blocks, arenas
        {SYS_mprotect, SyscallRule::Arg{2, PROT_EXEC, 0}},  // malloc arena growth
        any(SYS_munmap),                                    // free
        any(SYS_mremap),                                    // realloc of large blocks
        any(SYS_madvise),          // free() trimming; a thread's stack released when it ends
        any(SYS_clock_gettime),    // steady_clock when the vDSO cannot serve it
        any(SYS_clock_nanosleep),  // sleep_for
        any(SYS_nanosleep),
        any(SYS_sched_yield),      // spinning locks in libstdc++
        any(SYS_rt_sigprocmask),   // pthread_sigmask around thread starts
        any(SYS_rt_sigreturn),     // return from a signal handler (the vCPU kick, stop signals)
        any(SYS_restart_syscall),  // a call interrupted by a signal, resumed
        any(SYS_getpid),           // the log's process id, raise()
        any(SYS_gettid),
        any(SYS_close),       // descriptors that go with what they belong to
        any(SYS_exit),        // a thread ends
        any(SYS_exit_group),  // the process ends (also after the SIGSYS report)
        {SYS_tgkill,
         SyscallRule::Arg{0, all_bits, static_cast<std::uint64_t>(::getpid())}},  // kicks, raise()
    };
}

// Boost.Asio's reactor: epoll, its eventfd interrupter and its timerfd; descriptors set
// non-blocking with FIONBIO.
Rules event_loop() {
    return {
        any(SYS_epoll_wait), any(SYS_epoll_pwait), any(SYS_epoll_ctl), any(SYS_timerfd_settime),
        any(SYS_read),   // eventfds, the reactor's interrupter
        any(SYS_fcntl),  // F_GETFL/F_SETFL, F_DUPFD_CLOEXEC for watched descriptors
        any(SYS_dup),    // a device host's watch duplicates the device's descriptor
        ioctl(FIONBIO),      ioctl(FIONREAD),
    };
}

// Device emulation on a vCPU thread (register accesses): interrupts, notifications, and what a
// driver's register writes reconfigure in KVM.
Rules vcpu_device_calls() {
    return {
        any(SYS_read),                    // eventfds
        ioctl(KVM_IRQFD),                 // MSI-X vectors routed to irqfds when the driver enables them
        ioctl(kvm_abi::set_gsi_routing),  // MSI-X table writes
        ioctl(KVM_IOEVENTFD),             // the guest moved a virtio-pci BAR
        ioctl(KVM_SIGNAL_MSI),
        ioctl(TUNSETOFFLOAD),    // virtio-net activation: the offloads the driver took
        any(SYS_getrandom),      // virtio-rng's entropy (served where the queue is)
        any(SYS_epoll_create1),  // virtio-vsock activation: its connections' epoll
        any(SYS_epoll_ctl),
        any(SYS_epoll_wait),
        any(SYS_timerfd_create),
        any(SYS_timerfd_settime),
        any(SYS_eventfd2),
    };
}

// vmm: the main thread once its event loop runs. Serves the virtio devices that do not block
// (network, console, rng, vsock), console input, signals, the halt watchdog; at the end tears the
// machine down and writes the timeline.
Rules vmm_list() {
    Rules rules = common();
    add(rules, event_loop());
    add(rules, {
                   any(SYS_readv),     // TAP receive, vsock receive
                   any(SYS_writev),    // TAP transmit
                   any(SYS_pwritev2),  // FdSink's direct console write (RWF_NOWAIT)
                   any(SYS_poll),
                   any(SYS_getrandom),  // virtio-rng
                   any(SYS_recvfrom),   // vsock: host connections' CONNECT lines and data
                   any(SYS_recvmsg),
                   any(SYS_sendto),
                   any(SYS_sendmsg),                                      // vsock: data to host sockets
                   any(SYS_shutdown),                                     // vsock: a half-closed connection
                   {SYS_socket, SyscallRule::Arg{0, all_bits, AF_UNIX}},  // vsock: guest connects to PATH_P
                   any(SYS_connect),
                   any(SYS_accept4),        // vsock: host processes connect to PATH
                   any(SYS_unlink),         // vsock's socket file, at exit
                   any(SYS_epoll_create1),  // vsock's own epoll of its connections
                   any(SYS_timerfd_create),
                   any(SYS_eventfd2),
                   any(SYS_openat),  // --timeline's file, at exit
                   any(SYS_newfstatat),
                   any(SYS_fstat),
                   any(SYS_lseek),
                   ioctl(TUNSETOFFLOAD),  // virtio-net offloads (activation can come here too)
                   ioctl(KVM_IRQFD),      // irqfds released when the machine is torn down
                   ioctl(KVM_IOEVENTFD),
                   ioctl(TCGETS),  // the terminal restored at exit
                   ioctl(TCSETS),
                   ioctl(TCSETSW),
                   ioctl(TIOCGWINSZ),
                   any(SYS_rt_sigaction),  // the stop signals' handlers
               });
    return rules;
}

// vcpu: KVM_RUN, the vCPU's own state (the halt watchdog's sample, the register dump, the
// host-compat recovery), and the device emulation of its exits.
Rules vcpu_list() {
    Rules rules = common();
    add(rules, vcpu_device_calls());
    add(rules, {
                   ioctl(KVM_RUN),
                   ioctl(KVM_GET_REGS),   // watchdog (RFLAGS.IF), dumps, host-compat recovery
                   ioctl(KVM_SET_REGS),   // host-compat: int3/fwait stepped over
                   ioctl(KVM_GET_SREGS),  // dumps, crash reports, host-compat decoding
                   ioctl(KVM_SET_SREGS),
                   ioctl(KVM_GET_MP_STATE),     // the halt watchdog's sample
                   ioctl(KVM_GET_VCPU_EVENTS),  // dumps
                   ioctl(KVM_SET_VCPU_EVENTS),  // host-compat: an exception re-injected
                   ioctl(KVM_GET_LAPIC),        // dumps
                   ioctl(KVM_GET_FPU),          // dumps
                   ioctl(KVM_TRANSLATE),        // the code bytes at RIP in a dump
                   ioctl(kvm_abi::set_msrs),
                   ioctl(kvm_abi::get_msrs),
                   any(SYS_readv),
                   any(SYS_writev),
                   any(SYS_pwritev2),  // the 8250's output straight to stdout (FdSink)
                   any(SYS_poll),
               });
    return rules;
}

// worker: one disk's queue, served with blocking file I/O.
Rules worker_list() {
    Rules rules = common();
    add(rules, {
                   any(SYS_poll),  // the queue's notification eventfd and the stop eventfd
                   any(SYS_ppoll),
                   any(SYS_read),     // consume an eventfd
                   any(SYS_pread64),  // reads (bounce buffers for O_DIRECT)
                   any(SYS_preadv),
                   any(SYS_pwrite64),
                   any(SYS_pwritev),
                   any(SYS_fdatasync),  // flush
                   any(SYS_fsync),
                   any(SYS_fallocate),  // discard, write zeroes
                   any(SYS_epoll_ctl),  // a rate limiter's timer, posted to the event loop, wakes it
                   any(SYS_fstat),      // capacity of a swapped image
                   any(SYS_newfstatat),
                   any(SYS_lseek),
                   ioctl(BLKGETSIZE64),  // capacity of a block device
                   ioctl(BLKSSZGET),
               });
    return rules;
}

// api: Boost.Beast on the API's Unix socket; handlers that change the machine (pause, Ctrl-Alt-Del,
// drive swaps, the logger and metrics files).
Rules api_list() {
    Rules rules = common();
    add(rules, event_loop());
    add(rules, {
                   any(SYS_accept4),  // API clients
                   any(SYS_accept),     any(SYS_recvfrom),   any(SYS_recvmsg), any(SYS_sendto),
                   any(SYS_sendmsg),    any(SYS_readv),      any(SYS_writev),  any(SYS_shutdown),
                   any(SYS_getsockopt), any(SYS_setsockopt),
                   any(SYS_openat),  // PUT /logger's file, PATCH /drives' new image
                   any(SYS_fstat),      any(SYS_newfstatat), any(SYS_statx),   any(SYS_lseek),
                   any(SYS_flock),       // a swapped-in disk image is locked
                   ioctl(BLKGETSIZE64),  // a swapped-in block device's capacity
                   ioctl(BLKSSZGET),    any(SYS_eventfd2),
               });
    return rules;
}

// metrics: a JSON line every minute to the metrics file.
Rules metrics_list() {
    return common();
}

// sink: FdSink's writer, blocking writes of held console output.
Rules sink_list() {
    Rules rules = common();
    add(rules, {any(SYS_poll)});  // a descriptor someone made non-blocking: wait for room
    return rules;
}

// What building a machine calls (the VMM thread of --on-reboot restart builds the next one).
Rules machine_build_list() {
    return {
        any(SYS_openat),        // /dev/kvm, images, /dev/net/tun
        any(SYS_memfd_create),  // guest RAM
        any(SYS_ftruncate),
        {SYS_mmap, SyscallRule::Arg{2, PROT_EXEC, 0}},
        any(SYS_fstat),
        any(SYS_newfstatat),
        any(SYS_statx),
        any(SYS_lseek),
        any(SYS_pread64),
        any(SYS_flock),
        any(SYS_fcntl),
        any(SYS_eventfd2),
        any(SYS_epoll_create1),
        any(SYS_timerfd_create),
        any(SYS_readlink),
        any(SYS_uname),
        any(SYS_clone),  // vCPU, worker and sink threads
        any(SYS_clone3),
        any(SYS_set_robust_list),
        any(SYS_rseq),
        any(SYS_sched_getaffinity),
        any(SYS_prctl),  // the new threads confine themselves
        any(SYS_seccomp),
        any(SYS_capget),
        any(SYS_capset),
        any(SYS_rt_sigaction),
        {SYS_socket, SyscallRule::Arg{0, all_bits, AF_INET}},  // a created TAP brought up
        {SYS_socket, SyscallRule::Arg{0, all_bits, AF_UNIX}},  // vsock's listening socket
        any(SYS_bind),
        any(SYS_listen),
        any(SYS_chmod),
        any(SYS_umask),
        any(SYS_unlink),
        ioctl(SIOCGIFFLAGS),
        ioctl(SIOCSIFFLAGS),
        ioctl(SIOCGIFINDEX),
        ioctl(TUNSETIFF),
        ioctl(TUNGETIFF),
        ioctl(TUNSETVNETHDRSZ),
        ioctl(BLKGETSIZE64),
        ioctl(BLKSSZGET),
        ioctl(KVM_GET_API_VERSION),
        ioctl(KVM_CHECK_EXTENSION),
        ioctl(KVM_CREATE_VM),
        ioctl(KVM_GET_VCPU_MMAP_SIZE),
        ioctl(kvm_abi::get_supported_cpuid),
        ioctl(KVM_SET_TSS_ADDR),
        ioctl(KVM_SET_IDENTITY_MAP_ADDR),
        ioctl(KVM_CREATE_IRQCHIP),
        ioctl(KVM_CREATE_PIT2),
        ioctl(KVM_SET_USER_MEMORY_REGION),
        ioctl(KVM_CREATE_VCPU),
        ioctl(KVM_GET_TSC_KHZ),
        ioctl(kvm_abi::set_cpuid2),
        ioctl(kvm_abi::set_msrs),
        ioctl(KVM_SET_REGS),
        ioctl(KVM_SET_SREGS),
        ioctl(KVM_SET_FPU),
        ioctl(KVM_SET_LAPIC),
        ioctl(KVM_GET_LAPIC),
        ioctl(KVM_IRQFD),
        ioctl(KVM_IOEVENTFD),
        ioctl(kvm_abi::set_gsi_routing),
    };
}

}  // namespace

std::vector<SyscallRule> allow_list(Confinement const& confinement) {
    switch (confinement.kind) {
        case ThreadKind::vmm: {
            Rules rules = vmm_list();
            if (confinement.builds_machines) {
                // The threads it starts inherit this filter: their calls must pass it too.
                add(rules, machine_build_list());
                add(rules, vcpu_list());
                add(rules, worker_list());
                add(rules, sink_list());
            }
            return rules;
        }
        case ThreadKind::vcpu:
            return vcpu_list();
        case ThreadKind::worker:
            return worker_list();
        case ThreadKind::api:
            return api_list();
        case ThreadKind::metrics:
            return metrics_list();
        case ThreadKind::sink:
            return sink_list();
    }
    return {};
}

}  // namespace kvmlet::security
