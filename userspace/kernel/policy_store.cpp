#include "kernel/policy_store.hpp"

#include <fcntl.h>
#include <sys/file.h>

#include <set>

#include "sluice.skel.h"

namespace sluice::kernel {

namespace {

// The inner map a slot points at, or an empty Fd when the slot is empty.
Fd open_inner(int outer_fd, uint32_t slot) {
  uint32_t id = 0;
  if (bpf_map_lookup_elem(outer_fd, &slot, &id) != 0 || id == 0) return Fd();
  return Fd(bpf_map_get_fd_by_id(id));
}

// The entries of an array map that `keep` accepts.
template <typename V, typename Keep>
std::vector<std::pair<uint32_t, V>> array_entries(int fd, Keep keep) {
  std::vector<std::pair<uint32_t, V>> out;
  array_scan<V>(fd, UINT32_MAX, [&](uint32_t index, const V& value) {
    if (keep(value)) out.emplace_back(index, value);
  });
  return out;
}

template <typename V>
std::vector<std::pair<uint32_t, V>> named_entries(int fd) {
  return array_entries<V>(fd, [](const V& v) { return v.name[0] != 0; });
}

// A flat two-slot policy array (SLOT_ARRAY in bpf/maps.h) of V, `slot_entries`
// entries per slot.
template <typename V>
class SlotArray {
 public:
  SlotArray(int fd, uint32_t slot_entries, const char* what)
      : slot_entries_(slot_entries), array_(fd, sizeof(V), SL_POLICY_SLOTS * slot_entries, what) {}

  // Every entry of `slot` whose name is set.
  std::vector<std::pair<uint32_t, V>> named_entries(uint32_t slot) {
    std::vector<std::pair<uint32_t, V>> out;
    for (uint32_t i = 0; i < slot_entries_; i++)
      if (const V& v = at(slot, i); v.name[0]) out.emplace_back(i, v);
    return out;
  }

  // Makes `slot` hold exactly `entries`. Only for the inactive slot: new
  // packets read it after sl_root flips, and one judged by it before the
  // last flip took microseconds, long done before a command gets here.
  void rewrite(uint32_t slot, const std::vector<std::pair<uint32_t, V>>& entries) {
    array_.zero(sl_slot_key(slot, slot_entries_, 0), slot_entries_);
    for (const auto& [index, value] : entries) at(slot, index) = value;
  }

 private:
  V& at(uint32_t slot, uint32_t index) {
    if (index >= slot_entries_) throw SystemError("policy entry past the end of its slot", ERANGE);
    return array_.at<V>(sl_slot_key(slot, slot_entries_, index));
  }

