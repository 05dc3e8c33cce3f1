#include "algo/bbr.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace sluice::algo {

namespace {

__extension__ typedef unsigned __int128 Wide;

// floor(num / den + 0.5) without floats.
uint64_t round_div(Wide num, Wide den)
{
	const Wide q = (2 * num + den) / (2 * den);
	return q > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(q);
}

// Little's law on one bucket: `count` completions in bucket_ns whose mean RT
// is rt_sum_us / rt_samples hold count * meanRT / bucket_ns in flight.
uint64_t in_flight_of(uint64_t count, uint64_t rt_sum_us, uint64_t rt_samples, uint64_t bucket_ns)
{
	return round_div(Wide(count) * rt_sum_us * kNsPerUs, Wide(rt_samples) * bucket_ns);
}

} // namespace

int64_t CpuSmoother::update(int64_t usage_permille)
{
	const int64_t usage = std::clamp<int64_t>(usage_permille, 0, 1000);
	cpu_ = (cpu_ * 95 + usage * 5) / 100;
	return cpu_;
}

Bbr::Bbr(const BbrConfig &config, uint64_t origin_ns)
	: config_(config), window_(config.window_ns, config.buckets, origin_ns)
{
	if (config.cpu_threshold_permille < 0)
		throw std::invalid_argument("bbr: CPU threshold must not be negative");
}

void Bbr::record(uint64_t now_ns, const TickStats &tick)
{
	Bucket &bucket = window_.current(now_ns);
	bucket.passes += tick.completed;
	bucket.rt_sum_us += tick.rt_sum_us;
	bucket.rt_samples += tick.rt_samples;
}

void Bbr::record_over(uint64_t from_ns, uint64_t to_ns, const TickStats &tick)
{
	const BucketClock &clock = window_.clock();
	// Nothing before the window's origin, nor more than a window ago, counts.
	from_ns = std::max({from_ns, clock.origin_ns(), to_ns > config_.window_ns ? to_ns - config_.window_ns : 0});
	if (to_ns <= from_ns) {
		record(to_ns, tick);
		return;
	}
	const double length = static_cast<double>(to_ns - from_ns);
	TickStats given{}; // what the buckets so far took
	// Each bucket takes the rounded share up to its end less what the ones
	// before took: the shares add up to the tick's counts exactly.
	auto share = [](uint64_t total, double upto, uint64_t &taken) {
		const uint64_t by_now = static_cast<uint64_t>(std::llround(static_cast<double>(total) * upto));
		const uint64_t mine = by_now - taken;
		taken = by_now;
		return mine;
	};
	for (uint64_t start = from_ns; start < to_ns;) {
		const uint64_t bucket_end = clock.origin_ns() + (clock.bucket_number(start) + 1) * clock.bucket_ns();
		const uint64_t end = std::min(to_ns, bucket_end);
		const double upto = end == to_ns ? 1.0 : static_cast<double>(end - from_ns) / length;
		TickStats part;
		part.completed = share(tick.completed, upto, given.completed);
		part.rt_sum_us = share(tick.rt_sum_us, upto, given.rt_sum_us);
		part.rt_samples = share(tick.rt_samples, upto, given.rt_samples);
		record(start, part);
		start = end;
	}
}

void Bbr::on_complete(uint64_t now_ns, uint64_t rt_us)
{
	record(now_ns, TickStats{.completed = 1, .rt_sum_us = rt_us, .rt_samples = 1});
}

uint64_t Bbr::max_pass(uint64_t now_ns) const
{
	uint64_t result = 1;
	window_.for_each_complete(now_ns, [&](const Bucket &b) { result = std::max(result, b.passes); });
	return result;
}

double Bbr::max_pass_over(uint64_t now_ns, uint32_t span) const
{
	std::vector<uint64_t> passes;
	window_.for_each_complete(now_ns, [&](const Bucket &b) { passes.push_back(b.passes); });
	if (passes.empty())
		return 1.0 / std::max<uint32_t>(span, 1); // at least one pass in the span (below)
	span = std::clamp<uint32_t>(span, 1, static_cast<uint32_t>(passes.size()));
	uint64_t sum = 0, best = 0;
	for (size_t i = 0; i < passes.size(); i++) {
		sum += passes[i];
		if (i >= span)
			sum -= passes[i - span];
		if (i + 1 >= span)
			best = std::max(best, sum);
	}
	// At least one pass in the span, as max_pass has one in its bucket: a
	// floor of one a bucket would count a service slower than a bucket at
	// a bucket's rate (a 1.2 s service at 12 in flight, whatever it holds).
	return static_cast<double>(std::max<uint64_t>(best, 1)) / span;
}

