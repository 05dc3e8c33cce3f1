// Conformance of the token-bucket models with golang.org/x/time/rate (the
// scenarios of its rate_test.go, see /work/shared/conformance.md), run on
// TokenBucket and, where the scenario applies, on Gcra, the user-space twin
// of the data path's GCRA. Times are exact nanoseconds under a fake clock.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <latch>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "algo/gcra.hpp"
#include "algo/token_bucket.hpp"

using sluice::algo::Gcra;
using sluice::algo::TokenBucket;

namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSecond = 1'000 * kMs;

// x/time/rate's tick d = 100 ms; t0 is an arbitrary non-zero start.
constexpr uint64_t kD = 100 * kMs;
constexpr uint64_t kT0 = 7 * kSecond;
constexpr uint64_t t(uint64_t i) { return kT0 + i * kD; }

// r = 10/s is one token every 100 ms.
constexpr uint64_t kTenPerSecond = 100 * kMs;

struct Step {
	uint64_t now;
	uint64_t n;
	bool ok;
};

void run(TokenBucket &tb, const std::vector<Step> &steps)
{
	for (size_t i = 0; i < steps.size(); i++)
		EXPECT_EQ(tb.allow_n(steps[i].now, steps[i].n), steps[i].ok) << "step " << i;
}

// Gcra takes one unit at a time, as the data path does.
void run(Gcra &g, const std::vector<Step> &steps)
{
	for (size_t i = 0; i < steps.size(); i++) {
		ASSERT_EQ(steps[i].n, 1u) << "step " << i;
		EXPECT_EQ(g.allow(steps[i].now), steps[i].ok) << "step " << i;
	}
}

} // namespace

// x/time/rate TestLimiterBurst1: r = 10/s, b = 1.
TEST(AlgoTokenBucket, XTimeRateBurst1)
{
	TokenBucket tb(kTenPerSecond, 1);
	run(tb, {
			{t(0), 1, true},
			{t(0), 1, false},
			{t(0), 1, false},
			{t(1), 1, true},
			{t(1), 1, false},
			{t(1), 1, false},
			{t(2), 2, false}, // n > b: refused however full the bucket is
			{t(2), 1, true},
			{t(2), 1, false},
		});
}

// The same scenario on the data path's arithmetic (AllowN has no kernel
// counterpart: the kernel charges one unit per admission).
TEST(AlgoGcraBucket, XTimeRateBurst1)
{
	Gcra g(Gcra::make_rate(kTenPerSecond, 1));
	run(g, {
		       {t(0), 1, true},
		       {t(0), 1, false},
		       {t(0), 1, false},
		       {t(1), 1, true},
		       {t(1), 1, false},
		       {t(1), 1, false},
		       {t(2), 1, true},
		       {t(2), 1, false},
	       });
}

// x/time/rate TestLimiterBurst3: r = 10/s, b = 3, with AllowN of 2, 4, 3, 0.
TEST(AlgoTokenBucket, XTimeRateBurst3)
{
	TokenBucket tb(kTenPerSecond, 3);
	run(tb, {
			{t(0), 2, true},
			{t(0), 2, false},
			{t(0), 1, true},
			{t(0), 1, false},
			{t(1), 4, false},
			{t(2), 1, true},
			{t(3), 1, true},
			{t(4), 1, true},
			{t(4), 1, true},
			{t(4), 1, false},
			{t(4), 1, false},
			{t(9), 3, true},
			{t(9), 0, true},
		});
}

// x/time/rate TestZeroBurst: b = 0 refuses everything.
TEST(AlgoTokenBucket, XTimeRateZeroBurstRefusesAll)
{
	TokenBucket tb(kTenPerSecond, 0);
	Gcra g(Gcra::make_rate(kTenPerSecond, 0));
	for (uint64_t i : {0, 0, 3, 1000}) {
		EXPECT_FALSE(tb.allow(t(i)));
		EXPECT_FALSE(g.allow(t(i)));
	}
	EXPECT_TRUE(tb.allow_n(t(5), 0)); // taking nothing always succeeds
}

