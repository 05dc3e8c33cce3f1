#include "control/service_control.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sluice::control {

namespace {

constexpr uint64_t kMsNs = 1'000'000;
// How much the smoothed response time weighs each tick (an EWMA): it holds
// about (2 - w) / w ticks' answers.
constexpr double kRecentWeight = 0.3;

uint8_t kernel_state_of(algo::BreakerState s) {
  return s == algo::BreakerState::kOpen ? SL_BREAKER_OPEN
         : s == algo::BreakerState::kHalfOpen ? SL_BREAKER_HALF_OPEN
                                              : SL_BREAKER_CLOSED;
}

// Responses slower than `threshold_ms`, from the tick's histogram: every
// bucket whose lower bound reaches the threshold counts.
uint64_t slow_responses(const sl_obs_counters& d, uint32_t threshold_ms) {
  if (!threshold_ms) return 0;
  uint64_t slow = 0;
  for (uint32_t b = 0; b < SL_HIST_BUCKETS; b++)
    if (sl_hist_lower_us(b) >= uint64_t{threshold_ms} * 1000) slow += d.hist[b];
  return slow;
}

}  // namespace

ServiceController::ServiceController(std::string name, const policy::Tuning& t, uint64_t now_ns, Inherited inherited)
    : name_(std::move(name)),
      tuning_(t),
      floor_(kRtFloorWindows * uint64_t{t.window_ms} * kMsNs, uint64_t{t.window_ms} * kMsNs / 4, kSettleNs) {
  uint64_t window_ns = uint64_t{t.window_ms} * kMsNs;
  inherited_ = inherited.limit;
  inherited_until_ns_ = now_ns + window_ns;
  saturated_once_ = inherited.saturated;
  // The first drain probe measures the floor; an inherited one is fresh, so
  // the next probe is a window away, as it was for the predecessor.
  next_probe_ns_ = now_ns + kFirstProbeNs;
  if (inherited.rt_floor_us) {
    floor_.add_known(now_ns, static_cast<double>(inherited.rt_floor_us), false);
    floor_tested_ = true;
    next_probe_ns_ = now_ns + window_ns;
  }
  switch (t.adaptive) {
    case policy::Adaptive::Bbr: {
      algo::BbrConfig c;
      c.window_ns = window_ns;
      c.buckets = t.window_buckets;
      c.cpu_threshold_permille = int64_t{t.cpu_threshold_pct} * 10;
      // kratos rounds minRT up to whole milliseconds, which inflates the
      // limit of fast services (0.25 ms counts as 1 ms: 4x); sluice measures
      // RT in the kernel to the microsecond and uses it.
      c.estimator = algo::BbrEstimator::kExactMinRt;
      bbr_ = std::make_unique<algo::Bbr>(c, now_ns);
      break;
    }
    case policy::Adaptive::Aimd: {
      algo::AimdConfig c;
      c.initial_limit = 10;
      c.min_limit = 1;
      c.max_limit = 100'000;
      if (t.timeout_ms) c.timeout_us = uint64_t{t.timeout_ms} * 1000;
      aimd_ = std::make_unique<algo::Aimd>(c);
      break;
    }
    case policy::Adaptive::Gradient: {
      algo::GradientConfig c;
      c.initial_limit = 10;
      c.min_limit = 1;
      c.max_limit = 100'000;
      gradient_ = std::make_unique<algo::Gradient>(c);
      break;
    }
    case policy::Adaptive::Off:
      break;
  }
  uint64_t breaker_window_ns = uint64_t{t.breaker_window_ms} * kMsNs;
  if (t.breaker == policy::BreakerKind::Ratio) {
    algo::BreakerConfig c;
    c.window_ns = breaker_window_ns;
    c.buckets = 10;
    c.min_calls = t.breaker_min_calls;
    c.error_ratio = t.breaker_error_pct / 100.0;
    if (t.breaker_slow_pct) c.slow_ratio = t.breaker_slow_pct / 100.0;
    c.slow_call_us = uint64_t{t.breaker_slow_ms} * 1000;
    c.open_ns = uint64_t{t.breaker_open_ms} * kMsNs;
    c.probe_budget = t.breaker_probes;
    breaker_ = std::make_unique<algo::Breaker>(c, now_ns);
  } else if (t.breaker == policy::BreakerKind::Sre) {
    algo::SreConfig c;
    c.k = t.sre_k;
    c.min_requests = t.breaker_min_calls;
    c.window_ns = breaker_window_ns;
    c.buckets = 10;
    sre_ = std::make_unique<algo::SreThrottle>(c, now_ns);
  }
}

