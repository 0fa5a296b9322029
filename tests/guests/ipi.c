/* IPIs to halted vCPUs: are they delivered, and how long do they take?
 *
 * Linux's pattern, reduced: every CPU but the current sender idles as default_idle() does (check
 * for work with interrupts off, then `sti; hlt`); a sender posts work to a target (a per-CPU
 * request counter), sends a fixed IPI (vector 0x40) and waits for the target's idle loop to
 * acknowledge it. The handler only counts and EOIs. Each CPU in turn is the sender (the BSP first,
 * then each AP on the BSP's request while the BSP idles as a target like the others), through the
 * phases in `phases` below: one target or all others per round; physical, logical (xAPIC flat,
 * x2APIC cluster) or all-but-self destinations; the IPI sent while the target is already in
 * `hlt`, or while it is on its way there with interrupts off; Linux's TIF_POLLING_NRFLAG protocol
 * (ipi_flags.h); KVM's PV EOI. Before the rounds, every CPU hammers one shared word with locked
 * read-modify-writes at once, checking that none is lost.
 *
 * What is checked is order and counts, never time: an IPI is lost (a failure) if its target never
 * acknowledges it, which means not within LOST_MS, far beyond any latency seen even where KVM
 * itself is emulated; a lost one is sent again as a diagnostic, and a CPU that ignores that too is
 * not used any more. How long acknowledgements took is a figure: "late" counts those over
 * LATE_MS. Time comes from each CPU's own LAPIC timer (1 GHz / 16). A phase runs at least
 * MIN_ROUNDS rounds per sender, more while its share of TOTAL_BUDGET_MS lasts. One sender at a time:
 * the BSP hands over to the next AP only once the last one has said its turn is over. An interrupt
 * taken at the `hlt` of `sti; hlt`, inside sti's interrupt shadow (a host fault: see
 * step_over_hlt_in_shadow), returns past the `hlt` and is counted; an exception prints where it
 * happened and fails the test.
 *
 * Built twice (ipi_apic.h): ipi.elf uses the xAPIC, ipi_x2apic.elf switches every CPU to x2APIC
 * mode, as Linux does under KVM. Prints a line per sender as its turn ends and, at the end, one per
 * phase over all senders and a summary (few lines: where KVM is emulated, each byte on the serial
 * port costs an exit of about a millisecond), then "ipi: ok" if no IPI and no atomic update was
 * lost (else "ipi: LOST <n>" or "ipi: FAIL ..."), and resets. */
#include "guest.h"
#include "idt.h"
#include "ipi.h"
#include "ipi_apic.h"
#include "ipi_flags.h"

enum {
    IPI_VECTOR = 0x40,
    ROUNDS_PER_PHASE = 300,
    MIN_ROUNDS = 6,         /* per sender and phase, whatever the budget */
    TOTAL_BUDGET_MS = 3000, /* split over senders and phases; a phase stops at its share */
    MIN_PHASE_MS = 30,
    LATE_MS = 200,   /* an acknowledgement after this is counted as late: a figure, not a failure */
    LOST_MS = 15000, /* none by then: lost. A loaded emulated host has stalled a vCPU for 4 s */
    RESEND_MS = 1000,
    MAX_LOST = 1,    /* then every phase stops: each costs LOST_MS + RESEND_MS */
    BRING_UP_MS = 10000,
    INIT_TO_SIPI_MS = 10,
    SIPI_TO_SIPI_MS = 1,
    XAPIC_FLAT_MAX_CPUS = 8,
    WINDOW_MS = 50, /* the longest a target waits in the window, and a sender for it to get there */
};

enum {
    CPUID_1_ECX_X2APIC = 1 << 21,
    /* KVM's paravirtual interface (Linux Documentation/virt/kvm/x86/cpuid.rst, msr.rst). */
    CPUID_KVM_SIGNATURE = 0x40000000,
    CPUID_KVM_FEATURES = 0x40000001,
    KVM_FEATURE_PV_EOI = 1 << 6,
    MSR_KVM_PV_EOI_EN = 0x4b564d04,
    MSR_GS_BASE = (int)0xc0000101,
    KVM_MSR_ENABLED = 1,
    DFR_FLAT = (int)0xffffffff, /* xAPIC destination format: flat model (SDM 10.6.2.2) */
};

enum style { PHYSICAL, LOGICAL, ALL_BUT_SELF };
struct phase {
    const char *name;
    enum style style;
    uint32_t all_others; /* else one target per round, in turn */
    uint32_t stick;      /* rounds to the same target before the next (one target per round) */
    uint32_t window;     /* the IPI arrives between the target's check for work and `sti; hlt` */
    uint32_t polling;    /* targets idle with Linux's TIF_POLLING_NRFLAG protocol */
    uint32_t pv_eoi;     /* targets acknowledge interrupts through KVM's PV EOI, as Linux does */
    uint32_t shares;     /* of TOTAL_BUDGET_MS: rounds with a window are slower */
};
static const struct phase phases[] = {
    {.name = "one, physical", .style = PHYSICAL, .shares = 1},
    {.name = "one, logical", .style = LOGICAL, .shares = 1},
    {.name = "all, physical one by one", .style = PHYSICAL, .all_others = 1, .shares = 1},
    {.name = "all, logical mask", .style = LOGICAL, .all_others = 1, .shares = 1},
    {.name = "all, all-but-self", .style = ALL_BUT_SELF, .all_others = 1, .shares = 1},
    /* The IPI arrives while the target, having found no work, has interrupts off on its way to
     * `sti; hlt` (Linux's idle path from need_resched() to default_idle() is long, and slower still
     * where it is emulated): the pending IPI must end the `hlt` at once. Targets wait in that window
     * until the sender has sent, spinning: they compete for the host's cores. */
    {.name = "one, physical, ipi before sti; hlt", .style = PHYSICAL, .stick = 16, .window = 1, .shares = 3},
    {.name = "all, all-but-self, ipi before sti; hlt", .style = ALL_BUT_SELF, .all_others = 1, .window = 1,
     .shares = 3},
    /* A target that says it polls gets a flag instead of an IPI (set_nr_if_polling()); it clears
     * the flag and tests for work atomically before `sti; hlt`. A lost update of that word is a
     * lost wake-up. The sender acts at varying points of the target's polling stretch. */
    {.name = "one, physical, polling idle", .style = PHYSICAL, .stick = 16, .polling = 1, .shares = 2},
    /* Linux under KVM acknowledges through PV EOI (MSR_KVM_PV_EOI_EN) when CPUID offers it: the host
     * marks an injected interrupt in guest memory and the handler clears the mark instead of writing
     * the EOI register. A missed EOI keeps the vector in service and blocks every later IPI. */
    {.name = "one, physical, pv eoi", .style = PHYSICAL, .pv_eoi = 1, .shares = 1},
    {.name = "all, all-but-self, pv eoi", .style = ALL_BUT_SELF, .all_others = 1, .pv_eoi = 1, .shares = 1},
};
enum { PHASES = sizeof phases / sizeof phases[0] };

