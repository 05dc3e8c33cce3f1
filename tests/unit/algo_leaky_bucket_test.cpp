// Conformance of LeakyBucket with go.uber.org/ratelimit (the scenarios of its
// ratelimit_test.go, see /work/shared/conformance.md). uber's tests drive
// goroutines with a mock clock; here a small discrete-event simulation plays
// that part, so every count is exact.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <latch>
#include <memory>
#include <queue>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

#include "algo/leaky_bucket.hpp"

using sluice::algo::LeakyBucket;

namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSecond = 1'000 * kMs;
constexpr uint64_t kMinute = 60 * kSecond;

// uber's startTaking: a caller loops forever, Take()-ing each of its limiters
// in turn and sleeping until the permitted time; after the last limiter it
// counts one round. Callers run in time order; callers woken at the same
// instant run in the order they went to sleep.
class Callers {
public:
	void start_taking(uint64_t at_ns, std::vector<LeakyBucket *> limiters)
	{
		callers_.push_back(std::move(limiters));
		wake(at_ns, callers_.size() - 1, 0);
	}

	// Runs every Take due before until_ns. Bounded: a limiter that keeps
	// permitting at one instant fails the test instead of spinning forever.
	void run_until(uint64_t until_ns)
	{
		while (!events_.empty() && std::get<0>(events_.top()) < until_ns) {
			if (++steps_ > kMaxSteps) {
				ADD_FAILURE() << "simulation exceeded " << kMaxSteps << " Takes";
				return;
			}
			auto [now, seq, caller, stage] = events_.top();
			events_.pop();
			uint64_t permitted = callers_[caller][stage]->take(now);
			EXPECT_GE(permitted, now);
			if (stage + 1 < callers_[caller].size()) {
				wake(permitted, caller, stage + 1);
			} else {
				rounds_.push_back(permitted);
				wake(permitted, caller, 0);
			}
		}
	}

	// uber's assertCountAt(d): rounds finished before d.
	size_t count_at(uint64_t at_ns)
	{
		run_until(at_ns);
		return size_t(std::count_if(rounds_.begin(), rounds_.end(),
					    [&](uint64_t r) { return r < at_ns; }));
	}

private:
	using Event = std::tuple<uint64_t, uint64_t, size_t, size_t>; // now, seq, caller, stage

	void wake(uint64_t at_ns, size_t caller, size_t stage) { events_.push({at_ns, seq_++, caller, stage}); }

	std::vector<std::vector<LeakyBucket *>> callers_;
	std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
	uint64_t seq_ = 0;
	std::vector<uint64_t> rounds_;
	static constexpr uint64_t kMaxSteps = 1'000'000;
	uint64_t steps_ = 0;
};

} // namespace

// uber TestRateLimiter: 100/s without slack, four callers: exactly 100, 200,
// 300 permitted by 1 s, 2 s, 3 s.
TEST(AlgoLeakyBucket, UberRateLimiter)
{
	LeakyBucket rl(100, kSecond, LeakyBucket::kWithoutSlack);
	Callers callers;
	for (int i = 0; i < 4; i++)
		callers.start_taking(0, {&rl});
	EXPECT_EQ(callers.count_at(1 * kSecond), 100u);
	EXPECT_EQ(callers.count_at(2 * kSecond), 200u);
	EXPECT_EQ(callers.count_at(3 * kSecond), 300u);
}

// uber TestDelayedRateLimiter: a caller on (10/s, 100/s) for 30 s, joined at
// 20 s by four callers on the 100/s limiter alone: 1200 rounds by 30 s.
TEST(AlgoLeakyBucket, UberDelayedRateLimiter)
{
	LeakyBucket slow(10, kSecond, LeakyBucket::kWithoutSlack);
	LeakyBucket fast(100, kSecond, LeakyBucket::kWithoutSlack);
	Callers callers;
	callers.start_taking(0, {&slow, &fast});
	callers.run_until(20 * kSecond);
	for (int i = 0; i < 4; i++)
		callers.start_taking(20 * kSecond, {&fast});
	EXPECT_EQ(callers.count_at(30 * kSecond), 1200u);
}