void ServiceController::split_levels(uint64_t learned, uint32_t (&out)[SL_LEVELS]) {
  for (int l = 0; l < SL_LEVELS; l++) {
    if (!learned) {
      out[l] = 0;
      continue;
    }
    uint64_t with_room = static_cast<uint64_t>(std::ceil(learned * (1.0 + kLevelHeadroom[l])));
    out[l] = static_cast<uint32_t>(std::min<uint64_t>(UINT32_MAX, std::max(learned + 1, with_room)));
  }
}

/*
 * A drain probe just ended; its last interval answered in `probe_rt_us`. Well
 * above the floor, the service itself may have got slower (a host short of
 * CPU, a slower dependency) and what looked like a queue was not one:
 * without following it, Little's law with a stale floor under-estimates
 * every service that slowed down. But one slow probe may have met a hiccup;
 * moving the floor on it would take the hiccup for the service's speed, and
 * the queue the higher limit then admits would hide the mistake for a
 * window. So a slow probe asks for another soon, and the second in a row
 * moves the floor. The passes measured at the old speed go with it: times
 * the new floor, they would count more in flight than the slower service
 * holds; the limit holds until the window has passes enough again.
 */
void ServiceController::learn_from_probe(uint64_t now_ns, double probe_rt_us, uint64_t answers, const LogLine& log) {
  auto floor_us = floor_.value(now_ns);
  // Answers so slow that no probe (at most a quarter of the window) could
  // drain their queue cannot tell a slower service from that queue. (Less
  // the margin a drained queue may still leave, as for queueing itself.)
  bool could_drain = drain_ticks_wanted(probe_rt_us / kQueueingEnter) <= drain_ticks_most();
  double chance = kChanceZ * floor_.standard_error(static_cast<double>(answers));
  if (!floor_us || probe_rt_us * (1 - chance) <= *floor_us * kQueueingEnter || !could_drain) {
    slow_probe_rt_us_ = 0;
    // Far faster than the floor: the floor held a queue, and so did the
    // limit the probe halved, which may have left some of it. The next
    // probe comes soon and drains from the lower limit.
    if (floor_us && probe_rt_us * (1 + chance) * kQueueingEnter < *floor_us)
      next_probe_ns_ = std::min(next_probe_ns_, now_ns + kConfirmProbeNs);
    return;
  }
  char line[200];
  if (!slow_probe_rt_us_ || now_ns > slow_probe_until_ns_) {
    slow_probe_rt_us_ = probe_rt_us;
    next_probe_ns_ = std::min(next_probe_ns_, now_ns + kConfirmProbeNs);
    // Time for the next probe to come (late by what a queue takes to show:
    // kConfirmProbeNs, or two response times of a slow service) and to end,
    // with a tick to spare.
    uint64_t queue_shows_ns = std::max<uint64_t>(kConfirmProbeNs, static_cast<uint64_t>(2 * probe_rt_us * 1000));
    slow_probe_until_ns_ = next_probe_ns_ + queue_shows_ns + (drain_probe_ticks(probe_rt_us) + 1) * tick_ns_;
    snprintf(line, sizeof(line), ": answers took %.1f ms with the queue drained (floor %.1f ms); probing again",
             probe_rt_us / 1000, *floor_us / 1000);
    log(name_ + line);
    return;
  }
  double slower_us = std::min(slow_probe_rt_us_, probe_rt_us);
  slow_probe_rt_us_ = 0;
  snprintf(line, sizeof(line), ": the service got slower: floor %.1f -> %.1f ms (two drain probes agree)",
           *floor_us / 1000, slower_us / 1000);
  log(name_ + line);
  floor_.add_known(now_ns, slower_us, true);
  recent_rt_us_ = slower_us;
  queueing_ = false;
  bbr_->forget_window();
  relearning_passes_ = true;
}

// How many ticks a drain probe wants for a service answering in `rt_us`
// without a queue. The queue drains within about one response time, the
// requests admitted after that answer one more later, and the probe's last
// tick, its measurement, must count only those.
double ServiceController::drain_ticks_wanted(double rt_us) const {
  return 1 + std::ceil(2 * rt_us * 1000 / static_cast<double>(std::max<uint64_t>(tick_ns_, 1)));
}

