#include "control/cpu.hpp"

#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <utility>
#include <sstream>

namespace sluice::control {

namespace {

constexpr long kCgroup2Magic = 0x63677270;  // CGROUP2_SUPER_MAGIC

// Turns two readings of a busy-time counter into per mille of capacity.
class DeltaCpu : public CpuSource {
 protected:
  // busy and capacity in the same unit, monotonic; nullopt if unreadable.
  virtual std::optional<std::pair<uint64_t, uint64_t>> read(uint64_t now_ns) = 0;

 public:
  std::optional<int64_t> sample(uint64_t now_ns) override {
    auto now = read(now_ns);
    if (!now) return std::nullopt;
    auto prev = std::exchange(last_, now);
    if (!prev || now->second <= prev->second) return std::nullopt;
    uint64_t busy = now->first >= prev->first ? now->first - prev->first : 0;
    uint64_t capacity = now->second - prev->second;
    return static_cast<int64_t>(std::min<uint64_t>(1000, busy * 1000 / capacity));
  }

 private:
  std::optional<std::pair<uint64_t, uint64_t>> last_;
};

class HostCpu : public DeltaCpu {
 public:
  explicit HostCpu(std::string path) : path_(std::move(path)) {}
  std::string describe() const override { return "host (" + path_ + ")"; }

 protected:
  // busy = all jiffies but idle and iowait; capacity = all jiffies.
  std::optional<std::pair<uint64_t, uint64_t>> read(uint64_t) override {
    std::ifstream in(path_);
    std::string cpu;
    uint64_t v[10] = {};
    if (!(in >> cpu) || cpu != "cpu") return std::nullopt;
    uint64_t total = 0;
    for (int i = 0; i < 10 && in >> v[i]; i++) total += v[i];
    uint64_t guest = v[8] + v[9];  // already counted in user and nice
    total -= guest;
    uint64_t idle = v[3] + v[4];
    return std::make_pair(total - idle, total);
  }

 private:
  std::string path_;
};

class CgroupCpu : public DeltaCpu {
 public:
  explicit CgroupCpu(std::string dir) : dir_(std::move(dir)), cpus_(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))) {}
  std::string describe() const override { return "cgroup " + dir_; }

 protected:
  // busy = usage_usec; capacity = elapsed wall time x online CPUs.
  std::optional<std::pair<uint64_t, uint64_t>> read(uint64_t now_ns) override {
    std::ifstream in(dir_ + "/cpu.stat");
    std::string key;
    uint64_t value;
    while (in >> key >> value)
      if (key == "usage_usec") return std::make_pair(value, now_ns / 1000 * static_cast<uint64_t>(cpus_));
    return std::nullopt;
  }

 private:
  std::string dir_;
  long cpus_;
};

class PsiCpu : public DeltaCpu {
 public:
  explicit PsiCpu(std::string path) : path_(std::move(path)) {}
  std::string describe() const override { return "pressure (" + path_ + ")"; }

 protected:
  // busy = "some" stall microseconds; capacity = elapsed microseconds.
  std::optional<std::pair<uint64_t, uint64_t>> read(uint64_t now_ns) override {
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("some ", 0) != 0) continue;
      auto pos = line.find("total=");
      if (pos == std::string::npos) return std::nullopt;
      return std::make_pair(std::stoull(line.substr(pos + 6)), now_ns / 1000);
    }
    return std::nullopt;
  }

 private:
  std::string path_;
};

}  // namespace

std::unique_ptr<CpuSource> host_cpu(std::string proc_stat) { return std::make_unique<HostCpu>(std::move(proc_stat)); }

std::unique_ptr<CpuSource> cgroup_cpu(const std::string& dir) {
  return std::make_unique<CgroupCpu>(dir.empty() || dir[0] != '/' ? cgroup2_root() + "/" + dir : dir);
}

std::unique_ptr<CpuSource> psi_cpu(std::string path) { return std::make_unique<PsiCpu>(std::move(path)); }

std::string cgroup2_root() {
  for (const char* candidate : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    struct statfs fs {};
    if (statfs(candidate, &fs) == 0 && fs.f_type == kCgroup2Magic) return candidate;
  }
  return "/sys/fs/cgroup";
}

}  // namespace sluice::control
