// Open-loop arrival times. Each thread owns every `stride`-th arrival of one
// global schedule, so N threads together offer exactly the configured rate
// and the arrival index (used for source round-robin and --max) is global.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

#include "config.hpp"

namespace loadgen {

class ArrivalSchedule {
public:
    ArrivalSchedule(const Config& config, unsigned stride, unsigned phase, int64_t start_ns)
        : kind_(config.arrivals),
          start_ns_(start_ns),
          end_ns_(start_ns + int64_t(config.duration_s * 1e9)),
          period_ns_(1e9 / config.rate),
          stride_(stride),
          max_arrivals_(config.max_arrivals),
          index_(phase),
          random_(config.seed * 0x9E3779B97F4A7C15ULL + phase),
          gap_ns_(config.rate / stride / 1e9) {
        time_ns_ = kind_ == Arrivals::Constant ? constant_time(index_) : start_ns_ + draw_gap();
    }

    bool done() const {
        return time_ns_ >= end_ns_ || (max_arrivals_ != 0 && index_ >= max_arrivals_);
    }
    int64_t time_ns() const { return time_ns_; }
    uint64_t index() const { return index_; }
    int64_t end_ns() const { return end_ns_; }

    void advance() {
        index_ += stride_;
        time_ns_ = kind_ == Arrivals::Constant ? constant_time(index_) : time_ns_ + draw_gap();
    }

private:
    // Computed from the index, not accumulated, so rounding never drifts.
    int64_t constant_time(uint64_t index) const {
        return start_ns_ + int64_t(std::llround(double(index) * period_ns_));
    }
    int64_t draw_gap() { return int64_t(std::llround(gap_ns_(random_))); }

    Arrivals kind_;
    int64_t start_ns_;
    int64_t end_ns_;
    double period_ns_;
    unsigned stride_;
    uint64_t max_arrivals_;
    uint64_t index_;
    int64_t time_ns_ = 0;
    std::mt19937_64 random_;
    std::exponential_distribution<double> gap_ns_;
};

}  // namespace loadgen
