// sluice_bench: runs the benchmarks and writes a JSON report.
//   sluice_bench [--quick] [--only NAME,...] [--sluice-variant NAME=PATH ...] [--generator auto|live|pump]
//                --out DIR --build DIR
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "bench.hpp"
#include "kernel/log.hpp"

int main(int argc, char** argv) {
  using namespace sluice::bench;
  Options opt;
  std::string only;
  CLI::App app("sluice benchmarks: each result is a ratio against a baseline measured in the same run.", "sluice_bench");
  app.add_flag("--quick", opt.quick, "Bounded run (under 3 minutes in all).");
  app.add_option("--only", only, "Comma-separated benchmarks to run (default: all).");
  app.add_option("--out", opt.out_dir, "Directory for results.json")->required();
  app.add_option("--build", opt.build_dir, "Build directory (tools, BPF objects)")->required();
  std::vector<std::string> variants;
  app.add_option("--sluice-variant", variants,
                 "NAME=PATH: also measure the sluice binary PATH (another build, e.g. of an experiment) as case "
                 "sluice_NAME in shed_rate and syn_flood, in the same interleaved rounds as this build; "
                 "results.json gives its per-round ratio to this build's sluice. Repeatable.");
  std::string generator = "auto";
  app.add_option("--generator", generator,
                 "Where the frames of shed_rate and syn_flood come from: live (BPF_PROG_TEST_RUN with "
                 "BPF_F_TEST_XDP_LIVE_FRAMES; fails where the kernel refuses it), pump (the XDP pump: a veth loop "
                 "that broadcasts each frame into the target and back into the loop; its targets are not judged), "
                 "or auto (live frames where the kernel allows them, else the pump).")
      ->check(CLI::IsMember({"auto", "live", "pump"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  opt.generator = generator == "live"   ? GeneratorChoice::LiveFrames
                  : generator == "pump" ? GeneratorChoice::Pump
                                        : GeneratorChoice::Auto;
  for (const auto& v : variants) {
    const auto eq = v.find('=');
    const std::string name = eq == std::string::npos ? "" : v.substr(0, eq);
    const std::string path = eq == std::string::npos ? "" : v.substr(eq + 1);
    bool name_ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_';
    });
    if (!name_ok || path.empty()) {
      std::cerr << "sluice_bench: --sluice-variant '" << v << "': expected NAME=PATH, NAME of a-z, 0-9 and _\n";
      return 2;
    }
    for (const auto& other : opt.sluice_variants)
      if (other.name == name) {
        std::cerr << "sluice_bench: --sluice-variant " << name << " given twice\n";
        return 2;
      }
    if (access(path.c_str(), X_OK) != 0) {
      std::cerr << "sluice_bench: --sluice-variant " << name << ": " << path << " is not an executable file\n";
      return 2;
    }
    opt.sluice_variants.push_back({name, path});
  }
  sluice::kernel::capture_library_logs(false);

  std::map<std::string, void (*)(Report&, const Options&)> all = {
      {"packet_cost", packet_cost}, {"shed_rate", shed_rate}, {"syn_flood", syn_flood},
      {"overload", overload}, {"controller_cost", controller_cost}};
  std::vector<std::string> chosen;
  if (only.empty()) {
    for (const auto& [name, _] : all) chosen.push_back(name);
  } else {
    std::stringstream ss(only);
    for (std::string name; std::getline(ss, name, ',');) {
      if (!all.count(name)) {
        std::cerr << "sluice_bench: unknown benchmark '" << name << "'\n";
        return 2;
      }
      chosen.push_back(name);
    }
  }

  // Refused before a run of many minutes, not after it.
  std::error_code ec;
  std::filesystem::create_directories(opt.out_dir, ec);
  const std::string results_path = opt.out_dir + "/results.json";
  std::ofstream out(results_path);
  if (ec || !out) {
    std::cerr << "sluice_bench: cannot write " << results_path << (ec ? ": " + ec.message() : "") << "\n";
    return 2;
  }

  Report report;
  int failures = 0;
  for (const auto& name : chosen) {
    progress("running " + name);
    try {
      all[name](report, opt);
    } catch (const std::exception& e) {
      report.section(name)["error"] = e.what();
      std::cerr << "sluice_bench: " << name << " failed: " << e.what() << "\n";
      failures++;
    }
  }
  out << report.root().dump(2) << "\n";
  out.close();
  if (!out) {
    std::cerr << "sluice_bench: cannot write " << results_path << "\n";
    return 1;
  }
  progress("results in " + results_path);
  return failures ? 1 : 0;
}