/* One CPU's state; written by it and by the one sender of the moment. */
struct cpu {
    struct cpu *self;           /* at %gs:0 on this CPU (this_cpu()) */
    volatile uint32_t online;
    volatile uint32_t irqs;     /* IPI handler runs */
    volatile uint32_t requests; /* work posted by senders */
    volatile uint32_t done;     /* = requests once this CPU's idle loop saw the work */
    volatile uint32_t idle;     /* an enum idle_state */
    volatile uint32_t dead;     /* ignored an IPI and its resend: no more rounds to it */
    volatile uint32_t release;  /* the sender has sent: leave the window for `sti; hlt` */
    volatile uint64_t flags;    /* Linux's thread_info flags: TIF_NEED_RESCHED, TIF_POLLING_NRFLAG */
    uint32_t seed;              /* for the length of the polling stretch */
    volatile uint32_t pv_eoi_word; /* KVM_PV_EOI_BIT (bit 0) set by the host: skip the EOI write */
    uint32_t pv_eoi_on, pv_eois;   /* PV EOI enabled; EOIs done by clearing the bit */
    /* Leaving the window, as this CPU's own clock sees it: */
    volatile uint32_t hlt_at;   /* clock_ticks() | 1 just before `sti; hlt` with the IPI in the IRR */
    uint32_t window_exits, irr_pending; /* exits; of those, with the IPI already in the IRR */
    uint32_t hlt_wakes, hlt_over_1ms;   /* handler runs after an exit; of those, after > 1 ms */
    uint32_t hlt_max_ticks;
    uint64_t hlt_sum_ticks;
    uint32_t logical_id;                   /* its bit for logical destinations */
    void (*volatile job)(uint32_t self); /* run by the idle loop along with the request */
} __attribute__((aligned(64)));

enum idle_state {
    RUNNING,
    WINDOW,  /* found no work, interrupts off, not yet at `sti; hlt` */
    POLLING, /* TIF_POLLING_NRFLAG set */
    HALTED,  /* from just before `sti; hlt` until just after it */
};

struct stats {
    uint32_t rounds, sent, acked, late, lost, resent_ok, to_halted, to_window, to_polling, no_ipi;
    uint64_t sum_ticks; /* over the acknowledged ones */
    uint32_t max_ticks;
};

static struct cpu cpus[IPI_MAX_CPUS];
static uint32_t cpu_count; /* written by the BSP before any AP reads it */
static volatile uint32_t online_aps;
static volatile uint32_t unexpected_interrupts;
static volatile uint32_t lost_ipis; /* by every sender so far */
static volatile uint32_t failed;    /* a FAIL line was printed */
static volatile uint32_t window_mode;  /* the current phase's window, for the targets */
static volatile uint32_t polling_mode; /* and its polling */
static volatile uint32_t pv_eoi_mode;  /* and its PV EOI */
static uint32_t pv_eoi_available;      /* CPUID: KVM with KVM_FEATURE_PV_EOI */
static struct stats phase_stats[PHASES];   /* added to by the one sender of the moment */
static const char *phase_skipped[PHASES];  /* why a phase did not run (the same for every sender) */
static struct stats control[IPI_MAX_CPUS]; /* by sender: starts, hand-overs, wake-ups of the BSP */
static volatile uint32_t duty_over; /* the BSP's loop condition while an AP sends */
static volatile uint32_t turn_over; /* the AP has counted its wake-up of the BSP */

/* The logical destination: x2APIC's is fixed by the APIC ID (cluster << 16 | 1 << (id % 16));
 * xAPIC's is the OS's choice, here the flat model with bit `id`, as Linux's apic_flat does. */
static void logical_setup(uint32_t self)
{
    if (IPI_X2APIC) {
        cpus[self].logical_id = apic_read(LAPIC_LDR);
    } else if (self < XAPIC_FLAT_MAX_CPUS) {
        apic_write(LAPIC_DFR, (uint32_t)DFR_FLAT);
        apic_write(LAPIC_LDR, (1u << self) << 24);
        cpus[self].logical_id = 1u << self;
    }
}

/* ---- output ---- */

/* Lines are gathered here and written to COM1 with one `rep outsb` each. KVM still exits once per
 * byte (its emulator runs OUTS one element at a time), but not twice as guest.c's serial_putc() does
 * by reading the line status before each byte: where KVM is emulated an exit costs about a
 * millisecond. kvmlet's 16550 takes any number of bytes at once (its transmitter is always empty),
 * so only the line's start waits for it. One CPU prints at a time (the sender of the moment, or the
 * BSP); exception() writes unbuffered. */
