#pragma once
// The data path's rate limiter, for user space: the generic cell rate
// algorithm of include/sluice/gcra.h, applied with a compare-and-swap on one
// atomic "theoretical arrival time" (TAT), as bucket_take() in
// bpf/sluice.bpf.c does. The verdict arithmetic is sl_gcra_conforms() itself,
// not a copy, so this model and the kernel cannot drift apart.
//
// Equivalence: for non-decreasing arrival times, Gcra over
// {interval_ns, tolerance_ns = burst * interval_ns} gives exactly the
// verdicts of TokenBucket(interval_ns, burst) (tests assert it on random
// sequences). Both start full.
//
// Where they differ on purpose: a clock that goes backwards. Gcra derives
// its tokens from `now` ((now + tolerance - TAT) / interval), so asked at an
// earlier time it sees fewer tokens than TokenBucket would. It never admits
// more than burst + (latest now - earliest now) / interval, and the TAT never
// moves backwards, so it never underflows. TokenBucket (x/time/rate) can
// re-refill a span it already refilled and admit more.
//
// Differences from the BPF program, both on the user-space side only:
//  - interval_ns == 0 means unlimited: allow() is always true and the TAT is
//    untouched (the data path skips such buckets instead of calling take).
//  - A lost compare-and-swap race is retried until it decides; the BPF
//    program gives up after 4 lost races (a verifier bound) and refuses.
//
// Precondition, checked by the constructor: interval_ns + tolerance_ns <=
// 2^63. The TAT never exceeds the latest now plus the tolerance, so for any
// now below 2^63 (CLOCK_MONOTONIC for 292 years) TAT + interval cannot wrap.
// sl_gcra_conforms() does not check this; a rate outside it (e.g. rate 0 as
// interval UINT64_MAX) would wrap and over-admit in the kernel.

#include <atomic>
#include <cstdint>

#include "sluice/abi.h"

namespace sluice::algo {

class Gcra {
public:
	static constexpr uint64_t kMaxSpanNs = uint64_t(1) << 63;

	// An sl_rate for `burst` tokens every `burst * interval_ns`:
	// tolerance_ns = burst * interval_ns. Throws std::invalid_argument if the
	// tolerance overflows. tokens/period_s are left 0 (not known here).
	static sl_rate make_rate(uint64_t interval_ns, uint32_t burst);

	// Throws std::invalid_argument if interval_ns + tolerance_ns > kMaxSpanNs.
	// tat_ns 0: the bucket starts full, as a fresh kernel bucket does.
	explicit Gcra(const sl_rate &rate, uint64_t tat_ns = 0);

	Gcra(const Gcra &) = delete;
	Gcra &operator=(const Gcra &) = delete;

	// One unit arriving at now_ns: true if it conforms (and is charged).
	bool allow(uint64_t now_ns);

	// Whole and fractional tokens left at now_ns, as TokenBucket::tokens_at
	// reports them: min(burst, (now + tolerance - TAT) / interval), never
	// below 0. Infinity when unlimited.
	double tokens_at(uint64_t now_ns) const;

	uint64_t tat_ns() const { return tat_.load(std::memory_order_acquire); }
	const sl_rate &rate() const { return rate_; }

private:
	const sl_rate rate_;
	std::atomic<uint64_t> tat_;
};

} // namespace sluice::algo
