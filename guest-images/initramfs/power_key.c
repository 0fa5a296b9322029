/* power-key: waits for the ACPI power button, the guest end of kvmlet's power-button test
 * (tests/linux/power_button.py), built static by guest-images/build into the minimal initramfs
 * as /bin/power-key.
 *
 *   power-key   finds the input device named "Power Button" (Linux's ACPI button driver, bound to
 *               the DSDT's PNP0C0C), prints "power-key: waiting on /dev/input/eventN", and exits
 *               0 printing "power-key: pressed" at the first KEY_POWER press; status 1, with a
 *               line saying why, when there is no such device or reading it fails
 *
 * The device appears once the button driver has probed; it may still be probing when init runs
 * this, so the search is retried for up to 10 s.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

enum { search_tries = 100, search_pause_us = 100 * 1000 };

static const char button_name[] = "Power Button";

/* An open descriptor on the power button's event device, its path in `path`; -1 if none. */
static int open_button(char *path, size_t path_size) {
    DIR *dir = opendir("/dev/input");
    if (dir == NULL) return -1;
    int found = -1;
    struct dirent *entry;
    while (found < 0 && (entry = readdir(dir)) != NULL) {
        if (strncmp(entry->d_name, "event", 5) != 0) continue;
        snprintf(path, path_size, "/dev/input/%s", entry->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        char name[64] = {0};
        if (ioctl(fd, EVIOCGNAME(sizeof name - 1), name) >= 0 && strcmp(name, button_name) == 0)
            found = fd;
        else
            close(fd);
    }
    closedir(dir);
    return found;
}

int main(void) {
    char path[300];
    int fd = -1;
    for (int i = 0; i < search_tries && fd < 0; ++i) {
        fd = open_button(path, sizeof path);
        if (fd < 0) usleep(search_pause_us);
    }
    if (fd < 0) {
        printf("power-key: no input device named \"%s\" in /dev/input\n", button_name);
        return 1;
    }
    printf("power-key: waiting on %s\n", path);
    fflush(stdout);
    for (;;) {
        struct input_event event;
        ssize_t n = read(fd, &event, sizeof event);
        if (n < 0 && errno == EINTR) continue;
        if (n != (ssize_t)sizeof event) {
            printf("power-key: reading %s: %s\n", path, n < 0 ? strerror(errno) : "short read");
            return 1;
        }
        if (event.type == EV_KEY && event.code == KEY_POWER && event.value == 1) {
            printf("power-key: pressed\n");
            return 0;
        }
    }
}