// The longest a probe may last: a quarter of the window.
double ServiceController::drain_ticks_most() const {
  return std::floor(static_cast<double>(bbr_->config().window_ns) / 4 /
                    static_cast<double>(std::max<uint64_t>(tick_ns_, 1)));
}

// A drain probe's length: what it wants, at least two ticks, at most a
// quarter of the window.
int ServiceController::drain_probe_ticks(double rt_us) const {
  return static_cast<int>(std::max<double>(kProbeTicks, std::min(drain_ticks_wanted(rt_us), drain_ticks_most())));
}

/*
 * BBR as sluice runs it. Little's law (maxPass x minRT) measures capacity
 * only while the service is saturated; below that it measures the current
 * concurrency, and a limit that always applies (--cpu-threshold 0) would
 * clip the load's natural bursts and learn the clipped rate again. So the
 * limit follows Little's law while response times show a queue at the
 * service (or before anything was learned); while they show none and the
 * kernel still refuses work, the limit is in the way of load the service
 * could take, and it grows by sqrt(L) a step (Gradient2's queue allowance),
 * by doubling before the service ever showed a queue (slow start) while
 * answers sit surely at the floor, a step at most every tick and every
 * response time; and it stays at least twice the concurrency it sees, room
 * for bursts.
 */
uint64_t ServiceController::bbr_limit(uint64_t now_ns, const algo::TickStats& ts, const sl_obs_counters& answers,
                                      int64_t cpu, bool kernel_dropped, const LogLine& log) {
  // The tick counted the time since the last one (tick_ns_): the window's
  // buckets share it by the time each covers.
  bbr_->record_over(now_ns - std::min(now_ns, tick_ns_), now_ns, ts);
  algo::BbrDecision d = bbr_->decide(now_ns, std::max<int64_t>(cpu, 0), ts.in_flight, kernel_dropped);

  // minRT over several windows: a limit that always applies keeps a small
  // queue (the levels' headroom), and once a window has forgotten the
  // queue-free response time, maxPass x minRT would equal whatever was
  // admitted and creep upward window after window.
  // A drain probe's ticks (and the one after) are its own doing: they do
  // not change what is known about queueing. Those that ran at the probe's
  // limit do not grow the limit either (their refusals are the probe's);
  // the tick after ran at the limit again.
  bool probe_ticks = probing() || after_probe_;
  bool probe_limited = probing();
  after_probe_ = probing();
  if (probing()) {
    // The last tick measures the probe; a slow service answers in bunches
    // and may answer nothing in it. Then the probe goes on a tick rather
    // than measure nothing and wait a window for the next.
    if (probe_ticks_left_ == 1 && !ts.rt_samples && probe_ticks_spare_ > 0)
      probe_ticks_spare_--;
    else
      probe_ticks_left_--;
  }
  // This tick counted the probe's last interval: the queue had drained.
  bool probe_ended = after_probe_ && !probing();

  // Until the floor is known (kSettleNs), nothing is learned: the limit
  // stays where it starts.
  uint64_t littles = 0;
  double tick_rt = 0;
  if (ts.rt_samples) {
    tick_rt = static_cast<double>(ts.rt_sum_us) / static_cast<double>(ts.rt_samples);
    if (probe_ended) learn_from_probe(now_ns, tick_rt, ts.rt_samples, log);
    ResponseFloor::Tick kind = probe_ended  ? ResponseFloor::Tick::kDrained
                               : probe_ticks ? ResponseFloor::Tick::kDraining
                               : queueing_   ? ResponseFloor::Tick::kQueued
                                             : ResponseFloor::Tick::kFree;
    floor_.observe(now_ns, kind, static_cast<double>(ts.rt_sum_us), ts.rt_samples, answers);
    // Slow enough that one bursty tick is not a queue; real overload raises
    // response times several-fold and shows within a few ticks. A probe's
    // drained ticks teach the floor, not what the service usually sees.
    if (!probe_ticks) {
      recent_rt_us_ = recent_rt_us_ ? (1 - kRecentWeight) * recent_rt_us_ + kRecentWeight * tick_rt : tick_rt;
      double n = static_cast<double>(ts.rt_samples);
      answers_per_tick_ = answers_per_tick_ ? 0.9 * answers_per_tick_ + 0.1 * n : n;
    }
  }
  // The response times as low as chance could have made them: answers that
  // vary make slow ticks without a queue, and the tests below must not take
  // them for one.
  auto at_least = [&](double rt_us, double answers) {
    return rt_us * (1 - std::min(0.5, kChanceZ * floor_.standard_error(answers)));
  };
  double recent_low = at_least(recent_rt_us_, answers_per_tick_ * (2 - kRecentWeight) / kRecentWeight);
  double tick_low = at_least(tick_rt, static_cast<double>(ts.rt_samples));
  bool binding = kernel_dropped || (learned_ && ts.in_flight >= learned_);
  // Answers that came while the limit left room had no queue it admitted.
  if (!binding && ts.rt_samples && !probe_ticks) floor_tested_ = true;
  bool floor_known = false;
  double floor_us_now = 0;
  if (auto floor_us = floor_.value(now_ns)) {
    floor_known = true;
    floor_us_now = *floor_us;
    const algo::BbrConfig& cfg = bbr_->config();
    double buckets_per_second = cfg.buckets * 1e9 / static_cast<double>(cfg.window_ns);
    // Over buckets as long as two response times: a slow service's answers
    // come in bunches (one bucket's max would count a bunch as its rate, and
    // one response time's worth can still hold a bunch too many). A floor a
    // twentieth of a bucket past a boundary needs no bucket more: that much
    // is the floor's own imprecision.
    auto span = static_cast<uint32_t>(std::ceil(2 * *floor_us * 1000 * buckets_per_second / 1e9 - 0.05));
    // With the window forgotten (the floor moved), a bunch or two would
    // count as the rate until the window spans two response times again
    // (or is full: at most buckets - 1 are complete); until then the limit
    // holds. (The first bucket after forgetting holds only the part of its
    // time that came after: one more.)
    if (relearning_passes_ && bbr_->complete_buckets(now_ns) >= std::min(span + 1, cfg.buckets - 1))
      relearning_passes_ = false;
    double max_pass = bbr_->max_pass_over(now_ns, span);
    littles = static_cast<uint64_t>(std::floor(max_pass * *floor_us * buckets_per_second / 1e6 + 0.5));
    view_.min_rt_us = static_cast<uint64_t>(*floor_us);
    // Slow answers alone are no queue for admission to act on: a host short
    // of CPU slows a lightly loaded service too. Only while the limit binds
    // (work refused, or in flight up to the learned limit) does a slowdown
    // mean that admitting more would only queue.
    // And until it is known how much answers vary, slow answers may be
    // chance: the queue is judged against a floor whose precision is known.
    bool judged = floor_.spread().has_value();
    if (!probe_ticks && !queueing_ && binding && judged && recent_low > *floor_us * kQueueingEnter) queueing_ = true;
    if (!probe_ticks && queueing_ && recent_low < *floor_us * kQueueingLeave) queueing_ = false;
  }
  saturated_once_ |= queueing_;

  // A refusal grows the limit only while response times sit at the floor:
  // once they start to rise the service is near its capacity, and growing
  // would overshoot it into a queue before the smoothed time shows one (TCP's
  // HyStart leaves slow start on rising delay too). Until the service first
  // shows a queue the limit doubles (as TCP's slow start), after that it
  // grows by sqrt(L). (The latest tick itself: the smoothed time lags.)
  bool flat = floor_known && std::max(tick_low, recent_low) <= floor_us_now * kSlowStartExit;
  // Doubling needs more: the latest tick's own mean at the floor, not just
  // one that chance could have lifted off it. A limit that already meets
  // the capacity admits its headroom as a small queue, and the waits in it
  // spread the answers, so the discount for chance grows with the very
  // queue it should show (8 x 20 ms: 8 doubled to 16, and answers took 55
  // ms). Between the two, the limit grows by sqrt(L) and keeps no room
  // beyond Little's law, as HyStart++ slows TCP's slow start on a first
  // rise in delay.
  bool surely_flat = flat && (saturated_once_ || std::max(tick_rt, recent_low) <= floor_us_now * kSlowStartExit);
  uint64_t doubling = std::max<uint64_t>(1, learned_);
  uint64_t sqrt_step = std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(std::sqrt(learned_))));
  uint64_t step = !flat ? 0 : !saturated_once_ && surely_flat ? doubling : sqrt_step;
  // Without a queue, Little's law sees only the current concurrency: while
  // answers are as fast as ever, keep twice that as room for the load's
  // bursts (once they slow down, the service is near what it can take).
  uint64_t room = surely_flat ? 2 * littles : littles;
  // Steps come at most once a response time (as TCP grows its window once a
  // round trip): what a step admits shows in response times only that much
  // later, and a slow service would be stepped far past its capacity before
  // the first of them came back. (Half a tick of slack: ticks jitter.)
  bool grown_a_response_time_ago = now_ns + tick_ns_ / 2 >= grown_ns_ + static_cast<uint64_t>(floor_us_now * 1000);
  bool would_grow = kernel_dropped && !probe_limited && grown_a_response_time_ago;
  // Answers that came while the limit refused work may hold the queue that
  // limit admitted (an overload from the start, on a service with fewer
  // workers than the first limit admits): they look flat against a floor
  // learned from them, and growing would deepen that queue. Unless they are
  // all alike (a queue would have spread them), a drain probe tests the
  // floor before the limit first grows; it starts at once, while the first
  // answers settle and nothing is learned anyway.
  bool floor_in_doubt = !floor_tested_ && !answers_alike(answers);
  if (!floor_in_doubt) floor_tested_ = true;
  bool test_floor = floor_in_doubt && kernel_dropped && !probe_ticks && ts.rt_samples;
  if (relearning_passes_ && learned_) {
    // The limit holds (see above).
  } else if (!learned_ && !queueing_) {
    learned_ = std::max(littles, kInitialLimit);
  } else if (!learned_ || queueing_) {
    learned_ = littles;
  } else if (floor_in_doubt || probe_limited) {
    // The limit holds until a probe (below) has tested the floor, and
    // while a probe drains.
  } else if (would_grow) {
    learned_ = std::max(room, learned_ + step);
    grown_ns_ = now_ns;
  } else {
    learned_ = std::max(room, learned_);
  }
  if (probe_ended) floor_tested_ = true;
  bool probe_due = queueing_ && now_ns >= next_probe_ns_;
  if (probe_due || test_floor) {
    // A probe that confirms a slowdown drains the queue of the slower
    // service: sized by the old floor, it would end before that queue is
    // gone and measure some of its wait.
    bool confirming = slow_probe_rt_us_ && now_ns <= slow_probe_until_ns_;
    // (Before a floor is known, the answers' time stands in.)
    double rt_us = floor_known ? floor_us_now : tick_rt;
    probe_ticks_left_ = drain_probe_ticks(confirming ? std::max(rt_us, slow_probe_rt_us_) : rt_us);
    probe_ticks_spare_ = probe_ticks_left_;
    // A service too slow for that cannot be probed: say once what would fit
    // (four times the probe it wants, to the second).
    bool floor_fits = drain_ticks_wanted(floor_us_now) <= drain_ticks_most();
    if (!floor_fits && !said_window_too_short_) {
      double fitting_s = std::ceil(4 * drain_ticks_wanted(floor_us_now) * static_cast<double>(tick_ns_) / 1e9);
      char line[240];
      snprintf(line, sizeof(line),
               ": answers take %.0f ms, too slow to drain in a probe of at most a quarter of the %.0f s window; "
               "the learned limit will be imprecise (a window that fits: --window %.0f)",
               floor_us_now / 1000, static_cast<double>(bbr_->config().window_ns) / 1e9, 1000 * fitting_s);
      log(name_ + line);
    }
    said_window_too_short_ = !floor_fits;
    // (A test of the first floor leaves the schedule alone: the first
    // probe for a queue still comes soon after start.)
    if (probe_due) next_probe_ns_ = now_ns + bbr_->config().window_ns;
  }
  if (now_ns < inherited_until_ns_) learned_ = std::max(learned_, inherited_);
  view_.estimate = learned_;
  view_.armed = d.armed;
  return view_.armed ? std::max<uint64_t>(learned_, 1) : 0;
}

