#pragma once
// Three-state circuit breaker: CLOSED -> OPEN -> HALF_OPEN -> CLOSED | OPEN.
//
// CLOSED: calls are counted in a rolling window. Once the window holds at
//   least min_calls calls, the breaker opens when
//     errors / calls >= error_ratio         (resilience4j failureRateThreshold)
//     slow / calls   >= slow_ratio          (Sentinel SLOW_REQUEST_RATIO)
//   Sentinel trips on ratio > threshold, except at 1.0 where it trips on
//   equality; ">=" is the same at 1.0 and is resilience4j's rule elsewhere.
// OPEN: all new work is refused for open_ns.
// HALF_OPEN: entered by the first call (state(now), try_acquire, record) at or
//   after opened_at + open_ns; admits probe_budget probes
//   (Sentinel-go ProbeNum, resilience4j permittedNumberOfCallsInHalfOpenState).
//   Any failed probe (an error, or a slow call when the slow rule is on)
//   reopens for a full open_ns from that moment; once probe_budget probes have
//   succeeded the breaker closes and its counts start from zero.
//
// Aggregated input: record() takes a tick's completed/errors/slow counts. In
// HALF_OPEN every completion of the tick counts as a probe result (with
// aggregates the controller cannot tell a probe from a request admitted before
// the breaker opened). Completions that arrive while OPEN are ignored.
//
// Every state change is queued as a BreakerTransition carrying the numbers
// that caused it; take_transitions() hands them to the controller, which logs
// describe(t) as one line per transition.
//
// Not thread-safe: one controller thread owns each instance.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "algo/rolling_window.hpp"

namespace sluice::algo {

enum class BreakerState { kClosed, kOpen, kHalfOpen };

enum class BreakerReason {
	kErrorRatio,           // CLOSED -> OPEN
	kSlowRatio,            // CLOSED -> OPEN
	kOpenIntervalElapsed,  // OPEN -> HALF_OPEN
	kProbeFailed,          // HALF_OPEN -> OPEN
	kProbesSucceeded,      // HALF_OPEN -> CLOSED
};

struct BreakerConfig {
	uint64_t window_ns = 10 * kNsPerSec;     // sluice's choice (resilience4j counts 100 calls)
	uint32_t buckets = 10;
	uint64_t min_calls = 5;                  // Sentinel minRequestAmount default
	std::optional<double> error_ratio = 0.5; // nullopt: rule off
	std::optional<double> slow_ratio = std::nullopt; // nullopt: rule off
	uint64_t slow_call_us = 60 * 1000 * 1000; // per-request path: RT above this is slow
	                                          // (resilience4j's default, 60 s)
	uint64_t open_ns = 5 * kNsPerSec;
	uint32_t probe_budget = 1;               // Sentinel: one probe
};

struct BreakerTransition {
	uint64_t at_ns = 0;
	BreakerState from = BreakerState::kClosed;
	BreakerState to = BreakerState::kClosed;
	BreakerReason reason = BreakerReason::kErrorRatio;
	// Window counts for a trip; probe counts for HALF_OPEN exits.
	uint64_t calls = 0;
	uint64_t errors = 0;
	uint64_t slow = 0;
	double ratio = 0;     // the ratio that tripped (kErrorRatio, kSlowRatio)
	double threshold = 0; // the threshold it met
};

const char *to_string(BreakerState state);
// One log line, e.g.
// "CLOSED -> OPEN: error ratio 0.600 >= 0.500 over 5 calls (3 errors, 0 slow)".
std::string describe(const BreakerTransition &t, const BreakerConfig &config);

class Breaker {
public:
	explicit Breaker(const BreakerConfig &config = {}, uint64_t origin_ns = 0);

	// A tick's outcomes: completed, errors and slow are used.
	void record(uint64_t now_ns, const TickStats &tick);
	// Per-request path: ask before the call, report after it.
	bool try_acquire(uint64_t now_ns);
	void on_complete(uint64_t now_ns, uint64_t rt_us, bool error);

	// Moves OPEN -> HALF_OPEN when the interval is over, then reports.
	BreakerState state(uint64_t now_ns);
	BreakerState state() const { return state_; }
	// Admissions the kernel may grant in the current HALF_OPEN (0 otherwise).
	uint32_t probe_budget() const { return state_ == BreakerState::kHalfOpen ? config_.probe_budget : 0; }
	// When the current OPEN ends (meaningful only while OPEN).
	uint64_t open_until_ns() const { return open_until_ns_; }

	std::vector<BreakerTransition> take_transitions();
	const BreakerConfig &config() const { return config_; }

private:
	struct Bucket {
		uint64_t calls = 0;
		uint64_t errors = 0;
		uint64_t slow = 0;
	};

	void advance(uint64_t now_ns);
	void open(uint64_t now_ns, BreakerTransition t);
	void close(uint64_t now_ns);
	void evaluate_closed(uint64_t now_ns);

	BreakerConfig config_;
	RollingWindow<Bucket> window_;
	BreakerState state_ = BreakerState::kClosed;
	uint64_t open_until_ns_ = 0;
	uint32_t probes_admitted_ = 0;  // per-request path
	uint64_t probes_succeeded_ = 0; // completions seen in this HALF_OPEN
	std::vector<BreakerTransition> transitions_;
};

} // namespace sluice::algo
