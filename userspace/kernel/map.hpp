// Typed access to BPF maps by file descriptor. Keys and values are the ABI
// structs of include/sluice/abi.h; per-CPU maps return one value per
// possible CPU.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace sluice::kernel {

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

int possible_cpus();

template <typename K, typename V>
std::optional<V> map_lookup(int fd, const K& key) {
  V value{};
  if (bpf_map_lookup_elem(fd, &key, &value) != 0) return std::nullopt;
  return value;
}

template <typename K, typename V>
void map_update(int fd, const K& key, const V& value, const char* what, uint64_t flags = BPF_ANY) {
  if (bpf_map_update_elem(fd, &key, &value, flags) != 0) throw SystemError(std::string("cannot update ") + what, errno);
}

// Entries keys[i] = values[i], all in one syscall (BPF_MAP_UPDATE_BATCH).
template <typename K, typename V>
void map_update_batch(int fd, const std::vector<K>& keys, const std::vector<V>& values, const char* what) {
  if (keys.size() != values.size()) throw SystemError(std::string("cannot update ") + what, EINVAL);
  if (keys.empty()) return;
  auto count = static_cast<uint32_t>(keys.size());
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
  if (bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts) != 0)
    throw SystemError(std::string("cannot update ") + what, errno);
}

// A BPF_F_MMAPABLE array mapped into this process, read and written in
// place: entry i lies at i * stride, the value size rounded up to 8 bytes as
// the kernel lays it out.
class MappedArray {
 public:
  MappedArray(int fd, uint32_t value_size, uint32_t max_entries, const char* what);
  ~MappedArray();
  MappedArray(const MappedArray&) = delete;
  MappedArray& operator=(const MappedArray&) = delete;

  template <typename V>
  V& at(uint32_t index) {
    static_assert(std::is_trivially_copyable_v<V>);
    if (sizeof(V) > stride_ || index >= entries_) throw SystemError("map entry out of range", ERANGE);
    return *reinterpret_cast<V*>(static_cast<char*>(base_) + size_t{index} * stride_);
  }
  void zero(uint32_t first, uint32_t count);

 private:
  void* base_ = nullptr;
  size_t bytes_ = 0, stride_ = 0;
  uint32_t entries_ = 0;
};

// Entries in a hash map (one walk over its keys: for status, not hot paths).
size_t count_entries(int fd, uint32_t key_size, uint32_t max_entries);

template <typename K>
std::vector<K> map_keys(int fd) {
  std::vector<K> keys;
  K key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    keys.push_back(next);
    key = next;
    prev = &key;
  }
  return keys;
}

template <typename K, typename V>
std::vector<std::pair<K, V>> map_entries(int fd) {
  std::vector<std::pair<K, V>> out;
  for (const K& k : map_keys<K>(fd))
    if (auto v = map_lookup<K, V>(fd, k)) out.emplace_back(k, *v);
  return out;
}

// Values of a per-CPU map entry, one per possible CPU (the kernel pads each
// to 8 bytes; our ABI structs are multiples of 8 already).
template <typename K, typename V>
std::vector<V> percpu_lookup(int fd, const K& key) {
  static_assert(sizeof(V) % 8 == 0, "per-CPU values must be 8-byte multiples");
  std::vector<V> values(possible_cpus());
  if (bpf_map_lookup_elem(fd, &key, values.data()) != 0) return {};
  return values;
}

// Every entry of an array map with an index below `end`, a batch of 1024
// at a time rather than a syscall each (pair-indexed arrays hold millions
// of entries): visit(index, values) gets `values_per_entry` values.
template <typename V, typename Visit>
void scan_array_batches(int fd, size_t values_per_entry, uint32_t end, Visit visit) {
  constexpr uint32_t kBatch = 1024;
  std::vector<uint32_t> keys(kBatch);
  std::vector<V> values(kBatch * values_per_entry);
  uint32_t in_batch = 0, out_batch = 0;
  for (bool first = true;; first = false) {
    uint32_t count = kBatch;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_lookup_batch(fd, first ? nullptr : &in_batch, &out_batch, keys.data(), values.data(), &count,
                                   &opts);
    if (err && errno != ENOENT) throw SystemError("cannot read a map", errno);
    for (uint32_t i = 0; i < count; i++) {
      if (keys[i] >= end) return;
      visit(keys[i], std::span<const V>(values.data() + i * values_per_entry, values_per_entry));
    }
    if (err || count == 0) return;  // ENOENT: past the last entry
    in_batch = out_batch;
  }
}

// visit(index, value) for every entry of an array map below `end`.
template <typename V, typename Visit>
void array_scan(int fd, uint32_t end, Visit visit) {
  scan_array_batches<V>(fd, 1, end, [&](uint32_t index, std::span<const V> value) { visit(index, value[0]); });
}

// visit(index, values) for every entry of a per-CPU array below `end`, with
// one value per possible CPU.
template <typename V, typename Visit>
void percpu_array_scan(int fd, uint32_t end, Visit visit) {
  static_assert(sizeof(V) % 8 == 0, "per-CPU values must be 8-byte multiples");
  scan_array_batches<V>(fd, possible_cpus(), end, visit);
}

}  // namespace sluice::kernel
