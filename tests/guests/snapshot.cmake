# Snapshot and restore (issue 17): the 4-vCPU guest of tests/api/snapshot.py's ticks case (the
# count case uses lifecycle.cmake's count guest). Included from CMakeLists.txt.
kvmlet_add_guest(snapshot_ticks snapshot_ticks.c ipi_trampoline.S idt.c)
if(GUEST_READELF AND GUEST_OBJDUMP)
    add_test(NAME guest_snapshot_ticks_elf_is_loadable_and_emulable
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_guest_elf.sh
                     ${GUEST_READELF} ${GUEST_OBJDUMP} $<TARGET_FILE:guest_snapshot_ticks>)
    set_tests_properties(guest_snapshot_ticks_elf_is_loadable_and_emulable PROPERTIES LABELS guest)
endif()

# snapshot::capture() completes the exit served last before it reads a vCPU (snapshot_exit_driver):
# on this host's emulated PIO an OUT is complete at its exit and the count guest's LSR reads can
# be repeated harmlessly, so only a direct check shows that an IN's data is not lost.
add_executable(snapshot_exit_driver snapshot_exit_driver.cpp)
target_link_libraries(snapshot_exit_driver PRIVATE kvmlet_snapshot kvmlet_kvm kvmlet_memory kvmlet_base kvmlet_flags)
add_test(NAME guest_snapshot_completes_a_pending_port_read_before_capturing_the_vcpu COMMAND snapshot_exit_driver)
set_tests_properties(guest_snapshot_completes_a_pending_port_read_before_capturing_the_vcpu
                     PROPERTIES LABELS "guest;kvm" TIMEOUT 60)

# virtio devices in snapshots (tests/api/snapshot.py, cases rng and console): a virtio-rng and a
# virtio-console driven over mmio.
kvmlet_add_guest(snapshot_virtio snapshot_virtio.c virtio.c virtio_core.c)
if(GUEST_READELF AND GUEST_OBJDUMP)
    add_test(NAME guest_snapshot_virtio_elf_is_loadable_and_emulable
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_guest_elf.sh
                     ${GUEST_READELF} ${GUEST_OBJDUMP} $<TARGET_FILE:guest_snapshot_virtio>)
    set_tests_properties(guest_snapshot_virtio_elf_is_loadable_and_emulable PROPERTIES LABELS guest)
endif()

# Diff snapshots' dirty pages (dirty_log_driver): KVM's dirty log and the VMM's own marks, on real
# KVM. The tiny guests cannot show the VMM's half: each page a device writes there the guest writes
# too.
add_executable(dirty_log_driver dirty_log_driver.cpp)
target_link_libraries(dirty_log_driver PRIVATE kvmlet_snapshot kvmlet_kvm kvmlet_memory kvmlet_base kvmlet_flags)
add_test(NAME guest_snapshot_dirty_pages_are_the_guests_from_kvm_and_the_vmms_own COMMAND dirty_log_driver)
set_tests_properties(guest_snapshot_dirty_pages_are_the_guests_from_kvm_and_the_vmms_own
                     PROPERTIES LABELS "guest;kvm" TIMEOUT 60)

# tools/bench/snapshot's guest: 32 MiB of RAM filled, then counting as count.c does; clones
# restored from a snapshot of it share the filled pages, booted VMs each fill their own.
kvmlet_add_guest(snapshot_fill snapshot_fill.c)
