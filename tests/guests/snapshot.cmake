# Snapshot and restore (issue 17): the 4-vCPU guest of tests/api/snapshot.py's ticks case (the
# count case uses lifecycle.cmake's count guest). Included from CMakeLists.txt.
kvmlet_add_guest(snapshot_ticks snapshot_ticks.c ipi_trampoline.S idt.c)
if(GUEST_READELF AND GUEST_OBJDUMP)
    add_test(NAME guest_snapshot_ticks_elf_is_loadable_and_emulable
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_guest_elf.sh
                     ${GUEST_READELF} ${GUEST_OBJDUMP} $<TARGET_FILE:guest_snapshot_ticks>)
    set_tests_properties(guest_snapshot_ticks_elf_is_loadable_and_emulable PROPERTIES LABELS guest)
endif()
