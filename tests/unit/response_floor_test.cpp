// The queue-free response time a controller measures against: how much
// answers vary (from the kernel's latency histograms), and a floor that the
// chance lows of answers that vary do not drag down.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "control/response_floor.hpp"

using namespace sluice::control;

namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kTick = 100 * kMs;
constexpr uint64_t kHorizon = 20'000 * kMs, kPoolMost = 2'500 * kMs, kSettle = 1'000 * kMs;

// One tick of `n` answers as the kernel reports them: the histogram, and
// the exact sum. Returns the sum in microseconds.
double answers(sl_obs_counters& tick, const std::vector<double>& ms) {
  double sum_us = 0;
  for (double m : ms) {
    tick.hist[sl_hist_bucket(static_cast<uint64_t>(m * kMs))]++;
    sum_us += m * 1000;
  }
  return sum_us;
}

// `n` answers of a service taking `mean_ms` on average, varying with
// coefficient of variation `cv` (gamma-distributed, as capsrv
// --service-spread).
std::vector<double> draw(std::mt19937_64& rng, int n, double mean_ms, double cv) {
  std::vector<double> out;
  double shape = 1 / (cv * cv);
  std::gamma_distribution<double> gamma(shape, mean_ms / shape);
  for (int i = 0; i < n; i++) out.push_back(std::max(0.05, gamma(rng)));
  return out;
}

}  // namespace

TEST(AnswerSpread, MeasuresHowMuchAnswersVaryFromAFewATick) {
  for (int n : {2, 4, 40})
    for (double cv : {0.3, 1.0}) {
      AnswerSpread spread;
      std::mt19937_64 rng(7);
      for (int t = 0; t < 300; t++) {
        sl_obs_counters tick{};
        answers(tick, draw(rng, n, 100, cv));
        spread.add(tick);
      }
      ASSERT_TRUE(spread.cv().has_value());
      EXPECT_NEAR(*spread.cv(), cv, 0.12 * cv) << n << " answers a tick";
    }
}

TEST(AnswerSpread, IsUnknownUntilTenAnswersCame) {
  AnswerSpread spread;
  for (int t = 0; t < 3; t++) {
    sl_obs_counters tick{};
    answers(tick, {10, 12, 14});  // two degrees a tick
    spread.add(tick);
  }
  EXPECT_FALSE(spread.cv().has_value());
  for (int t = 0; t < 3; t++) {
    sl_obs_counters tick{};
    answers(tick, {10, 12, 14});
    spread.add(tick);
  }
  EXPECT_TRUE(spread.cv().has_value());
}

// Answers all alike, and answers that waited in a queue while at least half
// of them did not: neither is a service that varies.
TEST(AnswerSpread, AnswersAlikeOrDelayedByAQueueDoNotVary) {
  AnswerSpread alike, queued;
  for (int t = 0; t < 20; t++) {
    sl_obs_counters a{}, q{};
    answers(a, std::vector<double>(20, 20.0));
    answers(q, {20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 24, 27, 31, 35, 38});
    alike.add(a);
    queued.add(q);
  }
  EXPECT_EQ(alike.cv(), 0.0);
  EXPECT_EQ(queued.cv(), 0.0);
}

// 20 s of ticks of 20 answers each, 20 ms on average with cv 1 (as an
// exponential distribution): the least tick mean lies a third below the
// mean; the floor within a few percent of it.
TEST(ResponseFloor, AnswersThatVaryGiveTheirMeanNotTheLuckiestTick) {
  for (uint64_t seed : {1, 2, 3}) {
    ResponseFloor floor(kHorizon, kPoolMost, kSettle);
    std::mt19937_64 rng(seed);
    uint64_t now = 0;
    double least_tick_ms = 1e9;
    for (int t = 0; t < 200; t++) {
      now += kTick;
      sl_obs_counters tick{};
      std::vector<double> ms = draw(rng, 20, 20, 1.0);
      double sum_us = answers(tick, ms);
      if (now > kSettle + kTick) least_tick_ms = std::min(least_tick_ms, sum_us / 20 / 1000);
      floor.observe(now, ResponseFloor::Tick::kFree, sum_us, 20, tick);
    }
    ASSERT_TRUE(floor.value(now).has_value());
    EXPECT_NEAR(*floor.value(now) / 1000, 20, 2) << "seed " << seed;
    EXPECT_LT(least_tick_ms, 15) << "seed " << seed << ": the old floor";
    EXPECT_NEAR(*floor.spread(), 1, 0.12);
  }
}