enum { OUT_LINE_MAX = 256, OUT_THR_POLLS = 100000 };
static char out_line[OUT_LINE_MAX];
static uint32_t out_len;

static void out_flush(void)
{
    const char *p = out_line;
    uint32_t n = out_len;
    for (int i = 0; i < OUT_THR_POLLS && !(inb(COM1_BASE + UART_LSR) & UART_LSR_THR_EMPTY); ++i) {
    }
    __asm__ volatile("rep outsb" : "+S"(p), "+c"(n) : "d"((uint16_t)(COM1_BASE + UART_THR)) : "memory");
    out_len = 0;
}

static void out_puts(const char *s)
{
    for (; *s; ++s) {
        out_line[out_len++] = *s;
        if (*s == '\n' || out_len == OUT_LINE_MAX) out_flush();
    }
}

static void out_dec(uint64_t value)
{
    char digits[21];
    int n = sizeof digits - 1;
    digits[n] = 0;
    do {
        digits[--n] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    out_puts(&digits[n]);
}

static void out_hex(uint64_t value)
{
    static const char hex[] = "0123456789abcdef";
    char digits[19] = "0x";
    for (int i = 0; i < 16; ++i) digits[2 + i] = hex[(value >> (60 - 4 * i)) & 0xf];
    digits[18] = 0;
    out_puts(digits);
}

/* ---- interrupts and the idle loop ---- */

/* Acknowledges the interrupt in service, through PV EOI where the host marked it (Linux's
 * kvm_guest_apic_eoi_write(): a plain btr, the word is this CPU's own). */
static void eoi(struct cpu *c)
{
    if (c && c->pv_eoi_on) {
        uint8_t was_set;
        __asm__ volatile("btrl $0, %0; setc %1" : "+m"(c->pv_eoi_word), "=q"(was_set) : : "cc");
        if (was_set) {
            c->pv_eois++;
            return;
        }
    }
    apic_write(LAPIC_EOI, 0);
}

/* This CPU's struct cpu, read without an exit, as Linux reads its per-CPU data: an APIC ID read
 * would be one, and KVM takes back its PV EOI mark at any exit (apic_sync_pv_eoi_from_guest()), so
 * the handlers must reach eoi() before their first. */
static struct cpu *this_cpu(void)
{
    struct cpu *c;
    __asm__ volatile("mov %%gs:0, %0" : "=r"(c));
    return c;
}

/* Points this CPU's GS base at its struct cpu, for this_cpu(). */
static void set_cpu_pointer(uint32_t self)
{
    cpus[self].self = &cpus[self];
    wrmsr(MSR_GS_BASE, (uint64_t)(uintptr_t)&cpus[self]);
}

/* Called by the idle loop (interrupts off, nothing in service) to follow the phase's pv_eoi. */
static void pv_eoi_switch(struct cpu *c, uint32_t on)
{
    c->pv_eoi_word = 0;
    wrmsr(MSR_KVM_PV_EOI_EN, on ? (uint64_t)(uintptr_t)&c->pv_eoi_word | KVM_MSR_ENABLED : 0);
    c->pv_eoi_on = on;
}

/* `sti; hlt; cli` as a function, so that a handler can tell an interrupt taken at its `hlt`. */
void safe_halt(void);
extern const char safe_halt_hlt[];
__asm__(".text\n"
        ".global safe_halt, safe_halt_hlt\n"
        "safe_halt:\n"
        "  sti\n"
        "safe_halt_hlt:\n"
        "  hlt\n"
        "  cli\n"
        "  ret\n");

/* `sti` holds interrupts off until the instruction after the next (SDM vol. 2B, STI), so no
 * interrupt can arrive with its return address at safe_halt's `hlt`. A host that drops that
 * interrupt shadow when it leaves and re-enters the guest between `sti` and `hlt` lets one through
 * there: QEMU's TCG emulation of AMD SVM stores the shadow in the VMCB at #VMEXIT but ignores it at
 * VMRUN (target/i386/tcg/sysemu/svm_helper.c), which is what the emulated KVM host of the CI runs
 * on. The handler would then return to the `hlt` with interrupts on and the CPU sleep with its
 * work posted: a lost wake-up that is neither kvmlet's nor KVM's. Counted, and skipped here. */
static volatile uint32_t shadow_breaks;

static void step_over_hlt_in_shadow(struct interrupt_frame *frame)
{
    if (frame->rip != (uintptr_t)safe_halt_hlt) return;
    __atomic_fetch_add(&shadow_breaks, 1, __ATOMIC_RELAXED);
    frame->rip += 1; /* hlt is one byte, 0xf4 */
}

void ipi_interrupt(struct interrupt_frame *frame)
{
    struct cpu *c = this_cpu();
    step_over_hlt_in_shadow(frame);
    eoi(c);
    if (c) {
        c->irqs++;
        if (c->hlt_at) {
            uint32_t ticks = clock_ticks() - c->hlt_at;
            c->hlt_at = 0;
            c->hlt_wakes++;
            c->hlt_sum_ticks += ticks;
            if (ticks > c->hlt_max_ticks) c->hlt_max_ticks = ticks;
            if (ticks > TICKS_PER_MS) c->hlt_over_1ms++;
        }
    }
}
IDT_ENTRY(ipi_entry, ipi_interrupt);

void unexpected_interrupt(struct interrupt_frame *frame)
{
    step_over_hlt_in_shadow(frame);
    eoi(this_cpu());
    __atomic_fetch_add(&unexpected_interrupts, 1, __ATOMIC_RELAXED);
}
IDT_ENTRY(unexpected_entry, unexpected_interrupt);

/* Any exception (or NMI) ends the test with where it happened, rather than with a triple fault.
 * It runs on the CPU's exception stack, so a bad RSP is reported too. */
static void exception(const struct exception_frame *frame)
{
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    serial_puts("ipi: FAIL exception ");
    serial_put_dec(frame->vector);
    serial_puts(", error code ");
    serial_put_hex(frame->error_code);
    serial_puts(", on cpu ");
    serial_put_dec(apic_id());
    serial_puts(" at rip ");
    serial_put_hex(frame->cpu.rip);
    serial_puts(", rsp ");
    serial_put_hex(frame->cpu.rsp);
    serial_puts(", rflags ");
    serial_put_hex(frame->cpu.rflags);
    serial_puts(", cr2 ");
    serial_put_hex(cr2);
    serial_puts("\r\n");
    guest_reset();
}

/* The 64-bit TSS (SDM vol. 3A, 8.7), here only for its interrupt stack table. */
struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3, io_map_base;
} __attribute__((packed));
_Static_assert(sizeof(struct tss64) == 104, "SDM vol. 3A, figure 8-11");

