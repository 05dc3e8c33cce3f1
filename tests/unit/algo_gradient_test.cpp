// Latency-gradient concurrency limit, in the style of Netflix
// concurrency-limits Gradient2Limit (and Envoy's gradient controller).
// GradientExact uses a config whose arithmetic is exact in binary (smoothing
// 0.5, EWMA factor 0.5 or 1/512) so every value can be checked by hand;
// GradientDefaults runs the documented defaults through controller ticks.
#include <gtest/gtest.h>

#include "algo/gradient.hpp"

namespace sluice::algo {
namespace {

constexpr uint64_t kMsUs = 1000;

// smoothing 0.5, queue 2, tolerance 1 (Gradient2's rule), EWMA factor
// 2 / (3 + 1) = 0.5, no warm-up averaging beyond the first sample.
GradientConfig exact_config()
{
	return GradientConfig{.initial_limit = 20, .min_limit = 10, .max_limit = 40, .smoothing = 0.5,
			      .queue_size = 2, .tolerance = 1.0, .long_window = 3, .warmup = 1};
}

// One saturated sample: the service holds as much as the limit allows.
uint32_t saturated(Gradient &g, uint64_t rtt_us)
{
	return g.on_sample(rtt_us, g.limit());
}

// One controller tick of 50 completions at rtt_us each, saturated.
uint32_t tick(Gradient &g, uint64_t rtt_us)
{
	return g.record(TickStats{.completed = 50, .rt_sum_us = 50 * rtt_us, .rt_samples = 50,
				  .in_flight = g.limit()});
}

// Flat latency: gradient 1, so each update adds queue * smoothing = 1.
TEST(GradientExact, SteadyLatencyGrowsByTheQueueAllowance)
{
	Gradient g(exact_config());
	EXPECT_EQ(saturated(g, 10 * kMsUs), 21u);
	EXPECT_DOUBLE_EQ(g.estimate(), 21.0);
	EXPECT_DOUBLE_EQ(g.long_rtt_us(), 10'000.0);
	EXPECT_DOUBLE_EQ(g.gradient(), 1.0);
	for (int i = 2; i <= 20; i++)
		saturated(g, 10 * kMsUs);
	EXPECT_EQ(g.limit(), 40u);
	saturated(g, 10 * kMsUs);
	EXPECT_EQ(g.limit(), 40u); // the maximum holds
}

// Latency doubles from 10 to 20 ms at limit 40:
//   long 15000, gradient 0.75,   estimate 40 * 0.75 + 2 = 32, smoothed 36
//   long 17500, gradient 0.875,  estimate 33.5,               smoothed 34.75
//   long 18750, gradient 0.9375, estimate 34.578125,          smoothed 34.6640625
// then the baseline has caught up and the limit grows again.
TEST(GradientExact, LatencyDoublingShrinksTheLimitInProportion)
{
	Gradient g(exact_config());
	for (int i = 0; i < 20; i++)
		saturated(g, 10 * kMsUs);
	ASSERT_EQ(g.limit(), 40u);

	saturated(g, 20 * kMsUs);
	EXPECT_DOUBLE_EQ(g.long_rtt_us(), 15'000.0);
	EXPECT_DOUBLE_EQ(g.short_rtt_us(), 20'000.0);
	EXPECT_DOUBLE_EQ(g.gradient(), 0.75);
	EXPECT_DOUBLE_EQ(g.estimate(), 36.0);
	saturated(g, 20 * kMsUs);
	EXPECT_DOUBLE_EQ(g.gradient(), 0.875);
	EXPECT_DOUBLE_EQ(g.estimate(), 34.75);
	saturated(g, 20 * kMsUs);
	EXPECT_DOUBLE_EQ(g.gradient(), 0.9375);
	EXPECT_DOUBLE_EQ(g.estimate(), 34.6640625);
	EXPECT_EQ(g.limit(), 34u);
}

// One outlier cannot cut the limit by more than half the estimate: a 4x jump
// against a slow baseline (factor 1/512) gives 10058.6 / 40000 -> 0.5.
TEST(GradientExact, TheGradientIsFlooredAtOneHalf)
{
	GradientConfig config = exact_config();
	config.long_window = 1023;
	Gradient g(config);
	saturated(g, 10 * kMsUs);
	ASSERT_DOUBLE_EQ(g.estimate(), 21.0);
	saturated(g, 40 * kMsUs);
	EXPECT_DOUBLE_EQ(g.long_rtt_us(), 10'000.0 + 30'000.0 / 512);
	EXPECT_DOUBLE_EQ(g.gradient(), 0.5);
	EXPECT_DOUBLE_EQ(g.estimate(), 16.75); // (21 + 21 * 0.5 + 2) / 2
}

// Gradient2: when latency recovers to under half the baseline, the baseline
// is cut by 10% on top of its EWMA step: 40000 -> EWMA 25000 -> 22500.
TEST(GradientExact, AnInflatedBaselineDecaysWhenLatencyRecovers)
{
	Gradient g(exact_config());
	saturated(g, 40 * kMsUs);
	ASSERT_DOUBLE_EQ(g.long_rtt_us(), 40'000.0);
	saturated(g, 10 * kMsUs);
	EXPECT_DOUBLE_EQ(g.long_rtt_us(), 22'500.0);
	EXPECT_DOUBLE_EQ(g.gradient(), 1.0);
	EXPECT_DOUBLE_EQ(g.estimate(), 22.0);
}

// Gradient2: "don't grow the limit if we are app limited" (inFlight < limit/2).
TEST(GradientExact, AnAppLimitedServiceDoesNotMoveTheLimit)
{
	Gradient g(exact_config());
	EXPECT_EQ(g.on_sample(10 * kMsUs, 9), 20u);
	EXPECT_DOUBLE_EQ(g.estimate(), 20.0);
	EXPECT_DOUBLE_EQ(g.long_rtt_us(), 10'000.0); // the baseline still learns
	EXPECT_EQ(g.on_sample(10 * kMsUs, 10), 21u);
}

// Defaults (limit 20..200, smoothing 0.2, queue 4, tolerance 1.5, long window
// 600, warm-up 10). Flat 10 ms ticks: +0.8 per tick, 200 after 226 ticks.
TEST(GradientDefaults, SteadyLatencyGrowsTheLimitToTheMaximum)
{
	Gradient g;
	EXPECT_EQ(g.limit(), 20u);
	for (int i = 0; i < 99; i++)
		tick(g, 10 * kMsUs);
	EXPECT_EQ(g.limit(), 99u); // 20 + 99 * 0.8 = 99.2
	for (int i = 99; i < 224; i++)
		tick(g, 10 * kMsUs);
	EXPECT_EQ(g.limit(), 199u); // 199.2
	tick(g, 10 * kMsUs);
	tick(g, 10 * kMsUs);
	EXPECT_EQ(g.limit(), 200u);
	for (int i = 0; i < 100; i++)
		tick(g, 10 * kMsUs);
	EXPECT_EQ(g.limit(), 200u);
	EXPECT_DOUBLE_EQ(g.long_rtt_us(), 10'000.0);
}

// At the maximum, latency doubles to 20 ms: the first tick's gradient is
// 1.5 * 10033.3 / 20000 = 0.7525, so 200 -> 0.8 * 200 + 0.2 * 154.5 = 190.9,
// and the limit keeps falling while the baseline lags.
TEST(GradientDefaults, LatencyDoublingShrinksTheLimit)
{
	Gradient g;
	for (int i = 0; i < 226; i++)
		tick(g, 10 * kMsUs);
	ASSERT_EQ(g.limit(), 200u);

	const uint32_t expected[] = {190, 182, 174, 166, 159, 152, 146, 140, 135, 129};
	for (uint32_t want : expected)
		EXPECT_EQ(tick(g, 20 * kMsUs), want);
	for (int i = 10; i < 30; i++)
		tick(g, 20 * kMsUs);
	EXPECT_EQ(g.limit(), 68u);
}

// Latency returns to 10 ms after 30 doubled ticks: the baseline (10.95 ms)
// is within tolerance, the gradient is 1 and the limit climbs back by 0.8 a
// tick, from 68.5 to the maximum in 165 ticks.
TEST(GradientDefaults, RecoveryGrowsTheLimitBackToTheMaximum)
{
	Gradient g;
	for (int i = 0; i < 226; i++)
		tick(g, 10 * kMsUs);
	for (int i = 0; i < 30; i++)
		tick(g, 20 * kMsUs);
	ASSERT_EQ(g.limit(), 68u);

	EXPECT_EQ(tick(g, 10 * kMsUs), 69u);
	EXPECT_DOUBLE_EQ(g.gradient(), 1.0);
	for (int i = 1; i < 164; i++)
		tick(g, 10 * kMsUs);
	EXPECT_EQ(g.limit(), 199u);
	EXPECT_EQ(tick(g, 10 * kMsUs), 200u);
}

// After a prolonged overload at 40 ms the baseline sits near 38.9 ms. When
// latency drops to 10 ms, the 0.9 cut brings it to 34950 us in one tick
// instead of the EWMA's 38834 us.
TEST(GradientDefaults, ABaselineInflatedByOverloadComesDownFast)
{
	Gradient g;
	for (int i = 0; i < 226; i++)
		tick(g, 10 * kMsUs);
	for (int i = 0; i < 1000; i++)
		tick(g, 40 * kMsUs);
	ASSERT_NEAR(g.long_rtt_us(), 38'929.7835, 1e-3);
	tick(g, 10 * kMsUs);
	EXPECT_NEAR(g.long_rtt_us(), 34'950.1602, 1e-3);
}

TEST(GradientDefaults, ATickWithoutRtSamplesChangesNothing)
{
	Gradient g;
	EXPECT_EQ(g.record(TickStats{.completed = 10, .in_flight = 20}), 20u);
	EXPECT_DOUBLE_EQ(g.long_rtt_us(), 0.0);
	EXPECT_DOUBLE_EQ(g.estimate(), 20.0);
}

TEST(GradientDefaults, RejectsBadConfigs)
{
	EXPECT_THROW(Gradient(GradientConfig{.min_limit = 0}), std::invalid_argument);
	EXPECT_THROW(Gradient(GradientConfig{.min_limit = 50, .max_limit = 40}), std::invalid_argument);
	EXPECT_THROW(Gradient(GradientConfig{.smoothing = 0}), std::invalid_argument);
	EXPECT_THROW(Gradient(GradientConfig{.tolerance = 0.9}), std::invalid_argument);
	EXPECT_THROW(Gradient(GradientConfig{.long_window = 0}), std::invalid_argument);
	EXPECT_THROW(Gradient(GradientConfig{.warmup = 0}), std::invalid_argument);
}

} // namespace
} // namespace sluice::algo
