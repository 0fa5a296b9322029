/* Linux's thread_info flags as its scheduler and idle loop use them to wake an idle CPU without
 * an IPI (kernel/sched/core.c set_nr_if_polling(), kernel/sched/idle.c), with Linux's operand
 * widths on x86-64: set_bit()/clear_bit() of a constant bit are a locked byte or/and, the waker's
 * update a locked cmpxchg of the whole 64-bit word. Where the host emulates guest code, these are
 * atomic only if the emulator makes them so; a lost update here is a lost wake-up. */
#ifndef KVMLET_TESTS_GUESTS_IPI_FLAGS_H
#define KVMLET_TESTS_GUESTS_IPI_FLAGS_H

#include <stdint.h>

enum {
    TIF_NEED_RESCHED = 3,    /* arch/x86/include/asm/thread_info.h */
    TIF_POLLING_NRFLAG = 21,
};

static inline void flag_set(volatile uint64_t *flags, unsigned nr)
{
    __asm__ volatile("lock orb %1, %0"
                     : "+m"(((volatile uint8_t *)flags)[nr / 8])
                     : "iq"((uint8_t)(1u << (nr % 8)))
                     : "memory", "cc");
}

static inline void flag_clear(volatile uint64_t *flags, unsigned nr)
{
    __asm__ volatile("lock andb %1, %0"
                     : "+m"(((volatile uint8_t *)flags)[nr / 8])
                     : "iq"((uint8_t) ~(1u << (nr % 8)))
                     : "memory", "cc");
}

static inline int flag_test(const volatile uint64_t *flags, unsigned nr)
{
    return (int)((*flags >> nr) & 1);
}

/* The same two with cmpxchg loops over the whole word, as atomic fetch_or()/fetch_and() do. */
static inline void flag_set_cmpxchg(volatile uint64_t *flags, unsigned nr)
{
    uint64_t value = *flags;
    while (!__atomic_compare_exchange_n(flags, &value, value | 1ull << nr, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED)) {
    }
}

static inline void flag_clear_cmpxchg(volatile uint64_t *flags, unsigned nr)
{
    uint64_t value = *flags;
    while (!__atomic_compare_exchange_n(flags, &value, value & ~(1ull << nr), 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED)) {
    }
}

/* 1 if the target polls: then it has TIF_NEED_RESCHED and needs no IPI. */
static inline int set_nr_if_polling(volatile uint64_t *flags)
{
    uint64_t value = *flags;
    for (;;) {
        if (!((value >> TIF_POLLING_NRFLAG) & 1)) return 0;
        if ((value >> TIF_NEED_RESCHED) & 1) return 1;
        if (__atomic_compare_exchange_n(flags, &value, value | 1ull << TIF_NEED_RESCHED, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED))
            return 1;
    }
}

#endif
