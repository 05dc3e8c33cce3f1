#include "algo/p2c.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>

namespace sluice::algo {

P2cBalancer::P2cBalancer(size_t replicas, Random random) : replicas_(replicas), random_(std::move(random))
{
	if (!random_)
		throw std::invalid_argument("p2c: no random source");
}

P2cBalancer::P2cBalancer(size_t replicas, uint64_t seed)
	: P2cBalancer(replicas, [rng = std::make_shared<std::mt19937_64>(seed)](uint64_t bound) {
		  return std::uniform_int_distribution<uint64_t>(0, bound - 1)(*rng);
	  })
{
}

P2cBalancer::Replica &P2cBalancer::at(size_t replica)
{
	if (replica >= replicas_.size())
		throw std::out_of_range("p2c: replica " + std::to_string(replica) + " of " +
					std::to_string(replicas_.size()));
	return replicas_[replica];
}

const P2cBalancer::Replica &P2cBalancer::at(size_t replica) const
{
	if (replica >= replicas_.size())
		throw std::out_of_range("p2c: replica " + std::to_string(replica) + " of " +
					std::to_string(replicas_.size()));
	return replicas_[replica];
}

uint64_t P2cBalancer::draw(uint64_t bound)
{
	uint64_t v = random_(bound);
	if (v >= bound)
		throw std::out_of_range("p2c: random source returned " + std::to_string(v) + " for bound " +
					std::to_string(bound));
	return v;
}

double P2cBalancer::load_latency_ns(const Replica &r, uint64_t now_ns) const
{
	if (!r.sampled)
		return double(kPenaltyNs);
	// Requests outstanding longer than the average predict a slower replica
	// once they are the majority of what it holds.
	double late_total = 0;
	size_t late = 0;
	for (uint64_t start : r.outstanding) {
		double age = now_ns > start ? double(now_ns - start) : 0.0;
		if (age > r.latency_ns) {
			late_total += age;
			late++;
		}
	}
	double predicted = 2 * late > r.outstanding.size() ? late_total / double(late) : 0.0;
	return std::max({r.latency_ns, predicted, 1.0}); // at least 1 ns: never divide by 0
}

double P2cBalancer::weight_of(const Replica &r, uint64_t now_ns) const
{
	return r.health * 1e9 / (load_latency_ns(r, now_ns) * double(r.outstanding.size() + 1));
}

double P2cBalancer::weight(size_t replica, uint64_t now_ns) const
{
	std::lock_guard lock(mu_);
	return weight_of(at(replica), now_ns);
}

P2cBalancer::ReplicaStats P2cBalancer::stats(size_t replica, uint64_t now_ns) const
{
	std::lock_guard lock(mu_);
	const Replica &r = at(replica);
	return ReplicaStats{r.sampled,
			    r.latency_ns,
			    r.health,
			    load_latency_ns(r, now_ns),
			    uint64_t(r.outstanding.size()),
			    r.last_pick_ns};
}

P2cBalancer::Pick P2cBalancer::begin_locked(size_t replica, size_t rival, bool forced, uint64_t now_ns)
{
	Replica &r = at(replica);
	r.last_pick_ns = now_ns;
	r.outstanding.insert(now_ns);
	return Pick{replica, rival, forced, now_ns};
}

P2cBalancer::Pick P2cBalancer::begin(size_t replica, uint64_t now_ns)
{
	std::lock_guard lock(mu_);
	return begin_locked(replica, replica, false, now_ns);
}

std::optional<P2cBalancer::Pick> P2cBalancer::pick(uint64_t now_ns)
{
	std::lock_guard lock(mu_);
	size_t n = replicas_.size();
	if (n == 0)
		return std::nullopt;
	if (n == 1)
		return begin_locked(0, 0, false, now_ns);

	size_t a = size_t(draw(n));
	size_t b = size_t(draw(n - 1));
	if (b >= a)
		b++; // two distinct replicas, each pair equally likely

	size_t winner = a, loser = b;
	if (weight_of(replicas_[b], now_ns) > weight_of(replicas_[a], now_ns))
		std::swap(winner, loser);

	// A replica left alone too long gets one request, so its statistics
	// catch up with how it is doing now.
	const auto &last = replicas_[loser].last_pick_ns;
	bool starved = !last || (now_ns > *last && now_ns - *last > kForcePickNs);
	if (starved)
		return begin_locked(loser, winner, true, now_ns);
	return begin_locked(winner, loser, false, now_ns);
}

void P2cBalancer::sample(Replica &r, uint64_t now_ns, uint64_t latency_ns, bool success)
{
	double w = 0.0; // the first sample is taken as is
	if (r.sampled) {
		uint64_t dt = now_ns > r.stamp_ns ? now_ns - r.stamp_ns : 0; // a clock going back: dt 0, w 1
		w = std::exp(-double(dt) / double(kTauNs));
	}
	r.latency_ns = r.latency_ns * w + double(latency_ns) * (1.0 - w);
	r.health = r.health * w + (success ? kFullHealth : 0.0) * (1.0 - w);
	r.stamp_ns = std::max(r.stamp_ns, now_ns);
	r.sampled = true;
}

void P2cBalancer::done(const Pick &pick, uint64_t now_ns, bool success)
{
	std::lock_guard lock(mu_);
	Replica &r = at(pick.replica);
	auto it = r.outstanding.find(pick.start_ns);
	if (it == r.outstanding.end())
		throw std::logic_error("p2c: done() for a request not outstanding on replica " +
				       std::to_string(pick.replica));
	r.outstanding.erase(it);
	sample(r, now_ns, now_ns > pick.start_ns ? now_ns - pick.start_ns : 0, success);
}

void P2cBalancer::observe(size_t replica, uint64_t now_ns, uint64_t latency_ns, bool success)
{
	std::lock_guard lock(mu_);
	sample(at(replica), now_ns, latency_ns, success);
}

} // namespace sluice::algo
