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

size_t count_entries(int fd, uint32_t key_size, uint32_t max_entries) {
  std::vector<uint8_t> key(key_size), next(key_size);
  size_t n = 0;
  const void* prev = nullptr;
  // A key deleted under the walk restarts it from the first key; the bound keeps
  // a map churning under a flood from holding status forever.
  while (n < max_entries && bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    n++;
    key.swap(next);
    prev = key.data();
  }
  return n;
}

}  // namespace sluice::kernel