// Answers all alike keep the least tick mean, exactly, as they always did;
// a queue after them (slower ticks) does not raise it.
TEST(ResponseFloor, AnswersAlikeKeepTheLeastTickMean) {
  ResponseFloor floor(kHorizon, kPoolMost, kSettle);
  uint64_t now = 0;
  for (int t = 0; t < 100; t++) {
    now += kTick;
    sl_obs_counters tick{};
    double ms = t < 50 ? 20 : 26;  // a queue from 5 s on
    double sum_us = answers(tick, std::vector<double>(40, ms));
    floor.observe(now, t < 50 ? ResponseFloor::Tick::kFree : ResponseFloor::Tick::kQueued, sum_us, 40, tick);
  }
  EXPECT_EQ(floor.spread(), 0.0);
  EXPECT_DOUBLE_EQ(*floor.value(now), 20'000);
}

// The first answers of a service are its fastest (the slow ones are still
// running): for ten of their mean response times, at most `kSettle`, they
// give no floor.
TEST(ResponseFloor, TheFirstAnswersGiveNoFloorForTenResponseTimes) {
  for (double ms : {20.0, 200.0}) {
    ResponseFloor floor(kHorizon, kPoolMost, kSettle);
    const uint64_t settles_ns = std::min<uint64_t>(kSettle, static_cast<uint64_t>(10 * ms * kMs));
    uint64_t now = 0, first = kTick;
    for (int t = 0; t < 15; t++) {
      now += kTick;
      sl_obs_counters tick{};
      double sum_us = answers(tick, std::vector<double>(10, ms));
      floor.observe(now, ResponseFloor::Tick::kFree, sum_us, 10, tick);
      EXPECT_EQ(floor.value(now).has_value(), now >= first + settles_ns) << ms << " ms, tick " << t;
    }
    EXPECT_DOUBLE_EQ(*floor.value(now), ms * 1000);
  }
}

// The first answers' mean is pulled down by the fastest: what the real
// 20 ms +- 100% server answered under a CPU hog, 6.5 ms, then 11.0 ms,
// then 21.0 ms. Their running mean (9.9 ms after two ticks) ended the
// settling 99 ms after the first answers; a tick mean from then on left a
// floor of 15.6 ms there (16.1 ms here). Ten times the slowest tick mean
// so far: the settling lasts until 210 ms. Once over, it stays over: a
// queue later (60 ms answers) does not take the floor away.
TEST(ResponseFloor, TheFirstAnswersSettleForTenOfTheirSlowestTick) {
  ResponseFloor floor(kHorizon, kPoolMost, kSettle);
  const uint64_t first = kTick;
  std::vector<double> tick_means = {6.5, 11.0, 21.0, 20.0, 60.0};
  for (size_t t = 0; t < tick_means.size(); t++) {
    uint64_t now = first + t * kTick;
    // Ten answers that vary around the tick's mean (0.2 to 1.8 times it).
    std::vector<double> ms;
    for (double f : {0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.2, 1.4, 1.6, 1.8}) ms.push_back(tick_means[t] * f);
    sl_obs_counters tick{};
    double sum_us = answers(tick, ms);
    floor.observe(now, ResponseFloor::Tick::kFree, sum_us, 10, tick);
    bool settled = now >= first + 210 * kMs;
    EXPECT_EQ(floor.value(now).has_value(), settled) << "tick " << t << " (" << tick_means[t] << " ms)";
  }
  EXPECT_GE(*floor.value(first + 4 * kTick), 20'000) << "none of the first ticks' means";
}

// A pool holds one state of the service: ticks at 20 ms, then a queue that
// doubles the response time. The pool ends where the queue begins, and the
// floor stays at the service's time.
TEST(ResponseFloor, APoolEndsWhereTheServiceChanges) {
  ResponseFloor floor(kHorizon, kPoolMost, kSettle);
  std::mt19937_64 rng(5);
  uint64_t now = 0;
  for (int t = 0; t < 25; t++) {  // 1 s of settling, then 1.5 s of 20 ms
    now += kTick;
    sl_obs_counters tick{};
    double sum_us = answers(tick, draw(rng, 20, 20, 0.6));
    floor.observe(now, ResponseFloor::Tick::kFree, sum_us, 20, tick);
  }
  for (int t = 0; t < 20; t++) {  // 2 s of a queue the controller has not judged yet
    now += kTick;
    sl_obs_counters tick{};
    double sum_us = answers(tick, draw(rng, 20, 40, 0.3));
    floor.observe(now, ResponseFloor::Tick::kFree, sum_us, 20, tick);
  }
  ASSERT_TRUE(floor.value(now).has_value());
  EXPECT_LT(*floor.value(now) / 1000, 23);
}

// A drain probe's measure of 22 answers, 28% below the service's mean by
// chance (about two standard errors). Measured when one tick of answers is
// all that is known of their spread, it does not enter the floor: that
// spread may be far too low (a tick of a service of +- 60% may show 0.43),
// and so would the error it gives. Once many ticks measured the spread, the
// same measure counts as one more candidate, within a probe's precision.
TEST(ResponseFloor, AProbeCountsOnlyAsPreciseAsTheSpreadIsKnown) {
  // 22 answers around `mean` (+- 43%).
  auto around = [](double mean) {
    std::vector<double> ms = {mean};
    for (int i = 0; i < 3; i++)
      for (double x : {0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6}) ms.push_back(x * mean);
    return ms;
  };
  for (int known_ticks : {1, 100}) {
    ResponseFloor floor(kHorizon, kPoolMost, kSettle);
    uint64_t now = 0;
    for (int t = 0; t < 2; t++) {  // the first answers settle (ten of their 10 ms)
      now += kTick;
      sl_obs_counters tick{};
      double sum_us = answers(tick, std::vector<double>(22, 10));
      floor.observe(now, ResponseFloor::Tick::kQueued, sum_us, 22, tick);
    }
    for (int t = 0; t < known_ticks; t++) {
      now += kTick;
      sl_obs_counters tick{};
      double sum_us = answers(tick, around(10));
      floor.observe(now, ResponseFloor::Tick::kFree, sum_us, 22, tick);
    }
    ASSERT_TRUE(floor.spread().has_value());
    now += kTick;
    sl_obs_counters drained{};
    double sum_us = answers(drained, around(7.2));
    floor.observe(now, ResponseFloor::Tick::kDrained, sum_us, 22, drained);
    ASSERT_TRUE(floor.value(now).has_value());
    if (known_ticks == 1)
      EXPECT_GT(*floor.value(now) / 1000, 9.5) << "spread " << *floor.spread();
    else
      EXPECT_LT(*floor.value(now) / 1000, 8.5) << "spread " << *floor.spread();
  }
}

// A floor known from elsewhere: a predecessor's adds to what is measured; a
// slowdown two probes agreed on replaces it.
TEST(ResponseFloor, AKnownFloorAddsOrReplaces) {
  ResponseFloor floor(kHorizon, kPoolMost, kSettle);
  floor.add_known(0, 20'000, false);
  EXPECT_DOUBLE_EQ(*floor.value(kTick), 20'000);
  floor.add_known(kTick, 25'000, false);
  EXPECT_DOUBLE_EQ(*floor.value(2 * kTick), 20'000);
  floor.add_known(2 * kTick, 32'000, true);
  EXPECT_DOUBLE_EQ(*floor.value(3 * kTick), 32'000);
  EXPECT_FALSE(floor.value(3 * kTick + kHorizon).has_value()) << "it counts for the horizon";
}
