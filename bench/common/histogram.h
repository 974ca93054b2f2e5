/*
 * histogram.h — log-linear latency histogram shared by the load generators.
 *
 * Values are nanoseconds. Bucket layout: values below 2^SUB_BITS are exact;
 * above, each power of two is split into 2^SUB_BITS linear sub-buckets, so a
 * reported percentile is within 1/2^SUB_BITS (3.1%) of the true value. Fixed
 * size (no allocation), mergeable, one writer per histogram.
 */
#ifndef PAYSWITCH_BENCH_HISTOGRAM_H
#define PAYSWITCH_BENCH_HISTOGRAM_H

#include <stdint.h>
#include <stdio.h>

#define HISTOGRAM_SUB_BITS 5u
#define HISTOGRAM_SUB_COUNT (1u << HISTOGRAM_SUB_BITS)
/* Up to 2^44 ns (~4.9 hours). */
#define HISTOGRAM_BUCKETS ((44u - HISTOGRAM_SUB_BITS + 1u) * HISTOGRAM_SUB_COUNT)

struct histogram {
	uint64_t counts[HISTOGRAM_BUCKETS];
	uint64_t count;
	uint64_t sum_ns;
	uint64_t min_ns;
	uint64_t max_ns;
};

void histogram_reset(struct histogram *histogram);
void histogram_record(struct histogram *histogram, uint64_t value_ns);
void histogram_merge(struct histogram *into, const struct histogram *from);
/* The value at or below which `percentile` (0..100) of samples fall: the upper
 * bound of the bucket that crosses it, clamped to max. 0 when empty. */
uint64_t histogram_percentile(const struct histogram *histogram, double percentile);
double histogram_mean_ns(const struct histogram *histogram);
/* "p50 123us p90 ... max ..." in microseconds. */
void histogram_print_summary(const struct histogram *histogram, FILE *out);

#endif
