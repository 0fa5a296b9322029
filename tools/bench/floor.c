/* kvmlet_floor: the raw-KVM floor of tools/compare.
 *
 * Runs a tiny guest ELF (build/tests/guests/boot_timer.elf) with only the KVM calls it needs, so
 * that tools/compare can show how far kvmlet's start-to-exit is from what KVM itself costs: open
 * /dev/kvm, create a VM, give it SIZE of RAM (64M by default) and the in-kernel irqchip, load the
 * ELF's PT_LOAD segments at their physical addresses, enter one vCPU at e_entry in 64-bit mode
 * (the tiny guests' boot contract, tests/guests/README.md), and serve its port I/O until it resets
 * through the i8042. No devices, threads or event loop: port writes are dropped (the guest's serial
 * line too), port reads return all-ones as from an absent device, which also ends the guest's
 * "transmitter empty" poll at once.
 *
 * Usage: kvmlet_floor GUEST.elf [SIZE]      SIZE: bytes, or with a K, M or G suffix
 * Exit status, as kvmlet run has them: 0 the guest reset; 1 a set-up error; 2 bad usage; 3 the
 * guest did something else (triple fault, failed entry, no reset within the time limit).
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { STATUS_RESET = 0, STATUS_SETUP = 1, STATUS_USAGE = 2, STATUS_GUEST = 3 };

/* A guest that neither resets nor crashes (say, it halts with interrupts off, which the in-kernel
 * irqchip sleeps through) is stopped after this long. */
enum { TIME_LIMIT_S = 30 };

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define DEFAULT_MEMORY (64 * MiB)

/* The i8042's command port and its "pulse the CPU reset line" command (8042 datasheet; what
 * Linux's reboot=k writes). */
#define I8042_COMMAND_PORT 0x64
#define I8042_CMD_RESET 0xfe

/* Guest-physical layout of what this program writes below the guest, which loads at 0x10000 or
 * above (tests/guests/guest.ld). */
#define GDT_ADDR UINT64_C(0x500)
#define PML4_ADDR UINT64_C(0x1000)
#define PDPT_ADDR UINT64_C(0x2000)
#define PD_ADDR UINT64_C(0x3000)
#define STACK_TOP UINT64_C(0x8ff0)
#define GUEST_LOW_LIMIT UINT64_C(0x10000)
/* One page directory of 2 MiB pages identity-maps the first 1 GiB: RAM may be no larger. */
#define PAGE_ENTRIES 512
#define LARGE_PAGE (2 * MiB)
#define MAX_MEMORY (PAGE_ENTRIES * LARGE_PAGE)
/* Where KVM_SET_TSS_ADDR puts its three pages: outside RAM, below 4 GiB (Intel needs it). */
#define KVM_TSS_ADDR 0xfffbd000ul

/* Intel SDM Vol. 3A §2.5 (control registers), §2.2.1 (IA32_EFER), §4.5 (4-level paging). */
#define CR0_PE (UINT64_C(1) << 0)
#define CR0_ET (UINT64_C(1) << 4)
#define CR0_NE (UINT64_C(1) << 5)
#define CR0_PG (UINT64_C(1) << 31)
#define CR4_PAE (UINT64_C(1) << 5)
#define EFER_LME (UINT64_C(1) << 8)
#define EFER_LMA (UINT64_C(1) << 10)
#define PTE_PRESENT (UINT64_C(1) << 0)
#define PTE_WRITABLE (UINT64_C(1) << 1)
#define PDE_LARGE (UINT64_C(1) << 7)
/* Intel SDM Vol. 1 §3.4.3: RFLAGS bit 1 reads as 1; IF stays clear. */
#define RFLAGS_RESERVED_ONE UINT64_C(0x2)

/* The selectors of kvmlet's boot contract (tests/guests/README.md): CS 0x10, data 0x18. GDT
 * entry 1 (kvmlet's 32-bit code segment, for PVH) stays null here. */
enum { GDT_ENTRIES = 4, CODE_SELECTOR = 0x10, DATA_SELECTOR = 0x18 };
/* Intel SDM Vol. 3A §3.4.5.1 Table 3-1, with "accessed" set (VM entry wants it). */
enum { TYPE_CODE_EXEC_READ_ACCESSED = 0xb, TYPE_DATA_READ_WRITE_ACCESSED = 0x3 };

static const char *prog = "kvmlet_floor";
static const char *guest_path;

static void fail(int status, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

static int ioctl_or_fail(int fd, unsigned long request, unsigned long arg, const char *what)
{
    int r = ioctl(fd, request, arg);
    if (r < 0) fail(STATUS_SETUP, "%s: %s", what, strerror(errno));
    return r;
}

static uint64_t parse_size(const char *text)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    uint64_t scale = 1;
    if (*end == 'K' || *end == 'k') scale = KiB, ++end;
    else if (*end == 'M' || *end == 'm') scale = MiB, ++end;
    else if (*end == 'G' || *end == 'g') scale = GiB, ++end;
    if (errno != 0 || end == text || *end != '\0' || value == 0 || value > MAX_MEMORY / scale)
        fail(STATUS_USAGE, "memory size %s: a number of bytes with an optional K, M or G suffix, at most 1G", text);
    uint64_t bytes = value * scale;
    if (bytes % LARGE_PAGE != 0 || bytes < 2 * LARGE_PAGE)
        fail(STATUS_USAGE, "memory size %s: must be a multiple of 2 MiB, at least 4 MiB", text);
    return bytes;
}

