#pragma once
// Which CPU features a vCPU is offered (built in vmm/vcpu/<arch>/cpuid): all KVM supports on this
// host, or a minimal baseline that looks the same on every host.
namespace kvmlet {

enum class CpuTemplate { host, minimal };

}  // namespace kvmlet
