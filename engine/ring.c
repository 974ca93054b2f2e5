/*
 * ring.c — rte_ring without the EAL, on memory from the process allocator.
 */
#include "ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int engine_ring_create(struct engine_ring *ring, const char *name, uint32_t capacity,
		       uint32_t element_size)
{
	memset(ring, 0, sizeof(*ring));
	if (element_size == 0 || element_size % 4 != 0 || capacity == 0)
		return -EINVAL;
	/* With RING_F_EXACT_SZ the ring's slots are the next power of two above
	 * capacity, as rte_ring_create_elem() computes them. */
	ssize_t size = rte_ring_get_memsize_elem(element_size, rte_align32pow2(capacity + 1));
	if (size < 0)
		return (int)size;
	size_t rounded = ((size_t)size + 63) & ~(size_t)63;
	struct rte_ring *memory = aligned_alloc(64, rounded);
	if (memory == NULL)
		return -ENOMEM;
	memset(memory, 0, rounded);
	/* SP/SC: each ring has one producer and one consumer thread. EXACT_SZ: the
	 * capacity is what the operator configured, not the next power of two. */
	int result = rte_ring_init(memory, name, capacity,
				   RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	if (result != 0) {
		free(memory);
		return result;
	}
	ring->ring = memory;
	ring->element_size = element_size;
	return 0;
}

void engine_ring_destroy(struct engine_ring *ring)
{
	free(ring->ring);
	ring->ring = NULL;
}
