#include "kernel/datapath.hpp"

#include <bpf/bpf.h>

#include <cerrno>
#include <filesystem>
#include <sstream>

#include "core/error.hpp"
#include "kernel/kconfig.hpp"
#include "kernel/log.hpp"
#include "kernel/map.hpp"
#include "sluice/abi.h"
#include "sluice.skel.h"

namespace sluice::kernel {

namespace {

// "array, key 4 B, value 8 B, 1024 entries, flags 0x400"
std::string map_shape(uint32_t type, uint32_t key_size, uint32_t value_size, uint32_t entries, uint32_t flags) {
  const char* name = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(type));
  std::ostringstream out;
  out << (name ? name : "type " + std::to_string(type)) << ", key " << key_size << " B, value " << value_size
      << " B, " << entries << " entries, flags 0x" << std::hex << flags;
  return out.str();
}

}  // namespace

DataPath::DataPath(const DataPathOptions& options)
    : pin_dir_(options.pin_dir), load_programs_(options.load_programs), sizes_(options.sizes) {
  LIBBPF_OPTS(bpf_object_open_opts, open_opts);
  if (!pin_dir_.empty()) open_opts.pin_root_path = pin_dir_.c_str();
  clear_library_message();
  skel_ = sluice_bpf::open(&open_opts);
  if (!skel_) throw SystemError(with_library_message("cannot open the sluice BPF object"), errno);

  skel_->rodata->sl_config.fake_clock = options.fake_clock ? 1 : 0;
  skel_->rodata->sl_config.trace = options.trace ? 1 : 0;

  if (pin_dir_.empty()) {
    bpf_map* map;
    bpf_object__for_each_map(map, skel_->obj) bpf_map__set_pin_path(map, nullptr);
  } else {
    adopt_pinned_sizes();
  }
  apply_sizes();
  if (!pin_dir_.empty()) check_pinned_layouts(options.ignore_incompatible_pins);

  if (!load_programs_) {
    bpf_program* prog;
    bpf_object__for_each_program(prog, skel_->obj) bpf_program__set_autoload(prog, false);
  }

  for (int i = 0; i < static_cast<int>(PolicyMap::Count); i++) {
    bpf_map* inner = bpf_map__inner_map(policy_outer(static_cast<PolicyMap>(i)));
    if (!inner) throw SystemError("policy map without an inner map template", EINVAL);
    inner_[i] = InnerMapSpec{bpf_map__type(inner), bpf_map__key_size(inner), bpf_map__value_size(inner),
                             bpf_map__max_entries(inner), bpf_map__map_flags(inner)};
  }
  inner_[static_cast<int>(PolicyMap::Limits)].max_entries = static_cast<uint32_t>(sizes_.pairs());
}

DataPath::~DataPath() { sluice_bpf::destroy(skel_); }

// Maps are created once; later loads (a new build, another interface) reuse
// the pins, so their sizes win over whatever the caller asked for now. The
// pair geometry is read back from two maps: service_stats has one entry per
// service id, pair_stats one per (service, tenant).
void DataPath::adopt_pinned_sizes() {
  auto pinned_entries = [&](bpf_map* map) -> uint32_t {
    Fd fd(bpf_obj_get((pin_dir_ + "/" + bpf_map__name(map)).c_str()));
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (!fd || bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) return 0;
    return info.max_entries;
  };
  uint32_t services = pinned_entries(skel_->maps.service_stats);
  uint32_t pairs = pinned_entries(skel_->maps.pair_stats);
  if (services && pairs && pairs % services == 0) {
    sizes_.max_services = services;
    sizes_.max_tenants = pairs / services;
  }
  if (uint32_t n = pinned_entries(skel_->maps.source_buckets)) sizes_.source_entries = n;
  if (uint32_t n = pinned_entries(skel_->maps.flows)) sizes_.flow_entries = n;
}