enum {
    EXCEPTION_IST = 1,
    EXCEPTION_STACK_SIZE = 4096,
    GDT_BOOT_ENTRIES = 4,  /* null, 32-bit code 0x08, 64-bit code 0x10, data 0x18 (ipi.h) */
    GDT_TSS_AVAILABLE_64 = 0x89, /* P=1, type 9: available 64-bit TSS (SDM vol. 3A, 8.2.3) */
};
static struct tss64 tss[IPI_MAX_CPUS];
static uint8_t exception_stacks[IPI_MAX_CPUS][EXCEPTION_STACK_SIZE] __attribute__((aligned(16)));
/* The boot selectors, as kvmlet's GDT and the trampoline's have them, then a TSS descriptor (two
 * entries) per CPU. */
static uint64_t gdt[GDT_BOOT_ENTRIES + 2 * IPI_MAX_CPUS] __attribute__((aligned(16))) = {
    0, 0x00cf9b000000ffff, 0x00af9b000000ffff, 0x00cf93000000ffff,
};

/* Loads the shared GDT and this CPU's TSS, whose IST slot is this CPU's exception stack. */
static void set_up_exception_stack(uint32_t self)
{
    struct tss64 *t = &tss[self];
    uint64_t base = (uint64_t)(uintptr_t)t, limit = sizeof *t - 1;
    t->ist[EXCEPTION_IST - 1] = (uint64_t)(uintptr_t)(exception_stacks[self] + EXCEPTION_STACK_SIZE);
    t->io_map_base = sizeof *t; /* no I/O permission bitmap */
    uint32_t index = GDT_BOOT_ENTRIES + 2 * self;
    gdt[index] = (limit & 0xffff) | (base & 0xffffff) << 16 | (uint64_t)GDT_TSS_AVAILABLE_64 << 40 |
                 ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
    gdt[index + 1] = base >> 32;
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) gdtr = {sizeof gdt - 1, (uint64_t)(uintptr_t)gdt};
    __asm__ volatile("lgdt %0" : : "m"(gdtr) : "memory");
    __asm__ volatile("ltr %w0" : : "r"((uint16_t)(index * 8)) : "memory");
}

enum { POLLING_STRETCH_TICKS = 2 * TICKS_PER_MS }; /* 0 to 2 ms, about a sender's turn-around */

/* do_idle() up to default_idle_call()'s current_clr_polling_and_test(): returns 1 if the CPU was
 * told to stop idling through the flag, 0 if it is to run `sti; hlt`. Interrupts off. */
static int polling_idle(struct cpu *c)
{
    flag_set(&c->flags, TIF_POLLING_NRFLAG);
    c->idle = POLLING;
    c->seed = c->seed * 1103515245u + 12345u;
    uint32_t stretch = (c->seed >> 8) % POLLING_STRETCH_TICKS, start = clock_ticks();
    while (clock_ticks() - start < stretch) {
    }
    flag_clear(&c->flags, TIF_POLLING_NRFLAG);
    full_barrier();
    if (!flag_test(&c->flags, TIF_NEED_RESCHED)) return 0;
    flag_clear(&c->flags, TIF_NEED_RESCHED);
    c->idle = RUNNING;
    return 1;
}

/* Acknowledges posted work (and runs a job that came with it); interrupts off. */
static int handle_requests(uint32_t self)
{
    struct cpu *c = &cpus[self];
    uint32_t requests = c->requests;
    if (c->done == requests) return 0;
    void (*job)(uint32_t) = c->job;
    c->job = 0;
    c->done = requests;
    if (job) job(self);
    return 1;
}

/* One pass of default_idle(): called and returns with interrupts off. `sti` holds interrupts off
 * for one more instruction, so an IPI that arrives after the check still ends the `hlt`. */
static void idle_once(uint32_t self)
{
    if (pv_eoi_mode != cpus[self].pv_eoi_on) pv_eoi_switch(&cpus[self], pv_eoi_mode);
    if (handle_requests(self)) return;
    if (polling_mode && polling_idle(&cpus[self])) return;
    if (window_mode) {
        struct cpu *c = &cpus[self];
        uint32_t release = c->release, start = clock_ticks();
        c->idle = WINDOW;
        while (window_mode && c->release == release && clock_ticks() - start < WINDOW_MS * TICKS_PER_MS) {
        }
        c->window_exits++;
        if (apic_irr_pending(IPI_VECTOR)) {
            c->irr_pending++;
            c->hlt_at = clock_ticks() | 1;
        }
    }
    cpus[self].idle = HALTED;
    safe_halt();
    cpus[self].idle = RUNNING;
}