// x/time/rate TestLimiterJumpBackwards: r = 10/s, b = 3. At t1 the bucket
// holds 3 tokens and gives one; asked at t0 it still holds 2 (no refill, no
// underflow) and gives them; back at t1 it has refilled one token from t0.
TEST(AlgoTokenBucket, XTimeRateJumpBackwards)
{
	TokenBucket tb(kTenPerSecond, 3);
	EXPECT_EQ(tb.tokens_at(t(1)), 3.0);
	EXPECT_TRUE(tb.allow(t(1)));
	EXPECT_EQ(tb.tokens_at(t(0)), 2.0); // backwards: nothing refilled, nothing lost
	run(tb, {
			{t(0), 1, true},
			{t(0), 1, true},
			{t(0), 1, false},
			{t(0), 1, false},
			{t(1), 1, true}, // refilled from t0 again: x/time/rate moved `last` back
			{t(1), 1, false},
			{t(1), 1, false},
			{t(2), 1, true},
			{t(2), 1, false},
			{t(2), 1, false},
		});
	EXPECT_EQ(tb.tokens_at(t(2)), 0.0);
}

// Sluice's documented difference: GCRA derives tokens from `now`, so asked at
// t0 after taking one at t1 it sees one token less than x/time/rate (1, not
// 2). It admits one unit fewer at t0, never more, and its TAT never moves
// back, so nothing underflows.
TEST(AlgoGcraBucket, JumpBackwardsSeesFewerTokensNeverMore)
{
	Gcra g(Gcra::make_rate(kTenPerSecond, 3));
	EXPECT_EQ(g.tokens_at(t(1)), 3.0);
	EXPECT_TRUE(g.allow(t(1)));
	EXPECT_EQ(g.tat_ns(), t(2));
	EXPECT_EQ(g.tokens_at(t(1)), 2.0);
	EXPECT_EQ(g.tokens_at(t(0)), 1.0); // x/time/rate: 2.0 (see XTimeRateJumpBackwards)
	run(g, {
		       {t(0), 1, true},
		       {t(0), 1, false}, // x/time/rate: true
		       {t(0), 1, false},
		       {t(0), 1, false},
		       {t(1), 1, true},
		       {t(1), 1, false},
		       {t(1), 1, false},
		       {t(2), 1, true},
		       {t(2), 1, false},
		       {t(2), 1, false},
	       });
	EXPECT_EQ(g.tat_ns(), t(5));
	EXPECT_EQ(g.tokens_at(t(0)), 0.0); // TAT 500 ms ahead of t0: clamped at 0, no underflow
}

// Under an arbitrary clock, GCRA never admits more than
// burst + (latest - earliest now) / interval, and its TAT never decreases.
// x/time/rate can: alternating t1, t0 re-refills the same 100 ms.
TEST(AlgoGcraBucket, BackwardsClockNeverOverAdmits)
{
	{
		TokenBucket tb(kTenPerSecond, 3);
		Gcra g(Gcra::make_rate(kTenPerSecond, 3));
		int tb_ok = 0, g_ok = 0;
		for (int i = 0; i < 10; i++) {
			uint64_t now = i % 2 ? t(0) : t(1);
			tb_ok += tb.allow(now);
			g_ok += g.allow(now);
		}
		EXPECT_EQ(tb_ok, 5); // more than b + span / interval = 4: x/time/rate's behaviour
		EXPECT_EQ(g_ok, 3);  // t1, t0, t1; then the TAT runs 400 ms ahead of t1
	}

	std::mt19937_64 rng(20240601);
	for (int round = 0; round < 200; round++) {
		uint64_t interval = 1 + rng() % (10 * kMs);
		uint32_t burst = uint32_t(rng() % 20);
		Gcra g(Gcra::make_rate(interval, burst));
		uint64_t lo = UINT64_MAX, hi = 0, admitted = 0, tat = g.tat_ns();
		uint64_t now = kSecond + rng() % kSecond;
		for (int i = 0; i < 500; i++) {
			// Mostly forward, sometimes a jump back of up to 5 intervals.
			uint64_t step = rng() % (2 * interval);
			now = rng() % 4 == 0 ? now - std::min(now, rng() % (5 * interval)) : now + step;
			lo = std::min(lo, now);
			hi = std::max(hi, now);
			admitted += g.allow(now);
			ASSERT_GE(g.tat_ns(), tat) << "round " << round << " arrival " << i;
			tat = g.tat_ns();
			ASSERT_LE(admitted, burst + (hi - lo) / interval) << "round " << round << " arrival " << i;
		}
	}
}