// libbpf reuses a pin only if it matches the map's definition, and fails the
// whole load with "parameter mismatch" otherwise. Check first, and say which
// map differs.
void DataPath::check_pinned_layouts(bool ignore_incompatible) {
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    const char* path = bpf_map__pin_path(map);
    if (!path) continue;
    Fd fd(bpf_obj_get(path));
    if (!fd) continue;  // not pinned yet: load creates it
    bpf_map_info pinned{};
    uint32_t len = sizeof(pinned);
    if (bpf_obj_get_info_by_fd(fd.get(), &pinned, &len) != 0)
      throw SystemError(std::string("cannot inspect the pinned map ") + path, errno);
    if (pinned.type == bpf_map__type(map) && pinned.key_size == bpf_map__key_size(map) &&
        pinned.value_size == bpf_map__value_size(map) && pinned.max_entries == bpf_map__max_entries(map) &&
        pinned.map_flags == bpf_map__map_flags(map))
      continue;
    if (ignore_incompatible) {
      bpf_map__set_pin_path(map, nullptr);
      continue;
    }
    throw IncompatiblePins(
        std::string("the map ") + bpf_map__name(map) + " pinned in " + pin_dir_ +
        " was made by a sluice with another map layout (" +
        map_shape(pinned.type, pinned.key_size, pinned.value_size, pinned.max_entries, pinned.map_flags) +
        "; this sluice needs " +
        map_shape(bpf_map__type(map), bpf_map__key_size(map), bpf_map__value_size(map), bpf_map__max_entries(map),
                  bpf_map__map_flags(map)) +
        ")");
  }
}

void DataPath::apply_sizes() {
  uint32_t pairs = static_cast<uint32_t>(sizes_.pairs());
  // Every map bpf/maps.h marks "geometry" or "configurable" is sized here.
  bpf_map__set_max_entries(skel_->maps.service_stats, sizes_.max_services);
  bpf_map__set_max_entries(skel_->maps.obs_shared, sizes_.max_services);
  bpf_map__set_max_entries(skel_->maps.obs_stats, sizes_.max_services);
  bpf_map__set_max_entries(skel_->maps.pair_stats, pairs);
  bpf_map__set_max_entries(skel_->maps.pair_buckets, pairs);
  bpf_map__set_max_entries(skel_->maps.source_buckets, sizes_.source_entries);
  bpf_map__set_max_entries(skel_->maps.flows, sizes_.flow_entries);
  skel_->rodata->sl_config.max_tenants = sizes_.max_tenants;
  uint32_t hz = kernel_hz();
  skel_->rodata->sl_config.ns_per_tick = hz ? 1'000'000'000u / hz : 0;
}

void DataPath::load() {
  clear_library_message();
  int err = sluice_bpf::load(skel_);
  if (err) {
    std::string what = "cannot load the sluice data path";
    if (!pin_dir_.empty()) what += " (pins in " + pin_dir_ + ")";
    throw SystemError(with_library_message(what), -err);
  }
  if (load_programs_) connect_judges();
}

void DataPath::connect_judges() const {
  uint32_t slot = SL_JUDGE_COMPLETE;
  int complete = bpf_program__fd(skel_->progs.sluice_xdp_complete);
  if (complete < 0) throw SystemError("the complete XDP judge is not loaded", EBADF);
  map_update(map_fd(skel_->maps.judges), slot, complete, "the judges map");
}

bpf_object* DataPath::object() const { return skel_->obj; }

int DataPath::map_fd(bpf_map* map) const {
  int fd = bpf_map__fd(map);
  if (fd < 0) throw SystemError(std::string("map ") + bpf_map__name(map) + " is not loaded", EBADF);
  return fd;
}

bpf_map* DataPath::policy_outer(PolicyMap which) const {
  switch (which) {
    case PolicyMap::Info: return skel_->maps.pol_info;
    case PolicyMap::SvcAddr: return skel_->maps.pol_svc_addr;
    case PolicyMap::Tenants: return skel_->maps.pol_tenants;
    case PolicyMap::Limits: return skel_->maps.pol_limits;
    case PolicyMap::SrcV4: return skel_->maps.pol_src_v4;
    case PolicyMap::SrcV6: return skel_->maps.pol_src_v6;
    case PolicyMap::Count: break;
  }
  throw SystemError("unknown policy map", EINVAL);
}

int DataPath::policy_outer_fd(PolicyMap which) const { return map_fd(policy_outer(which)); }

int DataPath::xdp_prog_fd() const { return bpf_program__fd(skel_->progs.sluice_xdp); }

}  // namespace sluice::kernel