uint32_t Bbr::complete_buckets(uint64_t now_ns) const
{
	uint32_t count = 0;
	window_.for_each_complete(now_ns, [&](const Bucket &) { count++; });
	return count;
}

uint64_t Bbr::min_rt_ms(uint64_t now_ns) const
{
	std::optional<uint64_t> result;
	window_.for_each_complete(now_ns, [&](const Bucket &b) {
		if (b.rt_samples == 0)
			return;
		const Wide per_ms = Wide(b.rt_samples) * 1000;
		const uint64_t ceil_ms = static_cast<uint64_t>((Wide(b.rt_sum_us) + per_ms - 1) / per_ms);
		result = result ? std::min(*result, ceil_ms) : ceil_ms;
	});
	// kratos: no samples, or a mean that rounds to 0, both give 1.
	return result && *result > 0 ? *result : 1;
}

uint64_t Bbr::kratos_limit(uint64_t now_ns) const
{
	// maxPass * minRT * (1e9 / bucket_ns) / 1000, kept exact.
	return round_div(Wide(max_pass(now_ns)) * min_rt_ms(now_ns) * kNsPerMs,
			 window_.clock().bucket_ns());
}

uint64_t Bbr::paired_limit(uint64_t now_ns) const
{
	const uint64_t bucket_ns = window_.clock().bucket_ns();
	std::optional<uint64_t> best;
	window_.for_each_complete(now_ns, [&](const Bucket &b) {
		if (b.rt_samples == 0)
			return;
		const uint64_t l = in_flight_of(b.passes, b.rt_sum_us, b.rt_samples, bucket_ns);
		best = best ? std::max(*best, l) : l;
	});
	return best ? *best : kratos_limit(now_ns);
}

uint64_t Bbr::exact_min_rt_limit(uint64_t now_ns) const
{
	// The bucket with the least mean RT: compare sum/samples as fractions.
	const Bucket *fastest = nullptr;
	window_.for_each_complete(now_ns, [&](const Bucket &b) {
		if (b.rt_samples == 0)
			return;
		if (!fastest || Wide(b.rt_sum_us) * fastest->rt_samples <
					Wide(fastest->rt_sum_us) * b.rt_samples)
			fastest = &b;
	});
	if (!fastest)
		return kratos_limit(now_ns);
	return in_flight_of(max_pass(now_ns), fastest->rt_sum_us, fastest->rt_samples,
			    window_.clock().bucket_ns());
}

uint64_t Bbr::max_in_flight(uint64_t now_ns) const
{
	return max_in_flight(now_ns, config_.estimator);
}

uint64_t Bbr::max_in_flight(uint64_t now_ns, BbrEstimator estimator) const
{
	switch (estimator) {
	case BbrEstimator::kKratos:
		return kratos_limit(now_ns);
	case BbrEstimator::kPairedPerBucket:
		return paired_limit(now_ns);
	case BbrEstimator::kExactMinRt:
		return exact_min_rt_limit(now_ns);
	}
	throw std::invalid_argument("bbr: unknown estimator");
}

BbrDecision Bbr::decide(uint64_t now_ns, int64_t cpu_permille, uint64_t in_flight, bool kernel_dropped)
{
	BbrDecision d{.armed = false, .max_in_flight = max_in_flight(now_ns)};
	if (cpu_permille >= config_.cpu_threshold_permille) {
		d.armed = true;
		// kratos keeps the time of the first drop of an episode, not the last.
		if ((kernel_dropped || exceeds(in_flight, d.max_in_flight)) && !drop_started_ns_)
			drop_started_ns_ = now_ns;
		return d;
	}
	if (!drop_started_ns_)
		return d;
	// A clock that went backwards counts as "just dropped".
	if (now_ns <= *drop_started_ns_ || now_ns - *drop_started_ns_ <= config_.drop_hold_ns) {
		d.armed = true;
		return d;
	}
	drop_started_ns_.reset();
	return d;
}

bool Bbr::should_drop(uint64_t now_ns, int64_t cpu_permille, uint64_t in_flight)
{
	const BbrDecision d = decide(now_ns, cpu_permille, in_flight);
	return d.armed && exceeds(in_flight, d.max_in_flight);
}

BbrStat Bbr::stat(uint64_t now_ns, int64_t cpu_permille, uint64_t in_flight) const
{
	return BbrStat{
		.cpu_permille = cpu_permille,
		.in_flight = in_flight,
		.max_in_flight = max_in_flight(now_ns),
		.min_rt_ms = min_rt_ms(now_ns),
		.max_pass = max_pass(now_ns),
	};
}

} // namespace sluice::algo