// uber TestPer: 7 per minute without slack, two callers: 1 permitted by 1 s,
// 8 by 1 min, 15 by 2 min. perRequest is Go's integer minute / 7.
TEST(AlgoLeakyBucket, UberPer)
{
	LeakyBucket rl(7, kMinute, LeakyBucket::kWithoutSlack);
	EXPECT_EQ(rl.per_request_ns(), 8'571'428'571u);
	Callers callers;
	callers.start_taking(0, {&rl});
	callers.start_taking(0, {&rl});
	EXPECT_EQ(callers.count_at(1 * kSecond), 1u);
	EXPECT_EQ(callers.count_at(1 * kMinute), 8u);
	EXPECT_EQ(callers.count_at(2 * kMinute), 15u);
}

// uber TestInitial: three concurrent first Takes at 10/s (real threads, one
// instant) are permitted 0, 100 ms, 100 ms apart, with and without slack.
TEST(AlgoLeakyBucket, UberInitialConcurrentTakes)
{
	for (uint32_t slack : {LeakyBucket::kDefaultSlack, LeakyBucket::kWithoutSlack}) {
		for (int round = 0; round < 50; round++) {
			constexpr uint64_t kStart = 5 * kSecond;
			LeakyBucket rl(10, kSecond, slack);
			std::vector<uint64_t> permitted(3);
			std::latch go(3);
			std::vector<std::thread> threads;
			for (size_t i = 0; i < 3; i++)
				threads.emplace_back([&, i] {
					go.arrive_and_wait();
					permitted[i] = rl.take(kStart);
				});
			for (auto &th : threads)
				th.join();
			std::sort(permitted.begin(), permitted.end());
			uint64_t prev = kStart;
			std::vector<uint64_t> gaps;
			for (uint64_t p : permitted) {
				gaps.push_back(p - prev);
				prev = p;
			}
			ASSERT_EQ(gaps, (std::vector<uint64_t>{0, 100 * kMs, 100 * kMs}))
				<< "slack " << slack << " round " << round;
		}
	}
}

// uber TestSlack: a caller on (10/s no slack, 100/s) lets the fast limiter
// bank slack for 2 s; then two callers on the fast limiter alone spend it.
// By 3 s: 2 s of the slow pace + 1 s of the fast pace + the banked slack.
TEST(AlgoLeakyBucket, UberSlack)
{
	struct Case {
		const char *name;
		uint32_t slack;
		uint64_t per_ns;
		size_t want;
	};
	const Case cases[] = {
		{"default slack 10", LeakyBucket::kDefaultSlack, kSecond, 130}, // 2*10 + 1*100 + 10
		{"slack 20", 20, kSecond, 140},
		{"slack 150, more than the rate", 150, kSecond, 270},
		{"default slack, per 500 ms", LeakyBucket::kDefaultSlack, 500 * kMs, 230}, // 2*20 + 1*200 + 10
		{"slack 20, per 500 ms", 20, 500 * kMs, 240},
		{"slack 150, per 500 ms", 150, 500 * kMs, 370},
	};
	for (const Case &c : cases) {
		LeakyBucket slow(10, kSecond, LeakyBucket::kWithoutSlack);
		LeakyBucket fast(100, c.per_ns, c.slack);
		Callers callers;
		callers.start_taking(0, {&slow, &fast});
		EXPECT_EQ(callers.count_at(1 * kSecond), 10u) << c.name; // the 10/s limiter dominates
		callers.run_until(2 * kSecond);
		callers.start_taking(2 * kSecond, {&fast});
		callers.start_taking(2 * kSecond, {&fast});
		EXPECT_EQ(callers.count_at(3 * kSecond), c.want) << c.name;
	}
}

// uber TestImmediateSlackReapply: 1/s with slack 1. After 2 s idle, two
// Takes (1 ns apart) pass at once, then one a second.
TEST(AlgoLeakyBucket, UberImmediateSlackReapply)
{
	LeakyBucket rl(1, kSecond, 1);
	EXPECT_EQ(rl.take(0), 0u);
	std::vector<uint64_t> permitted;
	uint64_t now = 2 * kSecond;
	for (int i = 0; i < 5; i++) {
		permitted.push_back(rl.take(now));
		now = permitted.back() + 1; // uber sleeps 1 ns between Takes
	}
	EXPECT_EQ(permitted, (std::vector<uint64_t>{2 * kSecond, 2 * kSecond + 1, 3 * kSecond,
						  4 * kSecond, 5 * kSecond}));
}

// The rules one by one, at their boundaries (conformance.md).
TEST(AlgoLeakyBucket, WithoutSlackRestartsAfterMoreThanOneInterval)
{
	constexpr uint64_t kPer = 100 * kMs; // 10/s
	LeakyBucket rl(10, kSecond, LeakyBucket::kWithoutSlack);
	EXPECT_EQ(rl.max_slack_ns(), 0u);
	EXPECT_EQ(rl.take(kSecond), kSecond); // first call: next = now
	EXPECT_EQ(rl.take(kSecond), kSecond + kPer);
	// Idle exactly perRequest past the last permission: next += perRequest
	// (at this boundary the restart rule would give the same time).
	EXPECT_EQ(rl.take(kSecond + 2 * kPer), kSecond + 2 * kPer);
	// More than perRequest: the pace restarts at now, nothing banked.
	uint64_t later = kSecond + 3 * kPer + 1;
	EXPECT_EQ(rl.take(later), later);
	EXPECT_EQ(rl.take(later), later + kPer);
	EXPECT_EQ(rl.take(later), later + 2 * kPer);
}

TEST(AlgoLeakyBucket, WithSlackBanksAtMostSlackPermissions)
{
	constexpr uint64_t kPer = 100 * kMs;
	LeakyBucket rl(10); // default slack 10
	EXPECT_EQ(rl.per_request_ns(), kPer);
	EXPECT_EQ(rl.max_slack_ns(), 10 * kPer);
	EXPECT_EQ(rl.take(0), 0u);

	// Idle exactly maxSlack + perRequest: next += perRequest, which here
	// equals now - maxSlack: the whole slack is banked.
	uint64_t now = 11 * kPer;
	EXPECT_EQ(rl.take(now), now);
	for (int i = 0; i < 10; i++)
		EXPECT_EQ(rl.take(now), now) << "banked take " << i;
	EXPECT_EQ(rl.take(now), now + kPer);
	// Idle far longer: next = now - maxSlack, so 11 Takes pass at once
	// (this one and the 10 banked), the 12th waits one interval.
	now = 100 * kSecond;
	for (int i = 0; i < 11; i++)
		EXPECT_EQ(rl.take(now), now) << "take " << i;
	EXPECT_EQ(rl.take(now), now + kPer);
	EXPECT_EQ(rl.take(now), now + 2 * kPer);
}

TEST(AlgoLeakyBucket, FirstTakeAtTimeZeroCountsAsStarted)
{
	// uber marks "not started" with state 0; a fake clock at 0 must not
	// look like a first call twice.
	LeakyBucket rl(10, kSecond, LeakyBucket::kWithoutSlack);
	EXPECT_EQ(rl.take(0), 0u);
	EXPECT_EQ(rl.take(0), 100 * kMs);
	EXPECT_EQ(rl.take(0), 200 * kMs);
}

TEST(AlgoLeakyBucket, RejectsZeroRate)
{
	EXPECT_THROW(LeakyBucket(0), std::invalid_argument);
	EXPECT_THROW(LeakyBucket(1, UINT64_MAX, 2), std::invalid_argument); // slack * perRequest overflows
}