/* The guest's RAM: anonymous, so every page the guest does not touch stays unbacked and zero. */
static uint8_t *create_memory(int vm, uint64_t size)
{
    void *host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (host == MAP_FAILED) fail(STATUS_SETUP, "mmap of %llu bytes of guest RAM: %s", (unsigned long long)size,
                                 strerror(errno));
    /* The guest touches a few 4 KiB pages; a transparent huge page would zero and charge 2 MiB. */
    madvise(host, size, MADV_NOHUGEPAGE);
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = size, .userspace_addr = (uintptr_t)host};
    ioctl_or_fail(vm, KVM_SET_USER_MEMORY_REGION, (unsigned long)&region, "KVM_SET_USER_MEMORY_REGION");
    return host;
}

static void load_segment(uint8_t *ram, uint64_t ram_size, const uint8_t *file, uint64_t file_size,
                         const Elf64_Phdr *ph)
{
    if (ph->p_filesz > ph->p_memsz || ph->p_offset > file_size || ph->p_filesz > file_size - ph->p_offset)
        fail(STATUS_SETUP, "%s: a PT_LOAD segment lies outside the file", guest_path);
    if (ph->p_paddr < GUEST_LOW_LIMIT || ph->p_paddr > ram_size || ph->p_memsz > ram_size - ph->p_paddr)
        fail(STATUS_SETUP, "%s: segment at %#llx+%#llx is not inside [%#llx, %#llx) of guest RAM", guest_path,
             (unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz,
             (unsigned long long)GUEST_LOW_LIMIT, (unsigned long long)ram_size);
    /* The rest of p_memsz is already zero: fresh anonymous memory. */
    memcpy(ram + ph->p_paddr, file + ph->p_offset, ph->p_filesz);
}

/* Copies the ELF's PT_LOAD segments to their physical addresses; returns the entry point. */
static uint64_t load_elf(uint8_t *ram, uint64_t ram_size)
{
    int fd = open(guest_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) fail(STATUS_SETUP, "%s: %s", guest_path, strerror(errno));
    uint64_t size = (uint64_t)st.st_size;
    if (size < sizeof(Elf64_Ehdr)) fail(STATUS_SETUP, "%s: not an ELF64 x86-64 executable", guest_path);
    const uint8_t *file = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (file == MAP_FAILED) fail(STATUS_SETUP, "%s: mmap: %s", guest_path, strerror(errno));
    close(fd);
    Elf64_Ehdr eh;
    memcpy(&eh, file, sizeof eh);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64 || eh.e_type != ET_EXEC ||
        eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > size ||
        (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff)
        fail(STATUS_SETUP, "%s: not an ELF64 x86-64 executable", guest_path);
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        memcpy(&ph, file + eh.e_phoff + i * sizeof ph, sizeof ph);
        if (ph.p_type == PT_LOAD && ph.p_memsz != 0) load_segment(ram, ram_size, file, size, &ph);
    }
    if (eh.e_entry < GUEST_LOW_LIMIT || eh.e_entry >= ram_size)
        fail(STATUS_SETUP, "%s: entry point %#llx is outside the guest's RAM", guest_path,
             (unsigned long long)eh.e_entry);
    munmap((void *)file, size);
    return eh.e_entry;
}

/* A flat 4 GiB segment (limit in 4 KiB units), as KVM takes it and as its GDT descriptor. */
static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, int long_mode)
{
    return (struct kvm_segment){.base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
                                .present = 1, .dpl = 0, .db = long_mode ? 0 : 1, .s = 1,
                                .l = long_mode ? 1 : 0, .g = 1};
}

/* Intel SDM Vol. 3A §3.4.5, Figure 3-8: limit 15:0, base 23:0, type, S, DPL, P, limit 19:16,
 * L, D/B, G, base 31:24. Base 0 and limit 0xfffff (in 4 KiB units) for both segments here. */
static uint64_t gdt_descriptor(const struct kvm_segment *s)
{
    return UINT64_C(0xffff) | (uint64_t)(s->type & 0xf) << 40 | (uint64_t)s->s << 44 |
           (uint64_t)s->dpl << 45 | (uint64_t)s->present << 47 | UINT64_C(0xf) << 48 |
           (uint64_t)s->l << 53 | (uint64_t)s->db << 54 | (uint64_t)s->g << 55;
}

