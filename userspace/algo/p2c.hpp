#pragma once
// Power of two choices with EWMA load, after kratos' p2c balancer
// (selector/p2c + selector/node/ewma), in integer nanoseconds with the time
// passed in.
//
// Per replica the balancer keeps, from completed requests:
//   latency  EWMA of request latency (ns),
//   health   EWMA of success, 1000 for a success and 0 for a failure,
// each sample weighted w = e^(-dt / tau), tau = 600 ms, dt the time since
// the replica's previous sample; the first sample is taken as is (w = 0).
// It also tracks the replica's outstanding requests (begun, not yet done).
//
// Weight (higher is better):
//
//   weight = health * 1 s / (load_latency * (inflight + 1))
//
//   load_latency = 10 s (a penalty)           before the first sample,
//                = max(latency, predicted, 1 ns) after it,
//   predicted    = mean age of the outstanding requests older than
//                  `latency`, when they are more than half of all
//                  outstanding requests (0 otherwise): a replica whose
//                  requests hang loses weight before they complete.
//
// A fresh replica weighs 1000 * 1 s / (10 s * 1) = 100. kratos' formula is
// the same; its "predict" refreshes every 5..200 ms and needs more than
// half + 1 of the in-flight requests to be late, sluice's is computed at
// each call and needs a strict majority.
//
// pick(now): with one replica, that one. Otherwise draw two distinct
// replicas a, b (a = random(n), b = random(n - 1), skipping a); the higher
// weight wins, a on a tie. If the loser has not been picked for more than
// 3 s (or never was), it is picked instead, once: picking it resets its
// clock. The chosen replica gets one more outstanding request.
//
// Thread-safe. The random source is injected; it must return a uniform
// value in [0, bound) and is only called with the balancer's lock held.

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

namespace sluice::algo {

class P2cBalancer {
public:
	static constexpr uint64_t kTauNs = 600'000'000;          // EWMA time constant
	static constexpr uint64_t kForcePickNs = 3'000'000'000;  // force a replica idle longer than this
	static constexpr uint64_t kPenaltyNs = 10'000'000'000;   // latency assumed before any sample
	static constexpr double kFullHealth = 1000.0;            // health of a success
	static constexpr double kFreshWeight = 100.0;            // weight before any sample

	using Random = std::function<uint64_t(uint64_t bound)>;

	// A request placed on `replica` at start_ns. `rival` is the other
	// replica drawn (== replica when there was no choice); `forced` says the
	// loser of the draw was taken because it had not been picked for 3 s.
	struct Pick {
		size_t replica;
		size_t rival;
		bool forced;
		uint64_t start_ns;
	};

	struct ReplicaStats {
		bool sampled;                   // at least one completion seen
		double latency_ns;              // EWMA; 0 before the first sample
		double health;                  // EWMA; 1000 before the first sample
		double load_latency_ns;         // what weight() divides by
		uint64_t inflight;              // outstanding requests
		std::optional<uint64_t> last_pick_ns;
	};

	P2cBalancer(size_t replicas, Random random);
	// A seeded std::mt19937_64 as the random source.
	P2cBalancer(size_t replicas, uint64_t seed);

	size_t size() const { return replicas_.size(); }

	// Chooses a replica and begins a request on it; nullopt with no replicas.
	std::optional<Pick> pick(uint64_t now_ns);
	// Begins a request on a replica chosen elsewhere (counts as picked).
	Pick begin(size_t replica, uint64_t now_ns);
	// Ends a request from pick() or begin(): its latency is now - start.
	// Throws std::logic_error if it is not outstanding.
	void done(const Pick &pick, uint64_t now_ns, bool success);
	// Feeds a completion observed elsewhere (no outstanding request to end).
	void observe(size_t replica, uint64_t now_ns, uint64_t latency_ns, bool success);

	double weight(size_t replica, uint64_t now_ns) const;
	ReplicaStats stats(size_t replica, uint64_t now_ns) const;

private:
	struct Replica {
		bool sampled = false;
		double latency_ns = 0;
		double health = kFullHealth;
		uint64_t stamp_ns = 0; // time of the last sample
		std::multiset<uint64_t> outstanding; // start times
		std::optional<uint64_t> last_pick_ns;
	};

	// All below: caller holds mu_.
	Replica &at(size_t replica); // throws std::out_of_range
	const Replica &at(size_t replica) const;
	double load_latency_ns(const Replica &r, uint64_t now_ns) const;
	double weight_of(const Replica &r, uint64_t now_ns) const;
	Pick begin_locked(size_t replica, size_t rival, bool forced, uint64_t now_ns);
	void sample(Replica &r, uint64_t now_ns, uint64_t latency_ns, bool success);
	uint64_t draw(uint64_t bound);

	mutable std::mutex mu_;
	std::vector<Replica> replicas_;
	Random random_;
};

} // namespace sluice::algo