uint64_t ServiceController::adaptive_limit(uint64_t now_ns, const algo::TickStats& ts, const sl_obs_counters& answers,
                                           int64_t cpu, bool kernel_dropped, const LogLine& log) {
  if (bbr_) return bbr_limit(now_ns, ts, answers, cpu, kernel_dropped, log);
  if (aimd_) {
    view_.estimate = aimd_->record(ts);
    view_.armed = true;
    return view_.estimate;
  }
  if (gradient_) {
    view_.estimate = gradient_->record(ts);
    view_.armed = true;
    return view_.estimate;
  }
  return 0;
}

void ServiceController::breaker_tick(uint64_t now_ns, const algo::TickStats& ts, const ServiceSample& s,
                                     sl_control& out, const LogLine& log) {
  if (breaker_) {
    breaker_->record(now_ns, ts);
    algo::BreakerState state = breaker_->state(now_ns);
    for (const auto& t : breaker_->take_transitions()) {
      log(name_ + ": breaker " + algo::describe(t, breaker_->config()));
      if (t.to == algo::BreakerState::kHalfOpen) probe_limit_ = s.probes_admitted + breaker_->config().probe_budget;
    }
    out.breaker_state = kernel_state_of(state);
    out.probe_limit = state == algo::BreakerState::kHalfOpen ? probe_limit_ : 0;
    view_.breaker = state;
  }
  if (sre_) {
    sre_->record(now_ns, ts);
    double p = sre_->probability(now_ns);
    bool was = view_.reject_p > 0.05, is = p > 0.05;
    if (was != is) {
      char line[160];
      snprintf(line, sizeof(line), ": throttling %s: p = %.3f (requests %llu, accepts %llu, K %.2f)",
               is ? "starts" : "ends", p, static_cast<unsigned long long>(sre_->requests(now_ns)),
               static_cast<unsigned long long>(sre_->accepts(now_ns)), sre_->config().k);
      log(name_ + line);
    }
    view_.reject_p = p;
    out.reject_p = static_cast<uint32_t>(std::clamp(p, 0.0, 1.0) * SL_P_ONE);
  }
}

