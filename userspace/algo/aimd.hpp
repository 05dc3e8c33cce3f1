#pragma once
// Loss-based concurrency limit, after Netflix concurrency-limits AIMDLimit:
//
//   on a drop, or an RTT above the timeout:  limit = (int)(limit * backoff)
//   else if in_flight * 2 >= limit:          limit = limit + 1
//   then clamp to [min_limit, max_limit]
//
// The "in_flight * 2 >= limit" guard keeps an idle service from growing its
// limit without ever using it.
//
// Per-sample (on_sample) matches AIMDLimit.onSample. Per tick (record) makes
// one update from the tick's aggregates, like concurrency-limits'
// WindowedLimit: rtt = the tick's mean RT, a drop = any error in the tick
// (timeouts past the SLO are counted as errors by the kernel). A tick with no
// completions changes nothing. Time plays no part in the update itself.
//
// Not thread-safe: one controller thread owns each instance.

#include <cstdint>

#include "algo/rolling_window.hpp"

namespace sluice::algo {

struct AimdConfig {
	uint32_t initial_limit = 20;
	uint32_t min_limit = 20;
	uint32_t max_limit = 200;
	double backoff_ratio = 0.9;           // [0.5, 1), as Netflix requires
	uint64_t timeout_us = 5 * 1000 * 1000; // an RTT above this counts as a drop
};

class Aimd {
public:
	explicit Aimd(const AimdConfig &config = {});

	uint32_t on_sample(uint64_t rtt_us, uint64_t in_flight, bool dropped);
	uint32_t record(const TickStats &tick);

	uint32_t limit() const { return limit_; }
	const AimdConfig &config() const { return config_; }

private:
	AimdConfig config_;
	uint32_t limit_;
};

} // namespace sluice::algo
