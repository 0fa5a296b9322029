# Lifecycle (issue 15): lifecycle_driver runs a Machine on one thread and pauses, resumes and sends
# Ctrl-Alt-Del from another, as the control API does, checking what the guest prints on COM1.
# Included from CMakeLists.txt, after kvmlet_add_guest and GUEST_READELF/GUEST_OBJDUMP.
kvmlet_add_guest(count count.c)
kvmlet_add_guest(ctrl_alt_del ctrl_alt_del.c idt.c)
if(GUEST_READELF AND GUEST_OBJDUMP)
    foreach(name count ctrl_alt_del)
        add_test(NAME guest_${name}_elf_is_loadable_and_emulable
                 COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_guest_elf.sh
                         ${GUEST_READELF} ${GUEST_OBJDUMP} $<TARGET_FILE:guest_${name}>)
        set_tests_properties(guest_${name}_elf_is_loadable_and_emulable PROPERTIES LABELS guest)
    endforeach()
endif()

add_executable(lifecycle_driver lifecycle_driver.cpp)
target_link_libraries(lifecycle_driver PRIVATE kvmlet_machine kvmlet_event kvmlet_kvm kvmlet_base
                                               Threads::Threads kvmlet_flags)

# The count guest prints "count N" for ever: 100 pause/resume cycles (then a double pause, a 1.5 s
# pause past the halt watchdog, and SIGTERM while paused), every N once and in order, none printed
# while paused.
add_test(NAME guest_pause_resume_100_times_loses_no_count_and_sigterm_stops_a_paused_machine
         COMMAND lifecycle_driver pause-resume $<TARGET_FILE:guest_count> 100)
# The ctrl_alt_del guest sets up the i8042 and keyboard as Linux does, and resets on the keys'
# interrupts: Ctrl-Alt-Del sent while paused, seen after resume, run() ends with a reset.
add_test(NAME guest_ctrl_alt_del_reaches_the_keyboard_interrupt_and_the_guest_resets
         COMMAND lifecycle_driver ctrl-alt-del $<TARGET_FILE:guest_ctrl_alt_del>)
set_tests_properties(guest_pause_resume_100_times_loses_no_count_and_sigterm_stops_a_paused_machine
                     guest_ctrl_alt_del_reaches_the_keyboard_interrupt_and_the_guest_resets
                     PROPERTIES LABELS "guest;kvm" SKIP_RETURN_CODE 77 TIMEOUT 120)
