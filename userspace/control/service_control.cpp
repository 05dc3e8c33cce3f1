#include "control/service_control.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sluice::control {

namespace {

constexpr uint64_t kMsNs = 1'000'000;

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

void SlidingMin::add(uint64_t now_ns, double value) {
  while (!values_.empty() && values_.back().second >= value) values_.pop_back();
  values_.emplace_back(now_ns, value);
}

std::optional<double> SlidingMin::min(uint64_t now_ns) {
  while (!values_.empty() && now_ns - values_.front().first > horizon_ns_) values_.pop_front();
  if (values_.empty()) return std::nullopt;
  return values_.front().second;
}

ServiceController::ServiceController(std::string name, const policy::Tuning& t, uint64_t now_ns, uint64_t inherited)
    : name_(std::move(name)), tuning_(t) {
  uint64_t window_ns = uint64_t{t.window_ms} * kMsNs;
  inherited_ = inherited;
  inherited_until_ns_ = now_ns + window_ns;
  rt_floor_ = SlidingMin(kRtFloorWindows * window_ns);
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

uint64_t ServiceController::adaptive_limit(uint64_t now_ns, const algo::TickStats& ts, int64_t cpu,
                                           bool kernel_dropped) {
  if (bbr_) {
    bbr_->record(now_ns, ts);
    algo::BbrDecision d = bbr_->decide(now_ns, std::max<int64_t>(cpu, 0), ts.in_flight, kernel_dropped);
    // Little's law as kratos has it, maxPass x minRT, but with minRT taken
    // over several windows: a limit that is always applied keeps a small
    // queue (the levels' headroom), and once a window has forgotten the
    // queue-free response time, maxPass x minRT would equal whatever was
    // admitted and creep upward window after window.
    if (ts.rt_samples) rt_floor_.add(now_ns, static_cast<double>(ts.rt_sum_us) / static_cast<double>(ts.rt_samples));
    uint64_t estimate = d.max_in_flight;
    if (auto floor_us = rt_floor_.min(now_ns)) {
      const algo::BbrConfig& cfg = bbr_->config();
      double buckets_per_second = cfg.buckets * 1e9 / static_cast<double>(cfg.window_ns);
      double max_pass = static_cast<double>(bbr_->stat(now_ns, cpu, ts.in_flight).max_pass);
      estimate = static_cast<uint64_t>(std::floor(max_pass * *floor_us * buckets_per_second / 1e6 + 0.5));
      view_.min_rt_us = static_cast<uint64_t>(*floor_us);
    }
    if (now_ns < inherited_until_ns_) estimate = std::max(estimate, inherited_);
    view_.estimate = estimate;
    view_.armed = d.armed;
    return d.armed ? std::max<uint64_t>(estimate, 1) : 0;
  }
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

  sl_control out{};
  uint64_t before = view_.estimate;
  bool was_armed = view_.armed;
  uint64_t learned = adaptive_limit(now_ns, ts, cpu_permille, s.shed_delta.shed[SL_R_INFLIGHT] > 0);
  split_levels(learned, out.max_inflight);
  breaker_tick(now_ns, ts, s, out, log);
  view_.kernel_limit = out.max_inflight[0];
  out.learned = static_cast<uint32_t>(std::min<uint64_t>(view_.estimate, UINT32_MAX));
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
