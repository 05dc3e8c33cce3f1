#pragma once
// Time-bucketed rolling window, and the per-tick aggregates the controller's
// algorithms consume.
//
// The controller never sees single requests: every tick it reads the kernel's
// counters and learns what happened since the previous tick. TickStats carries
// those aggregates; every algorithm in sluice::algo accepts them, and offers
// per-request calls (used by the conformance tests) that forward to the same
// code with a TickStats of one request.
//
// RollingWindow<Bucket> splits `window_ns` into `buckets` equal buckets aligned
// to `origin_ns`: bucket number k covers [origin + k*d, origin + (k+1)*d).
// Each slot of the ring remembers which bucket number it holds, so expiry is
// exact and lazy: a slot is live only while its number lies in the last
// `buckets` numbers, and is reset the first time it is written for a newer
// number. A clock that goes backwards writes into the newest bucket seen so
// far (nothing is ever written to the past).
//
// Not thread-safe: one controller thread owns each instance.

#include <cstdint>
#include <vector>

namespace sluice::algo {

inline constexpr uint64_t kNsPerUs = 1000;
inline constexpr uint64_t kNsPerMs = 1000 * kNsPerUs;
inline constexpr uint64_t kNsPerSec = 1000 * kNsPerMs;

// What the kernel counted for one service during one controller tick.
struct TickStats {
	uint64_t requests = 0;   // work offered: admitted plus refused by sluice
	uint64_t completed = 0;  // responses seen (successful or not)
	uint64_t rt_sum_us = 0;  // sum of the response times of rt_samples completions
	uint64_t rt_samples = 0; // completions whose response time was measured
	uint64_t errors = 0;     // failed completions, timeouts past the SLO included
	uint64_t slow = 0;       // completions slower than the slow-call threshold
	uint64_t in_flight = 0;  // admitted and not yet answered, read at the tick
};

// Maps timestamps to absolute bucket numbers. Throws std::invalid_argument
// unless buckets >= 1 and window_ns is a non-zero multiple of buckets.
class BucketClock {
public:
	BucketClock(uint64_t window_ns, uint32_t buckets, uint64_t origin_ns);

	// Times before the origin fall in bucket 0.
	uint64_t bucket_number(uint64_t now_ns) const;

	uint64_t window_ns() const { return window_ns_; }
	uint64_t bucket_ns() const { return bucket_ns_; }
	uint32_t buckets() const { return buckets_; }
	uint64_t origin_ns() const { return origin_ns_; }

private:
	uint64_t window_ns_;
	uint64_t bucket_ns_;
	uint32_t buckets_;
	uint64_t origin_ns_;
};

template <class Bucket>
class RollingWindow {
public:
	RollingWindow(uint64_t window_ns, uint32_t buckets, uint64_t origin_ns = 0)
		: clock_(window_ns, buckets, origin_ns), slots_(buckets) {}

	// The bucket now_ns falls in, emptied first if its slot held an older one.
	Bucket &current(uint64_t now_ns)
	{
		const uint64_t number = effective_number(now_ns);
		newest_ = number;
		Slot &slot = slots_[number % slots_.size()];
		if (!slot.used || slot.number != number) {
			slot.value = Bucket{};
			slot.number = number;
			slot.used = true;
		}
		return slot.value;
	}

	// Calls f(const Bucket&) for every live bucket, oldest first, including
	// the (partial) current one. Buckets never written are skipped.
	template <class F>
	void for_each(uint64_t now_ns, F &&f) const
	{
		visit(now_ns, true, f);
	}

	// Same, without the current bucket: only periods that are over.
	template <class F>
	void for_each_complete(uint64_t now_ns, F &&f) const
	{
		visit(now_ns, false, f);
	}

	void clear()
	{
		for (Slot &slot : slots_)
			slot = Slot{};
	}

	const BucketClock &clock() const { return clock_; }

private:
	struct Slot {
		uint64_t number = 0;
		bool used = false;
		Bucket value{};
	};

	uint64_t effective_number(uint64_t now_ns) const
	{
		const uint64_t number = clock_.bucket_number(now_ns);
		return number > newest_ ? number : newest_;
	}

	template <class F>
	void visit(uint64_t now_ns, bool include_current, F &f) const
	{
		const uint64_t current = effective_number(now_ns);
		if (!include_current && current == 0)
			return;
		const uint64_t n = slots_.size();
		const uint64_t first = current + 1 >= n ? current + 1 - n : 0;
		const uint64_t last = include_current ? current : current - 1;
		for (uint64_t number = first; number <= last; number++) {
			const Slot &slot = slots_[number % n];
			if (slot.used && slot.number == number)
				f(slot.value);
		}
	}

	BucketClock clock_;
	std::vector<Slot> slots_;
	uint64_t newest_ = 0;
};

} // namespace sluice::algo
