#include "kernel/bpffs.hpp"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <filesystem>

#include "core/error.hpp"

namespace sluice::kernel {

bool is_on_bpffs(const std::string& path) {
  struct statfs fs {};
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == BPF_FS_MAGIC;
}

void ensure_pin_dir(const std::string& pin_dir) {
  if (!is_on_bpffs(kBpffsRoot)) {
    if (mount("bpf", kBpffsRoot, "bpf", 0, "mode=0700") != 0)
      throw SystemError(std::string("cannot mount bpffs at ") + kBpffsRoot, errno);
  }
  std::error_code ec;
  std::filesystem::create_directories(pin_dir, ec);
  if (ec) throw SystemError("cannot create pin directory " + pin_dir, ec.value());
  if (!is_on_bpffs(pin_dir))
    throw SystemError("pin directory " + pin_dir + " is not on a BPF file system", EINVAL);
  chmod(pin_dir.c_str(), 0700);
}

}  // namespace sluice::kernel
