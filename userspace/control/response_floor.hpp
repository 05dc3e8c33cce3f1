// The queue-free response time of a service, its "floor" (BBR's minRT),
// learned tick by tick from what the kernel saw of its answers.
//
// The floor is the least of recent means: a queue only ever makes answers
// slower. But a mean of a few answers that vary strays from the service's
// true mean by chance, and the least of many such means sits far below it.
// With Little's law that floor would hold less in flight than the service
// takes, the refusals it causes would lower the rate it measures, and the
// limit would shrink tick after tick (a service answering in 20 ms +- 60%
// at half its capacity had 40% of its requests refused). So:
//  - How much answers vary (their spread) is measured from the kernel's
//    latency histograms, on ticks that showed no queue and on drain probes.
//  - Each candidate for the floor is a mean precise enough for that spread
//    (at its likely highest while few answers measured it).
//    Ticks in a row that agree are pooled until their mean is within 3%
//    (one standard error), or for a quarter of the window; a tick that
//    differs from its pool by more than chance starts a pool of its own, so
//    a pool holds one state of the service (never a queue and the time
//    before it); a drain probe's ticks stand alone (the queue drains across
//    them). Each candidate enters raised by its standard error, and one too
//    imprecise to say anything does not enter at all.
//  - A service's first answers give no floor for ten times their slowest
//    tick mean (at most a second): they are its fastest. A drain probe's
//    measure is not among them: it came after the probe drained the queue.
//    After that, until the spread is known, the least tick mean stands in.
// Answers that are all alike (a spread below what the histogram resolves)
// make every tick's mean exact, and the floor is the least tick mean, as it
// always was.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <utility>

#include "sluice/abi.h"

namespace sluice::control {

// The smallest value seen over a sliding time horizon (a monotonic deque).
class SlidingMin {
 public:
  explicit SlidingMin(uint64_t horizon_ns) : horizon_ns_(horizon_ns) {}
  void add(uint64_t now_ns, double value);
  std::optional<double> min(uint64_t now_ns);
  void reset() { values_.clear(); }

 private:
  uint64_t horizon_ns_;
  std::deque<std::pair<uint64_t, double>> values_;  // increasing values, increasing times
};

// How much single answers vary (their coefficient of variation), from the
// kernel's latency histograms: deviations from each tick's own mean, so a
// load that changes from tick to tick adds nothing, over recent ticks with
// fading weight. A queue delays answers and makes none faster: when the
// faster half of each tick's answers is all alike, the spread is the
// queue's, and the service's is 0.
class AnswerSpread {
 public:
  void add(const sl_obs_counters& tick);
  // Unknown until enough answers came; 0 for answers all alike.
  std::optional<double> cv() const;
  // How high the spread may be, given how few answers measured it so far
  // (two standard errors of the estimate above it).
  std::optional<double> cv_at_most() const;

  static constexpr double kKnownAfter = 10;  // answers (less one a tick)
  // The histogram's buckets are 12.5% wide: a spread below this it cannot
  // tell from answers all alike.
  static constexpr double kResolvable = 0.05;
  static constexpr double kFade = 0.98;  // a tick: about 50 ticks count

 private:
  double squares_us2_ = 0;              // squared deviations from each tick's mean
  double faster_half_squares_us2_ = 0;  // the same below each tick's median, doubled
  double degrees_ = 0;                  // answers less one a tick
  double faster_half_degrees_ = 0;      // the same, of ticks of three answers or more
  double answers_ = 0, sum_us_ = 0;
};

// Whether a tick's answers (two or more) are all alike, to what the
// histogram resolves: a queue would have spread them by its waits.
bool answers_alike(const sl_obs_counters& tick);

class ResponseFloor {
 public:
  // Candidates count for `horizon_ns`; a pool lasts at most `pool_most_ns`;
  // the first answers give no floor for up to `settle_ns` (see settling()).
  ResponseFloor(uint64_t horizon_ns, uint64_t pool_most_ns, uint64_t settle_ns);

  // What a tick was, for the floor.
  enum class Tick {
    kFree,      // answers showed no queue
    kQueued,    // answers showed a queue: the spread of their waits is the
                // queue's, not the service's
    kDraining,  // a drain probe emptying the queue
    kDrained,   // a drain probe's last tick: the queue had drained
  };
  // One tick of answers: `answers` of them, `sum_us` their total, `tick` the
  // kernel's histogram of them.
  void observe(uint64_t now_ns, Tick kind, double sum_us, uint64_t answers, const sl_obs_counters& tick);

  // The floor in microseconds (nothing while the first answers settle).
  std::optional<double> value(uint64_t now_ns);
  // How far the mean of `answers` answers may stray from the service's by
  // chance: one standard error, as a share of the mean.
  double standard_error(double answers) const;
  std::optional<double> spread() const { return spread_.cv(); }

  // A floor known from elsewhere: a predecessor's, or a slowdown that two
  // drain probes agreed on (`replace`: it alone counts from now on).
  void add_known(uint64_t now_ns, double floor_us, bool replace);

 private:
  void pool(uint64_t now_ns, double sum_us, uint64_t answers);
  void emit_pool(uint64_t now_ns);
  void add_candidate(uint64_t now_ns, double mean_us, double answers, double z, double most_error);
  double candidate_error(double answers) const;

  bool settling(uint64_t now_ns) const;

  SlidingMin candidates_;
  struct UnsureTick {
    uint64_t at_ns;
    double mean_us, answers;
    bool settling;  // among the first answers (see settling())
    bool probe;     // a drain probe's (kDraining, kDrained)
  };
  std::deque<UnsureTick> unsure_;  // ticks before the pools begin
  uint64_t horizon_ns_;
  AnswerSpread spread_;
  uint64_t pool_most_ns_;
  uint64_t settle_ns_;
  uint64_t first_answer_ns_ = 0;
  double settle_slowest_us_ = 0;  // the slowest tick mean while settling
  bool settled_ = false;          // once over, settling stays over
  static constexpr double kSettleTimes = 10;  // response times (the slowest tick mean)
  double pool_sum_us_ = 0;
  uint64_t pool_answers_ = 0;
  uint64_t pool_since_ns_ = 0;
};

}  // namespace sluice::control
