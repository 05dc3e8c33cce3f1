#include "algo/gradient.hpp"

#include <algorithm>
#include <stdexcept>

namespace sluice::algo {

Gradient::Gradient(const GradientConfig &config) : config_(config), estimate_(config.initial_limit)
{
	if (!(config.min_limit >= 1 && config.min_limit <= config.max_limit))
		throw std::invalid_argument("gradient: need 1 <= min_limit <= max_limit");
	if (!(config.smoothing > 0 && config.smoothing <= 1))
		throw std::invalid_argument("gradient: smoothing must be in (0, 1]");
	if (!(config.queue_size >= 0))
		throw std::invalid_argument("gradient: queue size must not be negative");
	if (!(config.tolerance >= 1))
		throw std::invalid_argument("gradient: tolerance must be at least 1");
	if (config.long_window == 0)
		throw std::invalid_argument("gradient: long window must be at least 1 sample");
	// The EWMA needs a starting baseline: at least the first sample.
	if (config.warmup == 0)
		throw std::invalid_argument("gradient: warm-up must be at least 1 sample");
	estimate_ = std::clamp(config.initial_limit, config.min_limit, config.max_limit);
}

uint32_t Gradient::on_sample(uint64_t rtt_us, uint64_t in_flight)
{
	return update(static_cast<double>(rtt_us), in_flight);
}

uint32_t Gradient::record(const TickStats &tick)
{
	if (tick.rt_samples == 0)
		return limit();
	const double mean_us = static_cast<double>(tick.rt_sum_us) / static_cast<double>(tick.rt_samples);
	return update(mean_us, tick.in_flight);
}

uint32_t Gradient::update(double rtt_us, uint64_t in_flight)
{
	short_rtt_us_ = rtt_us;
	samples_++;
	if (samples_ <= config_.warmup) {
		warmup_sum_us_ += rtt_us;
		long_rtt_us_ = warmup_sum_us_ / static_cast<double>(samples_);
	} else {
		const double factor = 2.0 / (config_.long_window + 1.0);
		long_rtt_us_ = long_rtt_us_ * (1 - factor) + rtt_us * factor;
	}
	// A zero RTT says nothing about queueing: leave the limit alone.
	if (rtt_us <= 0)
		return limit();
	// The gradient below uses the baseline before this cut, as Gradient2 does.
	const double long_rtt_us = long_rtt_us_;
	if (long_rtt_us_ / rtt_us > 2)
		long_rtt_us_ *= 0.9;

	if (static_cast<double>(in_flight) < estimate_ / 2)
		return limit();

	gradient_ = std::clamp(config_.tolerance * long_rtt_us / rtt_us, 0.5, 1.0);
	const double target = estimate_ * gradient_ + config_.queue_size;
	const double smoothed = estimate_ * (1 - config_.smoothing) + target * config_.smoothing;
	estimate_ = std::clamp(smoothed, config_.min_limit, config_.max_limit);
	return limit();
}

} // namespace sluice::algo
