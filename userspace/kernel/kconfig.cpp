#include "kernel/kconfig.hpp"

#include <sys/utsname.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace sluice::kernel {

namespace {

// gzopen reads plain files too, so one reader serves both sources.
uint32_t hz_from(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return 0;
  char line[256];
  uint32_t hz = 0;
  while (gzgets(f, line, sizeof(line))) {
    if (std::strncmp(line, "CONFIG_HZ=", 10) == 0) {
      hz = static_cast<uint32_t>(std::strtoul(line + 10, nullptr, 10));
      break;
    }
  }
  gzclose(f);
  return hz;
}

}  // namespace

uint32_t kernel_hz() {
  static const uint32_t hz = [] {
    if (uint32_t v = hz_from("/proc/config.gz")) return v;
    utsname u{};
    if (uname(&u) == 0)
      if (uint32_t v = hz_from(std::string("/boot/config-") + u.release)) return v;
    return 0u;
  }();
  return hz;
}

}  // namespace sluice::kernel
