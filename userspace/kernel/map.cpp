#include "kernel/map.hpp"

#include <sys/mman.h>

#include <cstring>

namespace sluice::kernel {

int possible_cpus() {
  static const int n = [] {
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) throw SystemError("cannot count possible CPUs", cpus < 0 ? -cpus : EINVAL);
    return cpus;
  }();
  return n;
}

MappedArray::MappedArray(int fd, uint32_t value_size, uint32_t max_entries, const char* what)
    : stride_((value_size + 7) / 8 * 8), entries_(max_entries) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  bytes_ = (stride_ * max_entries + page - 1) / page * page;
  base_ = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base_ == MAP_FAILED) {
    base_ = nullptr;
    throw SystemError(std::string("cannot map ") + what, errno);
  }
}

MappedArray::~MappedArray() {
  if (base_) munmap(base_, bytes_);
}

void MappedArray::zero(uint32_t first, uint32_t count) {
  if (first > entries_ || count > entries_ - first) throw SystemError("map entries out of range", ERANGE);
  std::memset(static_cast<char*>(base_) + size_t{first} * stride_, 0, size_t{count} * stride_);
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
