#include "kernel/map.hpp"

namespace sluice::kernel {

int possible_cpus() {
  static const int n = [] {
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) throw SystemError("cannot count possible CPUs", cpus < 0 ? -cpus : EINVAL);
    return cpus;
  }();
  return n;
}

}  // namespace sluice::kernel
