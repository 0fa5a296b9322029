// kvmlet-boot-timer: tells the VMM the guest is ready, as Firecracker's boot timer expects: the
// byte 123 to I/O port 0x3f0 (kvmlet's devices/legacy/boot_timer.cpp logs Guest-boot-time).
// Debian's cloud kernel has no /dev/port (CONFIG_DEVPORT), so the write is an `out` of our own,
// allowed by ioperm(2) (needs CAP_SYS_RAWIO). Exits 1, saying why, where the port is not ours
// to write (a container).
#include <stdio.h>
#include <sys/io.h>

enum { boot_timer_port = 0x3f0, boot_timer_magic = 123 };

int main(void)
{
    if (ioperm(boot_timer_port, 1, 1) != 0) {
        perror("kvmlet-boot-timer: ioperm(0x3f0)");
        return 1;
    }
    outb(boot_timer_magic, boot_timer_port);
    return 0;
}
