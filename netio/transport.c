/*
 * transport.c — what every transport backend shares.
 */
#include <assert.h>
#include <stddef.h>

#include "transport.h"

void netio_transport_stats_read(const struct netio_transport *transport,
				struct netio_transport_stats *stats)
{
	assert(transport != NULL && stats != NULL);
	const uint64_t *from = (const uint64_t *)&transport->stats;
	uint64_t *to = (uint64_t *)stats;
	_Static_assert(sizeof(*stats) % sizeof(uint64_t) == 0, "stats are u64 only");
	for (size_t i = 0; i < sizeof(*stats) / sizeof(uint64_t); i++)
		to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
}
