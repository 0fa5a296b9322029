#pragma once

#include <sched.h>

#include <csignal>
#include <span>

#include "vmm/base/unique_fd.hpp"

namespace kvmlet {

// Closes the descriptors that keep a VM alive (the VM's and its vCPUs') in a process of its own,
// so that the kernel's teardown of the VM (the in-kernel irqchip and PIT: 13-23 ms on a kvm-pvm
// host, docs/boot-time.md) runs beside kvmlet's exit instead of in it.
//
// The closer is cloned with CLONE_VM (no page tables copied) and a copy of the descriptor table:
// it first closes every other descriptor it inherited (so that pipes see their end, and image
// locks go, as soon as kvmlet exits), then waits until the caller has closed its own copies of
// `vm_fds`, then closes its copies, the last ones, and exits. The caller says it is done by
// closing the returned descriptor (the write end of a pipe the closer reads until its end; also
// when kvmlet dies): without that wait a closer that runs first leaves the last close, and the
// teardown, to kvmlet (measured: a 5 ms close on kvm-pvm). It runs only raw system calls (no TLS:
// it shares kvmlet's memory but not a thread's state) that every seccomp filter allows
// (close_range, read, close, exit), and is killed with kvmlet's cgroup or PID namespace like any
// other process.
//
// Returns an invalid descriptor when the closer could not be started (the caller's closes then
// tear the VM down, as without it). At most 32 descriptors.
// Sets SIGCHLD to SA_NOCLDWAIT (the kernel reaps closers: kvmlet waits for no child).
UniqueFd close_in_background(std::span<int const> vm_fds) noexcept;

// The closer's clone flags (the VMM thread's seccomp filter allows exactly these).
inline constexpr unsigned long closer_clone_flags = CLONE_VM | SIGCHLD;

}  // namespace kvmlet
