/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The latency histogram the data path keeps per service: log-linear buckets
 * over microseconds, eight per power of two (each at most 12.5% wide), from
 * 1 us to past 16 s. Shared by the BPF programs (which bucket) and the
 * controller (which reads percentiles), so both agree on every bound.
 *
 *   us < 16:             bucket = us                      (1 us wide)
 *   us in [2^m, 2^(m+1)): bucket = 16 + (m - 4) * 8 + the 3 bits after the top bit
 */
#ifndef SLUICE_HISTOGRAM_H
#define SLUICE_HISTOGRAM_H

#include <linux/types.h>

#define SL_HIST_BUCKETS 176 /* the last bucket also holds everything beyond it */

/* Index of the highest set bit of v (v > 0), without a clz instruction. */
static inline __u32 sl_log2(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

static inline __u32 sl_hist_bucket(__u64 latency_ns)
{
	__u64 us = latency_ns / 1000;

	if (us < 16)
		return (__u32)us;
	__u32 m = sl_log2(us);
	__u32 bucket = 16 + (m - 4) * 8 + (__u32)((us >> (m - 3)) & 7);
	return bucket < SL_HIST_BUCKETS ? bucket : SL_HIST_BUCKETS - 1;
}

/* The smallest latency, in microseconds, that lands in `bucket`. */
static inline __u64 sl_hist_lower_us(__u32 bucket)
{
	if (bucket < 16)
		return bucket;
	__u32 m = 4 + (bucket - 16) / 8;
	__u64 sub = (bucket - 16) % 8;
	return (1ull << m) + (sub << (m - 3));
}

#endif /* SLUICE_HISTOGRAM_H */
