/* SPDX-License-Identifier: MIT */
/*
 * A log-bucket histogram in the manner of HdrHistogram: every power of two
 * is split into 2^RPB_HIST_SUB_BITS linear sub-buckets, so a recorded value
 * is known to within 1/128 (0.8%) at any magnitude, in a fixed 58 KiB and
 * with one shift and one add per sample.
 */
#include "bench.h"

#define RPB_SUB (1ull << RPB_HIST_SUB_BITS)

static unsigned rpb_hist_index(uint64_t v)
{
	unsigned e;

	if (v < RPB_SUB)
		return (unsigned)v;
	e = 63 - (unsigned)__builtin_clzll(v); /* e >= SUB_BITS */
	return ((e - RPB_HIST_SUB_BITS + 1) << RPB_HIST_SUB_BITS) +
	       (unsigned)((v >> (e - RPB_HIST_SUB_BITS)) - RPB_SUB);
}

/* The middle of bucket i, the value a percentile reports. */
static uint64_t rpb_hist_value(unsigned i)
{
	unsigned e;
	uint64_t lo, width;

	if (i < RPB_SUB)
		return i;
	e = (i >> RPB_HIST_SUB_BITS) + RPB_HIST_SUB_BITS - 1;
	width = 1ull << (e - RPB_HIST_SUB_BITS);
	lo = (RPB_SUB + (i & (RPB_SUB - 1))) << (e - RPB_HIST_SUB_BITS);
	return lo + width / 2;
}

void rpb_hist_add(struct rpb_hist *h, uint64_t ns)
{
	h->b[rpb_hist_index(ns)]++;
	h->count++;
	if (ns > h->max)
		h->max = ns;
}

void rpb_hist_merge(struct rpb_hist *into, const struct rpb_hist *from)
{
	for (unsigned i = 0; i < RPB_HIST_BUCKETS; i++)
		into->b[i] += from->b[i];
	into->count += from->count;
	if (from->max > into->max)
		into->max = from->max;
}

/* The value below which pct percent of the samples lie. */
uint64_t rpb_hist_pct(const struct rpb_hist *h, double pct)
{
	uint64_t want, seen = 0;

	if (!h->count)
		return 0;
	want = (uint64_t)((double)h->count * pct / 100.0 + 0.5);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < RPB_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t v = rpb_hist_value(i);

			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}
