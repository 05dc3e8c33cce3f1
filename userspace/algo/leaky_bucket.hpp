#pragma once
// Leaky bucket (pacer) with go.uber.org/ratelimit semantics, in integer
// nanoseconds. take(now) does not block: it returns the time at which the
// caller is permitted to proceed (the caller would sleep until then).
//
// State: the time of the last permission issued. perRequest = period / rate
// (integer division, like Go's time.Duration); maxSlack = slack * perRequest.
// take(now):
//   first call                                   -> next = now
//   no slack   and now - next > perRequest       -> next = now
//   with slack and now - next > maxSlack + perRequest
//                                                -> next = now - maxSlack
//   otherwise                                    -> next += perRequest
//   returns max(now, next)
// With slack, an idle limiter banks up to `slack` permissions that later
// callers get at once; without slack (slack 0) the pace never catches up.
//
// Time is always passed in; the model never reads a clock. Thread-safe.

#include <cstdint>
#include <mutex>

namespace sluice::algo {

class LeakyBucket {
public:
	static constexpr uint32_t kDefaultSlack = 10;
	static constexpr uint32_t kWithoutSlack = 0;
	static constexpr uint64_t kSecondNs = 1'000'000'000;

	// uber's New(rate, Per(period_ns), WithSlack(slack)). Throws
	// std::invalid_argument if rate is 0.
	explicit LeakyBucket(uint64_t rate, uint64_t period_ns = kSecondNs,
			     uint32_t slack = kDefaultSlack);

	LeakyBucket(const LeakyBucket &) = delete;
	LeakyBucket &operator=(const LeakyBucket &) = delete;

	// The time at which the caller arriving at now_ns may proceed.
	uint64_t take(uint64_t now_ns);

	uint64_t per_request_ns() const { return per_request_ns_; }
	uint64_t max_slack_ns() const { return max_slack_ns_; }

private:
	const uint64_t per_request_ns_;
	const uint64_t max_slack_ns_;

	std::mutex mu_;
	bool started_ = false; // uber uses state 0 for this; 0 is a valid fake time here
	uint64_t next_ns_ = 0;
};

} // namespace sluice::algo
