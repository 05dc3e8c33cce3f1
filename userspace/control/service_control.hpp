// The controller's decisions for one service, tick by tick: what the kernel
// observed goes in (completions, latency, errors, in-flight, refusals), the
// service's control values come out (in-flight limits per level, breaker
// state and probe budget, reject probability).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "algo/aimd.hpp"
#include "algo/bbr.hpp"
#include "algo/breaker.hpp"
#include "algo/gradient.hpp"
#include "algo/sre_throttle.hpp"
#include "control/response_floor.hpp"
#include "kernel/observation.hpp"
#include "policy/policy.hpp"
#include "sluice/abi.h"

namespace sluice::control {

// One tick of what the kernel saw of a service.
struct ServiceSample {
  kernel::Observation delta;          // counters since the previous tick
  sl_service_counters shed_delta{};   // refusals since the previous tick
  int64_t inflight = 0;               // now, leaks already subtracted
  uint64_t probes_admitted = 0;       // total ever (the kernel's counter)
};

// What the controller currently thinks of a service (status, metrics, logs).
struct ServiceView {
  uint64_t estimate = 0;        // the learned in-flight limit (0: none yet)
  bool armed = false;           // whether the in-flight limit applies now
  uint32_t kernel_limit = 0;    // what level 0 may fill (0: unlimited)
  algo::BreakerState breaker = algo::BreakerState::kClosed;
  double reject_p = 0;
  int64_t inflight = 0;
  int64_t cpu_permille = -1;    // -1: not known yet
  uint64_t min_rt_us = 0;
};

using LogLine = std::function<void(const std::string&)>;

// How many BBR windows the queue-free response time is remembered (a
// drain probe refreshes it every window while a queue persists).
inline constexpr uint64_t kRtFloorWindows = 2;
// The drain probe (TCP BBR's ProbeRTT): while a queue persists, once a
// window (the first time soon after start), admit only half the learned
// limit for a few ticks so the queue empties and the queue-free response
// time is measured again. Costs about 1% of goodput (more for services
// slower than a tick, whose probes last longer: see drain_probe_ticks).
inline constexpr uint64_t kFirstProbeNs = 1'000'000'000;
inline constexpr int kProbeTicks = 2;  // at least
// A probe that finds answers slow with the queue gone may have met a hiccup
// (a descheduled server, a burst of host work) rather than a slower service:
// the next probe comes this soon, and only two slow probes in a row move the
// floor.
inline constexpr uint64_t kConfirmProbeNs = 500'000'000;
// A service's first ten response times (at most this long) give no
// response-time floor (the slow ones are still running: see ResponseFloor),
// and the limit learns nothing yet.
inline constexpr uint64_t kSettleNs = 1'000'000'000;
// Where the limit starts before anything is known: low enough that an
// overload starting with the controller cannot queue deep, high enough not
// to clip light traffic while it learns.
inline constexpr uint64_t kInitialLimit = 4;
// Queueing: recent response times this far above the floor (entering, and
// leaving again below the second: hysteresis). Entering needs more than a
// burst of unsaturated load causes; staying needs less than the queue the
// levels' headroom keeps under overload (about 1.2x).
inline constexpr double kQueueingEnter = 1.20;
inline constexpr double kQueueingLeave = 1.05;
// Slow start doubles the limit only while response times stay this close to
// the floor.
inline constexpr double kSlowStartExit = 1.10;
// The tests against these thresholds allow for chance: a mean of answers
// that vary is taken this many standard errors lower (see ResponseFloor).
inline constexpr double kChanceZ = 2;

// How far above the learned limit each level may fill in-flight work (see
// abi.h). Headroom lets a service with room show it: a limit applied at
// exactly the estimate would cap the completions the estimate learns from.
inline constexpr double kLevelHeadroom[SL_LEVELS] = {0.3, 0.2, 0.1};

// What a previous controller learned about a service (sl_control's
// learned fields), for its successor to start from.
struct Inherited {
  uint64_t limit = 0;        // 0: nothing
  uint64_t rt_floor_us = 0;  // 0: unknown
  bool saturated = false;    // the service had shown a queue
  static Inherited from(const sl_control& c) {
    return {c.learned, c.learned_rt_floor_us, (c.learned_flags & SL_LEARNED_SATURATED) != 0};
  }
};

class ServiceController {
 public:
  // `inherited` is what a previous controller published. Its limit is kept
  // as a floor for one window, until this one has learned its own, so a
  // restart sheds nothing its predecessor would have admitted; its response
  // time floor is what the first ticks measure against, since by the time
  // this one starts, the gap between the two has built a small queue.
  ServiceController(std::string name, const policy::Tuning& tuning, uint64_t now_ns, Inherited inherited = {});