  uint32_t slot_entries_;
  MappedArray array_;
};

}  // namespace

PolicyLock::PolicyLock(const DataPath& dp) {
  if (dp.is_private()) return;
  dir_ = Fd(open(dp.pin_dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_) throw SystemError("cannot open " + dp.pin_dir(), errno);
  if (flock(dir_.get(), LOCK_EX) != 0) throw SystemError("cannot lock " + dp.pin_dir(), errno);
}

policy::SlotContents PolicyStore::read_slot(uint32_t slot) const {
  policy::SlotContents c;
  auto inner = [&](PolicyMap which) { return open_inner(dp_.policy_outer_fd(which), slot); };

  if (Fd info = inner(PolicyMap::Info)) {
    uint32_t zero = 0;
    if (auto v = map_lookup<uint32_t, sl_policy_info>(info.get(), zero)) c.info = *v;
  }
  c.services = SlotArray<sl_service>(dp_.map_fd(dp_.skel()->maps.pol_services), SL_MAX_SERVICES, "pol_services")
                   .named_entries(slot);
  if (Fd fd = inner(PolicyMap::Tenants)) c.tenants = named_entries<sl_tenant>(fd.get());
  if (Fd fd = inner(PolicyMap::Limits))
    c.limits = array_entries<sl_rate>(fd.get(), [](const sl_rate& r) { return r.interval_ns != 0; });
  if (Fd fd = inner(PolicyMap::SvcAddr)) c.svc_addr = map_entries<sl_addr_key, sl_addr_service>(fd.get());
  if (Fd fd = inner(PolicyMap::SrcV4)) c.src_v4 = map_entries<sl_lpm_v4_key, sl_source_class>(fd.get());
  if (Fd fd = inner(PolicyMap::SrcV6)) c.src_v6 = map_entries<sl_lpm_v6_key, sl_source_class>(fd.get());
  // The port and IPv4 source tables are derived; they are not read back.
  return c;
}

uint64_t PolicyStore::epoch() const {
  uint32_t zero = 0;
  auto root = map_lookup<uint32_t, sl_root>(dp_.map_fd(dp_.skel()->maps.sl_root), zero);
  return root ? root->epoch : 0;
}

RunningPolicy PolicyStore::read() const {
  RunningPolicy r;
  uint32_t zero = 0;
  auto root = map_lookup<uint32_t, sl_root>(dp_.map_fd(dp_.skel()->maps.sl_root), zero);
  r.active_slot = root ? root->active_slot & 1 : 0;
  r.epoch = root ? root->epoch : 0;
  if (r.epoch) r.slot = read_slot(r.active_slot);
  r.policy = policy::decompile(r.slot, dp_.sizes().max_tenants);
  r.ids = policy::ids_of(r.slot);
  r.policy.maps = dp_.sizes();
  return r;
}

void PolicyStore::write_slot(uint32_t slot, const policy::SlotContents& c) {
  auto install = [&](PolicyMap which, const auto& entries, const char* what) {
    const InnerMapSpec& spec = dp_.inner_spec(which);
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = spec.flags);
    Fd inner(bpf_map_create(spec.type, what, spec.key_size, spec.value_size, spec.max_entries, &opts));
    if (!inner) throw SystemError(std::string("cannot create map ") + what, errno);
    for (const auto& [key, value] : entries) map_update(inner.get(), key, value, what);
    int fd = inner.get();
    map_update(dp_.policy_outer_fd(which), slot, fd, what);
  };
  install(PolicyMap::SvcAddr, c.svc_addr, "pol_svc_addr");
  install(PolicyMap::Tenants, c.tenants, "pol_tenants");
  install(PolicyMap::Limits, c.limits, "pol_limits");
  install(PolicyMap::SrcV4, c.src_v4, "pol_src_v4");
  install(PolicyMap::SrcV6, c.src_v6, "pol_src_v6");
  const auto& maps = dp_.skel()->maps;
  SlotArray<sl_port_entry>(dp_.map_fd(maps.pol_ports), SL_PORT_INDEX_SIZE, "pol_ports").rewrite(slot, c.ports);
  SlotArray<sl_service>(dp_.map_fd(maps.pol_services), SL_MAX_SERVICES, "pol_services").rewrite(slot, c.services);
  SlotArray<uint32_t>(dp_.map_fd(maps.pol_src4_table), SL_SRC4_TABLE_SIZE, "pol_src4_table")
      .rewrite(slot, c.src4_table);
  std::vector<std::pair<uint32_t, sl_policy_info>> info{{0, c.info}};
  install(PolicyMap::Info, info, "pol_info");
}

uint64_t PolicyStore::apply(const policy::Policy& next, const std::function<void()>& just_before_switch) {
  const policy::MapSizes& have = dp_.sizes();
  if (next.services.size() >= have.max_services || next.tenants.size() >= have.max_tenants)
    throw UsageError("the policy has " + std::to_string(next.services.size()) + " services and " +
                     std::to_string(next.tenants.size()) + " tenants; the maps hold " +
                     std::to_string(have.max_services - 1) + " and " + std::to_string(have.max_tenants - 1) +
                     " (set max_services/max_tenants in [maps] and run 'sluice reset' to resize)");
  RunningPolicy now = read();
  policy::Compiled compiled = policy::compile(next, now.ids, now.epoch + 1, have.max_tenants);
  uint32_t target = now.epoch == 0 ? 0 : now.active_slot ^ 1;
  write_slot(target, compiled.slot);
  if (just_before_switch) just_before_switch();

  // The switch, in two writes: first the new slot's flags (no packet reads
  // them yet), then active_slot, one aligned 32-bit store a packet reads once.
  int root_fd = dp_.map_fd(dp_.skel()->maps.sl_root);
  uint32_t zero = 0;
  sl_root root = map_lookup<uint32_t, sl_root>(root_fd, zero).value_or(sl_root{});
  root.slot_flags[target] = compiled.slot.info.flags;
  map_update(root_fd, zero, root, "sl_root");
  root.active_slot = target;
  root.epoch = now.epoch + 1;
  map_update(root_fd, zero, root, "sl_root");

  clear_retired_state(now.ids, compiled.ids);
  return root.epoch;
}

// The one place the CLI writes maps the data path owns: it deletes the
// buckets and counters of ids no policy refers to any more, so an id handed
// out again starts from nothing. After the flip no packet maps to these ids.
void PolicyStore::clear_retired_state(const policy::IdAssignment& before, const policy::IdAssignment& after) {
  std::set<uint32_t> services, tenants, deny;
  // An id is retired when the name that held it lets go of it, even if a
  // new name takes it in the same change.
  auto retired = [](const auto& old_ids, const auto& new_ids, std::set<uint32_t>& out) {
    for (const auto& [name, id] : old_ids)
      if (auto it = new_ids.find(name); it == new_ids.end() || it->second != id) out.insert(id);
  };
  retired(before.services, after.services, services);
  retired(before.tenants, after.tenants, tenants);
  retired(before.deny, after.deny, deny);

  const uint32_t max_services = dp_.sizes().max_services, max_tenants = dp_.sizes().max_tenants;
  std::set<uint32_t> pairs;
  for (uint32_t s : services)
    for (uint32_t t = 0; t < max_tenants; t++) pairs.insert(sl_pair_index(s, t, max_tenants));
  for (uint32_t t : tenants)
    for (uint32_t s = 0; s < max_services; s++) pairs.insert(sl_pair_index(s, t, max_tenants));

  int buckets_fd = dp_.map_fd(dp_.skel()->maps.pair_buckets);
  int pair_stats_fd = dp_.map_fd(dp_.skel()->maps.pair_stats);
  std::vector<sl_counters> zero_counters(possible_cpus());
  sl_bucket full{};  // TAT 0: a full bucket
  for (uint32_t pair : pairs) {
    bpf_map_update_elem(buckets_fd, &pair, &full, BPF_ANY);
    bpf_map_update_elem(pair_stats_fd, &pair, zero_counters.data(), BPF_ANY);
  }
  if (!services.empty()) {
    int service_stats_fd = dp_.map_fd(dp_.skel()->maps.service_stats);
    int obs_stats_fd = dp_.map_fd(dp_.skel()->maps.obs_stats);
    int obs_shared_fd = dp_.map_fd(dp_.skel()->maps.obs_shared);
    std::vector<sl_service_counters> zero_service(possible_cpus());
    std::vector<sl_obs_counters> zero_obs(possible_cpus());
    sl_obs_shared zero_shared{};
    for (uint32_t s : services) {
      bpf_map_update_elem(service_stats_fd, &s, zero_service.data(), BPF_ANY);
      bpf_map_update_elem(obs_stats_fd, &s, zero_obs.data(), BPF_ANY);
      bpf_map_update_elem(obs_shared_fd, &s, &zero_shared, BPF_ANY);
    }
    int fd = dp_.map_fd(dp_.skel()->maps.source_buckets);
    for (const auto& key : map_keys<sl_source_key>(fd))
      if (services.count(key.service_id)) bpf_map_delete_elem(fd, &key);
  }
  int deny_fd = dp_.map_fd(dp_.skel()->maps.deny_stats);
  std::vector<sl_deny_counters> zeros(possible_cpus());
  for (uint32_t id : deny) bpf_map_update_elem(deny_fd, &id, zeros.data(), BPF_ANY);
}

}  // namespace sluice::kernel
