/*
 * histogram.c — log-linear latency histogram.
 */
#include "histogram.h"

#include <string.h>

void histogram_reset(struct histogram *histogram)
{
	memset(histogram, 0, sizeof(*histogram));
	histogram->min_ns = UINT64_MAX;
}

static uint32_t bucket_of(uint64_t value)
{
	if (value < HISTOGRAM_SUB_COUNT)
		return (uint32_t)value;
	uint32_t exponent = 63u - (uint32_t)__builtin_clzll(value); /* >= SUB_BITS */
	uint32_t shift = exponent - HISTOGRAM_SUB_BITS;
	uint32_t sub = (uint32_t)(value >> shift) - HISTOGRAM_SUB_COUNT;
	uint32_t bucket = (shift + 1u) * HISTOGRAM_SUB_COUNT + sub;
	return bucket < HISTOGRAM_BUCKETS ? bucket : HISTOGRAM_BUCKETS - 1u;
}

/* Largest value that falls in a bucket. */
static uint64_t bucket_upper(uint32_t bucket)
{
	if (bucket < HISTOGRAM_SUB_COUNT)
		return bucket;
	uint32_t shift = bucket / HISTOGRAM_SUB_COUNT - 1u;
	uint64_t sub = bucket % HISTOGRAM_SUB_COUNT + HISTOGRAM_SUB_COUNT;
	return ((sub + 1u) << shift) - 1u;
}

void histogram_record(struct histogram *histogram, uint64_t value_ns)
{
	histogram->counts[bucket_of(value_ns)]++;
	histogram->count++;
	histogram->sum_ns += value_ns;
	if (value_ns < histogram->min_ns)
		histogram->min_ns = value_ns;
	if (value_ns > histogram->max_ns)
		histogram->max_ns = value_ns;
}

void histogram_merge(struct histogram *into, const struct histogram *from)
{
	for (uint32_t i = 0; i < HISTOGRAM_BUCKETS; i++)
		into->counts[i] += from->counts[i];
	into->count += from->count;
	into->sum_ns += from->sum_ns;
	if (from->min_ns < into->min_ns)
		into->min_ns = from->min_ns;
	if (from->max_ns > into->max_ns)
		into->max_ns = from->max_ns;
}

uint64_t histogram_percentile(const struct histogram *histogram, double percentile)
{
	if (histogram->count == 0)
		return 0;
	double wanted = percentile / 100.0 * (double)histogram->count;
	uint64_t rank = wanted <= 1.0 ? 1 : (uint64_t)(wanted + 0.999999);
	uint64_t seen = 0;
	for (uint32_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
		seen += histogram->counts[i];
		if (seen >= rank) {
			uint64_t upper = bucket_upper(i);
			return upper < histogram->max_ns ? upper : histogram->max_ns;
		}
	}
	return histogram->max_ns;
}

double histogram_mean_ns(const struct histogram *histogram)
{
	return histogram->count ? (double)histogram->sum_ns / (double)histogram->count : 0.0;
}

void histogram_print_summary(const struct histogram *histogram, FILE *out)
{
	fprintf(out, "p50 %.1fus  p90 %.1fus  p99 %.1fus  p99.9 %.1fus  max %.1fus",
		(double)histogram_percentile(histogram, 50) / 1e3,
		(double)histogram_percentile(histogram, 90) / 1e3,
		(double)histogram_percentile(histogram, 99) / 1e3,
		(double)histogram_percentile(histogram, 99.9) / 1e3,
		(double)histogram->max_ns / 1e3);
}
