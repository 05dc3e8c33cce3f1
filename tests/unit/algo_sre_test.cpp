// Google SRE adaptive throttling with kratos' sre breaker semantics.
// Scenarios: go-kratos/aegis circuitbreaker/sre/sre_test.go and
// conformance.md. kratos' tests use K = 2, a minimum of 100 requests and a
// window of 10 buckets of 100 ms; the clock is fake, in nanoseconds.
#include <gtest/gtest.h>

#include "algo/sre_throttle.hpp"

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

namespace sluice::algo {
namespace {

constexpr uint64_t kMs = kNsPerMs;
constexpr uint64_t kSec = kNsPerSec;

SreConfig kratos_test_config()
{
	return SreConfig{.k = 2.0, .min_requests = 100, .window_ns = kSec, .buckets = 10};
}

void mark(SreThrottle &sre, uint64_t now, uint64_t successes, uint64_t failures)
{
	for (uint64_t i = 0; i < successes; i++)
		sre.mark_success(now);
	for (uint64_t i = 0; i < failures; i++)
		sre.mark_failure(now);
}

// kratos testSREClose: only successes never throttle.
TEST(SreKratos, SuccessesNeverThrottle)
{
	SreThrottle sre(kratos_test_config());
	mark(sre, 0, 80, 0);
	EXPECT_EQ(sre.probability(0), 0.0); // 80 < minimum 100
	EXPECT_TRUE(sre.allow(0, 0.0));
	mark(sre, 10 * kMs, 120, 0);
	EXPECT_EQ(sre.requests(10 * kMs), 200u);
	EXPECT_EQ(sre.probability(10 * kMs), 0.0); // 200 - 2 * 200 < 0
	EXPECT_TRUE(sre.allow(10 * kMs, 0.0));
}

// kratos testSREOpen: 100 successes, then a flood of 10,000,000 failures
// (one aggregated record, as the controller would see it).
TEST(SreKratos, AFloodOfFailuresDrivesPTowardOne)
{
	SreThrottle sre(kratos_test_config());
	mark(sre, 0, 100, 0);
	EXPECT_TRUE(sre.allow(0, 0.0));
	sre.record(0, 10'000'000, 0);
	const double p = sre.probability(0);
	EXPECT_DOUBLE_EQ(p, (10'000'100.0 - 2 * 100.0) / 10'000'101.0); // 0.9999799...
	EXPECT_FALSE(sre.allow(0, 0.0));
	EXPECT_FALSE(sre.allow(0, 0.9999));
	EXPECT_TRUE(sre.allow(0, 0.99999)); // p stays below 1: a trickle still probes
}

// kratos testSREHalfOpen: the window forgets the flood after its length.
TEST(SreKratos, TheWindowResetsAfterItsLength)
{
	SreThrottle sre(kratos_test_config());
	sre.record(0, 10'000'000, 0);
	EXPECT_FALSE(sre.allow(0, 0.5));
	EXPECT_FALSE(sre.allow(kSec - 1, 0.5)); // bucket 0 still in the window
	EXPECT_EQ(sre.probability(kSec), 0.0);  // 1 s later it has expired
	EXPECT_EQ(sre.requests(kSec), 0u);
	EXPECT_TRUE(sre.allow(kSec, 0.0));
	sre.record(kSec, 10'000'000, 10'000'000);
	EXPECT_TRUE(sre.allow(kSec, 0.0));
}

// The window slides bucket by bucket: failures from the first half second
// expire while later successes remain.
TEST(SreKratos, OldBucketsExpireOneByOne)
{
	SreThrottle sre(kratos_test_config());
	sre.record(0, 300, 0);
	sre.record(500 * kMs, 100, 100);
	EXPECT_DOUBLE_EQ(sre.probability(900 * kMs), (400.0 - 200.0) / 401.0);
	EXPECT_EQ(sre.requests(kSec), 100u);
	EXPECT_EQ(sre.accepts(kSec), 100u);
	EXPECT_EQ(sre.probability(kSec), 0.0);
}

// kratos TestSRESelfProtection: below the minimum nothing is throttled.
TEST(SreKratos, NoThrottlingBelowTheMinimumRequestCount)
{
	SreThrottle sre(kratos_test_config());
	mark(sre, 0, 0, 99);
	EXPECT_EQ(sre.probability(0), 0.0);
	EXPECT_TRUE(sre.allow(0, 0.0));
	sre.mark_failure(0);
	EXPECT_DOUBLE_EQ(sre.probability(0), 100.0 / 101.0);
}

// conformance.md: draw stubbed to 0, K = 2, minimum 20.
TEST(SreConformance, DrawStubbedToZeroWithMinimumTwenty)
{
	const SreConfig config{.k = 2.0, .min_requests = 20, .window_ns = kSec, .buckets = 10};
	SreThrottle sre(config);
	mark(sre, 0, 0, 19);
	EXPECT_TRUE(sre.allow(0, 0.0)); // 19 < 20
	sre.mark_failure(0);
	EXPECT_DOUBLE_EQ(sre.probability(0), 20.0 / 21.0);
	EXPECT_FALSE(sre.allow(0, 0.0)); // the 20th failure throttles

	SreThrottle balanced(config);
	mark(balanced, 0, 10, 10);
	EXPECT_EQ(balanced.probability(0), 0.0); // 20 - 2 * 10 = 0
	EXPECT_TRUE(balanced.allow(0, 0.0));
	balanced.mark_failure(0);
	EXPECT_DOUBLE_EQ(balanced.probability(0), 1.0 / 22.0);
	EXPECT_FALSE(balanced.allow(0, 0.0)); // one more failure throttles
}

// A controller tick: 300 requests offered (100 of them refused by sluice),
// 200 completed, 100 of those failed -> accepts 100. Same p as per request.
TEST(SreThrottle, TickAggregatesMatchPerRequestCalls)
{
	SreThrottle tick(kratos_test_config());
	tick.record(0, TickStats{.requests = 300, .completed = 200, .errors = 100});
	EXPECT_EQ(tick.requests(0), 300u);
	EXPECT_EQ(tick.accepts(0), 100u);
	EXPECT_DOUBLE_EQ(tick.probability(0), 100.0 / 301.0);

	SreThrottle per_request(kratos_test_config());
	mark(per_request, 0, 100, 200);
	EXPECT_EQ(per_request.probability(0), tick.probability(0));
}

TEST(SreThrottle, CallableDrawIsComparedWithP)
{
	SreThrottle sre(kratos_test_config());
	sre.record(0, 300, 50); // p = (300 - 100) / 301
	int draws = 0;
	EXPECT_TRUE(sre.allow(0, [&] { draws++; return 0.67; }));  // 0.67 >= 0.6645
	EXPECT_FALSE(sre.allow(0, [&] { draws++; return 0.66; })); // 0.66 < 0.6645
	EXPECT_EQ(draws, 2);

	SreThrottle idle(kratos_test_config());
	EXPECT_TRUE(idle.allow(0, [&] { draws++; return 0.0; })); // p = 0: no draw taken
	EXPECT_EQ(draws, 2);
}

TEST(SreThrottle, SmallerKThrottlesEarlier)
{
	SreConfig config = kratos_test_config();
	config.k = 1.5;
	SreThrottle sre(config);
	sre.record(0, 200, 120); // K = 2 would give 0: 200 < 240
	EXPECT_DOUBLE_EQ(sre.probability(0), (200.0 - 180.0) / 201.0);
}

// Recovery after a total outage, as the controller and the kernel run it:
// 200 requests/s, p recomputed every 100 ms tick and applied to the next
// tick's requests. While everything fails, p = r / (r + 1) lets about one
// request per window through; once the server is back, each success lets
// about K more through in the next window, a chain reaction that can also
// die out (then the trickle starts it again). So the time to p = 0 is
// random with a tail: the e2e test's bound on it comes from here.
TEST(SreThrottle, AfterATotalOutageTheTrickleRestartsTheServiceWithinSeconds)
{
	constexpr int kPerTick = 20, kRecoveries = 10000;
	constexpr uint64_t kTick = 100 * kMs;
	std::mt19937_64 rng(20261207);
	std::uniform_real_distribution<double> draw(0.0, 1.0);
	std::vector<double> recovery_s;
	for (int run = 0; run < kRecoveries; run++) {
		SreThrottle sre(SreConfig{.k = 2.0, .min_requests = 20, .window_ns = kSec, .buckets = 10});
		uint64_t now = 0;
		double p = 0; // what the last tick wrote to the kernel
		auto tick = [&](bool server_ok) {
			int admitted = 0;
			for (int i = 0; i < kPerTick; i++)
				admitted += !(draw(rng) < p);
			now += kTick;
			sre.record(now, kPerTick, server_ok ? admitted : 0);
			p = sre.probability(now);
		};
		for (int i = 0; i < 30; i++)
			tick(false);
		ASSERT_GT(p, 0.99); // the trickle: r / (r + 1), about one request a second
		const uint64_t recovered = now;
		while (p > 0 && now - recovered < 60 * kSec)
			tick(true);
		recovery_s.push_back(double(now - recovered) / kSec);
	}
	std::sort(recovery_s.begin(), recovery_s.end());
	const double median = recovery_s[kRecoveries / 2], p999 = recovery_s[kRecoveries * 999 / 1000];
	std::printf("[ numbers  ] p = 0 again after: min %.1f s, median %.1f s, 99.9%% %.1f s, max %.1f s\n",
		    recovery_s.front(), median, p999, recovery_s.back());
	EXPECT_GE(recovery_s.front(), 1.0); // p falls gradually, never at once
	EXPECT_GT(median, 2.5);
	EXPECT_LT(median, 5.5);
	EXPECT_LT(recovery_s.back(), 20.0);
}

TEST(SreThrottle, RejectsANonPositiveK)
{
	EXPECT_THROW(SreThrottle(SreConfig{.k = 0}), std::invalid_argument);
	EXPECT_THROW(SreThrottle(SreConfig{.k = -1}), std::invalid_argument);
}

} // namespace
} // namespace sluice::algo
