// The BPF file system, where sluice pins its maps.
#pragma once

#include <string>

namespace sluice::kernel {

inline constexpr const char* kBpffsRoot = "/sys/fs/bpf";
inline constexpr const char* kDefaultPinDir = "/sys/fs/bpf/sluice";

// Mounts bpffs at /sys/fs/bpf when nothing is mounted there (a fresh host;
// bpftool does the same), then creates `pin_dir` with mode 0700. Throws
// SystemError when either fails or `pin_dir` is not on a bpffs.
void ensure_pin_dir(const std::string& pin_dir);

bool is_on_bpffs(const std::string& path);

}  // namespace sluice::kernel