// x/time/rate: r = 0, b = 1: the first Allow succeeds, then never again.
TEST(AlgoTokenBucket, XTimeRateZeroRate)
{
	TokenBucket tb(TokenBucket::kZeroRate, 1);
	EXPECT_TRUE(tb.allow(t(0)));
	for (uint64_t later : {uint64_t(0), uint64_t(1), kSecond, 3600 * kSecond, uint64_t(1e18),
			       UINT64_MAX - t(0)})
		EXPECT_FALSE(tb.allow(t(0) + later)) << "at +" << later << " ns";

	// Its burst is all a zero-rate bucket ever grants (x/time/rate's
	// lim.burst -= n), even when burst * interval exceeds 64 bits.
	TokenBucket three(TokenBucket::kZeroRate, 3);
	EXPECT_EQ(three.tokens_at(0), 3.0);
	EXPECT_TRUE(three.allow(0));
	EXPECT_TRUE(three.allow_n(UINT64_MAX, 2));
	EXPECT_FALSE(three.allow(UINT64_MAX));
}

// x/time/rate: r = 1e-10/s, b = 1 is one token every 1e19 ns (317 years).
TEST(AlgoTokenBucket, XTimeRateNearZeroRate)
{
	constexpr uint64_t kInterval = 10'000'000'000'000'000'000u; // 1 / 1e-10 s
	TokenBucket tb(kInterval, 1);
	EXPECT_TRUE(tb.allow(t(0)));
	for (uint64_t later : {uint64_t(0), kSecond, 3600 * kSecond, uint64_t(1e18)})
		EXPECT_FALSE(tb.allow(t(0) + later)) << "at +" << later << " ns";
	EXPECT_TRUE(tb.allow(t(0) + kInterval)); // and it does refill, after 317 years
}

// Gcra cannot represent rate 0 or 1e-10/s: TAT + interval would wrap 64 bits
// and over-admit. It refuses such rates; the slowest it takes behaves as
// "first true, then false" over any realistic horizon.
TEST(AlgoGcraBucket, ZeroRateIsRejectedSlowestRateWorks)
{
	EXPECT_THROW(Gcra(Gcra::make_rate(UINT64_MAX, 1)), std::invalid_argument);
	EXPECT_THROW(Gcra(Gcra::make_rate(10'000'000'000'000'000'000u, 1)), std::invalid_argument);
	EXPECT_THROW(Gcra::make_rate(uint64_t(1) << 40, 1u << 30), std::invalid_argument);

	Gcra slowest(Gcra::make_rate(Gcra::kMaxSpanNs / 2, 1)); // one per 146 years
	EXPECT_TRUE(slowest.allow(t(0)));
	for (uint64_t later : {uint64_t(0), kSecond, 3600 * kSecond, uint64_t(1e18)})
		EXPECT_FALSE(slowest.allow(t(0) + later)) << "at +" << later << " ns";
}

// interval 0 is "unlimited" in sl_rate and for TokenBucket (x/time/rate Inf).
TEST(AlgoTokenBucket, UnlimitedAllowsEverything)
{
	TokenBucket tb(TokenBucket::kUnlimited, 0);
	Gcra g(Gcra::make_rate(0, 0));
	for (int i = 0; i < 1000; i++) {
		EXPECT_TRUE(tb.allow_n(t(0), 1000));
		EXPECT_TRUE(g.allow(t(0)));
	}
	EXPECT_EQ(g.tat_ns(), 0u);
}

// x/time/rate TestSimultaneousRequests: 15 concurrent Allow on r = 1, b = 5
// succeed exactly 5 times. Real threads, released together, many rounds.
template <typename Make> void simultaneous(Make make)
{
	constexpr int kRequests = 15;
	for (int round = 0; round < 50; round++) {
		auto bucket = make();
		std::atomic<int> ok{0};
		std::latch go(kRequests);
		std::vector<std::thread> threads;
		for (int i = 0; i < kRequests; i++)
			threads.emplace_back([&] {
				go.arrive_and_wait();
				if (bucket->allow(t(0)))
					ok++;
			});
		for (auto &th : threads)
			th.join();
		ASSERT_EQ(ok.load(), 5) << "round " << round;
	}
}

TEST(AlgoTokenBucket, XTimeRateSimultaneousRequests)
{
	simultaneous([] { return std::make_unique<TokenBucket>(kSecond, 5); });
}

TEST(AlgoGcraBucket, XTimeRateSimultaneousRequests)
{
	simultaneous([] { return std::make_unique<Gcra>(Gcra::make_rate(kSecond, 5)); });
}

