#include "control/response_floor.hpp"

#include <algorithm>
#include <cmath>

namespace sluice::control {

namespace {

// A pool's mean is precise enough once one standard error is this share of
// it: the least of a few dozen such pools then sits within a few percent of
// the truth, well inside the queueing test's 5% hysteresis.
constexpr double kPoolPrecision = 0.03;
// A tick whose mean differs from its pool's by more than this many standard
// errors starts a pool of its own.
constexpr double kChangeZ = 3;
// Candidates enter raised by this many standard errors: the least of many
// lands near the truth instead of below it. Probes come a window apart, so
// few of theirs compete and one standard error will do.
constexpr double kPoolZ = 2;
constexpr double kProbeZ = 1;
// A mean less precise than this says nothing about the floor. A probe's
// measure is held to more: its last tick also counts only the answers short
// enough to come within it, so for a slow service whose answers vary widely
// it is low as well as imprecise.
constexpr double kPoolErrorMost = 0.3;
constexpr double kProbeErrorMost = 0.1;

double mid_us(uint32_t bucket) {
  uint64_t lo = sl_hist_lower_us(bucket);
  uint64_t hi = bucket + 1 < SL_HIST_BUCKETS ? sl_hist_lower_us(bucket + 1) : lo;
  return (static_cast<double>(lo) + static_cast<double>(hi)) / 2;
}

// A tick's answers from its histogram: how many, and their mean.
struct TickAnswers {
  double n = 0, mean_us = 0;
  explicit TickAnswers(const sl_obs_counters& tick) {
    double sum = 0;
    for (uint32_t b = 0; b < SL_HIST_BUCKETS; b++) {
      n += static_cast<double>(tick.hist[b]);
      sum += static_cast<double>(tick.hist[b]) * mid_us(b);
    }
    if (n) mean_us = sum / n;
  }
  // Their squared deviations from that mean.
  double squares_us2(const sl_obs_counters& tick) const {
    double squares = 0;
    for (uint32_t b = 0; b < SL_HIST_BUCKETS; b++)
      squares += static_cast<double>(tick.hist[b]) * (mid_us(b) - mean_us) * (mid_us(b) - mean_us);
    return squares;
  }
};

}  // namespace

bool answers_alike(const sl_obs_counters& tick) {
  TickAnswers a(tick);
  return a.n >= 2 && std::sqrt(a.squares_us2(tick) / (a.n - 1)) / a.mean_us < AnswerSpread::kResolvable;
}

void SlidingMin::add(uint64_t now_ns, double value) {
  while (!values_.empty() && values_.back().second >= value) values_.pop_back();
  values_.emplace_back(now_ns, value);
}

std::optional<double> SlidingMin::min(uint64_t now_ns) {
  while (!values_.empty() && now_ns - values_.front().first > horizon_ns_) values_.pop_front();
  if (values_.empty()) return std::nullopt;
  return values_.front().second;
}

void AnswerSpread::add(const sl_obs_counters& tick) {
  squares_us2_ *= kFade;
  faster_half_squares_us2_ *= kFade;
  degrees_ *= kFade;
  faster_half_degrees_ *= kFade;
  answers_ *= kFade;
  sum_us_ *= kFade;
  TickAnswers a(tick);
  double n = a.n;
  if (n < 2) return;
  double median = 0, seen = 0;
  for (uint32_t b = 0; b < SL_HIST_BUCKETS && !median; b++) {
    seen += static_cast<double>(tick.hist[b]);
    if (seen >= n / 2) median = mid_us(b);
  }
  bool has_faster_half = n >= 3;
  squares_us2_ += a.squares_us2(tick);
  for (uint32_t b = 0; b < SL_HIST_BUCKETS; b++) {
    double count = static_cast<double>(tick.hist[b]), x = mid_us(b);
    if (has_faster_half && x < median) faster_half_squares_us2_ += 2 * count * (median - x) * (median - x);
  }
  degrees_ += n - 1;
  if (has_faster_half) faster_half_degrees_ += n - 1;
  answers_ += n;
  sum_us_ += a.mean_us * n;
}

std::optional<double> AnswerSpread::cv() const {
  if (degrees_ < kKnownAfter) return std::nullopt;
  double mean = sum_us_ / answers_;
  // A queue delays answers and makes none faster: answers whose faster half
  // is all alike spread by the queue's doing, not the service's.
  if (faster_half_degrees_ >= kKnownAfter &&
      std::sqrt(faster_half_squares_us2_ / faster_half_degrees_) / mean < kResolvable)
    return 0;
  double cv = std::sqrt(squares_us2_ / degrees_) / mean;
  return cv < kResolvable ? 0 : cv;
}

std::optional<double> AnswerSpread::cv_at_most() const {
  auto spread = cv();
  if (!spread) return std::nullopt;
  return *spread * (1 + 2 / std::sqrt(2 * degrees_));
}

ResponseFloor::ResponseFloor(uint64_t horizon_ns, uint64_t pool_most_ns, uint64_t settle_ns)
    : candidates_(horizon_ns), horizon_ns_(horizon_ns), pool_most_ns_(pool_most_ns), settle_ns_(settle_ns) {}

void ResponseFloor::observe(uint64_t now_ns, Tick kind, double sum_us, uint64_t answers,
                            const sl_obs_counters& tick) {
  if (!answers) return;
  double mean_us = sum_us / static_cast<double>(answers);
  if (!first_answer_ns_) first_answer_ns_ = now_ns;
  if (!settled_) {
    settle_slowest_us_ = std::max(settle_slowest_us_, mean_us);
    settled_ = !settling(now_ns);
  }
  // The spread of answers that waited in a queue is the queue's, and that
  // of the first answers is too small (see settling()).
  if (!settling(now_ns) && (kind == Tick::kFree || kind == Tick::kDrained)) spread_.add(tick);
  std::optional<double> cv = spread();
  bool probe = kind == Tick::kDraining || kind == Tick::kDrained;
  if (settling(now_ns) || !cv) {
    // Until then the least tick mean stands in (see value()). A drain
    // probe's measure is not among the first answers, even while they
    // settle: it came after the probe drained the queue, and for a service
    // with fewer workers than the first limit admits it is the fastest
    // answer since the very first.
    bool first_answers = settling(now_ns) && kind != Tick::kDrained;
    unsure_.push_back({now_ns, mean_us, static_cast<double>(answers), first_answers, probe});
    return;
  }
  // The pools begin. The ticks before them are candidates too, now that
  // their error is known, each as a pool or a probe (below); but the first
  // answers' only if answers are all alike (see settling()).
  for (const UnsureTick& t : unsure_)
    if (*cv == 0 || !t.settling)
      add_candidate(t.at_ns, t.mean_us, t.answers, t.probe ? kProbeZ : kPoolZ,
                    t.probe ? kProbeErrorMost : kPoolErrorMost);
  unsure_.clear();

  if (probe) {
    emit_pool(now_ns);
    add_candidate(now_ns, mean_us, static_cast<double>(answers), kProbeZ, kProbeErrorMost);
  } else {
    pool(now_ns, sum_us, answers);
  }
}

// (Once the spread is known.)
void ResponseFloor::pool(uint64_t now_ns, double sum_us, uint64_t answers) {
  double cv = *spread(), n = static_cast<double>(answers);
  if (pool_answers_) {
    double pool_n = static_cast<double>(pool_answers_);
    double pool_mean = pool_sum_us_ / pool_n;
    double apart = cv * std::sqrt(1 / n + 1 / pool_n);  // the standard error of the difference
    if (std::abs(sum_us / n - pool_mean) > kChangeZ * apart * pool_mean) emit_pool(now_ns);
  }
  if (!pool_answers_) pool_since_ns_ = now_ns;
  pool_sum_us_ += sum_us;
  pool_answers_ += answers;
  double precise_at = std::ceil(cv * cv / (kPoolPrecision * kPoolPrecision));
  if (static_cast<double>(pool_answers_) >= precise_at || now_ns - pool_since_ns_ >= pool_most_ns_) emit_pool(now_ns);
}

void ResponseFloor::emit_pool(uint64_t now_ns) {
  if (!pool_answers_) return;
  double n = static_cast<double>(pool_answers_);
  add_candidate(now_ns, pool_sum_us_ / n, n, kPoolZ, kPoolErrorMost);
  pool_sum_us_ = 0;
  pool_answers_ = 0;
}

void ResponseFloor::add_candidate(uint64_t now_ns, double mean_us, double answers, double z, double most_error) {
  double error = candidate_error(answers);
  if (error <= most_error) candidates_.add(now_ns, mean_us * (1 + z * error));
}

std::optional<double> ResponseFloor::value(uint64_t now_ns) {
  if (auto floor = candidates_.min(now_ns)) return floor;
  if (settling(now_ns)) return std::nullopt;
  while (!unsure_.empty() && now_ns - unsure_.front().at_ns > horizon_ns_) unsure_.pop_front();
  if (!unsure_.empty()) {
    double least = unsure_.front().mean_us;
    for (const UnsureTick& t : unsure_) least = std::min(least, t.mean_us);
    return least;
  }
  if (pool_answers_) return pool_sum_us_ / static_cast<double>(pool_answers_);
  return std::nullopt;
}

// The first answers of a service are its fastest: the slow ones are still
// running. Their mean and spread are too low for a service whose answers
// vary (a service of 20 ms +- 100% answered its first 6 requests in 6.6 ms).
// Ten response times later, the slow ones have come: ten of the slowest
// tick mean so far, as the mean of all the first answers is pulled down by
// the fastest (answered in 6.5 ms, then 11.0 ms, it ended the settling
// 0.1 s after them, and a tick mean from then on left that server a floor
// of 15.6 ms).
bool ResponseFloor::settling(uint64_t now_ns) const {
  if (!first_answer_ns_) return true;
  if (settled_) return false;
  uint64_t settle_ns = std::min<uint64_t>(settle_ns_, static_cast<uint64_t>(kSettleTimes * settle_slowest_us_ * 1000));
  return now_ns < first_answer_ns_ + settle_ns;
}

double ResponseFloor::standard_error(double answers) const {
  return answers > 0 ? spread().value_or(0) / std::sqrt(answers) : 0;
}

// A candidate's, with the spread itself still uncertain: its highest likely
// value. A spread measured on a few ticks may be far too low, and a mean it
// calls precise enough for the floor would not be.
double ResponseFloor::candidate_error(double answers) const {
  return answers > 0 ? spread_.cv_at_most().value_or(0) / std::sqrt(answers) : 0;
}

void ResponseFloor::add_known(uint64_t now_ns, double floor_us, bool replace) {
  if (replace) {
    candidates_.reset();
    unsure_.clear();
    pool_sum_us_ = 0;
    pool_answers_ = 0;
  }
  candidates_.add(now_ns, floor_us);
}

}  // namespace sluice::control
