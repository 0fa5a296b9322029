#pragma once

#include <sched.h>

#include <csignal>
#include <span>

namespace kvmlet {

// Closes the descriptors that keep a VM alive (the VM's and its vCPUs') in a process of its own,
// so that the kernel's teardown of the VM (the in-kernel irqchip and PIT: 13-23 ms on a kvm-pvm
// host, docs/boot-time.md) runs beside kvmlet's exit instead of in it.
//
// The closer is cloned with CLONE_VM (no page tables copied) and a copy of the descriptor table:
// it first closes every other descriptor it inherited (so that pipes see their end, and image
// locks go, as soon as kvmlet exits), then `vm_fds`, then exits. It runs only raw system calls
// (no TLS: it shares kvmlet's memory but not a thread's state) that every seccomp filter allows
// (close_range, close, exit), and is killed with kvmlet's cgroup or PID namespace like any other
// process. The caller closes its own copies as before: they are no longer the last.
//
// Returns false when the closer could not be started (the caller's closes then tear the VM down,
// as without it). At most 32 descriptors.
// Sets SIGCHLD to SA_NOCLDWAIT (the kernel reaps closers: kvmlet waits for no child).
bool close_in_background(std::span<int const> vm_fds) noexcept;

// The closer's clone flags (the VMM thread's seccomp filter allows exactly these).
inline constexpr unsigned long closer_clone_flags = CLONE_VM | SIGCHLD;

}  // namespace kvmlet
