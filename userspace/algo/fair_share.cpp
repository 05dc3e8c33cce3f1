#include "algo/fair_share.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace sluice::algo {

static void check(double value, const char *what)
{
	if (!std::isfinite(value) || value < 0)
		throw std::invalid_argument(std::string("fair share: ") + what + " must be finite and >= 0, got " +
					    std::to_string(value));
}

std::vector<double> max_min_fair_share(double capacity, const std::vector<double> &wants)
{
	check(capacity, "capacity");
	for (double w : wants)
		check(w, "a want");

	// Serve the smallest wants first: each either fits in an equal split of
	// what is left, or no later (larger) want fits either and all of them
	// get that split.
	std::vector<size_t> order(wants.size());
	std::iota(order.begin(), order.end(), 0);
	std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return wants[a] < wants[b]; });

	std::vector<double> alloc(wants.size(), 0.0);
	double left = capacity;
	for (size_t i = 0; i < order.size(); i++) {
		double share = left / double(order.size() - i);
		double want = wants[order[i]];
		if (want <= share) {
			alloc[order[i]] = want;
			left -= want;
			continue;
		}
		for (size_t j = i; j < order.size(); j++)
			alloc[order[j]] = share; // the water level
		break;
	}
	return alloc;
}

} // namespace sluice::algo
