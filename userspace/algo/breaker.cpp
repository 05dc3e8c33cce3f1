#include "algo/breaker.hpp"

#include <cstdio>
#include <stdexcept>
#include <utility>

namespace sluice::algo {

namespace {

void check_ratio(const std::optional<double> &ratio, const char *what)
{
	if (ratio && !(*ratio > 0 && *ratio <= 1))
		throw std::invalid_argument(std::string("breaker: ") + what + " threshold must be in (0, 1]");
}

} // namespace

const char *to_string(BreakerState state)
{
	switch (state) {
	case BreakerState::kClosed:
		return "CLOSED";
	case BreakerState::kOpen:
		return "OPEN";
	case BreakerState::kHalfOpen:
		return "HALF_OPEN";
	}
	return "?";
}

std::string describe(const BreakerTransition &t, const BreakerConfig &config)
{
	const unsigned long long open_ms = config.open_ns / kNsPerMs;
	char buf[256];
	switch (t.reason) {
	case BreakerReason::kErrorRatio:
	case BreakerReason::kSlowRatio:
		std::snprintf(buf, sizeof buf,
			      "%s -> %s: %s ratio %.3f >= %.3f over %llu calls (%llu errors, %llu slow); open for %llu ms",
			      to_string(t.from), to_string(t.to),
			      t.reason == BreakerReason::kErrorRatio ? "error" : "slow-call", t.ratio, t.threshold,
			      (unsigned long long)t.calls, (unsigned long long)t.errors,
			      (unsigned long long)t.slow, open_ms);
		break;
	case BreakerReason::kOpenIntervalElapsed:
		std::snprintf(buf, sizeof buf, "%s -> %s: open for %llu ms; %u probes allowed",
			      to_string(t.from), to_string(t.to), open_ms, config.probe_budget);
		break;
	case BreakerReason::kProbeFailed:
		std::snprintf(buf, sizeof buf,
			      "%s -> %s: probe failed (%llu completions: %llu errors, %llu slow); open for %llu ms",
			      to_string(t.from), to_string(t.to), (unsigned long long)t.calls,
			      (unsigned long long)t.errors, (unsigned long long)t.slow, open_ms);
		break;
	case BreakerReason::kProbesSucceeded:
		std::snprintf(buf, sizeof buf, "%s -> %s: %llu probes succeeded; counts reset",
			      to_string(t.from), to_string(t.to), (unsigned long long)t.calls);
		break;
	}
	return buf;
}

Breaker::Breaker(const BreakerConfig &config, uint64_t origin_ns)
	: config_(config), window_(config.window_ns, config.buckets, origin_ns)
{
	check_ratio(config.error_ratio, "error ratio");
	check_ratio(config.slow_ratio, "slow-call ratio");
	if (config.min_calls == 0)
		throw std::invalid_argument("breaker: minimum calls must be at least 1");
	if (config.open_ns == 0)
		throw std::invalid_argument("breaker: open interval must be positive");
	if (config.probe_budget == 0)
		throw std::invalid_argument("breaker: probe budget must be at least 1");
}

void Breaker::advance(uint64_t now_ns)
{
	if (state_ != BreakerState::kOpen || now_ns < open_until_ns_)
		return;
	state_ = BreakerState::kHalfOpen;
	probes_admitted_ = 0;
	probes_succeeded_ = 0;
	transitions_.push_back(BreakerTransition{
		.at_ns = now_ns,
		.from = BreakerState::kOpen,
		.to = BreakerState::kHalfOpen,
		.reason = BreakerReason::kOpenIntervalElapsed,
	});
}

void Breaker::open(uint64_t now_ns, BreakerTransition t)
{
	t.at_ns = now_ns;
	t.from = state_;
	t.to = BreakerState::kOpen;
	state_ = BreakerState::kOpen;
	open_until_ns_ = now_ns + config_.open_ns;
	transitions_.push_back(t);
}

void Breaker::close(uint64_t now_ns)
{
	transitions_.push_back(BreakerTransition{
		.at_ns = now_ns,
		.from = state_,
		.to = BreakerState::kClosed,
		.reason = BreakerReason::kProbesSucceeded,
		.calls = probes_succeeded_,
	});
	state_ = BreakerState::kClosed;
	window_.clear();
}

void Breaker::evaluate_closed(uint64_t now_ns)
{
	Bucket total;
	window_.for_each(now_ns, [&](const Bucket &b) {
		total.calls += b.calls;
		total.errors += b.errors;
		total.slow += b.slow;
	});
	if (total.calls < config_.min_calls)
		return;
	const double calls = static_cast<double>(total.calls);
	const BreakerTransition counts{.calls = total.calls, .errors = total.errors, .slow = total.slow};
	if (config_.error_ratio) {
		const double ratio = static_cast<double>(total.errors) / calls;
		if (ratio >= *config_.error_ratio) {
			BreakerTransition t = counts;
			t.reason = BreakerReason::kErrorRatio;
			t.ratio = ratio;
			t.threshold = *config_.error_ratio;
			open(now_ns, t);
			return;
		}
	}
	if (config_.slow_ratio) {
		const double ratio = static_cast<double>(total.slow) / calls;
		if (ratio >= *config_.slow_ratio) {
			BreakerTransition t = counts;
			t.reason = BreakerReason::kSlowRatio;
			t.ratio = ratio;
			t.threshold = *config_.slow_ratio;
			open(now_ns, t);
		}
	}
}

void Breaker::record(uint64_t now_ns, const TickStats &tick)
{
	advance(now_ns);
	switch (state_) {
	case BreakerState::kClosed: {
		Bucket &bucket = window_.current(now_ns);
		bucket.calls += tick.completed;
		bucket.errors += tick.errors;
		bucket.slow += tick.slow;
		evaluate_closed(now_ns);
		return;
	}
	case BreakerState::kOpen:
		return;
	case BreakerState::kHalfOpen: {
		const bool failed = tick.errors > 0 || (config_.slow_ratio && tick.slow > 0);
		if (failed) {
			open(now_ns, BreakerTransition{
					     .reason = BreakerReason::kProbeFailed,
					     .calls = tick.completed,
					     .errors = tick.errors,
					     .slow = tick.slow,
				     });
			return;
		}
		probes_succeeded_ += tick.completed;
		if (probes_succeeded_ >= config_.probe_budget)
			close(now_ns);
		return;
	}
	}
}

bool Breaker::try_acquire(uint64_t now_ns)
{
	advance(now_ns);
	switch (state_) {
	case BreakerState::kClosed:
		return true;
	case BreakerState::kOpen:
		return false;
	case BreakerState::kHalfOpen:
		if (probes_admitted_ >= config_.probe_budget)
			return false;
		probes_admitted_++;
		return true;
	}
	return false;
}

void Breaker::on_complete(uint64_t now_ns, uint64_t rt_us, bool error)
{
	record(now_ns, TickStats{
			       .completed = 1,
			       .rt_sum_us = rt_us,
			       .rt_samples = 1,
			       .errors = error ? 1u : 0u,
			       .slow = rt_us > config_.slow_call_us ? 1u : 0u,
		       });
}

BreakerState Breaker::state(uint64_t now_ns)
{
	advance(now_ns);
	return state_;
}

std::vector<BreakerTransition> Breaker::take_transitions()
{
	return std::exchange(transitions_, {});
}

} // namespace sluice::algo
