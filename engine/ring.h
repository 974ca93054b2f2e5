/*
 * ring.h — bounded single-producer single-consumer rings between threads.
 *
 * DPDK's rte_ring is used without the EAL: rte_ring_init() on memory we
 * allocate, with fixed-size elements (rte_ring_*_elem). Choosing it over a
 * hand-written ring or Concurrency Kit's ck_ring: it is the ring the DPDK
 * transport's examples use, it is in Debian with DPDK, it has burst APIs with
 * 'free space' / 'available' outputs for backpressure, and its memory-ordering
 * is maintained upstream (C11 model on x86 with rte_smp_* barriers).
 *
 * Thread-safety: exactly one producer thread and one consumer thread per ring.
 */
#ifndef PAYSWITCH_ENGINE_RING_H
#define PAYSWITCH_ENGINE_RING_H

#include <stdint.h>

#include <rte_ring.h>

struct engine_ring {
	struct rte_ring *ring;
	uint32_t element_size;   /* bytes, multiple of 4 */
};

/* Creates a ring of `capacity` slots (a power of two >= 2) holding up to
 * capacity - 1 elements of `element_size` bytes. Returns 0 or -errno. */
int engine_ring_create(struct engine_ring *ring, const char *name, uint32_t capacity,
		       uint32_t element_size);
void engine_ring_destroy(struct engine_ring *ring);

/* Enqueues up to n elements; returns how many were enqueued (the rest did not fit). */
static inline uint32_t engine_ring_enqueue(struct engine_ring *ring, const void *elements,
					   uint32_t n)
{
	return rte_ring_sp_enqueue_burst_elem(ring->ring, elements, ring->element_size, n, NULL);
}

/* Dequeues up to n elements; returns how many. */
static inline uint32_t engine_ring_dequeue(struct engine_ring *ring, void *elements, uint32_t n)
{
	return rte_ring_sc_dequeue_burst_elem(ring->ring, elements, ring->element_size, n, NULL);
}

static inline uint32_t engine_ring_count(const struct engine_ring *ring)
{
	return rte_ring_count(ring->ring);
}

static inline uint32_t engine_ring_free(const struct engine_ring *ring)
{
	return rte_ring_free_count(ring->ring);
}

static inline uint32_t engine_ring_capacity(const struct engine_ring *ring)
{
	return rte_ring_get_capacity(ring->ring);
}

#endif
