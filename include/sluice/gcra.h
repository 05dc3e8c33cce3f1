/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The generic cell rate algorithm, as the data path runs it.
 *
 * A bucket is one number, the theoretical arrival time (TAT) of the next
 * unit. A unit arriving at `now` is admitted if, after it, the TAT runs no
 * more than the tolerance (burst * interval) ahead of now. This is exactly a
 * token bucket of rate 1/interval and depth `burst` that starts full
 * (tokens = (now + tolerance - tat) / interval), in integer nanoseconds.
 *
 * Kept free of any environment so the BPF program and the C++ side share
 * one definition. Callers apply the result with a compare-and-swap.
 */
#ifndef SLUICE_GCRA_H
#define SLUICE_GCRA_H

#include "sluice/abi.h"

/* Returns 1 and sets *next_tat if a unit arriving at `now` conforms to the
 * rate of one unit per interval_ns, tolerance_ns ahead at most (sl_rate). */
static inline int sl_gcra_conforms(__u64 tat, __u64 now, __u64 interval_ns, __u64 tolerance_ns,
				   __u64 *next_tat)
{
	__u64 base = tat > now ? tat : now; /* an idle bucket refills to full, no further */
	__u64 next = base + interval_ns;

	if (next - now > tolerance_ns)
		return 0;
	*next_tat = next;
	return 1;
}

#endif /* SLUICE_GCRA_H */