/* GDT and an identity map of the first 1 GiB in 2 MiB pages, in the guest's low RAM. */
static void write_long_mode_tables(uint8_t *ram, const struct kvm_segment *code, const struct kvm_segment *data)
{
    uint64_t gdt[GDT_ENTRIES] = {0};
    gdt[CODE_SELECTOR / 8] = gdt_descriptor(code);
    gdt[DATA_SELECTOR / 8] = gdt_descriptor(data);
    memcpy(ram + GDT_ADDR, gdt, sizeof gdt);
    uint64_t *pml4 = (uint64_t *)(ram + PML4_ADDR), *pdpt = (uint64_t *)(ram + PDPT_ADDR);
    uint64_t *pd = (uint64_t *)(ram + PD_ADDR);
    pml4[0] = PDPT_ADDR | PTE_PRESENT | PTE_WRITABLE;
    pdpt[0] = PD_ADDR | PTE_PRESENT | PTE_WRITABLE;
    for (uint64_t i = 0; i < PAGE_ENTRIES; ++i) pd[i] = i * LARGE_PAGE | PTE_PRESENT | PTE_WRITABLE | PDE_LARGE;
}

/* 64-bit mode at entry, interrupts off, the IDT empty (any exception becomes a triple fault). TR
 * keeps the busy TSS of the vCPU's reset state, which VM entry accepts. */
static void enter_long_mode(int vcpu, uint8_t *ram, uint64_t entry)
{
    struct kvm_sregs sregs;
    ioctl_or_fail(vcpu, KVM_GET_SREGS, (unsigned long)&sregs, "KVM_GET_SREGS");
    struct kvm_segment code = flat_segment(CODE_SELECTOR, TYPE_CODE_EXEC_READ_ACCESSED, 1);
    struct kvm_segment data = flat_segment(DATA_SELECTOR, TYPE_DATA_READ_WRITE_ACCESSED, 0);
    write_long_mode_tables(ram, &code, &data);
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = GDT_ENTRIES * 8 - 1;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
    sregs.cr3 = PML4_ADDR;
    sregs.cr4 = CR4_PAE;
    sregs.efer = EFER_LME | EFER_LMA;
    ioctl_or_fail(vcpu, KVM_SET_SREGS, (unsigned long)&sregs, "KVM_SET_SREGS");
    struct kvm_regs regs = {.rip = entry, .rsp = STACK_TOP, .rflags = RFLAGS_RESERVED_ONE};
    ioctl_or_fail(vcpu, KVM_SET_REGS, (unsigned long)&regs, "KVM_SET_REGS");
}

/* True when this exit is the i8042 reset; reads get all-ones, other writes are dropped. */
static int serve_io(struct kvm_run *run)
{
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    size_t len = (size_t)run->io.size * run->io.count;
    if (run->io.direction == KVM_EXIT_IO_IN) {
        memset(data, 0xff, len);
        return 0;
    }
    return run->io.port == I8042_COMMAND_PORT && run->io.size == 1 && data[0] == I8042_CMD_RESET;
}

static void on_alarm(int sig) { (void)sig; }

/* KVM_RUN until the guest resets; anything else it does ends the program with STATUS_GUEST. */
static void run_until_reset(int vcpu, struct kvm_run *run)
{
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR) fail(STATUS_GUEST, "%s: no reset within %d s", guest_path, TIME_LIMIT_S);
            fail(STATUS_GUEST, "KVM_RUN: %s", strerror(errno));
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            if (serve_io(run)) return;
            break;
        case KVM_EXIT_MMIO:
            if (!run->mmio.is_write) memset(run->mmio.data, 0xff, sizeof run->mmio.data);
            break;
        case KVM_EXIT_SHUTDOWN:
            fail(STATUS_GUEST, "%s: the guest triple-faulted", guest_path);
        case KVM_EXIT_FAIL_ENTRY:
            fail(STATUS_GUEST, "VM entry failed: hardware reason %#llx",
                 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        case KVM_EXIT_INTERNAL_ERROR:
            fail(STATUS_GUEST, "KVM internal error, suberror %u", run->internal.suberror);
        default:
            fail(STATUS_GUEST, "unexpected exit reason %u", run->exit_reason);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: %s GUEST.elf [SIZE]   (SIZE: guest RAM, default 64M)\n", prog);
        return STATUS_USAGE;
    }
    guest_path = argv[1];
    uint64_t memory = argc == 3 ? parse_size(argv[2]) : DEFAULT_MEMORY;

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) fail(STATUS_SETUP, "/dev/kvm: %s", strerror(errno));
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) fail(STATUS_SETUP, "/dev/kvm: unexpected API version");
    int vm = ioctl_or_fail(kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
    ioctl_or_fail(vm, KVM_SET_TSS_ADDR, KVM_TSS_ADDR, "KVM_SET_TSS_ADDR");
    /* Memory before the irqchip, as kvmlet does it: on kvm-pvm a memslot costs more once a VM has one. */
    uint8_t *ram = create_memory(vm, memory);
    ioctl_or_fail(vm, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
    uint64_t entry = load_elf(ram, memory);

    int vcpu = ioctl_or_fail(vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
    int run_size = ioctl_or_fail(kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) fail(STATUS_SETUP, "mmap of the vCPU's kvm_run: %s", strerror(errno));
    enter_long_mode(vcpu, ram, entry);

    /* No SA_RESTART: the alarm makes KVM_RUN return EINTR. */
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    alarm(TIME_LIMIT_S);
    run_until_reset(vcpu, run);
    return STATUS_RESET;
}