// x/time/rate TestLongRunningQPS under a fake clock: one Allow every 2 ms for
// 5 s on r = 100, b = 100. ideal = b + r * elapsed = 600; the Go test wants
// int(0.999 * ideal) <= admitted <= int(ideal + 1). Integer nanoseconds make
// it exact: the last arrival, at 4.998 s, finds 100 + 499 tokens granted.
TEST(AlgoTokenBucket, XTimeRateLongRunningQps)
{
	constexpr uint64_t kInterval = 10 * kMs; // r = 100
	constexpr uint64_t kElapsed = 5 * kSecond;
	TokenBucket tb(kInterval, 100);
	Gcra g(Gcra::make_rate(kInterval, 100));
	int tb_ok = 0, g_ok = 0;
	for (uint64_t now = kT0; now < kT0 + kElapsed; now += 2 * kMs) {
		tb_ok += tb.allow(now);
		g_ok += g.allow(now);
	}
	double ideal = 100 + 100 * double(kElapsed) / double(kSecond);
	EXPECT_LE(tb_ok, int(ideal + 1));
	EXPECT_GE(tb_ok, int(0.999 * ideal));
	EXPECT_EQ(tb_ok, 599);
	EXPECT_EQ(g_ok, 599);
}

// The equivalence the kernel comparison rests on: for random rates and
// non-decreasing random arrivals, TokenBucket and Gcra agree on every
// verdict and on the tokens left after it.
TEST(AlgoGcraBucket, RandomizedEquivalenceWithTokenBucket)
{
	int admitted = 0, refused = 0;
	for (uint64_t seed : {1u, 2u, 3u, 42u, 1234567u}) {
		std::mt19937_64 rng(seed);
		for (int config = 0; config < 60; config++) {
			// Intervals from 1 ns to 10 s, bursts 0..1000, arrivals from
			// dense (many at one instant) to sparse (idle refills).
			uint64_t interval = 1 + rng() % (uint64_t(1) << (rng() % 34));
			uint32_t burst = uint32_t(rng() % (rng() % 2 ? 4 : 1001));
			uint64_t max_gap = (interval * 3) >> (rng() % 4);
			TokenBucket tb(interval, burst);
			Gcra g(Gcra::make_rate(interval, burst));
			uint64_t now = rng() % (1000 * kSecond);
			for (int i = 0; i < 2000; i++) {
				if (rng() % 3)
					now += rng() % (max_gap + 1);
				bool tb_ok = tb.allow(now);
				ASSERT_EQ(g.allow(now), tb_ok)
					<< "seed " << seed << " config " << config << " interval " << interval
					<< " burst " << burst << " arrival " << i << " now " << now;
				ASSERT_EQ(g.tokens_at(now), tb.tokens_at(now))
					<< "seed " << seed << " config " << config << " arrival " << i;
				(tb_ok ? admitted : refused)++;
			}
		}
	}
	// The generator must exercise both verdicts, or the test proves nothing.
	EXPECT_GT(admitted, 100'000);
	EXPECT_GT(refused, 100'000);
}

TEST(AlgoTokenBucket, TokensAtReportsWithoutTaking)
{
	TokenBucket tb(kTenPerSecond, 3);
	EXPECT_EQ(tb.tokens_at(t(0)), 3.0);
	EXPECT_EQ(tb.tokens_at(t(0)), 3.0);
	EXPECT_TRUE(tb.allow_n(t(0), 3));
	EXPECT_EQ(tb.tokens_at(t(0)), 0.0);
	EXPECT_EQ(tb.tokens_at(t(0) + kD / 2), 0.5);
	EXPECT_EQ(tb.tokens_at(t(2)), 2.0);
	EXPECT_EQ(tb.tokens_at(t(100)), 3.0); // capped at burst
	EXPECT_EQ(tb.interval_ns(), kTenPerSecond);
	EXPECT_EQ(tb.burst(), 3u);
}

TEST(AlgoGcraBucket, MakeRateFillsToleranceAndStartsFull)
{
	sl_rate rate = Gcra::make_rate(kTenPerSecond, 3);
	EXPECT_EQ(rate.interval_ns, kTenPerSecond);
	EXPECT_EQ(rate.tolerance_ns, 3 * kTenPerSecond);
	EXPECT_EQ(rate.burst, 3u);

	Gcra g(rate);
	EXPECT_EQ(g.tat_ns(), 0u);
	EXPECT_EQ(g.tokens_at(0), 3.0);
	EXPECT_EQ(g.tokens_at(t(0)), 3.0);
	// A bucket restored from a saved TAT (controller restart) carries on.
	Gcra restored(rate, t(0) + 2 * kTenPerSecond);
	EXPECT_EQ(restored.tokens_at(t(0)), 1.0);
	EXPECT_TRUE(restored.allow(t(0)));
	EXPECT_FALSE(restored.allow(t(0)));
}
