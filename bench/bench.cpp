// Shared helpers of the benchmark binary (bench.hpp), apart from main() so
// that tests of the benchmarks' pieces can link them too.
#include "bench.hpp"

#include <algorithm>
#include <iostream>

namespace sluice::bench {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void progress(const std::string& line) { std::cerr << "bench: " << line << std::endl; }

}  // namespace sluice::bench