sl_control ServiceController::tick(uint64_t now_ns, const ServiceSample& s, int64_t cpu_permille,
                                   const LogLine& log) {
  const sl_obs_counters& d = s.delta.counters;
  uint64_t refused = s.shed_delta.shed[SL_R_INFLIGHT] + s.shed_delta.shed[SL_R_BREAKER] + s.shed_delta.shed[SL_R_THROTTLE];

  algo::TickStats ts;
  ts.requests = d.started + refused;
  ts.completed = d.responses + d.server_aborts;
  ts.rt_sum_us = d.latency_sum_ns / 1000;
  ts.rt_samples = d.responses;
  ts.errors = d.errors + d.timeouts + d.server_aborts;
  ts.slow = slow_responses(d, tuning_.breaker_slow_ms);
  ts.in_flight = static_cast<uint64_t>(std::max<int64_t>(0, s.inflight));

  // How long this tick counted (the first: as long as a bucket).
  uint64_t bucket_ns = uint64_t{tuning_.window_ms} * kMsNs / tuning_.window_buckets;
  tick_ns_ = last_tick_ns_ && now_ns > last_tick_ns_ ? now_ns - last_tick_ns_ : bucket_ns;
  last_tick_ns_ = now_ns;

  sl_control out{};
  uint64_t before = view_.estimate;
  bool was_armed = view_.armed;
  uint64_t learned =
      adaptive_limit(now_ns, ts, d, cpu_permille, s.shed_delta.shed[SL_R_INFLIGHT] > 0, log);
  if (learned && probing()) {
    for (uint32_t& level : out.max_inflight) level = static_cast<uint32_t>(std::max<uint64_t>(1, learned / 2));
  } else {
    split_levels(learned, out.max_inflight);
  }
  breaker_tick(now_ns, ts, s, out, log);
  view_.kernel_limit = out.max_inflight[0];
  out.learned = static_cast<uint32_t>(std::min<uint64_t>(view_.estimate, UINT32_MAX));
  out.learned_rt_floor_us = static_cast<uint32_t>(std::min<uint64_t>(view_.min_rt_us, UINT32_MAX));
  out.learned_flags = saturated_once_ ? SL_LEARNED_SATURATED : 0;
  view_.inflight = s.inflight;
  view_.cpu_permille = cpu_permille;

  // A limit change is worth a line when it arms, disarms or moves by a tenth.
  uint64_t after = view_.estimate;
  bool moved = after != before && (std::max(after, before) - std::min(after, before)) * 10 >= before;
  if (was_armed != view_.armed || (view_.armed && moved)) {
    char line[200];
    snprintf(line, sizeof(line),
             ": limit %s %llu -> %llu in flight (kernel admits %u/%u/%u by level; cpu %lld%%, in flight %lld)",
             view_.armed ? (was_armed ? "moves" : "applies") : "lifted", static_cast<unsigned long long>(before),
             static_cast<unsigned long long>(after), out.max_inflight[0], out.max_inflight[1], out.max_inflight[2],
             static_cast<long long>(cpu_permille / 10), static_cast<long long>(s.inflight));
    log(name_ + line);
  }
  return out;
}

}  // namespace sluice::control
