/*
 * ring.c — rte_ring without the EAL, on memory from the process allocator.
 */
#include "ring.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int engine_ring_create(struct engine_ring *ring, const char *name, uint32_t capacity,
		       uint32_t element_size)
{
	assert(ring != NULL);
	assert(name != NULL);
	memset(ring, 0, sizeof(*ring));
	if (element_size == 0 || element_size % 4 != 0 || capacity < 2 ||
	    (capacity & (capacity - 1)) != 0)
		return -EINVAL;
	/* `capacity` slots (a power of two, as the config requires), of which the
	 * ring uses capacity - 1. RING_F_EXACT_SZ would round capacity + 1 up to
	 * the next power of two: twice the memory for one more element (DPDK's
	 * rte_ring documentation says as much). */
	ssize_t size = rte_ring_get_memsize_elem(element_size, capacity);
	if (size < 0)
		return (int)size;
	size_t rounded = ((size_t)size + 63) & ~(size_t)63;
	struct rte_ring *memory = aligned_alloc(64, rounded);
	if (memory == NULL)
		return -ENOMEM;
	memset(memory, 0, rounded);
	/* SP/SC: each ring has one producer and one consumer thread. */
	int result = rte_ring_init(memory, name, capacity, RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (result != 0) {
		free(memory);
		return result;
	}
	assert(rte_ring_get_capacity(memory) == capacity - 1);
	assert(rte_ring_count(memory) == 0);
	assert(rte_ring_get_size(memory) == capacity);
	ring->ring = memory;
	ring->element_size = element_size;
	return 0;
}

void engine_ring_destroy(struct engine_ring *ring)
{
	free(ring->ring);
	ring->ring = NULL;
}
