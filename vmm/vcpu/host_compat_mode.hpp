#pragma once
// The host-compatibility modes (what each one changes: vmm/vcpu/host_compat.hpp), apart from
// their code so that a configuration can name one without the KVM headers.
namespace kvmlet {

enum class HostCompat { none, pvm };

}  // namespace kvmlet
