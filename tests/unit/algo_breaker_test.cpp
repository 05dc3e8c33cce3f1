// Three-state circuit breaker. Scenarios from conformance.md: the error-ratio
// rule as resilience4j (CircuitBreakerStateMachine, failureRateThreshold), the
// slow-call rule and half-open probing as Sentinel (ResponseTimeCircuitBreaker,
// AbstractCircuitBreaker). Time is a fake clock in nanoseconds.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "algo/breaker.hpp"

namespace sluice::algo {
namespace {

constexpr uint64_t kMs = kNsPerMs;
constexpr uint64_t kSec = kNsPerSec;

// resilience4j-style: minimum 5 calls, open at >= 50% failures, 5 s open.
BreakerConfig error_ratio_config()
{
	return BreakerConfig{.window_ns = 10 * kSec, .buckets = 10, .min_calls = 5, .error_ratio = 0.5,
			     .open_ns = 5 * kSec, .probe_budget = 1};
}

// Sentinel-style: slow if RT > 10 ms, minimum 3 calls, ratio 1.0, 5 s open.
BreakerConfig slow_ratio_config()
{
	return BreakerConfig{.window_ns = 10 * kSec, .buckets = 10, .min_calls = 3,
			     .error_ratio = std::nullopt, .slow_ratio = 1.0, .slow_call_us = 10'000,
			     .open_ns = 5 * kSec, .probe_budget = 1};
}

// One call through the per-request path: acquire at now, complete 1 ms later.
bool call(Breaker &b, uint64_t now, bool error, uint64_t rt_us = 1000)
{
	if (!b.try_acquire(now))
		return false;
	b.on_complete(now + kMs, rt_us, error);
	return true;
}

std::vector<std::string> lines(Breaker &b)
{
	std::vector<std::string> out;
	for (const BreakerTransition &t : b.take_transitions())
		out.push_back(describe(t, b.config()));
	return out;
}

// resilience4j: F, F, F, S, S -> 60% failures over 5 calls -> OPEN; the next
// acquire is refused.
TEST(BreakerResilience4j, SixtyPercentFailuresOpen)
{
	Breaker b(error_ratio_config());
	const bool outcomes[] = {true, true, true, false, false};
	for (int i = 0; i < 5; i++) {
		EXPECT_EQ(b.state(i * 10 * kMs), BreakerState::kClosed) << "before call " << i;
		ASSERT_TRUE(call(b, i * 10 * kMs, outcomes[i]));
	}
	EXPECT_EQ(b.state(), BreakerState::kOpen);
	EXPECT_FALSE(b.try_acquire(50 * kMs));

	const std::vector<BreakerTransition> ts = b.take_transitions();
	ASSERT_EQ(ts.size(), 1u);
	EXPECT_EQ(ts[0].at_ns, 41 * kMs); // the fifth completion
	EXPECT_EQ(ts[0].from, BreakerState::kClosed);
	EXPECT_EQ(ts[0].to, BreakerState::kOpen);
	EXPECT_EQ(ts[0].reason, BreakerReason::kErrorRatio);
	EXPECT_EQ(ts[0].calls, 5u);
	EXPECT_EQ(ts[0].errors, 3u);
	EXPECT_DOUBLE_EQ(ts[0].ratio, 0.6);
	EXPECT_EQ(describe(ts[0], b.config()),
		  "CLOSED -> OPEN: error ratio 0.600 >= 0.500 over 5 calls (3 errors, 0 slow); open for 5000 ms");
	EXPECT_EQ(b.open_until_ns(), 41 * kMs + 5 * kSec);
}

// The same outcomes as one controller tick open the breaker identically.
TEST(BreakerResilience4j, OneTickOfAggregatesOpensTheSame)
{
	Breaker b(error_ratio_config());
	b.record(41 * kMs, TickStats{.completed = 5, .errors = 3});
	EXPECT_EQ(b.state(), BreakerState::kOpen);
	EXPECT_EQ(lines(b), (std::vector<std::string>{
				    "CLOSED -> OPEN: error ratio 0.600 >= 0.500 over 5 calls (3 errors, 0 slow); open for 5000 ms"}));
}

// resilience4j: the threshold is inclusive; below it, or below the minimum
// volume, the breaker stays closed.
TEST(BreakerResilience4j, ThresholdIsInclusiveAndNeedsMinimumVolume)
{
	Breaker below(error_ratio_config());
	below.record(0, TickStats{.completed = 5, .errors = 2}); // 40%
	EXPECT_EQ(below.state(0), BreakerState::kClosed);

	Breaker too_few(error_ratio_config());
	too_few.record(0, TickStats{.completed = 4, .errors = 4}); // 100% of 4 < 5 calls
	EXPECT_EQ(too_few.state(0), BreakerState::kClosed);

	Breaker at(error_ratio_config());
	at.record(0, TickStats{.completed = 6, .errors = 3}); // exactly 50%
	EXPECT_EQ(at.state(0), BreakerState::kOpen);
}

// Errors older than the window no longer count.
TEST(BreakerResilience4j, ErrorsExpireWithTheWindow)
{
	Breaker b(error_ratio_config());
	b.record(0, TickStats{.completed = 3, .errors = 3});
	b.record(10 * kSec, TickStats{.completed = 2}); // bucket 0 has expired
	EXPECT_EQ(b.state(10 * kSec), BreakerState::kClosed);
	b.record(10 * kSec, TickStats{.completed = 3, .errors = 2}); // 2 of 5 = 40%
	EXPECT_EQ(b.state(10 * kSec), BreakerState::kClosed);
	b.record(11 * kSec, TickStats{.completed = 1, .errors = 1}); // 3 of 6 = 50%
	EXPECT_EQ(b.state(11 * kSec), BreakerState::kOpen);
}

// Sentinel: three 20 ms calls (slow: > 10 ms) pass, the 4th is refused, still
// refused 1 s later, and a probe passes at +5 s.
TEST(BreakerSentinel, SlowCallRatioOpensThenProbesAfterTheOpenInterval)
{
	Breaker b(slow_ratio_config());
	for (uint64_t i = 0; i < 3; i++) {
		ASSERT_TRUE(b.try_acquire(i * kMs)) << "call " << i;
		b.on_complete(i * kMs + 20 * kMs, 20'000, false);
	}
	const uint64_t opened = 22 * kMs; // third completion
	EXPECT_EQ(b.state(), BreakerState::kOpen);
	EXPECT_FALSE(b.try_acquire(opened));
	EXPECT_FALSE(b.try_acquire(opened + kSec));
	EXPECT_FALSE(b.try_acquire(opened + 5 * kSec - 1));
	EXPECT_TRUE(b.try_acquire(opened + 5 * kSec)); // the probe
	EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
	EXPECT_FALSE(b.try_acquire(opened + 5 * kSec)); // one probe only

	EXPECT_EQ(lines(b), (std::vector<std::string>{
				    "CLOSED -> OPEN: slow-call ratio 1.000 >= 1.000 over 3 calls (0 errors, 3 slow); open for 5000 ms",
				    "OPEN -> HALF_OPEN: open for 5000 ms; 1 probes allowed",
			    }));
}

// Sentinel counts a call as slow only when RT > maxAllowedRt.
TEST(BreakerSentinel, ACallAtExactlyTheSlowThresholdIsNotSlow)
{
	Breaker b(slow_ratio_config());
	for (uint64_t i = 0; i < 3; i++)
		ASSERT_TRUE(call(b, i * kMs, false, 10'000));
	EXPECT_EQ(b.state(10 * kMs), BreakerState::kClosed);
	ASSERT_TRUE(call(b, 10 * kMs, false, 10'001)); // 1 slow of 4
	EXPECT_EQ(b.state(20 * kMs), BreakerState::kClosed);
}

// A failed probe reopens for another full open interval, from the failure.
TEST(BreakerHalfOpen, AFailedProbeReopensForAFullInterval)
{
	Breaker b(error_ratio_config());
	b.record(0, TickStats{.completed = 5, .errors = 5});
	ASSERT_TRUE(b.try_acquire(5 * kSec)); // probe
	b.on_complete(5 * kSec + 30 * kMs, 30'000, true);
	EXPECT_EQ(b.state(), BreakerState::kOpen);
	EXPECT_EQ(b.open_until_ns(), 10 * kSec + 30 * kMs);
	EXPECT_FALSE(b.try_acquire(10 * kSec + 30 * kMs - 1));
	EXPECT_TRUE(b.try_acquire(10 * kSec + 30 * kMs));

	EXPECT_EQ(lines(b), (std::vector<std::string>{
				    "CLOSED -> OPEN: error ratio 1.000 >= 0.500 over 5 calls (5 errors, 0 slow); open for 5000 ms",
				    "OPEN -> HALF_OPEN: open for 5000 ms; 1 probes allowed",
				    "HALF_OPEN -> OPEN: probe failed (1 completions: 1 errors, 0 slow); open for 5000 ms",
				    "OPEN -> HALF_OPEN: open for 5000 ms; 1 probes allowed",
			    }));
}

// A successful probe closes and resets the counts: the 3 failures from before
// the trip (still inside the 10 s window) no longer count.
TEST(BreakerHalfOpen, ASuccessfulProbeClosesAndResetsTheCounts)
{
	Breaker b(error_ratio_config());
	b.record(0, TickStats{.completed = 5, .errors = 3});
	ASSERT_EQ(b.state(0), BreakerState::kOpen);
	ASSERT_TRUE(b.try_acquire(5 * kSec));
	b.on_complete(5 * kSec + kMs, 1000, false);
	EXPECT_EQ(b.state(), BreakerState::kClosed);

	// Without the reset the first of these would have tripped (4 of 6).
	for (uint64_t i = 0; i < 4; i++)
		ASSERT_TRUE(call(b, 6 * kSec + i * kMs, true));
	EXPECT_EQ(b.state(7 * kSec), BreakerState::kClosed); // 4 calls < minimum 5
	ASSERT_TRUE(call(b, 7 * kSec, false));
	EXPECT_EQ(b.state(), BreakerState::kOpen); // 4 of 5

	const std::vector<std::string> log = lines(b);
	ASSERT_EQ(log.size(), 4u);
	EXPECT_EQ(log[2], "HALF_OPEN -> CLOSED: 1 probes succeeded; counts reset");
	EXPECT_EQ(log[3], "CLOSED -> OPEN: error ratio 0.800 >= 0.500 over 5 calls (4 errors, 0 slow); open for 5000 ms");
}

// Sentinel-go ProbeNum: with a budget of 3, three probes are admitted and all
// three must succeed before the breaker closes.
TEST(BreakerHalfOpen, AProbeBudgetAdmitsThatManyAndNeedsThemAll)
{
	BreakerConfig config = error_ratio_config();
	config.probe_budget = 3;
	Breaker b(config);
	b.record(0, TickStats{.completed = 5, .errors = 5});
	const uint64_t t = 5 * kSec;
	EXPECT_EQ(b.probe_budget(), 0u); // still OPEN until asked at t
	EXPECT_EQ(b.state(t), BreakerState::kHalfOpen);
	EXPECT_EQ(b.probe_budget(), 3u);
	EXPECT_TRUE(b.try_acquire(t));
	EXPECT_TRUE(b.try_acquire(t));
	EXPECT_TRUE(b.try_acquire(t));
	EXPECT_FALSE(b.try_acquire(t));
	b.on_complete(t + kMs, 1000, false);
	b.on_complete(t + kMs, 1000, false);
	EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
	b.on_complete(t + kMs, 1000, false);
	EXPECT_EQ(b.state(), BreakerState::kClosed);
	EXPECT_EQ(b.probe_budget(), 0u);
	EXPECT_EQ(lines(b).back(), "HALF_OPEN -> CLOSED: 3 probes succeeded; counts reset");
}

// A slow probe fails only when the slow-call rule is on.
TEST(BreakerHalfOpen, ASlowProbeFailsOnlyUnderTheSlowRule)
{
	BreakerConfig errors_only = error_ratio_config();
	errors_only.slow_call_us = 10'000;
	Breaker e(errors_only);
	e.record(0, TickStats{.completed = 5, .errors = 5});
	ASSERT_TRUE(e.try_acquire(5 * kSec));
	e.on_complete(5 * kSec + 50 * kMs, 50'000, false);
	EXPECT_EQ(e.state(), BreakerState::kClosed);

	Breaker s(slow_ratio_config());
	s.record(0, TickStats{.completed = 3, .slow = 3});
	ASSERT_TRUE(s.try_acquire(5 * kSec));
	s.on_complete(5 * kSec + 50 * kMs, 50'000, false);
	EXPECT_EQ(s.state(), BreakerState::kOpen);
}

// The controller's view: aggregates per tick, state and probe budget for the
// kernel, one log line per transition.
TEST(BreakerController, TickByTickLifecycle)
{
	BreakerConfig config = error_ratio_config();
	config.probe_budget = 2;
	Breaker b(config);
	const uint64_t tick = 100 * kMs;

	b.record(1 * tick, TickStats{.completed = 40, .errors = 4});
	EXPECT_EQ(b.state(1 * tick), BreakerState::kClosed);
	b.record(2 * tick, TickStats{.completed = 40, .errors = 40}); // 44 of 80
	EXPECT_EQ(b.state(2 * tick), BreakerState::kOpen);
	EXPECT_EQ(b.probe_budget(), 0u);

	// Late answers of work admitted before the trip change nothing while OPEN.
	b.record(3 * tick, TickStats{.completed = 10, .errors = 10});
	EXPECT_EQ(b.open_until_ns(), 2 * tick + 5 * kSec);

	EXPECT_EQ(b.state(2 * tick + 5 * kSec), BreakerState::kHalfOpen);
	EXPECT_EQ(b.probe_budget(), 2u); // the kernel may admit two
	b.record(2 * tick + 5 * kSec + tick, TickStats{.completed = 1});
	EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
	b.record(2 * tick + 5 * kSec + 2 * tick, TickStats{.completed = 1});
	EXPECT_EQ(b.state(), BreakerState::kClosed);

	EXPECT_EQ(lines(b), (std::vector<std::string>{
				    "CLOSED -> OPEN: error ratio 0.550 >= 0.500 over 80 calls (44 errors, 0 slow); open for 5000 ms",
				    "OPEN -> HALF_OPEN: open for 5000 ms; 2 probes allowed",
				    "HALF_OPEN -> CLOSED: 2 probes succeeded; counts reset",
			    }));
	EXPECT_TRUE(b.take_transitions().empty()); // drained
}

TEST(BreakerController, ErrorRuleIsCheckedBeforeSlowRule)
{
	BreakerConfig config = error_ratio_config();
	config.slow_ratio = 0.5;
	Breaker b(config);
	b.record(0, TickStats{.completed = 10, .errors = 6, .slow = 9});
	const std::vector<BreakerTransition> ts = b.take_transitions();
	ASSERT_EQ(ts.size(), 1u);
	EXPECT_EQ(ts[0].reason, BreakerReason::kErrorRatio);
	EXPECT_EQ(ts[0].slow, 9u);
}

TEST(BreakerController, RejectsMeaninglessConfigs)
{
	BreakerConfig c = error_ratio_config();
	c.error_ratio = 0.0;
	EXPECT_THROW(Breaker{c}, std::invalid_argument);
	c = error_ratio_config();
	c.slow_ratio = 1.5;
	EXPECT_THROW(Breaker{c}, std::invalid_argument);
	c = error_ratio_config();
	c.probe_budget = 0;
	EXPECT_THROW(Breaker{c}, std::invalid_argument);
	c = error_ratio_config();
	c.min_calls = 0;
	EXPECT_THROW(Breaker{c}, std::invalid_argument);
}

} // namespace
} // namespace sluice::algo
