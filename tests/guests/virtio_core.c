/* The transport-neutral half of the tiny guests' virtio drivers (see virtio_core.h). */
#include "virtio_core.h"

#include "lapic.h"

/* volatile, so the compiler cannot turn the loop into a call to memset (there is no libc). */
static void zero(volatile void *start, uint32_t len)
{
    volatile uint8_t *p = start;
    for (uint32_t i = 0; i < len; ++i) p[i] = 0;
}

void virtq_init(struct virtq *q, uint32_t max_size, int interrupts)
{
    uint16_t size = VIRTQ_SIZE;
    while (size > max_size) size /= 2;
    zero(q->desc, sizeof q->desc);
    zero(&q->avail, sizeof q->avail);
    zero(&q->used, sizeof q->used);
    q->avail.flags = interrupts ? 0 : VIRTQ_AVAIL_F_NO_INTERRUPT;
    q->size = size;
    q->last_used = 0;
}

const char *virtq_add_chain(struct virtq *q, const struct virtq_buf *bufs, int count)
{
    if (count < 1 || count > q->size) return "the chain does not fit in the queue";
    for (int i = 0; i < count; ++i) {
        int last = i + 1 == count;
        uint16_t flags = bufs[i].writable ? VIRTQ_DESC_F_WRITE : 0;
        if (!last) flags |= VIRTQ_DESC_F_NEXT;
        q->desc[i].addr = (uintptr_t)bufs[i].addr;
        q->desc[i].len = bufs[i].len;
        q->desc[i].flags = flags;
        q->desc[i].next = (uint16_t)(last ? 0 : i + 1);
    }
    return 0;
}

void virtq_make_available(struct virtq *q, uint16_t head)
{
    volatile struct virtq_avail *avail = &q->avail;
    compiler_barrier(); /* the caller's descriptors before the ring entry */
    uint16_t idx = avail->idx;
    avail->ring[idx % q->size] = head;
    avail->idx = (uint16_t)(idx + 1); /* volatile: stays after the ring entry */
    compiler_barrier(); /* avail.idx before the caller's notification */
}

int virtq_has_used(const struct virtq *q)
{
    return ((const volatile struct virtq_used *)&q->used)->idx != q->last_used;
}

int virtq_poll_used(const struct virtq *q, uint32_t limit_ms)
{
    lapic_timer_start();
    while (!virtq_has_used(q)) {
        if (lapic_timer_elapsed_ms() >= limit_ms) return 0;
    }
    return 1;
}

const char *virtq_pop_used(struct virtq *q, uint16_t head, uint32_t *len)
{
    compiler_barrier(); /* used.idx (read by virtq_has_used) before the entry */
    volatile struct virtq_used_elem *elem = &q->used.ring[q->last_used % q->size];
    uint32_t id = elem->id;
    *len = elem->len;
    compiler_barrier(); /* the entry before the caller reads its buffers */
    q->last_used++;
    return id == head ? 0 : "the device returned a chain that was not submitted";
}
