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

#include "vmm/kvm/background_close.hpp"
#include "vmm/kvm/flex_structs.hpp"

namespace kvmlet::security {
namespace {

using Rules = std::vector<SyscallRule>;

constexpr std::uint64_t all_bits = ~std::uint64_t{0};

SyscallRule any(long number) {
    return {number, std::nullopt};
}

// The process's id, for signals: a thread may signal kvmlet's own threads only.
std::uint64_t own_pid() {
    return static_cast<std::uint64_t>(::getpid());
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
        any(SYS_write),                                          // the log (stderr), the SIGSYS report
        any(SYS_fstat),                                          // stdio's first look at stderr
        any(SYS_newfstatat),                                     // (glibc 2.36 uses this one)
        any(SYS_futex),                                          // mutexes, condition variables, joins
        any(SYS_brk),                                            // malloc
        {SYS_mmap, SyscallRule::Arg{2, PROT_EXEC, 0}},           // malloc of large blocks, arenas
        {SYS_mprotect, SyscallRule::Arg{2, PROT_EXEC, 0}},       // malloc arena growth
        any(SYS_munmap),                                         // free
        any(SYS_mremap),                                         // realloc of large blocks
        any(SYS_madvise),                                        // free(); a thread's stack at its end
        any(SYS_clock_gettime),                                  // steady_clock without the vDSO
        any(SYS_clock_nanosleep),                                // sleep_for
        any(SYS_nanosleep),                                      // (older glibc)
        any(SYS_sched_yield),                                    // libstdc++'s spinning waits
        any(SYS_rt_sigprocmask),                                 // pthread_sigmask
        any(SYS_rt_sigreturn),                                   // the vCPU kick's and stop signals' handlers
        any(SYS_restart_syscall),                                // a call a signal interrupted, resumed
        any(SYS_getpid),                                         // raise(), log lines
        any(SYS_gettid),                                         // raise()
        any(SYS_close),                                          // descriptors, with what owns them
        any(SYS_close_range),                                    // close_in_background's closer
        any(SYS_exit),                                           // a thread ends
        any(SYS_exit_group),                                     // the process ends (also the SIGSYS report)
        {SYS_tgkill, SyscallRule::Arg{0, all_bits, own_pid()}},  // vCPU kicks, only to kvmlet's threads
    };
}

// Boost.Asio's reactor (vmm and api): epoll, its eventfd interrupter, its timerfd; descriptors
// made non-blocking with FIONBIO.
Rules event_loop() {
    return {
        any(SYS_epoll_wait),       // the reactor
        any(SYS_epoll_pwait),      // (other glibc versions)
        any(SYS_epoll_ctl),        // descriptors watched and unwatched
        any(SYS_timerfd_settime),  // steady_timer deadlines
        any(SYS_read),             // eventfds: the interrupter, stop and dump requests
        any(SYS_fcntl),            // F_GETFL/F_SETFL, F_DUPFD_CLOEXEC of watched descriptors
        any(SYS_dup),              // a device host's watch duplicates the device's descriptor
        ioctl(FIONBIO),            // asio's non-blocking mode
        ioctl(FIONREAD),           // asio's available()
    };
}

// vmm: the main thread once its event loop runs. Serves the virtio devices that do not block
// (network, console, rng, vsock), console input, signals and the halt watchdog; at the end tears
// the machine down and writes the timeline.
Rules vmm_list() {
    Rules rules = common();
    add(rules, event_loop());
    add(rules, {
                   any(SYS_readv),                                        // TAP and vsock receive
                   any(SYS_writev),                                       // TAP transmit
                   any(SYS_pwritev2),                                     // console output (RWF_NOWAIT)
                   any(SYS_poll),                                         // FdSink: stdout with no room
                   any(SYS_getrandom),                                    // virtio-rng's entropy
                   any(SYS_recvfrom),                                     // vsock: CONNECT lines, data
                   any(SYS_recvmsg),                                      // vsock: data
                   any(SYS_sendto),                                       // vsock: OK lines
                   any(SYS_sendmsg),                                      // vsock: data to host sockets
                   any(SYS_shutdown),                                     // vsock: half-closed streams
                   {SYS_socket, SyscallRule::Arg{0, all_bits, AF_UNIX}},  // vsock: guest connects to PATH_P
                   any(SYS_connect),                                      // (the same)
                   any(SYS_accept4),                                      // vsock: host processes connect
                   any(SYS_unlink),                                       // vsock's socket file at exit
                   any(SYS_openat),                                       // --timeline's file at exit
                   any(SYS_lseek),                                        // (its stream)
                   ioctl(TCSETS),                                         // the terminal restored at exit
                   any(SYS_rt_sigaction),                                 // stop signals' handlers reset
                   // The machine's closer (close_in_background): a process sharing kvmlet's
                   // memory and nothing else, with this filter; not a thread, not a fork.
                   {SYS_clone, SyscallRule::Arg{0, all_bits, closer_clone_flags}},
                   any(SYS_pipe2),  // (its release pipe, which it reads: SYS_read above)
               });
    return rules;
}

// vcpu: KVM_RUN, its own state (the watchdog's sample, dumps, host-compat recovery), and the
// device emulation of its exits: interrupts, notifications and what a driver's register writes
// reconfigure in KVM.
Rules vcpu_list() {
    Rules rules = common();
    add(rules, {
                   ioctl(KVM_RUN),                        // the guest runs
                   ioctl(KVM_GET_REGS),                   // watchdog (RFLAGS.IF), dumps, host-compat
                   ioctl(KVM_SET_REGS),                   // host-compat: int3/fwait stepped over
                   ioctl(KVM_GET_SREGS),                  // dumps, crash reports, host-compat decoding
                   ioctl(KVM_GET_MP_STATE),               // the halt watchdog's sample
                   ioctl(KVM_GET_VCPU_EVENTS),            // host-compat: the interrupt shadow
                   ioctl(KVM_SET_VCPU_EVENTS),            // (the same)
                   ioctl(KVM_GET_FPU),                    // host-compat: fwait's pending x87 exception
                   ioctl(KVM_TRANSLATE),                  // the code bytes at RIP (dumps, host-compat)
                   ioctl(kvm_abi::set_gsi_routing),       // MSI-X table writes
                   ioctl(KVM_IOEVENTFD),                  // the guest moved a virtio-pci BAR
                   ioctl(KVM_REGISTER_COALESCED_MMIO),    // the 8250's THR writes batched (IER)
                   ioctl(KVM_UNREGISTER_COALESCED_MMIO),  // (and no longer)
                   ioctl(TUNSETOFFLOAD),                  // virtio-net activation: the driver's offloads
                   any(SYS_read),                         // eventfds
                   any(SYS_epoll_ctl),                    // work posted to the event loop wakes it
                   any(SYS_pwritev2),                     // the 8250's output straight to stdout (FdSink)
               });
    return rules;
}

// worker: one disk's queue, served with blocking file I/O.
Rules worker_list() {
    Rules rules = common();
    add(rules, {
                   any(SYS_poll),       // the queue's notification eventfds and the stop eventfd
                   any(SYS_read),       // an eventfd consumed
                   any(SYS_pread64),    // reads (cache=none: bounce buffers)
                   any(SYS_preadv),     // reads
                   any(SYS_pwrite64),   // writes (cache=none: bounce buffers)
                   any(SYS_pwritev),    // writes
                   any(SYS_fdatasync),  // flush
                   any(SYS_fallocate),  // discard, write zeroes
                   any(SYS_epoll_ctl),  // a rate limiter's timer, posted to the event loop, wakes it
               });
    return rules;
}

// PUT /snapshot/create, on the API thread with the vCPUs parked: each vCPU's last exit completed
// (KVM_RUN with immediate_exit), its state and the VM's read, the two files written.
Rules snapshot_create_list() {
    return {
        ioctl(KVM_CHECK_EXTENSION),  // the capabilities a snapshot needs
        ioctl(KVM_RUN),              // immediate_exit: the last exit completed, the guest not run
        ioctl(KVM_GET_MP_STATE),
        ioctl(KVM_GET_REGS),
        ioctl(KVM_GET_SREGS),
        ioctl(kvm_abi::get_xsave),
        ioctl(KVM_GET_XCRS),
        ioctl(KVM_GET_DEBUGREGS),
        ioctl(KVM_GET_LAPIC),
        ioctl(KVM_GET_TSC_KHZ),
        ioctl(kvm_abi::get_msrs),
        ioctl(KVM_GET_VCPU_EVENTS),
        ioctl(kvm_abi::get_cpuid2),
        ioctl(KVM_GET_IRQCHIP),
        ioctl(KVM_GET_PIT2),
        ioctl(KVM_GET_CLOCK),
        ioctl(KVM_GET_DIRTY_LOG),  // with track_dirty_pages: the guest's writes since the last one
        any(SYS_ftruncate),        // the memory file's size (sparse)
        any(SYS_pwrite64),         // its pages
        any(SYS_lseek),            // RAM's memfd or memory file: SEEK_DATA, SEEK_HOLE
        any(SYS_pread64),          // /proc/self/pagemap: the pages a restored guest wrote
        any(SYS_fsync),            // both files on disk before the answer
    };
}

// api: Boost.Beast on the API's Unix socket, and handlers that reach the machine (pause kicks,
// Ctrl-Alt-Del), drives swapped in, the logger's file.
Rules api_list() {
    Rules rules = common();
    add(rules, event_loop());
    add(rules, {
                   any(SYS_accept),      // API clients (asio)
                   any(SYS_accept4),     // (other versions)
                   any(SYS_recvfrom),    // requests
                   any(SYS_recvmsg),     // (the same)
                   any(SYS_sendto),      // responses
                   any(SYS_sendmsg),     // (the same)
                   any(SYS_shutdown),    // connections closed
                   any(SYS_setsockopt),  // (asio, on accepted sockets)
                   any(SYS_openat),      // PUT /logger's file, PATCH /drives' new image
                   any(SYS_statx),       // the new image's kind and size
                   any(SYS_lseek),       // (the same)
                   any(SYS_flock),       // the new image locked
                   ioctl(BLKGETSIZE64),  // a new block device's capacity
                   ioctl(BLKSSZGET),     // (its sector size)
               });
    add(rules, snapshot_create_list());
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

// What building a machine calls: the VMM thread of --on-reboot restart builds the next one and
// starts its threads, which confine themselves (prctl, capset, seccomp).
Rules machine_build_list() {
    return {
        any(SYS_openat),                                       // /dev/kvm, images, /dev/net/tun
        any(SYS_memfd_create),                                 // guest RAM
        any(SYS_ftruncate),                                    // (its size)
        any(SYS_statx),                                        // input files checked
        any(SYS_lseek),                                        // image sizes
        any(SYS_pread64),                                      // images read
        any(SYS_read),                                         // (the same)
        any(SYS_flock),                                        // disk images locked
        any(SYS_eventfd2),                                     // irqfds, ioeventfds, stop eventfds
        any(SYS_epoll_create1),                                // vsock's epoll
        any(SYS_timerfd_create),                               // asio timers
        any(SYS_clone),                                        // vCPU, worker and sink threads
        any(SYS_clone3),                                       // (glibc 2.34 on)
        any(SYS_set_robust_list),                              // (each new thread)
        any(SYS_rseq),                                         // (the same)
        any(SYS_prctl),                                        // new threads named and confined
        any(SYS_capget),                                       // (their capabilities dropped)
        any(SYS_capset),                                       // (the same)
        any(SYS_seccomp),                                      // (their filters loaded)
        any(SYS_rt_sigaction),                                 // the vCPU kick's handler
        {SYS_socket, SyscallRule::Arg{0, all_bits, AF_INET}},  // a created TAP brought up
        {SYS_socket, SyscallRule::Arg{0, all_bits, AF_UNIX}},  // vsock's listening socket
        any(SYS_bind),                                         // (the same)
        any(SYS_listen),                                       // (the same)
        any(SYS_chmod),                                        // (its mode)
        any(SYS_umask),                                        // (the same)
        ioctl(SIOCGIFFLAGS),                                   // a created TAP brought up
        ioctl(SIOCSIFFLAGS),                                   // (the same)
        ioctl(TUNSETIFF),                                      // TAP attached or created
        ioctl(TUNGETIFF),                                      // (its flags)
        ioctl(TUNSETVNETHDRSZ),                                // (its vnet header)
        ioctl(BLKGETSIZE64),                                   // a block device's capacity
        ioctl(BLKSSZGET),                                      // (its sector size)
        ioctl(TCGETS),                                         // console input: isatty(stdin)
        ioctl(KVM_CHECK_EXTENSION),                            // the KVM creation sequence
        ioctl(KVM_CREATE_VM),
        ioctl(KVM_GET_VCPU_MMAP_SIZE),
        ioctl(kvm_abi::get_supported_cpuid),
        ioctl(kvm_abi::get_msr_index_list),  // the MSRs a snapshot of the machine saves
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
        ioctl(KVM_GET_SREGS),
        ioctl(KVM_SET_SREGS),
        ioctl(KVM_SET_FPU),
        ioctl(KVM_GET_LAPIC),
        ioctl(KVM_SET_LAPIC),
        ioctl(KVM_IRQFD),
        ioctl(KVM_IOEVENTFD),
        ioctl(kvm_abi::set_gsi_routing),
        ioctl(KVM_REGISTER_COALESCED_MMIO),    // the 8250's THR writes batched (a restored IER)
        ioctl(KVM_UNREGISTER_COALESCED_MMIO),  // (the same)
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
