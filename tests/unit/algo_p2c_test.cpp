// P2cBalancer against kratos' p2c + EWMA node (selector/p2c,
// selector/node/ewma; see /work/shared/conformance.md): each sentence of the
// conformance text, plus kratos' own node tests replayed under a fake clock,
// where their ranges become exact values.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <deque>
#include <latch>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "algo/p2c.hpp"

using sluice::algo::P2cBalancer;

namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSecond = 1'000 * kMs;

// Hands out scripted draws; a test fails if it asks for more or a draw does
// not fit the bound.
struct Script {
	std::deque<uint64_t> draws;
	P2cBalancer::Random source()
	{
		return [this](uint64_t bound) {
			if (draws.empty()) {
				ADD_FAILURE() << "unexpected random draw (bound " << bound << ")";
				return uint64_t(0);
			}
			uint64_t v = draws.front();
			draws.pop_front();
			EXPECT_LT(v, bound);
			return v;
		};
	}
};

// weight = health * 1 s / (latency * (inflight + 1))
double weight(double health, double latency_ns, uint64_t inflight)
{
	return health * 1e9 / (latency_ns * double(inflight + 1));
}

// Gives a replica one completed request of the given latency, started at
// `at`, so it has a sample and counts as picked at `at`.
void warm(P2cBalancer &lb, size_t replica, uint64_t at, uint64_t latency_ns)
{
	lb.done(lb.begin(replica, at), at + latency_ns, true);
}

} // namespace

// "A fresh replica's weight is 100": health 1000 * 1 s / (10 s penalty * 1).
TEST(AlgoP2c, FreshReplicaWeighs100)
{
	P2cBalancer lb(3, uint64_t(1));
	for (size_t r = 0; r < 3; r++) {
		EXPECT_EQ(lb.weight(r, 0), 100.0);
		EXPECT_EQ(lb.weight(r, 1000 * kSecond), 100.0);
		auto s = lb.stats(r, 0);
		EXPECT_FALSE(s.sampled);
		EXPECT_EQ(s.health, 1000.0);
		EXPECT_EQ(s.load_latency_ns, 10.0 * kSecond);
		EXPECT_EQ(s.inflight, 0u);
		EXPECT_FALSE(s.last_pick_ns.has_value());
	}
	// Outstanding requests divide it: the penalty latency times inflight + 1.
	lb.begin(0, 0);
	EXPECT_EQ(lb.weight(0, 5 * kSecond), 50.0);
}

// kratos ewma TestDirect: two picks, one completes after 10 ms: weight in
// (30000, 60000), PickElapsed in (5 ms, 15 ms). Exactly: 1000 * 1 s / (10 ms * 2).
TEST(AlgoP2c, KratosDirect)
{
	constexpr uint64_t kT0 = 42 * kSecond;
	P2cBalancer lb(1, uint64_t(1));
	auto first = lb.begin(0, kT0);
	lb.begin(0, kT0);
	lb.done(first, kT0 + 10 * kMs, true);
	EXPECT_EQ(lb.weight(0, kT0 + 10 * kMs), 50000.0);
	EXPECT_EQ(lb.stats(0, kT0 + 10 * kMs).latency_ns, 10.0 * kMs); // first sample as is
	EXPECT_EQ(*lb.stats(0, kT0 + 10 * kMs).last_pick_ns, kT0);
}

// kratos ewma TestDirectError: five sequential 20 ms requests, all but the
// first failing: weight in (30000, 60000). Exactly: each failure decays
// health by w = e^(-20 ms / 600 ms); latency stays 20 ms.
TEST(AlgoP2c, KratosDirectError)
{
	P2cBalancer lb(1, uint64_t(1));
	uint64_t now = 0;
	for (int i = 0; i < 5; i++) {
		auto p = lb.begin(0, now);
		now += 20 * kMs;
		lb.done(p, now, i == 0);
	}
	double health = 1000.0 * std::pow(std::exp(-20.0 / 600.0), 4);
	auto s = lb.stats(0, now);
	EXPECT_NEAR(s.health, health, 1e-9);
	EXPECT_NEAR(s.latency_ns, 20.0 * kMs, 1e-6);
	EXPECT_NEAR(lb.weight(0, now), weight(health, 20.0 * kMs, 0), 1e-6);
	EXPECT_GT(lb.weight(0, now), 30000.0);
	EXPECT_LT(lb.weight(0, now), 60000.0);
}

