/* The container tenants of tools/tenants: the workloads of tests/guests/tenant.c as a static Linux
 * program, for the runc rows. Same roles, pacing and output, with durations in nanoseconds
 * (it prints tsc_khz=1000000, so tools/tenants reads a "cycle" as 1 ns).
 *
 *   kvmlet_tenant_workload ROLE [FILE]
 *     victim_disk FILE       4 KiB reads at random 4 KiB-aligned offsets, one every 2 ms
 *     victim_cpu             a chunk of integer work every 10 ms
 *     aggressor_disk FILE    64 KiB reads one after another, wrapping at the end
 *     aggressor_cpu          a loop that never stops
 *     aggressor_memory       memset over 96 MiB, again and again
 * Runs until killed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    VICTIM_READ = 4096,
    AGGRESSOR_READ = 65536,
    DISK_BATCH = 128,
    CPU_BATCH = 32,
    BUCKETS = 8 * 62,
    CPU_CHUNK = 2000000, /* loop iterations per victim_cpu sample (about 1 ms natively) */
};
static const long DISK_PERIOD_NS = 2000000, CPU_PERIOD_NS = 10000000;
static const size_t MEMORY_BYTES = (size_t)96 << 20;

static uint32_t histogram[BUCKETS];

static void die(const char *what)
{
    fprintf(stderr, "tenant: FAIL %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint32_t bucket_of(uint64_t value) /* as tests/guests/tenant.c */
{
    if (value < 8) return (uint32_t)value;
    uint32_t m = 63 - (uint32_t)__builtin_clzll(value);
    return 8 * (m - 2) + (uint32_t)((value >> (m - 3)) & 7);
}

static void record(uint64_t ns, uint32_t batch)
{
    static uint32_t samples;
    ++histogram[bucket_of(ns)];
    if (++samples < batch) return;
    printf("tenant: hist n=%u", samples);
    for (uint32_t i = 0; i < BUCKETS; ++i) {
        if (histogram[i]) printf(" %u:%u", i, histogram[i]);
        histogram[i] = 0;
    }
    printf("\n");
    fflush(stdout);
    samples = 0;
}

/* Sleeps until `*next`, then moves it one period on (never into the past: no catch-up bursts). */
static void pace(uint64_t *next, long period_ns)
{
    struct timespec t = {(time_t)(*next / 1000000000u), (long)(*next % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {
    }
    uint64_t now = now_ns();
    *next += (uint64_t)period_ns;
    if (*next < now) *next = now + (uint64_t)period_ns;
}

static void ready(const char *role, int victim)
{
    if (victim) printf("tenant: tsc_khz=1000000\n");
    printf("tenant: ready %s\n", role);
    fflush(stdout);
}

static int open_disk(const char *path, uint64_t *bytes, void **buffer)
{
    int fd = open(path, O_RDONLY); /* through the page cache, as the VMs' disks (tools/tenants) */
    if (fd < 0) die(path);
    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat");
    if (st.st_size < AGGRESSOR_READ) {
        fprintf(stderr, "tenant: FAIL %s is smaller than 64 KiB\n", path);
        exit(1);
    }
    *bytes = (uint64_t)st.st_size;
    if (posix_memalign(buffer, 4096, AGGRESSOR_READ) != 0) die("posix_memalign");
    return fd;
}

static void read_at(int fd, void *buffer, size_t len, uint64_t offset)
{
    if (pread(fd, buffer, len, (off_t)offset) != (ssize_t)len) die("pread");
}

int main(int argc, char **argv)
{
    const char *role = argc > 1 ? argv[1] : "";
    if (!strcmp(role, "victim_disk") && argc > 2) {
        void *buffer;
        uint64_t bytes;
        int fd = open_disk(argv[2], &bytes, &buffer);
        uint64_t blocks = bytes / VICTIM_READ, state = 0x9e3779b97f4a7c15ull, next = now_ns();
        ready(role, 1);
        for (;;) {
            pace(&next, DISK_PERIOD_NS);
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            uint64_t start = now_ns();
            read_at(fd, buffer, VICTIM_READ, state % blocks * VICTIM_READ);
            record(now_ns() - start, DISK_BATCH);
        }
    }
    if (!strcmp(role, "victim_cpu")) {
        uint64_t next = now_ns();
        ready(role, 1);
        for (;;) {
            pace(&next, CPU_PERIOD_NS);
            uint64_t start = now_ns();
            for (uint32_t i = CPU_CHUNK; i; --i) __asm__ volatile("" : : : "memory");
            record(now_ns() - start, CPU_BATCH);
        }
    }
    if (!strcmp(role, "aggressor_disk") && argc > 2) {
        void *buffer;
        uint64_t bytes;
        int fd = open_disk(argv[2], &bytes, &buffer);
        ready(role, 0);
        for (uint64_t offset = 0;; offset += AGGRESSOR_READ) {
            if (offset + AGGRESSOR_READ > bytes) offset = 0;
            read_at(fd, buffer, AGGRESSOR_READ, offset);
        }
    }
    if (!strcmp(role, "aggressor_cpu")) {
        ready(role, 0);
        for (;;) __asm__ volatile("" : : : "memory");
    }
    if (!strcmp(role, "aggressor_memory")) {
        unsigned char *memory = malloc(MEMORY_BYTES);
        if (!memory) die("malloc");
        ready(role, 0);
        for (unsigned pass = 1;; ++pass) {
            memset(memory, (int)pass, MEMORY_BYTES);
            __asm__ volatile("" : : "r"(memory) : "memory");
        }
    }
    fprintf(stderr,
            "usage: %s victim_disk FILE | victim_cpu | aggressor_disk FILE | aggressor_cpu | "
            "aggressor_memory\n",
            argv[0]);
    return 2;
}
