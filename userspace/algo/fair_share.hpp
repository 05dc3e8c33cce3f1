#pragma once
// Max-min fair share of a capacity among clients (youtube/doorman's
// FAIR_SHARE), computed by water-filling: every client gets
// min(want, level), with the level chosen so the allocations sum to
// min(capacity, sum of wants). Clients that want less than an equal share
// get what they want; what they leave is split equally among the rest,
// again and again, until it is all placed.
//
// Difference from doorman: doorman's FairShare stops after two rounds of
// redistribution (and works one lease request at a time against a store);
// this is the exact max-min allocation, computed for all clients at once.
// They agree whenever two rounds suffice, as in doorman's own example
// (capacity 120, wants {1000, 60, 10} -> {55, 55, 10}).

#include <vector>

namespace sluice::algo {

// Allocation for each want, in the same order. Throws std::invalid_argument
// if capacity or a want is negative or not finite.
std::vector<double> max_min_fair_share(double capacity, const std::vector<double> &wants);

} // namespace sluice::algo
