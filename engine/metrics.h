/*
 * metrics.h — Prometheus text exposition over HTTP (libmicrohttpd), and the
 * small counter/histogram types the worker threads update.
 *
 * Thread-safety: a counter or histogram has exactly one writer thread (the
 * worker that owns it) and any number of readers (the HTTP thread). Writers use
 * relaxed loads and stores (no locked instruction: there is one writer); readers relaxed loads: a scrape may see a histogram's
 * count one observation ahead of its buckets, which Prometheus tolerates.
 */
#ifndef PAYSWITCH_ENGINE_METRICS_H
#define PAYSWITCH_ENGINE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_HISTOGRAM_BUCKETS 32

/* Log2-bucketed histogram: bucket i counts values v with 2^(i-1) < v <= 2^i
 * (bucket 0 counts v <= 1); the last bucket is open-ended. */
struct metrics_histogram {
	uint64_t buckets[METRICS_HISTOGRAM_BUCKETS];
	uint64_t count;
	uint64_t sum;
};

/* One writer: a relaxed load and store, not a locked add. The store is
 * atomic, so a reader never sees a torn value. */
static inline void metrics_add(uint64_t *counter, uint64_t value)
{
	__atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + value,
			 __ATOMIC_RELAXED);
}

static inline uint64_t metrics_read(const uint64_t *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

void metrics_histogram_observe(struct metrics_histogram *histogram, uint64_t value);

/* A growing text buffer for one scrape. */
struct metrics_text {
	char *data;
	size_t length;
	size_t capacity;
	int failed;     /* set when an allocation failed: the scrape answers 500 */
};

void metrics_text_printf(struct metrics_text *text, const char *format, ...)
	__attribute__((format(printf, 2, 3)));
/* # HELP and # TYPE lines. */
void metrics_text_header(struct metrics_text *text, const char *name, const char *type,
			 const char *help);
/* name_bucket{labels,le="..."} lines, _sum and _count; `labels` may be "". */
void metrics_text_histogram(struct metrics_text *text, const char *name, const char *labels,
			    const struct metrics_histogram *histogram);

/* Renders the whole exposition into `text`. */
typedef void (*metrics_render_fn)(void *context, struct metrics_text *text);

struct metrics_server;

/* Starts an HTTP server answering GET /metrics (and / with a pointer to it) on
 * host:port from its own thread. Returns NULL with *error = -errno. */
struct metrics_server *metrics_server_start(const char *host, uint16_t port,
					    metrics_render_fn render, void *context, int *error);
void metrics_server_stop(struct metrics_server *server);

#endif
