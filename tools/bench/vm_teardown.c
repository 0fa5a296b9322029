/* kvmlet_vm_teardown: what a VM's interrupt controllers cost to create and to tear down.
 *
 * Issue 19 asks what the in-kernel irqchip and PIT cost a VM that needs neither. For each kind of
 * VM below, in interleaved rounds, this program creates a VM the way kvmlet does up to its first
 * vCPU (KVM_SET_TSS_ADDR, one anonymous memslot of SIZE, the interrupt controllers of the kind, one
 * vCPU) and then closes its descriptors, timing the two halves with CLOCK_MONOTONIC and the
 * process's CPU time (RUSAGE_SELF: the teardown runs in the closing thread):
 *
 *   none      no in-kernel interrupt controller (a guest that takes no interrupts)
 *   split     KVM_CAP_SPLIT_IRQCHIP: local APICs in the kernel, PIC and IOAPIC left to the VMM
 *             (QEMU microvm's default, and Cloud Hypervisor's)
 *   irqchip   KVM_CREATE_IRQCHIP: PIC, IOAPIC and local APICs in the kernel
 *   pit       KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 (what kvmlet and Firecracker create)
 *
 * Usage: kvmlet_vm_teardown [--rounds N] [--memory SIZE]
 * Output: one line per kind: medians of create and close (wall and CPU, microseconds) and their
 * min and max, as JSON lines for the tools, e.g.
 *   {"kind": "pit", "rounds": 20, "create_us": {...}, "close_us": {...}, "close_cpu_us": {...}}
 * Exit status: 0 measured; 1 a KVM call failed; 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MiB (UINT64_C(1) << 20)
#define MAX_ROUNDS 1000
#define TSS_ADDR 0xfffbd000UL
/* The local APICs stay in the kernel with the split irqchip; the IOAPIC's 24 pins are routed by
 * the VMM, so it reserves them (QEMU does the same). */
#define SPLIT_IOAPIC_PINS 24

enum kind { KIND_NONE, KIND_SPLIT, KIND_IRQCHIP, KIND_PIT, KIND_COUNT };
static char const *const kind_names[KIND_COUNT] = {"none", "split", "irqchip", "pit"};

struct sample {
    double create_us, close_us, close_cpu_us;
};

static int kvm_fd = -1;

static void fail(char const *what)
{
    fprintf(stderr, "kvmlet_vm_teardown: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static double cpu_us(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 + (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

static struct sample one_round(enum kind kind, void *ram, uint64_t size)
{
    struct sample s;
    double start = now_us();
    int vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    if (vm < 0) fail("KVM_CREATE_VM");
    if (ioctl(vm, KVM_SET_TSS_ADDR, TSS_ADDR) != 0) fail("KVM_SET_TSS_ADDR");
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = size, .userspace_addr = (uint64_t)(uintptr_t)ram};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) != 0) fail("KVM_SET_USER_MEMORY_REGION");
    if (kind == KIND_SPLIT) {
        struct kvm_enable_cap cap = {.cap = KVM_CAP_SPLIT_IRQCHIP, .args = {SPLIT_IOAPIC_PINS}};
        if (ioctl(vm, KVM_ENABLE_CAP, &cap) != 0) fail("KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)");
    } else if (kind == KIND_IRQCHIP || kind == KIND_PIT) {
        if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) != 0) fail("KVM_CREATE_IRQCHIP");
    }
    if (kind == KIND_PIT) {
        struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
        if (ioctl(vm, KVM_CREATE_PIT2, &pit) != 0) fail("KVM_CREATE_PIT2");
    }
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) fail("KVM_CREATE_VCPU");
    double closing = now_us();
    double closing_cpu = cpu_us();
    close(vcpu);
    close(vm);
    s.close_us = now_us() - closing;
    s.close_cpu_us = cpu_us() - closing_cpu;
    s.create_us = closing - start;
    return s;
}

static int compare_doubles(void const *a, void const *b)
{
    double x = *(double const *)a, y = *(double const *)b;
    return (x > y) - (x < y);
}

/* {"median": m, "min": a, "max": b} of values[0..n), which it sorts. */
static void print_stats(char const *name, double *values, int n)
{
    qsort(values, (size_t)n, sizeof *values, compare_doubles);
    double median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    printf("\"%s\": {\"median\": %.1f, \"min\": %.1f, \"max\": %.1f}", name, median, values[0], values[n - 1]);
}

static int usage(void)
{
    fprintf(stderr, "usage: kvmlet_vm_teardown [--rounds N (1-%d, default 20)] [--memory MiB (default 64)]\n",
            MAX_ROUNDS);
    return 2;
}

int main(int argc, char **argv)
{
    long rounds = 20, memory_mib = 64;
    for (int i = 1; i < argc; i += 2) {
        char *end = NULL;
        if (i + 1 >= argc) return usage();
        long value = strtol(argv[i + 1], &end, 10);
        if (*argv[i + 1] == '\0' || *end != '\0') return usage();
        if (strcmp(argv[i], "--rounds") == 0 && value >= 1 && value <= MAX_ROUNDS)
            rounds = value;
        else if (strcmp(argv[i], "--memory") == 0 && value >= 1 && value <= 4096)
            memory_mib = value;
        else
            return usage();
    }
    kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm_fd < 0) fail("/dev/kvm");
    uint64_t size = (uint64_t)memory_mib * MiB;
    void *ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ram == MAP_FAILED) fail("mmap guest RAM");

    static struct sample samples[KIND_COUNT][MAX_ROUNDS];
    one_round(KIND_PIT, ram, size); /* warm-up: the first VM pays KVM's one-time set-up */
    /* Each round starts with another kind, so no kind always follows the slow close of a pit VM. */
    for (int r = 0; r < rounds; ++r)
        for (int i = 0; i < KIND_COUNT; ++i) {
            int k = (r + i) % KIND_COUNT;
            samples[k][r] = one_round((enum kind)k, ram, size);
        }

    for (int k = 0; k < KIND_COUNT; ++k) {
        double create[MAX_ROUNDS], close_wall[MAX_ROUNDS], close_cpu[MAX_ROUNDS];
        for (int r = 0; r < rounds; ++r) {
            create[r] = samples[k][r].create_us;
            close_wall[r] = samples[k][r].close_us;
            close_cpu[r] = samples[k][r].close_cpu_us;
        }
        printf("{\"kind\": \"%s\", \"rounds\": %ld, \"memory_mib\": %ld, ", kind_names[k], rounds, memory_mib);
        print_stats("create_us", create, (int)rounds);
        printf(", ");
        print_stats("close_us", close_wall, (int)rounds);
        printf(", ");
        print_stats("close_cpu_us", close_cpu, (int)rounds);
        printf("}\n");
    }
    return 0;
}
