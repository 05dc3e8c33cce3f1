// max_min_fair_share: youtube/doorman's FAIR_SHARE example (see
// /work/shared/conformance.md), edge cases, and the max-min property on
// random inputs.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "algo/fair_share.hpp"

using sluice::algo::max_min_fair_share;

using Wants = std::vector<double>;

// doorman FairShare: capacity 120, wants {1000, 60, 10} -> {55, 55, 10}. The
// equal share is 40; the client wanting 10 leaves 30, split between the two
// others.
TEST(AlgoFairShare, DoormanExample)
{
	EXPECT_EQ(max_min_fair_share(120, {1000, 60, 10}), (Wants{55, 55, 10}));
}

TEST(AlgoFairShare, EveryoneSatisfiedWhenCapacitySuffices)
{
	EXPECT_EQ(max_min_fair_share(100, {5, 10, 20}), (Wants{5, 10, 20}));
	EXPECT_EQ(max_min_fair_share(35, {5, 10, 20}), (Wants{5, 10, 20})); // exactly enough
	EXPECT_EQ(max_min_fair_share(34, {5, 10, 20}), (Wants{5, 10, 19}));
}

TEST(AlgoFairShare, ZeroWantsAndZeroCapacity)
{
	EXPECT_EQ(max_min_fair_share(30, {0, 0, 50}), (Wants{0, 0, 30}));
	EXPECT_EQ(max_min_fair_share(30, {0, 0, 0}), (Wants{0, 0, 0}));
	EXPECT_EQ(max_min_fair_share(0, {10, 20}), (Wants{0, 0}));
	EXPECT_EQ(max_min_fair_share(30, {}), Wants{});
}

TEST(AlgoFairShare, OneClient)
{
	EXPECT_EQ(max_min_fair_share(120, {1000}), Wants{120});
	EXPECT_EQ(max_min_fair_share(120, {50}), Wants{50});
}

TEST(AlgoFairShare, TiesSplitEqually)
{
	EXPECT_EQ(max_min_fair_share(120, {100, 100, 100}), (Wants{40, 40, 40}));
	EXPECT_EQ(max_min_fair_share(120, {100, 10, 100}), (Wants{55, 10, 55}));
	EXPECT_EQ(max_min_fair_share(120, {40, 40, 40}), (Wants{40, 40, 40}));
	EXPECT_EQ(max_min_fair_share(120, {60, 60, 10, 10}), (Wants{50, 50, 10, 10}));
}

// Cascading leftovers: more rounds than doorman's two. Equal share 25; the 1
// leaves 24 (share 33); the 30 leaves 3 (share 34.5) for the last two.
TEST(AlgoFairShare, RedistributesUntilNothingIsLeft)
{
	EXPECT_EQ(max_min_fair_share(100, {1, 30, 1000, 1000}), (Wants{1, 30, 34.5, 34.5}));
}

TEST(AlgoFairShare, AllocationFollowsItsClientWhateverTheOrder)
{
	Wants wants{1000, 60, 10, 25};
	Wants expected = max_min_fair_share(150, wants);
	std::vector<size_t> perm{0, 1, 2, 3};
	do {
		Wants permuted;
		for (size_t i : perm)
			permuted.push_back(wants[i]);
		Wants got = max_min_fair_share(150, permuted);
		for (size_t k = 0; k < perm.size(); k++)
			EXPECT_EQ(got[k], expected[perm[k]]);
	} while (std::next_permutation(perm.begin(), perm.end()));
}

TEST(AlgoFairShare, RejectsNegativeOrNonFinite)
{
	const double nan = std::numeric_limits<double>::quiet_NaN();
	const double inf = std::numeric_limits<double>::infinity();
	EXPECT_THROW(max_min_fair_share(-1, {1}), std::invalid_argument);
	EXPECT_THROW(max_min_fair_share(nan, {1}), std::invalid_argument);
	EXPECT_THROW(max_min_fair_share(inf, {1}), std::invalid_argument);
	EXPECT_THROW(max_min_fair_share(10, {1, -1}), std::invalid_argument);
	EXPECT_THROW(max_min_fair_share(10, {nan}), std::invalid_argument);
	EXPECT_THROW(max_min_fair_share(10, {inf}), std::invalid_argument);
}

// The max-min property on random inputs: no allocation exceeds its want, the
// allocations sum to min(capacity, sum of wants), and a client short of its
// want holds at least as much as anyone (so it could gain only by taking
// from a client holding no more than itself).
TEST(AlgoFairShare, RandomizedMaxMinProperty)
{
	std::mt19937_64 rng(7);
	int contended = 0;
	for (int round = 0; round < 5000; round++) {
		size_t n = 1 + rng() % 12;
		Wants wants(n);
		for (double &w : wants) {
			switch (rng() % 4) {
			case 0: w = 0; break;
			case 1: w = double(rng() % 10); break; // many ties
			default: w = double(rng() % 1'000'000) / 8; break;
			}
		}
		double total = std::accumulate(wants.begin(), wants.end(), 0.0);
		double capacity = double(rng() % uint64_t(2 * total + 2));
		Wants alloc = max_min_fair_share(capacity, wants);
		ASSERT_EQ(alloc.size(), n);

		const double eps = 1e-9 * std::max(1.0, capacity);
		double sum = 0, top = 0;
		for (size_t i = 0; i < n; i++) {
			ASSERT_GE(alloc[i], 0.0);
			ASSERT_LE(alloc[i], wants[i]) << "round " << round << " client " << i;
			sum += alloc[i];
			top = std::max(top, alloc[i]);
		}
		ASSERT_NEAR(sum, std::min(capacity, total), eps) << "round " << round;
		for (size_t i = 0; i < n; i++) {
			if (alloc[i] < wants[i] - eps) {
				ASSERT_GE(alloc[i], top - eps) << "round " << round << ": client " << i
							       << " is short but holds less than another";
			}
		}
		contended += capacity < total;
	}
	// Most rounds must actually ration, or the property check is idle.
	EXPECT_GT(contended, 2000);
}
