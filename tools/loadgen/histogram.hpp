// Log-linear histogram: exact below 2^SubBits, then 2^SubBits linear buckets
// per power of two, so every recorded value is kept within 2^-SubBits relative
// error at a fixed, small memory cost.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace loadgen {

template <int SubBits>
class LogHistogram {
public:
    static constexpr uint64_t kSub = uint64_t(1) << SubBits;
    static constexpr int kMaxExponent = 40;  // 2^40 ns is about 18 minutes
    static constexpr size_t kBuckets = kSub + (kMaxExponent - SubBits) * kSub;

    LogHistogram() : counts_(kBuckets, 0) {}

    void record(uint64_t value) {
        ++counts_[index_of(value)];
        ++count_;
        sum_ += value;
        max_ = std::max(max_, value);
        min_ = std::min(min_, value);
    }

    void merge(const LogHistogram& other) {
        for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
        count_ += other.count_;
        sum_ += other.sum_;
        max_ = std::max(max_, other.max_);
        min_ = std::min(min_, other.min_);
    }

    uint64_t count() const { return count_; }
    uint64_t max() const { return count_ ? max_ : 0; }
    uint64_t min() const { return count_ ? min_ : 0; }
    double mean() const { return count_ ? double(sum_) / double(count_) : 0.0; }

    // The value below which `percent` of the recorded values lie (bucket
    // midpoint, clamped to the observed range); 0 when empty.
    uint64_t percentile(double percent) const {
        if (count_ == 0) return 0;
        if (percent >= 100.0) return max_;
        auto rank = static_cast<uint64_t>(std::ceil(percent / 100.0 * double(count_)));
        rank = std::clamp<uint64_t>(rank, 1, count_);
        uint64_t seen = 0;
        for (size_t i = 0; i < kBuckets; ++i) {
            seen += counts_[i];
            if (seen >= rank) {
                uint64_t mid = lower_bound_of(i) + (width_of(i) - 1) / 2;
                return std::clamp(mid, min_, max_);
            }
        }
        return max_;
    }

private:
    static size_t index_of(uint64_t v) {
        if (v < kSub) return size_t(v);
        int exponent = 63 - __builtin_clzll(v);
        if (exponent >= kMaxExponent) return kBuckets - 1;
        uint64_t sub = (v >> (exponent - SubBits)) - kSub;
        return size_t(kSub + uint64_t(exponent - SubBits) * kSub + sub);
    }
    static uint64_t lower_bound_of(size_t i) {
        if (i < kSub) return i;
        uint64_t k = i - kSub;
        int shift = int(k / kSub);
        return (kSub + k % kSub) << shift;
    }
    static uint64_t width_of(size_t i) {
        if (i < kSub) return 1;
        return uint64_t(1) << ((i - kSub) / kSub);
    }

    std::vector<uint64_t> counts_;
    uint64_t count_ = 0;
    uint64_t sum_ = 0;
    uint64_t max_ = 0;
    uint64_t min_ = UINT64_MAX;
};

}  // namespace loadgen