/* ---- rounds ---- */

static uint32_t bit(uint32_t cpu)
{
    return 1u << cpu;
}

static int logical_possible(void)
{
    return IPI_X2APIC || cpu_count <= XAPIC_FLAT_MAX_CPUS;
}

/* Returns the targets that were told through TIF_NEED_RESCHED alone, without an IPI. */
static uint32_t send_ipis(uint32_t self, uint32_t targets, const struct phase *phase)
{
    enum style style = phase->style;
    uint32_t command = IPI_VECTOR; /* fixed delivery, edge */
    if (phase->polling) { /* as send_call_function_single_ipi() does, physical */
        uint32_t flagged = 0;
        for (uint32_t t = 0; t < cpu_count; ++t) {
            if (!(targets & bit(t))) continue;
            full_barrier();
            if (set_nr_if_polling(&cpus[t].flags)) flagged |= bit(t);
            else apic_send(t, command);
        }
        return flagged;
    }
    if (style == ALL_BUT_SELF) {
        apic_send(0, ICR_ALL_EXCLUDING_SELF | command);
        return 0;
    }
    uint32_t logical = 0;
    for (uint32_t t = 0; t < cpu_count; ++t) {
        if (!(targets & bit(t)) || t == self) continue;
        if (style == PHYSICAL) apic_send(t, command);
        else logical |= cpus[t].logical_id; /* one cluster: IPI_MAX_CPUS <= 16 */
    }
    if (style == LOGICAL) apic_send(logical, ICR_LOGICAL | command);
    return 0;
}

static void put_cpu_pair(uint32_t self, uint32_t target, const struct phase *phase)
{
    out_puts("cpu ");
    out_dec(self);
    out_puts(" -> cpu ");
    out_dec(target);
    out_puts(" (");
    out_puts(phase->name);
    out_puts(")");
}

static int acknowledged(uint32_t target, uint32_t want)
{
    return (int32_t)(cpus[target].done - want) >= 0;
}

static uint32_t wait_for_ack(uint32_t target, uint32_t want, uint32_t start, uint32_t ms)
{
    uint32_t now;
    do {
        now = clock_ticks();
        if (acknowledged(target, want)) return 1;
    } while (now - start < ms * TICKS_PER_MS);
    return 0;
}

/* The target did not acknowledge in LOST_MS: lost, then resent once as a diagnostic. */
static void report_lost(uint32_t self, uint32_t target, uint32_t want, uint32_t irqs_before,
                        uint32_t flagged, const struct phase *phase, struct stats *st)
{
    st->lost++;
    __atomic_fetch_add(&lost_ipis, 1, __ATOMIC_RELAXED);
    out_puts("ipi: lost: ");
    put_cpu_pair(self, target, phase);
    out_puts(flagged ? ", told through TIF_NEED_RESCHED without an ipi" : "");
    out_puts(": nothing after ");
    out_dec(LOST_MS);
    out_puts(" ms; target ");
    static const char *const states[] = {"running", "before hlt", "polling", "in hlt"};
    out_puts(states[cpus[target].idle]);
    out_puts(", its handler ran ");
    out_dec(cpus[target].irqs - irqs_before);
    out_puts(" times since\r\n");

    uint32_t resent = clock_ticks();
    apic_send(target, IPI_VECTOR);
    out_puts("ipi: resent physical: ");
    if (wait_for_ack(target, want, resent, RESEND_MS)) {
        st->resent_ok++;
        out_puts("acknowledged after ");
        out_dec(ticks_to_us(clock_ticks() - resent));
        out_puts(" us\r\n");
    } else {
        cpus[target].dead = 1;
        out_puts("lost too; no more rounds to cpu ");
        out_dec(target);
        out_puts("\r\n");
    }
}

static void record(struct stats *st, uint32_t ticks)
{
    st->acked++;
    st->sum_ticks += ticks;
    if (ticks > st->max_ticks) st->max_ticks = ticks;
    if (ticks > LATE_MS * TICKS_PER_MS) st->late++;
}

/* Waits (boundedly: a target may have found earlier work) until every target is in the window. */
static void wait_for_window(uint32_t targets)
{
    uint32_t start = clock_ticks(), limit = WINDOW_MS * TICKS_PER_MS;
    for (uint32_t t = 0; t < cpu_count; ++t) {
        while ((targets & bit(t)) && cpus[t].idle != WINDOW && clock_ticks() - start < limit) {
        }
    }
}

/* Posts work to every CPU in `targets`, sends the IPIs, waits for every acknowledgement. */
static void run_round(uint32_t self, uint32_t targets, const struct phase *phase, struct stats *st)
{
    uint32_t want[IPI_MAX_CPUS], irqs[IPI_MAX_CPUS];
    st->rounds++;
    if (phase->window) wait_for_window(targets);
    for (uint32_t t = 0; t < cpu_count; ++t) {
        if (!(targets & bit(t))) continue;
        struct cpu *c = &cpus[t];
        want[t] = c->requests + 1;
        irqs[t] = c->irqs;
        st->to_halted += c->idle == HALTED;
        st->to_window += c->idle == WINDOW;
        st->to_polling += c->idle == POLLING;
        st->sent++;
        c->requests = want[t];
    }
    uint32_t start = clock_ticks();
    uint32_t flagged = send_ipis(self, targets, phase);
    for (uint32_t t = 0; t < cpu_count; ++t) st->no_ipi += (flagged >> t) & 1;
    for (uint32_t t = 0; t < cpu_count && phase->window; ++t) {
        if (targets & bit(t)) cpus[t].release++;
    }
    uint32_t pending = targets, now;
    do {
        now = clock_ticks();
        for (uint32_t t = 0; t < cpu_count; ++t) {
            if ((pending & bit(t)) && acknowledged(t, want[t])) {
                pending &= ~bit(t);
                record(st, now - start);
            }
        }
    } while (pending && now - start < LOST_MS * TICKS_PER_MS);
    for (uint32_t t = 0; t < cpu_count; ++t) {
        if (pending & bit(t)) report_lost(self, t, want[t], irqs[t], (flagged >> t) & 1, phase, st);
    }
}