// "EWMA with tau = 600 ms, w = e^(-dt/tau), first sample taken as is."
TEST(AlgoP2c, EwmaFirstSampleAsIsThenDecaysWithTau)
{
	P2cBalancer lb(1, uint64_t(1));
	lb.observe(0, 1 * kSecond, 10 * kMs, true);
	EXPECT_EQ(lb.stats(0, 1 * kSecond).latency_ns, 10.0 * kMs);

	// One tau later: w = 1/e.
	lb.observe(0, 1 * kSecond + 600 * kMs, 40 * kMs, true);
	double w = std::exp(-1.0);
	double latency = 10.0 * kMs * w + 40.0 * kMs * (1 - w);
	EXPECT_DOUBLE_EQ(lb.stats(0, 2 * kSecond).latency_ns, latency);

	// Same instant (dt 0, w 1) or a clock gone back: the sample has no weight.
	lb.observe(0, 1 * kSecond + 600 * kMs, 900 * kMs, false);
	lb.observe(0, 1 * kSecond, 900 * kMs, false);
	EXPECT_DOUBLE_EQ(lb.stats(0, 2 * kSecond).latency_ns, latency);
	EXPECT_EQ(lb.stats(0, 2 * kSecond).health, 1000.0);

	// Long idle: w ~ 0, the new sample dominates.
	lb.observe(0, 100 * kSecond, 5 * kMs, false);
	EXPECT_NEAR(lb.stats(0, 100 * kSecond).latency_ns, 5.0 * kMs, 1e-3);
	EXPECT_NEAR(lb.stats(0, 100 * kSecond).health, 0.0, 1e-9);
}

// The success EWMA is part of the weight; a first failure is taken as is.
TEST(AlgoP2c, FailuresLowerTheWeight)
{
	P2cBalancer lb(2, uint64_t(1));
	lb.observe(0, kSecond, 10 * kMs, true);
	lb.observe(1, kSecond, 10 * kMs, false);
	EXPECT_EQ(lb.weight(0, kSecond), 100000.0);
	EXPECT_EQ(lb.weight(1, kSecond), 0.0);
	lb.observe(1, kSecond + 600 * kMs, 10 * kMs, true);
	EXPECT_NEAR(lb.weight(1, kSecond + 600 * kMs), 100000.0 * (1 - std::exp(-1.0)), 1e-6);
}

// "Pick two distinct replicas at random": a = random(n), b = random(n - 1)
// skipping a. Every (a, b) draw names a distinct pair, and all ordered pairs
// are reachable.
TEST(AlgoP2c, DrawsTwoDistinctReplicas)
{
	constexpr size_t kN = 5;
	Script script;
	P2cBalancer lb(kN, script.source());
	for (size_t r = 0; r < kN; r++)
		warm(lb, r, 0, 10 * kMs);

	std::set<std::pair<size_t, size_t>> pairs;
	for (uint64_t a = 0; a < kN; a++) {
		for (uint64_t b = 0; b + 1 < kN; b++) {
			script.draws = {a, b};
			auto p = lb.pick(kSecond);
			ASSERT_TRUE(p);
			size_t second = b >= a ? b + 1 : b;
			EXPECT_NE(p->replica, p->rival);
			EXPECT_EQ(std::minmax(p->replica, p->rival), std::minmax(size_t(a), second));
			EXPECT_FALSE(p->forced);
			pairs.insert({a, second});
			lb.done(*p, kSecond + 10 * kMs, true);
		}
	}
	EXPECT_EQ(pairs.size(), kN * (kN - 1));
	EXPECT_TRUE(script.draws.empty());
}

// "The higher weight wins" (in either draw order); on a tie the first drawn.
TEST(AlgoP2c, HigherWeightWins)
{
	Script script;
	P2cBalancer lb(2, script.source());
	warm(lb, 0, 0, 100 * kMs); // slow
	warm(lb, 1, 0, 10 * kMs);  // fast
	EXPECT_EQ(lb.weight(0, kSecond), 10000.0);
	EXPECT_EQ(lb.weight(1, kSecond), 100000.0);

	script.draws = {0, 0}; // a = 0, b = 1
	auto p = lb.pick(kSecond);
	EXPECT_EQ(p->replica, 1u);
	EXPECT_EQ(p->rival, 0u);
	script.draws = {1, 0}; // a = 1, b = 0
	p = lb.pick(kSecond);
	EXPECT_EQ(p->replica, 1u);
	// In-flight work counts: 1 now holds two requests.
	EXPECT_EQ(lb.weight(1, kSecond), 100000.0 / 3);
}

