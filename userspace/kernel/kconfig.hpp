// The running kernel's tick rate (CONFIG_HZ), for the data path's clock.
#pragma once

#include <cstdint>

namespace sluice::kernel {

// CONFIG_HZ from /proc/config.gz or /boot/config-$(uname -r); 0 if neither
// says (the data path then reads bpf_ktime_get_ns instead of jiffies).
uint32_t kernel_hz();

}  // namespace sluice::kernel
