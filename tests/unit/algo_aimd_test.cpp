// AIMD concurrency limit. Scenarios: Netflix concurrency-limits AIMDLimitTest
// (increaseOnSuccess, decreaseOnDrops, successOverflow) as restated in
// conformance.md, plus the rules of AIMDLimit._update they rely on.
#include <gtest/gtest.h>

#include "algo/aimd.hpp"

namespace sluice::algo {
namespace {

constexpr uint64_t kMsUs = 1000;

AimdConfig with_initial(uint32_t initial)
{
	AimdConfig c;
	c.initial_limit = initial;
	return c;
}

// Netflix increaseOnSuccess: init 20, sample (1 ms, inFlight 10) -> 21.
TEST(AimdNetflix, IncreaseOnSuccess)
{
	Aimd aimd(with_initial(20));
	EXPECT_EQ(aimd.limit(), 20u);
	EXPECT_EQ(aimd.on_sample(1 * kMsUs, 10, false), 21u);
}

// Netflix decreaseOnDrops: init 30, drop -> (int)(30 * 0.9) = 27.
TEST(AimdNetflix, DecreaseOnDrop)
{
	Aimd aimd(with_initial(30));
	EXPECT_EQ(aimd.on_sample(0, 0, true), 27u);
	EXPECT_EQ(aimd.on_sample(0, 0, true), 24u); // (int)24.3
}

// Netflix successOverflow: init 21, max 21, min 0 -> stays 21. (Netflix's own
// sample has inFlight 10, which would not grow 21 anyway: 20 < 21; with
// inFlight 11 growth is due and the maximum is what holds it.)
TEST(AimdNetflix, SuccessAtTheMaximumStays)
{
	const AimdConfig config{.initial_limit = 21, .min_limit = 0, .max_limit = 21};
	Aimd aimd(config);
	EXPECT_EQ(aimd.on_sample(1 * kMsUs, 10, false), 21u);
	EXPECT_EQ(aimd.on_sample(1 * kMsUs, 11, false), 21u);
}

// AIMDLimit: rtt > timeout is a drop; exactly the timeout is not.
TEST(AimdNetflix, AnRttAboveTheTimeoutCountsAsADrop)
{
	const AimdConfig config{.initial_limit = 30, .timeout_us = 5'000'000};
	Aimd aimd(config);
	EXPECT_EQ(aimd.on_sample(5'000'000, 15, false), 31u);
	EXPECT_EQ(aimd.on_sample(5'000'001, 15, false), 27u); // (int)27.9
}

// AIMDLimit: no growth unless at least half the limit is in use.
TEST(AimdNetflix, AnUnderusedLimitDoesNotGrow)
{
	Aimd aimd(with_initial(20));
	EXPECT_EQ(aimd.on_sample(1 * kMsUs, 9, false), 20u);
}

// AIMDLimit clamps to [minLimit, maxLimit] (defaults 20 and 200).
TEST(AimdNetflix, TheMinimumIsAFloor)
{
	Aimd aimd(with_initial(21));
	EXPECT_EQ(aimd.on_sample(0, 0, true), 20u); // (int)18.9 -> 20
	EXPECT_EQ(aimd.on_sample(0, 0, true), 20u);
}

// One controller tick = one update, however many completions it holds
// (concurrency-limits WindowedLimit): 100 successes grow the limit by 1.
TEST(AimdTick, OneUpdatePerTick)
{
	Aimd aimd(with_initial(30));
	const TickStats ok{.completed = 100, .rt_sum_us = 100 * 2 * kMsUs, .rt_samples = 100, .in_flight = 15};
	EXPECT_EQ(aimd.record(ok), 31u);

	TickStats failing = ok;
	failing.errors = 1;
	EXPECT_EQ(aimd.record(failing), 27u); // (int)27.9

	TickStats slow = ok; // mean RT 6 s > 5 s timeout
	slow.rt_sum_us = 100 * 6'000'000;
	EXPECT_EQ(aimd.record(slow), 24u); // (int)24.3
}

TEST(AimdTick, AnEmptyTickChangesNothing)
{
	Aimd aimd(with_initial(30));
	EXPECT_EQ(aimd.record(TickStats{.in_flight = 30}), 30u);
	// Errors alone (timeouts reported without a response) are still a drop.
	EXPECT_EQ(aimd.record(TickStats{.errors = 2}), 27u);
}

TEST(AimdTick, RejectsBadConfigs)
{
	EXPECT_THROW(Aimd(AimdConfig{.backoff_ratio = 1.0}), std::invalid_argument);
	EXPECT_THROW(Aimd(AimdConfig{.backoff_ratio = 0.4}), std::invalid_argument);
	EXPECT_THROW(Aimd(AimdConfig{.min_limit = 50, .max_limit = 40}), std::invalid_argument);
}

} // namespace
} // namespace sluice::algo