static uint32_t live_others(uint32_t self)
{
    uint32_t mask = 0;
    for (uint32_t t = 0; t < cpu_count; ++t) {
        if (t != self && !cpus[t].dead) mask |= bit(t);
    }
    return mask;
}

static void add_stats(struct stats *to, const struct stats *from)
{
    to->rounds += from->rounds;
    to->sent += from->sent;
    to->acked += from->acked;
    to->late += from->late;
    to->lost += from->lost;
    to->resent_ok += from->resent_ok;
    to->to_halted += from->to_halted;
    to->to_window += from->to_window;
    to->to_polling += from->to_polling;
    to->no_ipi += from->no_ipi;
    to->sum_ticks += from->sum_ticks;
    if (from->max_ticks > to->max_ticks) to->max_ticks = from->max_ticks;
}

static void put_stats(const struct stats *st)
{
    out_dec(st->rounds);
    out_puts(" rounds, ");
    out_dec(st->sent);
    out_puts(" ipis: ");
    out_dec(st->to_halted);
    out_puts(" to cpus in hlt, ");
    out_dec(st->to_window);
    out_puts(" before it");
    if (st->to_polling || st->no_ipi) {
        out_puts(", ");
        out_dec(st->to_polling);
        out_puts(" polling, ");
        out_dec(st->no_ipi);
        out_puts(" told by the flag alone");
    }
    out_puts("; ");
    out_dec(st->lost);
    out_puts(" lost, ");
    out_dec(st->late);
    out_puts(" late; avg ");
    out_dec(st->acked ? ticks_to_us(st->sum_ticks / st->acked) : 0);
    out_puts(" us, max ");
    out_dec(ticks_to_us(st->max_ticks));
    out_puts(" us");
}

static void run_phase(uint32_t self, uint32_t p, struct stats *sent)
{
    const struct phase *phase = &phases[p];
    uint32_t shares = 0;
    for (uint32_t q = 0; q < PHASES; ++q) shares += phases[q].shares;
    uint32_t budget_ms = TOTAL_BUDGET_MS * phase->shares / (cpu_count * shares);
    if (budget_ms < MIN_PHASE_MS) budget_ms = MIN_PHASE_MS;
    struct stats st = {0};
    window_mode = phase->window;
    polling_mode = phase->polling;
    pv_eoi_mode = phase->pv_eoi;
    uint32_t start = clock_ticks(), next = self;
    for (uint32_t r = 0; r < ROUNDS_PER_PHASE && lost_ipis < MAX_LOST; ++r) {
        if (r >= MIN_ROUNDS && clock_ticks() - start >= budget_ms * TICKS_PER_MS) break;
        uint32_t others = live_others(self);
        if (others == 0) break;
        if (phase->style == ALL_BUT_SELF && others != (bit(cpu_count) - 1) - bit(self)) break;
        uint32_t targets = others;
        if (!phase->all_others) {
            if (phase->stick == 0 || r % phase->stick == 0 || !(others & bit(next))) {
                do next = (next + 1) % cpu_count;
                while (!(others & bit(next)));
            }
            targets = bit(next);
        }
        run_round(self, targets, phase, &st);
    }
    window_mode = 0;
    polling_mode = 0;
    pv_eoi_mode = 0;
    add_stats(&phase_stats[p], &st);
    add_stats(sent, &st);
}

/* One sender's turn: every phase, then one line about it. */
static void run_phases(uint32_t self)
{
    struct stats sent = {0};
    for (uint32_t p = 0; p < PHASES; ++p) {
        phase_skipped[p] = phases[p].style == LOGICAL && !logical_possible()
                               ? "xAPIC flat logical mode has 8 cpus at most"
                               : phases[p].pv_eoi && !pv_eoi_available ? "no KVM_FEATURE_PV_EOI in CPUID"
                                                                        : 0;
        if (!phase_skipped[p]) run_phase(self, p, &sent);
    }
    out_puts("ipi: cpu ");
    out_dec(self);
    out_puts(" sent ");
    out_dec(sent.sent);
    out_puts(" ipis in ");
    out_dec(sent.rounds);
    out_puts(" rounds: ");
    out_dec(sent.acked);
    out_puts(" acknowledged, ");
    out_dec(sent.lost);
    out_puts(" lost\r\n");
}

/* ---- locked read-modify-writes from every CPU at once ---- */

/* Where the host emulates guest code, a locked instruction is atomic only if the emulator makes it
 * so; a lost update of a thread_info word is a lost wake-up. Every CPU toggles its own bits of one
 * shared 64-bit word, bit `id` with locked byte or/and and bit 32 + id with cmpxchg loops, checking
 * each time that its bit took, and adds to a shared counter. */
enum { ATOMIC_ROUNDS = 3000, ATOMIC_START_MS = 1000, ATOMIC_WAIT_MS = 20000 };
static volatile uint64_t shared_word;
static volatile uint32_t shared_counter, atomics_started, atomics_finished, atomics_lost;

