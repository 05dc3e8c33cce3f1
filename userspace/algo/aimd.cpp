#include "algo/aimd.hpp"

#include <algorithm>
#include <stdexcept>

namespace sluice::algo {

Aimd::Aimd(const AimdConfig &config) : config_(config), limit_(config.initial_limit)
{
	if (config.min_limit > config.max_limit)
		throw std::invalid_argument("aimd: minimum limit above maximum");
	if (!(config.backoff_ratio >= 0.5 && config.backoff_ratio < 1.0))
		throw std::invalid_argument("aimd: backoff ratio must be in [0.5, 1)");
}

uint32_t Aimd::on_sample(uint64_t rtt_us, uint64_t in_flight, bool dropped)
{
	uint64_t next = limit_;
	if (dropped || rtt_us > config_.timeout_us)
		next = static_cast<uint64_t>(limit_ * config_.backoff_ratio);
	else if (in_flight * 2 >= limit_)
		next = uint64_t(limit_) + 1;
	limit_ = static_cast<uint32_t>(std::clamp<uint64_t>(next, config_.min_limit, config_.max_limit));
	return limit_;
}

uint32_t Aimd::record(const TickStats &tick)
{
	if (tick.completed == 0 && tick.errors == 0)
		return limit_;
	const uint64_t mean_rt_us = tick.rt_samples ? tick.rt_sum_us / tick.rt_samples : 0;
	return on_sample(mean_rt_us, tick.in_flight, tick.errors > 0);
}

} // namespace sluice::algo