  // One tick: learn from `sample`, decide. `cpu_permille` is the smoothed
  // CPU of the service (or the host), -1 when unknown.
  sl_control tick(uint64_t now_ns, const ServiceSample& sample, int64_t cpu_permille, const LogLine& log);

  const policy::Tuning& tuning() const { return tuning_; }
  const ServiceView& view() const { return view_; }

  // The in-flight thresholds of the three levels for a learned limit (0: none).
  static void split_levels(uint64_t learned, uint32_t (&out)[SL_LEVELS]);

 private:
  // The learned limit if it applies now, else 0.
  uint64_t adaptive_limit(uint64_t now_ns, const algo::TickStats& ts, const sl_obs_counters& answers, int64_t cpu,
                          bool kernel_dropped, const LogLine& log);
  uint64_t bbr_limit(uint64_t now_ns, const algo::TickStats& ts, const sl_obs_counters& answers, int64_t cpu,
                     bool kernel_dropped, const LogLine& log);
  bool probing() const { return probe_ticks_left_ > 0; }
  void learn_from_probe(uint64_t now_ns, double probe_rt_us, uint64_t answers, const LogLine& log);
  double drain_ticks_wanted(double rt_us) const;
  double drain_ticks_most() const;
  int drain_probe_ticks(double rt_us) const;
  void breaker_tick(uint64_t now_ns, const algo::TickStats& ts, const ServiceSample& s, sl_control& out,
                    const LogLine& log);

  std::string name_;
  policy::Tuning tuning_;
  std::unique_ptr<algo::Bbr> bbr_;
  std::unique_ptr<algo::Aimd> aimd_;
  std::unique_ptr<algo::Gradient> gradient_;
  std::unique_ptr<algo::Breaker> breaker_;
  std::unique_ptr<algo::SreThrottle> sre_;
  uint64_t probe_limit_ = 0;  // kept while HALF_OPEN
  uint64_t inherited_ = 0;
  uint64_t inherited_until_ns_ = 0;
  ResponseFloor floor_;      // the queue-free response time, microseconds
  double recent_rt_us_ = 0;  // smoothed per-tick mean response time
  double answers_per_tick_ = 0;  // smoothed
  bool queueing_ = false;    // response times show a queue at the service
  bool saturated_once_ = false;  // it has shown one: limits may bind from now on
  // The first floor holds no queue the limit admitted: a drain probe, answers
  // all alike, answers while the limit left room, or a predecessor said so.
  bool floor_tested_ = false;
  uint64_t learned_ = 0;     // the BBR limit as sluice runs it (see bbr_limit)
  uint64_t last_tick_ns_ = 0;
  uint64_t tick_ns_ = 0;  // how long the latest tick covered
  uint64_t next_probe_ns_ = 0;
  uint64_t grown_ns_ = 0;  // when a refusal last grew the limit
  bool relearning_passes_ = false;  // the window was forgotten and spans too little yet
  bool said_window_too_short_ = false;  // the log said the service is too slow for the window's probes
  int probe_ticks_left_ = 0;
  int probe_ticks_spare_ = 0;  // ticks a probe may go on while its last one has no answers to measure
  bool after_probe_ = false;  // the tick after a probe still shows its refusals
  double slow_probe_rt_us_ = 0;      // a probe that found the service slower, awaiting the next
  uint64_t slow_probe_until_ns_ = 0;  // the next probe must come before this to confirm it
  ServiceView view_;
};

}  // namespace sluice::control