static void hammer_atomics(uint32_t self)
{
    uint32_t start = clock_ticks(), lost = 0;
    while (!atomics_started && clock_ticks() - start < ATOMIC_START_MS * TICKS_PER_MS) {
    }
    for (uint32_t i = 0; i < ATOMIC_ROUNDS; ++i) {
        flag_set(&shared_word, self);
        lost += !flag_test(&shared_word, self);
        flag_clear(&shared_word, self);
        lost += flag_test(&shared_word, self);
        flag_set_cmpxchg(&shared_word, 32 + self);
        lost += !flag_test(&shared_word, 32 + self);
        flag_clear_cmpxchg(&shared_word, 32 + self);
        lost += flag_test(&shared_word, 32 + self);
        __atomic_fetch_add(&shared_counter, 1, __ATOMIC_RELAXED);
    }
    __atomic_fetch_add(&atomics_lost, lost, __ATOMIC_RELAXED);
    __atomic_fetch_add(&atomics_finished, 1, __ATOMIC_RELEASE);
}

/* Runs hammer_atomics on every CPU at once (the APs get it as a job) and reports. */
static void check_atomics(void)
{
    static const struct phase start_all = {.name = "start atomics", .style = ALL_BUT_SELF, .all_others = 1};
    for (uint32_t t = 1; t < cpu_count; ++t) cpus[t].job = hammer_atomics;
    if (cpu_count > 1) run_round(0, live_others(0), &start_all, &control[0]);
    uint32_t start = clock_ticks();
    atomics_started = 1;
    hammer_atomics(0);
    while (atomics_finished < cpu_count && clock_ticks() - start < ATOMIC_WAIT_MS * TICKS_PER_MS) {
    }
    out_puts("ipi: atomics: ");
    out_dec(atomics_finished);
    out_puts(" cpus x ");
    out_dec(ATOMIC_ROUNDS);
    out_puts(" lock or/and and cmpxchg pairs on one word, ");
    out_dec((clock_ticks() - start) / TICKS_PER_MS);
    out_puts(" ms: ");
    out_dec(atomics_lost);
    out_puts(" lost updates, word ");
    out_hex(shared_word);
    out_puts(", lock add ");
    out_dec(shared_counter);
    out_puts(" of ");
    out_dec(atomics_finished * ATOMIC_ROUNDS);
    out_puts("\r\n");
}

/* ---- the verdict ---- */

/* What the targets saw of the IPIs that were pending when they ran `sti; hlt`. */
static void put_window_exits(void)
{
    uint32_t exits = 0, pending = 0, wakes = 0, over_1ms = 0, max_ticks = 0;
    uint64_t sum_ticks = 0;
    for (uint32_t t = 0; t < cpu_count; ++t) {
        const struct cpu *c = &cpus[t];
        exits += c->window_exits;
        pending += c->irr_pending;
        wakes += c->hlt_wakes;
        over_1ms += c->hlt_over_1ms;
        sum_ticks += c->hlt_sum_ticks;
        if (c->hlt_max_ticks > max_ticks) max_ticks = c->hlt_max_ticks;
    }
    out_puts("ipi: window: left ");
    out_dec(exits);
    out_puts(" times, ");
    out_dec(pending);
    out_puts(" with the ipi in the IRR; sti; hlt then ran the handler ");
    out_dec(wakes);
    out_puts(" times, avg ");
    out_dec(wakes ? ticks_to_us(sum_ticks / wakes) : 0);
    out_puts(" us, max ");
    out_dec(ticks_to_us(max_ticks));
    out_puts(" us, ");
    out_dec(over_1ms);
    out_puts(" over 1 ms\r\n");
}

__attribute__((noreturn)) static void report_and_reset(void)
{
    struct stats totals = {0}, turns = {0};
    for (uint32_t p = 0; p < PHASES; ++p) {
        out_puts("ipi: phase ");
        out_puts(phases[p].name);
        out_puts(": ");
        if (phase_skipped[p]) {
            out_puts("skipped, ");
            out_puts(phase_skipped[p]);
        } else {
            put_stats(&phase_stats[p]);
        }
        out_puts("\r\n");
        add_stats(&totals, &phase_stats[p]);
    }
    for (uint32_t s = 0; s < IPI_MAX_CPUS; ++s) add_stats(&turns, &control[s]);
    out_puts("ipi: control (atomics start, hand-overs, bsp wake-ups): ");
    put_stats(&turns);
    out_puts("\r\n");
    add_stats(&totals, &turns);
    out_puts("ipi: all (late: acknowledged after ");
    out_dec(LATE_MS);
    out_puts(" ms): ");
    put_stats(&totals);
    out_puts("\r\n");
    if (totals.lost) {
        out_puts("ipi: resent and then acknowledged ");
        out_dec(totals.resent_ok);
        out_puts(" of the lost\r\n");
    }
    put_window_exits();
    uint32_t pv_eois = 0;
    for (uint32_t t = 0; t < cpu_count; ++t) pv_eois += cpus[t].pv_eois;
    out_puts("ipi: pv eoi ");
    out_puts(pv_eoi_available ? "offered; " : "not offered; ");
    out_dec(pv_eois);
    out_puts(" interrupts acknowledged through it\r\n");
    out_puts("ipi: interrupts taken in sti's shadow, at the hlt (a host fault, stepped over): ");
    out_dec(shadow_breaks);
    out_puts("\r\n");
    if (unexpected_interrupts) {
        out_puts("ipi: unexpected interrupts ");
        out_dec(unexpected_interrupts);
        out_puts("\r\n");
    }
    int atomics_ok = atomics_lost == 0 && shared_word == 0 && shared_counter == cpu_count * ATOMIC_ROUNDS;
    if (!atomics_ok) out_puts("ipi: FAIL atomics lost updates\r\n");
    if (totals.lost) {
        out_puts("ipi: LOST ");
        out_dec(totals.lost);
        out_puts("\r\n");
    } else if (atomics_ok && !failed) {
        out_puts("ipi: ok\r\n");
    }
    guest_reset();
}