TEST(AlgoP2c, TieGoesToTheFirstDrawnThenInflightDecides)
{
	Script script;
	P2cBalancer lb(2, script.source());
	warm(lb, 0, 0, 10 * kMs);
	warm(lb, 1, 0, 10 * kMs);
	ASSERT_EQ(lb.weight(0, kSecond), lb.weight(1, kSecond));

	script.draws = {1, 0}; // a = 1, b = 0: a tie, a wins
	EXPECT_EQ(lb.pick(kSecond)->replica, 1u);
	script.draws = {1, 0}; // 1 now has a request outstanding: 0 wins
	EXPECT_EQ(lb.pick(kSecond)->replica, 0u);
}

// "A replica not picked for more than 3 s is forced once."
TEST(AlgoP2c, ReplicaIdleMoreThanThreeSecondsIsForcedOnce)
{
	Script script;
	P2cBalancer lb(2, script.source());
	const uint64_t latency[] = {10 * kMs, 100 * kMs}; // 0 always outweighs 1
	warm(lb, 0, 0, latency[0]);
	warm(lb, 1, 0, latency[1]);

	auto pick = [&](uint64_t now, uint64_t a) {
		script.draws = {a, 0};
		auto p = lb.pick(now);
		lb.done(*p, now + latency[p->replica], true); // keeps both EWMAs where they are
		return *p;
	};

	auto p = pick(3 * kSecond, 1); // 1 idle for exactly 3 s: not yet
	EXPECT_EQ(p.replica, 0u);
	EXPECT_FALSE(p.forced);

	p = pick(3 * kSecond + 1, 0); // idle for more than 3 s: forced
	EXPECT_EQ(p.replica, 1u);
	EXPECT_EQ(p.rival, 0u);
	EXPECT_TRUE(p.forced);

	p = pick(3 * kSecond + 1, 0); // once: it was just picked
	EXPECT_EQ(p.replica, 0u);
	EXPECT_FALSE(p.forced);
	p = pick(6 * kSecond + 1, 1);
	EXPECT_EQ(p.replica, 0u);
	EXPECT_FALSE(p.forced);

	p = pick(6 * kSecond + 2, 1); // and again 3 s after the forced pick
	EXPECT_EQ(p.replica, 1u);
	EXPECT_TRUE(p.forced);
	EXPECT_EQ(*lb.stats(1, 6 * kSecond + 2).last_pick_ns, 6 * kSecond + 2);
}

// kratos' lastPick starts at 0, so a replica never picked counts as idle
// for longer than 3 s.
TEST(AlgoP2c, NeverPickedReplicaIsForced)
{
	Script script;
	P2cBalancer lb(2, script.source());
	warm(lb, 0, kSecond, 10 * kMs);
	script.draws = {0, 0};
	auto p = lb.pick(kSecond + 20 * kMs);
	EXPECT_EQ(p->replica, 1u);
	EXPECT_TRUE(p->forced);
}

// Outstanding requests older than the average predict the latency once they
// are the majority: a replica whose requests hang loses weight at once.
TEST(AlgoP2c, HangingRequestsPredictLatency)
{
	constexpr uint64_t kT = 10 * kSecond;
	P2cBalancer lb(1, uint64_t(1));
	lb.observe(0, kT, 10 * kMs, true);

	lb.begin(0, kT);
	EXPECT_EQ(lb.weight(0, kT + 5 * kMs), weight(1000, 10.0 * kMs, 1)); // younger than 10 ms
	EXPECT_EQ(lb.weight(0, kT + 500 * kMs), weight(1000, 500.0 * kMs, 1));

	// Two outstanding, one late: not a majority, the EWMA stands.
	lb.begin(0, kT + 490 * kMs);
	EXPECT_EQ(lb.stats(0, kT + 500 * kMs).load_latency_ns, 10.0 * kMs);
	EXPECT_EQ(lb.weight(0, kT + 500 * kMs), weight(1000, 10.0 * kMs, 2));
	// Both late: the mean of their ages.
	double predicted = double(500 * kMs + 1 + 10 * kMs + 1) / 2;
	EXPECT_EQ(lb.stats(0, kT + 500 * kMs + 1).load_latency_ns, predicted);
	EXPECT_EQ(lb.weight(0, kT + 500 * kMs + 1), weight(1000, predicted, 2));
}

