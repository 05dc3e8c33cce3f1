#pragma once
// Google SRE adaptive throttling ("Handling Overload", SRE book ch. 21), with
// the semantics of kratos' sre breaker (go-kratos/aegis circuitbreaker/sre):
//
//   p = max(0, (requests - K * accepts) / (requests + 1))
//
// over a rolling window (default 3 s in 10 buckets, kratos' default), and no
// throttling at all while the window holds fewer than min_requests requests.
// K = 2 by default (kratos' own default is K = 1/0.6); lower K throttles
// earlier. The controller writes p to the kernel, which refuses each new
// request with probability p.
//
//   requests: all work offered, including what sluice itself refused -- a
//             refusal counts as an attempt that was not accepted, which is
//             what lets p climb toward 1 under a flood (kratos MarkFailed).
//   accepts:  requests the service completed without error.
//
// Not thread-safe: one controller thread owns each instance.

#include <cstdint>
#include <functional>

#include "algo/rolling_window.hpp"

namespace sluice::algo {

struct SreConfig {
	double k = 2.0;
	uint64_t min_requests = 100;
	uint64_t window_ns = 3 * kNsPerSec;
	uint32_t buckets = 10;
};

class SreThrottle {
public:
	explicit SreThrottle(const SreConfig &config = {}, uint64_t origin_ns = 0);

	void record(uint64_t now_ns, uint64_t requests, uint64_t accepts);
	// From a tick: requests = tick.requests, accepts = completed - errors.
	void record(uint64_t now_ns, const TickStats &tick);
	void mark_success(uint64_t now_ns) { record(now_ns, 1, 1); }
	void mark_failure(uint64_t now_ns) { record(now_ns, 1, 0); }

	// The rejection probability the kernel should apply now, in [0, 1).
	double probability(uint64_t now_ns) const;
	// Admit unless draw < p; draw is uniform in [0, 1).
	bool allow(uint64_t now_ns, double draw) const { return !(draw < probability(now_ns)); }
	bool allow(uint64_t now_ns, const std::function<double()> &draw) const
	{
		const double p = probability(now_ns);
		return p <= 0 || !(draw() < p);
	}

	uint64_t requests(uint64_t now_ns) const;
	uint64_t accepts(uint64_t now_ns) const;
	const SreConfig &config() const { return config_; }

private:
	struct Bucket {
		uint64_t requests = 0;
		uint64_t accepts = 0;
	};

	SreConfig config_;
	RollingWindow<Bucket> window_;
};

} // namespace sluice::algo
