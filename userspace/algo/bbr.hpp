#pragma once
// Adaptive in-flight limit after kratos BBR (go-kratos/aegis ratelimit/bbr),
// fed with per-tick aggregates instead of per-request callbacks.
//
// Little's law: the work a service can hold in flight without queueing is its
// best throughput times its best latency. Over a rolling window (default 10 s
// in 100 buckets):
//   maxPass     = max completions in one bucket, the current bucket excluded
//                 (1 when there is none)
//   minRT       = min over buckets of the bucket's mean response time, in
//                 ms rounded up (1 when there is none)
//   maxInFlight = floor(maxPass * minRT * bucketsPerSecond / 1000 + 0.5)
// The limit only applies under pressure: while the smoothed CPU is at or above
// the threshold (800 per mille), and for 1 s after the first drop of an
// episode. shouldDrop(inFlight) = inFlight > 1 && inFlight > maxInFlight.
// A CPU threshold of 0 makes the limit apply always.
//
// Where sluice differs from kratos, on purpose:
//  - RTs arrive in microseconds; kratos truncates each RT to whole ms first.
//  - No one-bucket cache of maxPass/minRT: the controller asks once a tick.
//  - bucketsPerSecond is exact (1e9 / bucket_ns); kratos truncates it to an
//    integer. Identical whenever the bucket divides one second.
//  - kratos' code writes int64(math.Floor(x/1000) + 0.5), which truncates;
//    conformance.md specifies rounding, floor(x/1000 + 0.5), and so do we.
//    The two agree on every kratos test value (54, 60).
//
// Estimators (BbrConfig::estimator). go-kratos/aegis PRs #14 and #16 argue
// that maxPass and minRT come from different buckets and so overestimate.
// kPairedPerBucket pairs them: max over complete buckets of
// passes_i * meanRT_i, same scaling -- by Little's law, the highest average
// concurrency actually observed in one bucket, queueing included. It cannot
// correct an overestimate from mixing buckets: if bucket a holds maxPass,
// passes_a * meanRT_a >= passes_a * minRT, so the paired value is never below
// maxPass * minRT (kExactMinRt) and is the more permissive estimate. It falls
// below kKratos only through kratos' rounding of minRT up to whole ms, which
// inflates sub-millisecond services (0.25 ms counts as 1 ms: 4x). kExactMinRt
// keeps kratos' max-rate x min-latency product and drops only that rounding.
// Both fall back to kKratos when no complete bucket has an RT sample.
//
// Not thread-safe: one controller thread owns each instance.

#include <cstdint>
#include <optional>

#include "algo/rolling_window.hpp"

namespace sluice::algo {

enum class BbrEstimator {
	kKratos,          // maxPass * ceil(minRT in ms): conformance
	kPairedPerBucket, // max_i passes_i * meanRT_i (aegis PR #14/#16's concern)
	kExactMinRt,      // maxPass * minRT at microsecond precision
};

struct BbrConfig {
	uint64_t window_ns = 10 * kNsPerSec;
	uint32_t buckets = 100;
	int64_t cpu_threshold_permille = 800; // 0: the in-flight limit always applies
	uint64_t drop_hold_ns = kNsPerSec;    // "recently dropped" hold
	BbrEstimator estimator = BbrEstimator::kKratos;
};

// What the controller writes to the kernel for the next tick. When armed, the
// kernel refuses new work while Bbr::exceeds(in_flight, max_in_flight).
struct BbrDecision {
	bool armed = false;
	uint64_t max_in_flight = 0;
};

// kratos' Stat snapshot.
struct BbrStat {
	int64_t cpu_permille = 0;
	uint64_t in_flight = 0;
	uint64_t max_in_flight = 0;
	uint64_t min_rt_ms = 0;
	uint64_t max_pass = 0;
};

// kratos' CPU smoothing, sampled every 500 ms by the caller:
// cpu = 0.95 * prev + 0.05 * usage, usage clamped to [0, 1000] per mille.
// Integer arithmetic, truncating like kratos' int64() conversion.
class CpuSmoother {
public:
	int64_t update(int64_t usage_permille);
	int64_t value() const { return cpu_; }

private:
	int64_t cpu_ = 0;
};

class Bbr {
public:
	explicit Bbr(const BbrConfig &config = {}, uint64_t origin_ns = 0);

	// Aggregates of one tick: completed, rt_sum_us and rt_samples are used.
	void record(uint64_t now_ns, const TickStats &tick);
	// The same for a tick that counted [from_ns, to_ns): each bucket the
	// interval covers takes its share of the counts, by the time it covers.
	// Ticks as long as a bucket but not aligned with them would otherwise
	// land two in one bucket now and then (a tick woken early, the next
	// late), and that bucket's doubled passes would be maxPass for the
	// whole window; a late tick's counts would all fall in its last bucket.
	void record_over(uint64_t from_ns, uint64_t to_ns, const TickStats &tick);
	// One completed request (kratos' done callback).
	void on_complete(uint64_t now_ns, uint64_t rt_us);

	// Forgets every bucket: what was measured no longer describes the service.
	void forget_window() { window_.clear(); }

	uint64_t max_pass(uint64_t now_ns) const;
	// The best mean of `span` consecutive complete buckets' passes (all of
	// them while fewer are complete). A service slower than a bucket answers
	// in bunches a response time apart, one bucket full and the next empty;
	// a span of buckets at least as long as a response time counts its rate
	// (the controller spans two).
	double max_pass_over(uint64_t now_ns, uint32_t span) const;
	// How many complete buckets the window holds (fewer after forget_window).
	uint32_t complete_buckets(uint64_t now_ns) const;
	uint64_t min_rt_ms(uint64_t now_ns) const;
	// With the configured estimator, or a chosen one.
	uint64_t max_in_flight(uint64_t now_ns) const;
	uint64_t max_in_flight(uint64_t now_ns, BbrEstimator estimator) const;

	// kratos shouldDrop, for one arriving request with in_flight in flight.
	bool should_drop(uint64_t now_ns, int64_t cpu_permille, uint64_t in_flight);
	// Once per tick for the kernel: whether the limit applies and its value.
	// kernel_dropped: the kernel refused work on this limit since the last
	// tick; like a drop seen here, it starts the hold when CPU is high.
	BbrDecision decide(uint64_t now_ns, int64_t cpu_permille, uint64_t in_flight,
			   bool kernel_dropped = false);
	// The admission rule: inFlight > 1 && inFlight > maxInFlight.
	static bool exceeds(uint64_t in_flight, uint64_t max_in_flight)
	{
		return in_flight > 1 && in_flight > max_in_flight;
	}

	BbrStat stat(uint64_t now_ns, int64_t cpu_permille, uint64_t in_flight) const;
	// Start of the current drop episode, if one is being held.
	std::optional<uint64_t> drop_started_ns() const { return drop_started_ns_; }
	const BbrConfig &config() const { return config_; }

private:
	struct Bucket {
		uint64_t passes = 0;
		uint64_t rt_sum_us = 0;
		uint64_t rt_samples = 0;
	};

	uint64_t kratos_limit(uint64_t now_ns) const;
	uint64_t paired_limit(uint64_t now_ns) const;
	uint64_t exact_min_rt_limit(uint64_t now_ns) const;

	BbrConfig config_;
	RollingWindow<Bucket> window_;
	std::optional<uint64_t> drop_started_ns_;
};

} // namespace sluice::algo
