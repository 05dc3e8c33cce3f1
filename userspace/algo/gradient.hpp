#pragma once
// Latency-gradient concurrency limit, in the style of Netflix
// concurrency-limits Gradient2Limit and Envoy's adaptive concurrency gradient
// controller. The limit follows the ratio of a slow-moving baseline RTT to the
// RTT measured now: while latency holds, the limit creeps up by a small queue
// allowance; when latency climbs past the tolerated multiple of the baseline,
// the limit shrinks in proportion.
//
// One update per sample (on_sample) or per controller tick (record, with the
// tick's mean RT as the sample):
//
//   short    = this sample's RTT
//   long     = baseline: plain mean of the first `warmup` samples, then an
//              EWMA with factor 2 / (long_window + 1)
//   if long > 2 * short: long *= 0.9           -- latency has recovered after
//              a long overload; pull the inflated baseline down faster
//   if in_flight < limit / 2: stop here         -- app-limited, no evidence
//   gradient = clamp(tolerance * long / short, 0.5, 1.0)
//   estimate = limit * gradient + queue_size
//   limit    = clamp(limit * (1 - smoothing) + estimate * smoothing,
//                    min_limit, max_limit)
//
// Parameters and defaults:
//   initial_limit 20, min_limit 20, max_limit 200   (Gradient2's defaults)
//   smoothing     0.2  weight of the new estimate; low = slow, steady changes
//   queue_size    4    growth allowance per update; at gradient 1 the limit
//                      grows by queue_size * smoothing = 0.8 per update
//   tolerance     1.5  latency may reach 1.5x the baseline before the limit
//                      shrinks (Gradient2 has none, i.e. 1.0; Netflix's older
//                      GradientLimit used rttTolerance 2.0)
//   long_window   600  samples in the baseline EWMA (Gradient2: 600)
//   warmup        10   samples averaged before the EWMA starts (Gradient2: 10)
// The gradient is floored at 0.5 so one outlier cannot halve the limit.
//
// Differences from the references: Gradient2 has no tolerance; Envoy uses a
// periodically re-measured minimum RTT plus a buffer as the baseline, a
// gradient range of [0.5, 2.0] and sqrt(limit) headroom instead of a fixed
// queue. Here the baseline is Gradient2's EWMA, since sluice cannot pin a
// service's concurrency low to re-measure its minimum RTT without shedding.
//
// Not thread-safe: one controller thread owns each instance.

#include <cstdint>

#include "algo/rolling_window.hpp"

namespace sluice::algo {

struct GradientConfig {
	double initial_limit = 20;
	double min_limit = 20;
	double max_limit = 200;
	double smoothing = 0.2;
	double queue_size = 4;
	double tolerance = 1.5;
	uint32_t long_window = 600;
	uint32_t warmup = 10;
};

class Gradient {
public:
	explicit Gradient(const GradientConfig &config = {});

	uint32_t on_sample(uint64_t rtt_us, uint64_t in_flight);
	// The tick's mean RT is the sample; a tick without RT samples changes nothing.
	uint32_t record(const TickStats &tick);

	uint32_t limit() const { return static_cast<uint32_t>(estimate_); }
	double estimate() const { return estimate_; }
	double long_rtt_us() const { return long_rtt_us_; }
	double short_rtt_us() const { return short_rtt_us_; }
	double gradient() const { return gradient_; } // of the last update not app-limited
	const GradientConfig &config() const { return config_; }

private:
	uint32_t update(double rtt_us, uint64_t in_flight);

	GradientConfig config_;
	double estimate_;
	double long_rtt_us_ = 0;
	double short_rtt_us_ = 0;
	double gradient_ = 1.0;
	uint64_t samples_ = 0;
	double warmup_sum_us_ = 0;
};

} // namespace sluice::algo
