// `make bench`: shared pieces of the benchmark binary. Every measurement is
// a ratio against a baseline measured in the same run; results go to a JSON
// report that tools/bench.sh turns into docs/benchmarks.md.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernel/counters.hpp"

namespace sluice::bench {

using Json = nlohmann::ordered_json;

// Another build of sluice, measured side by side with this one.
struct SluiceVariant {
  std::string name;  // its cases are "sluice_<name>"
  std::string path;  // its `sluice` binary
};

// Where the shedding benchmarks' frames come from (netbench.hpp, Generator).
enum class GeneratorChoice {
  Auto,        // live frames where the kernel allows them, else the pump
  LiveFrames,  // live frames, or fail
  Pump,        // the pump, even where live frames would work (to compare the two)
};

struct Options {
  bool quick = false;       // bounded run for regular use
  std::string build_dir;    // where the tools and skeletons were built (the sluice binary of
                            // test::SluiceCli is found from this binary's path: <build>/bench/)
  std::string out_dir;      // where results and plots go
  std::vector<SluiceVariant> sluice_variants;  // extra XDP cases in shed_rate and syn_flood
  GeneratorChoice generator = GeneratorChoice::Auto;
};

class Report {
 public:
  Json& section(const std::string& name) { return root_[name]; }
  Json& root() { return root_; }

 private:
  Json root_ = Json::object();
};

double median(std::vector<double> v);     // bench.cpp
void progress(const std::string& line);  // one line on stderr (bench.cpp)
inline uint64_t now_ns() { return kernel::monotonic_ns(); }

// The benchmarks.
void packet_cost(Report& report, const Options& opt);
void shed_rate(Report& report, const Options& opt);  // shed_rate.cpp
void syn_flood(Report& report, const Options& opt);  // shed_rate.cpp
void overload(Report& report, const Options& opt);   // overload.cpp
void controller_cost(Report& report, const Options& opt);  // controller_cost.cpp

}  // namespace sluice::bench