/* Runs on the BSP, posted with the wake-up at the end of an AP's turn. */
static void end_of_duty(uint32_t self)
{
    (void)self;
    duty_over = 1;
}

/* An AP's turn as the sender, posted by the BSP, which idles meanwhile (a target like the others)
 * until this wakes it with end_of_duty. */
static void sender_duty(uint32_t self)
{
    static const struct phase wake_bsp = {.name = "wake the bsp", .style = PHYSICAL};
    run_phases(self);
    cpus[0].job = end_of_duty;
    run_round(self, bit(0), &wake_bsp, &control[self]);
    if (cpus[0].dead) report_and_reset();
    turn_over = 1;
}

void ap_main(uint32_t self)
{
    set_cpu_pointer(self);
    set_up_exception_stack(self);
    apic_mode_enter();
    clock_start();
    idt_load();
    logical_setup(self);
    cpus[self].online = 1;
    __atomic_fetch_add(&online_aps, 1, __ATOMIC_RELEASE);
    for (;;) idle_once(self);
}

/* ---- the BSP ---- */

static void set_up_bsp(void)
{
    uint32_t regs[4];
    cpuid(1, 0, regs);
    if (IPI_X2APIC && !(regs[2] & CPUID_1_ECX_X2APIC)) {
        out_puts("ipi: FAIL no x2APIC in CPUID\r\n");
        guest_reset();
    }
    apic_mode_enter();
    cpuid(CPUID_KVM_SIGNATURE, 0, regs);
    int kvm = regs[1] == 0x4b4d564b && regs[2] == 0x564b4d56 && regs[3] == 0x4d; /* "KVMKVMKVM" */
    if (kvm && regs[0] >= CPUID_KVM_FEATURES) {
        cpuid(CPUID_KVM_FEATURES, 0, regs);
        pv_eoi_available = (regs[0] & KVM_FEATURE_PV_EOI) != 0;
    }
    clock_start();
    if (apic_read(LAPIC_TIMER_CURRENT) == 0) {
        out_puts("ipi: FAIL the LAPIC timer does not count\r\n");
        guest_reset();
    }
    set_cpu_pointer(0);
    set_up_exception_stack(0);
    idt_catch_exceptions(exception, EXCEPTION_IST);
    for (uint32_t v = 0x20; v < 0x100; ++v) idt_set_gate((uint8_t)v, unexpected_entry);
    idt_set_gate(IPI_VECTOR, ipi_entry);
    idt_load();
    logical_setup(0);
    cpus[0].online = 1;
}

/* INIT-SIPI-SIPI to all but self, then waits for every AP CPUID leaf 1 counts (EBX[23:16]). */
static void start_aps(void)
{
    uint32_t regs[4];
    cpuid(1, 0, regs);
    uint32_t expected = (regs[1] >> 16) & 0xff;
    if (expected == 0) expected = 1;
    if (expected > IPI_MAX_CPUS) expected = IPI_MAX_CPUS;

    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    if (cr3 >> 32) {
        out_puts("ipi: FAIL page tables above 4 GiB, out of the APs' reach\r\n");
        guest_reset();
    }
    ipi_ap_cr3 = (uint32_t)cr3;
    uint32_t sipi = ICR_DELIVERY_STARTUP | (uint32_t)((uintptr_t)ipi_trampoline >> 12);
    uint32_t start = clock_ticks();
    if (expected > 1) {
        apic_send(0, ICR_ALL_EXCLUDING_SELF | ICR_LEVEL_ASSERT | ICR_DELIVERY_INIT);
        delay_ms(INIT_TO_SIPI_MS);
        apic_send(0, ICR_ALL_EXCLUDING_SELF | ICR_LEVEL_ASSERT | sipi);
        delay_ms(SIPI_TO_SIPI_MS);
        apic_send(0, ICR_ALL_EXCLUDING_SELF | ICR_LEVEL_ASSERT | sipi);
    }
    while (online_aps < expected - 1 && clock_ticks() - start < BRING_UP_MS * TICKS_PER_MS) {
    }
    cpu_count = expected;
    out_puts("ipi: ");
    out_dec(1 + online_aps);
    out_puts(" of ");
    out_dec(expected);
    out_puts(IPI_X2APIC ? " cpus up, x2apic, bring-up " : " cpus up, xapic, bring-up ");
    out_dec(ticks_to_us(clock_ticks() - start));
    out_puts(" us\r\n");
    if (1 + online_aps != expected) {
        out_puts("ipi: FAIL not every cpu came up\r\n");
        guest_reset();
    }
}

void guest_main(void)
{
    set_up_bsp();
    start_aps();
    check_atomics();
    run_phases(0);
    for (uint32_t s = 1; s < cpu_count; ++s) {
        static const struct phase hand_over = {.name = "hand over", .style = PHYSICAL};
        if (cpus[s].dead) continue;
        duty_over = turn_over = 0;
        cpus[s].job = sender_duty;
        run_round(0, bit(s), &hand_over, &control[0]);
        if (cpus[s].dead) continue;
        while (!duty_over) idle_once(0);
        /* The AP counts its wake-up of this CPU after it: the next sender starts only then. */
        uint32_t start = clock_ticks();
        while (!turn_over && clock_ticks() - start < LOST_MS * TICKS_PER_MS) {
        }
        if (!turn_over) {
            out_puts("ipi: FAIL cpu ");
            out_dec(s);
            out_puts(" did not end its turn\r\n");
            failed = 1;
            break;
        }
    }
    report_and_reset();
}
