// How busy the CPU is, as BBR's trigger wants it: per mille (1000 = every
// CPU fully busy), from the host (/proc/stat), a service's cgroup v2
// (cpu.stat), or pressure stall information (/proc/pressure/cpu).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace sluice::control {

class CpuSource {
 public:
  virtual ~CpuSource() = default;
  // Busy per mille since the previous sample; nullopt on the first sample
  // or when the source cannot be read.
  virtual std::optional<int64_t> sample(uint64_t now_ns) = 0;
  virtual std::string describe() const = 0;
};

std::unique_ptr<CpuSource> host_cpu(std::string proc_stat = "/proc/stat");
// `dir` is the cgroup's directory (absolute, or relative to the cgroup v2
// mount); usage is normalized by the CPUs the host has online.
std::unique_ptr<CpuSource> cgroup_cpu(const std::string& dir);
// The share of time some task stalled waiting for a CPU ("some" total).
std::unique_ptr<CpuSource> psi_cpu(std::string path = "/proc/pressure/cpu");

// Where cgroup v2 is mounted ("/sys/fs/cgroup" or a hybrid's "unified").
std::string cgroup2_root();

}  // namespace sluice::control
