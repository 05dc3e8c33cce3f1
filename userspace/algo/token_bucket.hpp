#pragma once
// Token bucket with golang.org/x/time/rate semantics, in integer nanoseconds.
//
// Credit form: the bucket holds credit measured in nanoseconds of refill
// time. One token costs interval_ns; the bucket holds at most `burst` tokens,
// so capacity = burst * interval_ns. It starts full. At time t the credit is
// min(capacity, credit + (t - last)), exactly x/time/rate's
// tokens = min(b, tokens + r * dt) scaled by interval_ns, but without floats.
//
// Clock going backwards (x/time/rate's `if t < last { last = t }`): asked at
// an earlier time the bucket refills nothing and never goes negative, and a
// successful take at the earlier time moves `last` back to it. A later call
// then refills from that earlier time again; this is x/time/rate's
// behaviour and is what Gcra deliberately does not do (see gcra.hpp).
//
// Time is always passed in; the model never reads a clock. Thread-safe.

#include <cstdint>
#include <mutex>

namespace sluice::algo {

class TokenBucket {
public:
	// interval_ns == 0: unlimited, every request allowed (x/time/rate Inf).
	static constexpr uint64_t kUnlimited = 0;
	// interval_ns == UINT64_MAX: rate 0, the bucket never refills; its burst
	// is all it will ever grant (x/time/rate Limit 0).
	static constexpr uint64_t kZeroRate = UINT64_MAX;

	TokenBucket(uint64_t interval_ns, uint64_t burst);

	TokenBucket(const TokenBucket &) = delete;
	TokenBucket &operator=(const TokenBucket &) = delete;

	bool allow(uint64_t now_ns) { return allow_n(now_ns, 1); }
	// Takes n tokens if all n are there now; n > burst is always refused
	// (unless unlimited), n == 0 always succeeds. A refusal changes nothing.
	bool allow_n(uint64_t now_ns, uint64_t n);

	// Tokens the bucket would hold at now_ns, without taking any (x/time/rate
	// TokensAt). Infinity when unlimited.
	double tokens_at(uint64_t now_ns) const;

	uint64_t interval_ns() const { return interval_ns_; }
	uint64_t burst() const { return burst_; }

private:
	// burst * interval_ns can exceed 64 bits (e.g. rate 0 with burst > 1).
	__extension__ typedef unsigned __int128 Credit;

	Credit credit_at(uint64_t now_ns) const; // caller holds mu_

	const uint64_t interval_ns_;
	const uint64_t burst_;
	const Credit capacity_;

	mutable std::mutex mu_;
	Credit credit_;
	uint64_t last_ns_ = 0;
};

} // namespace sluice::algo
