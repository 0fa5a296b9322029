// kvmlet-mmap-write DEVICE: guest-side helper on the root file system of
// tests/linux/virtio_devices.sh. It changes the first byte of DEVICE through a shared mapping
// and prints what msync(2) says ("msync: ok" or "msync: <error>"; status 0 or 1).
//
// Why a mapping: Linux 6.1 refuses write(2) to a read-only disk itself (EPERM in
// blkdev_write_iter, block/fops.c), so the device never sees it. Page-cache writeback is not
// checked (bio_check_ro in block/blk-core.c only warns), so this is how a guest sends a write
// request to a disk that kvmlet offers read-only, and the device must refuse it.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int fail(char const* what) {
    printf("%s: %s\n", what, strerror(errno));
    return 1;
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: kvmlet-mmap-write DEVICE\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) return fail("open");
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return fail("sysconf");
    unsigned char* bytes = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (bytes == MAP_FAILED) return fail("mmap");
    bytes[0] ^= 0xff;
    if (msync(bytes, (size_t)page, MS_SYNC) != 0) return fail("msync");
    printf("msync: ok\n");
    return 0;
}