TEST(AlgoP2c, OneReplicaOrNone)
{
	Script script; // no draws scripted: a draw would fail the test
	P2cBalancer one(1, script.source());
	auto p = one.pick(kSecond);
	ASSERT_TRUE(p);
	EXPECT_EQ(p->replica, 0u);
	EXPECT_EQ(p->rival, 0u);
	EXPECT_FALSE(p->forced);
	EXPECT_EQ(one.stats(0, kSecond).inflight, 1u);

	P2cBalancer none(0, script.source());
	EXPECT_FALSE(none.pick(kSecond).has_value());
}

TEST(AlgoP2c, MisuseIsRefused)
{
	P2cBalancer lb(2, uint64_t(1));
	auto p = lb.begin(0, kSecond);
	lb.done(p, 2 * kSecond, true);
	EXPECT_THROW(lb.done(p, 2 * kSecond, true), std::logic_error); // done twice
	EXPECT_THROW(lb.begin(2, kSecond), std::out_of_range);
	EXPECT_THROW(lb.weight(7, kSecond), std::out_of_range);
	EXPECT_THROW(lb.observe(2, kSecond, kMs, true), std::out_of_range);
	EXPECT_THROW(P2cBalancer(2, P2cBalancer::Random{}), std::invalid_argument);

	P2cBalancer bad(2, [](uint64_t bound) { return bound; });
	EXPECT_THROW(bad.pick(kSecond), std::out_of_range);
}

// kratos TestWrr3, under a fake clock: 9000 requests of 10 ms, one every
// 1 ms, over three equal replicas: each gets between 1500 and 4500. And a
// replica five times slower gets the least.
TEST(AlgoP2c, SpreadsLoadByWeight)
{
	auto run = [](std::array<uint64_t, 3> latency) {
		P2cBalancer lb(3, uint64_t(2024));
		std::array<int, 3> count{};
		std::deque<std::pair<P2cBalancer::Pick, uint64_t>> running; // pick, end time
		for (uint64_t i = 0; i < 9000; i++) {
			uint64_t now = i * kMs;
			while (!running.empty() && running.front().second <= now) {
				lb.done(running.front().first, running.front().second, true);
				running.pop_front();
			}
			auto p = *lb.pick(now);
			count[p.replica]++;
			// Keep `running` ordered by end time.
			auto end = now + latency[p.replica];
			auto at = std::upper_bound(running.begin(), running.end(), end,
						   [](uint64_t e, const auto &r) { return e < r.second; });
			running.insert(at, {p, end});
		}
		return count;
	};

	auto equal = run({10 * kMs, 10 * kMs, 10 * kMs});
	for (int c : equal) {
		EXPECT_GT(c, 1500);
		EXPECT_LT(c, 4500);
	}
	auto skewed = run({10 * kMs, 10 * kMs, 50 * kMs});
	EXPECT_LT(skewed[2], skewed[0] / 2);
	EXPECT_LT(skewed[2], skewed[1] / 2);
	EXPECT_GT(skewed[2], 0); // still probed: forced picks at least
}

// Real threads picking and completing concurrently leave consistent books.
TEST(AlgoP2c, ConcurrentPicksKeepConsistentCounts)
{
	constexpr int kThreads = 8, kPerThread = 2000;
	P2cBalancer lb(4, uint64_t(99));
	std::latch go(kThreads);
	std::vector<std::thread> threads;
	std::array<std::atomic<int>, 4> picked{};
	for (int t = 0; t < kThreads; t++)
		threads.emplace_back([&, t] {
			go.arrive_and_wait();
			for (int i = 0; i < kPerThread; i++) {
				uint64_t now = uint64_t(i) * kMs + uint64_t(t);
				auto p = *lb.pick(now);
				picked[p.replica]++;
				ASSERT_NE(p.replica, p.rival);
				lb.done(p, now + kMs, true);
			}
		});
	for (auto &th : threads)
		th.join();
	int total = 0;
	for (size_t r = 0; r < 4; r++) {
		EXPECT_EQ(lb.stats(r, 10 * kSecond).inflight, 0u);
		total += picked[r];
	}
	EXPECT_EQ(total, kThreads * kPerThread);
}
