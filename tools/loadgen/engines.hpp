// The per-thread engines. Each runs its share of the arrival schedule from
// `start_ns` and returns when every attempt it made has an outcome.
#pragma once

#include <atomic>
#include <cstdint>

#include "config.hpp"
#include "results.hpp"

namespace loadgen {

void run_udp(const Config& config, unsigned thread_index, int64_t start_ns, Results& results);
void run_tcp(const Config& config, unsigned thread_index, int64_t start_ns, Results& results);

// Arrivals still due this long after the window ends are counted as
// skipped_late instead of sent: a generator that cannot keep up must still stop.
inline constexpr int64_t kLateGraceNs = 1'000'000'000;

// Set by SIGINT/SIGTERM: engines stop scheduling, finish what is in flight,
// and the results are still reported.
extern std::atomic<bool> stop_requested;

// Engines never sleep longer than this, so they notice stop_requested.
inline constexpr int64_t kMaxSleepNs = 100'000'000;

// Nor shorter than this: at 100k arrivals/s a wakeup per arrival costs more
// CPU than the sends. Arrivals closer together than this go out together, up
// to this much late (visible in send_lag_us); the rate is unchanged.
inline constexpr int64_t kMinSleepNs = 50'000;

}  // namespace loadgen
