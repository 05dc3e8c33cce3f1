#include "policy/compile.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

namespace sluice::policy {

namespace {

// Keep the previous id of every key still present; give new keys the
// lowest free ids, in order. One pass over the ids: policies hold up to
// 16,383 tenants.
template <typename Key>
std::map<Key, uint32_t> assign_ids(const std::vector<Key>& keys, const std::map<Key, uint32_t>& previous,
                                   uint32_t limit) {
  std::map<Key, uint32_t> out;
  std::vector<bool> taken(limit);
  for (const auto& k : keys)
    if (auto it = previous.find(k); it != previous.end()) {
      out.emplace(k, it->second);
      if (it->second < limit) taken[it->second] = true;
    }
  uint32_t next = 1;
  for (const auto& k : keys) {
    if (out.count(k)) continue;
    while (next < limit && taken[next]) next++;
    if (next == limit) {
      out.emplace(k, 0);  // validate() keeps counts below the limits
      continue;
    }
    out.emplace(k, next);
    taken[next] = true;
  }
  return out;
}

void copy_name(char (&dst)[SL_NAME_MAX], const std::string& name) {
  std::memset(dst, 0, sizeof(dst));
  std::memcpy(dst, name.data(), std::min(name.size(), sizeof(dst) - 1));
}

std::string name_of(const char (&src)[SL_NAME_MAX]) { return std::string(src, strnlen(src, SL_NAME_MAX)); }

sl_service_tuning to_kernel(const Tuning& t) {
  sl_service_tuning k{};
  k.adaptive = static_cast<uint8_t>(t.adaptive);
  k.breaker = static_cast<uint8_t>(t.breaker);
  k.cpu_threshold_pm = static_cast<uint16_t>(t.cpu_threshold_pct * 10);
  k.timeout_ms = t.timeout_ms;
  k.window_ms = t.window_ms;
  k.window_buckets = static_cast<uint16_t>(t.window_buckets);
  k.breaker_window_ms = t.breaker_window_ms;
  k.breaker_min_calls = static_cast<uint16_t>(t.breaker_min_calls);
  k.breaker_error_pm = static_cast<uint16_t>(t.breaker_error_pct * 10);
  k.breaker_slow_pm = static_cast<uint16_t>(t.breaker_slow_pct * 10);
  k.breaker_slow_ms = t.breaker_slow_ms;
  k.breaker_open_ms = t.breaker_open_ms;
  k.breaker_probes = static_cast<uint16_t>(t.breaker_probes);
  k.sre_k_milli = static_cast<uint16_t>(std::lround(t.sre_k * 1000));
  std::memcpy(k.cgroup, t.cgroup.data(), std::min(t.cgroup.size(), sizeof(k.cgroup) - 1));
  return k;
}

Tuning from_kernel(const sl_service_tuning& k) {
  Tuning t;
  t.adaptive = static_cast<Adaptive>(k.adaptive);
  t.breaker = static_cast<BreakerKind>(k.breaker);
  t.cpu_threshold_pct = k.cpu_threshold_pm / 10;
  t.timeout_ms = k.timeout_ms;
  t.window_ms = k.window_ms;
  t.window_buckets = k.window_buckets;
  t.breaker_window_ms = k.breaker_window_ms;
  t.breaker_min_calls = k.breaker_min_calls;
  t.breaker_error_pct = k.breaker_error_pm / 10;
  t.breaker_slow_pct = k.breaker_slow_pm / 10;
  t.breaker_slow_ms = k.breaker_slow_ms;
  t.breaker_open_ms = k.breaker_open_ms;
  t.breaker_probes = k.breaker_probes;
  t.sre_k = k.sre_k_milli / 1000.0;
  t.cgroup.assign(k.cgroup, strnlen(k.cgroup, sizeof(k.cgroup)));
  return t;
}

sl_service service_entry(const Service& s, bool has_tenant_limits) {
  sl_service k{};
  copy_name(k.name, s.name);
  k.proto_index = s.proto == Proto::Tcp ? SL_PROTO_TCP : SL_PROTO_UDP;
  k.reject = s.reject == RejectMode::Rst ? SL_REJECT_RST : SL_REJECT_DROP;
  k.port = s.port;
  if (s.addr) {
    std::memcpy(k.addr, s.addr->bytes.data(), 16);
    k.addr_family = static_cast<uint8_t>(s.addr->family());
  }
  if (s.dry_run) k.flags |= SL_SVC_DRY_RUN;
  if (has_tenant_limits) k.flags |= SL_SVC_TENANT_LIMITS;
  if (s.per_source.is_set()) k.flags |= SL_SVC_PER_SOURCE;
  if (s.http) k.flags |= SL_SVC_HTTP;
  if (s.tuning.adaptive != Adaptive::Off || s.tuning.breaker != BreakerKind::Off || s.tuning.timeout_ms || s.http)
    k.flags |= SL_SVC_TRACK;
  k.rate = to_kernel(s.rate, s.burst);
  k.per_source = to_kernel(s.per_source, s.per_source_burst);
  k.tuning = to_kernel(s.tuning);
  return k;
}

// The copy of a service's entry that travels with its id (see abi.h).
sl_admission admission_of(const sl_service& k) {
  sl_admission a{};
  a.flags = k.flags;
  a.reject = k.reject;
  a.interval_ns = k.rate.interval_ns;
  a.tolerance_ns = k.rate.tolerance_ns;
  return a;
}

Service service_of(const sl_service& k) {
  Service s;
  s.name = name_of(k.name);
  s.proto = k.proto_index == SL_PROTO_TCP ? Proto::Tcp : Proto::Udp;
  s.port = k.port;
  if (k.addr_family) {
    IpAddr a;
    std::memcpy(a.bytes.data(), k.addr, 16);
    s.addr = a;
  }
  s.rate = rate_of(k.rate);
  s.burst = k.rate.burst;
  s.per_source = rate_of(k.per_source);
  s.per_source_burst = k.per_source.burst;
  s.reject = k.reject == SL_REJECT_RST ? RejectMode::Rst : RejectMode::Drop;
  s.dry_run = k.flags & SL_SVC_DRY_RUN;
  s.http = k.flags & SL_SVC_HTTP;
  s.tuning = from_kernel(k.tuning);
  return s;
}

// What the merged source trie says for each prefix of one address family.
// For every prefix P (tenant or deny) we store the longest tenant prefix and
// the longest deny prefix containing P. The data path's longest match M for
// an address is then enough: any tenant or deny prefix containing the
// address is either M or contains M, so the longest of each kind containing
// M is the longest containing the address.
std::map<Cidr, sl_source_class> merge_sources(const std::map<Cidr, uint32_t>& tenant_of,
                                              const std::map<Cidr, uint32_t>& deny_of) {
  std::map<Cidr, sl_source_class> out;
  auto longest_containing = [](const std::map<Cidr, uint32_t>& table, const Cidr& p) -> uint32_t {
    for (int len = p.length; len >= 0; len--)
      if (auto it = table.find(p.widened(len)); it != table.end()) return it->second;
    return 0;
  };
  auto add = [&](const Cidr& p, uint8_t origin) {
    sl_source_class& c = out[p];
    c.tenant_id = static_cast<uint16_t>(longest_containing(tenant_of, p));
    c.deny_id = static_cast<uint16_t>(longest_containing(deny_of, p));
    c.origin |= origin;
  };
  for (const auto& [p, _] : tenant_of) add(p, SL_ORIGIN_TENANT);
  for (const auto& [p, _] : deny_of) add(p, SL_ORIGIN_DENY);
  return out;
}

// Expands the IPv4 prefixes into the three-level table (see abi.h): paint
// prefixes shortest first, so longer ones overwrite the part they cover; a
// chunk created under an entry starts as 256 copies of that entry's class.
std::vector<std::pair<uint32_t, uint32_t>> build_src4_table(const std::map<Cidr, sl_source_class>& merged) {
  std::vector<std::pair<Cidr, uint32_t>> prefixes;
  for (const auto& [p, c] : merged)
    if (p.family() == 4) prefixes.emplace_back(p, sl_src4_class(c.tenant_id, c.deny_id));
  std::stable_sort(prefixes.begin(), prefixes.end(),
                   [](const auto& a, const auto& b) { return a.first.length < b.first.length; });

  std::vector<uint32_t> table(SL_SRC4_L1_ENTRIES);  // grows by a chunk at a time
  uint32_t l2_chunks = 0, l3_chunks = 0;
  // The chunk below `entry_index`, made on first use.
  auto chunk_below = [&](uint32_t entry_index, uint32_t& used, uint32_t limit, const char* what) -> uint32_t {
    uint32_t entry = table[entry_index];
    if (entry & SL_SRC4_NEXT) return entry & ~SL_SRC4_NEXT;
    if (used == limit)
      throw PolicyError("tenant", "", "prefixes",
                        "IPv4 prefixes longer than /" + std::string(what) + " may sit in at most " +
                            std::to_string(limit) + " distinct /" + what + " networks");
    used++;
    uint32_t base = static_cast<uint32_t>(table.size());
    table.resize(table.size() + 256, entry);
    table[entry_index] = SL_SRC4_NEXT | base;
    return base;
  };
  for (const auto& [prefix, cls] : prefixes) {
    const uint8_t* a = prefix.addr.v4_bytes();
    uint32_t top16 = uint32_t{a[0]} << 8 | a[1];
    if (prefix.length <= 16) {
      uint32_t span = 1u << (16 - prefix.length);
      for (uint32_t i = 0; i < span; i++) table[top16 + i] = cls;  // never a chunk yet: shortest first
    } else {
      uint32_t l2 = chunk_below(top16, l2_chunks, SL_SRC4_L2_CHUNKS, "16");
      if (prefix.length <= 24) {
        uint32_t span = 1u << (24 - prefix.length);
        for (uint32_t i = 0; i < span; i++) table[l2 + a[2] + i] = cls;
      } else {
        uint32_t l3 = chunk_below(l2 + a[2], l3_chunks, SL_SRC4_L3_CHUNKS, "24");
        uint32_t span = 1u << (32 - prefix.length);
        for (uint32_t i = 0; i < span; i++) table[l3 + a[3] + i] = cls;
      }
    }
  }
  std::vector<std::pair<uint32_t, uint32_t>> entries;
  for (uint32_t i = 0; i < table.size(); i++)
    if (table[i]) entries.emplace_back(i, table[i]);
  return entries;
}

}  // namespace

Compiled compile(const Policy& p, const IdAssignment& previous, uint64_t epoch, uint32_t max_tenants) {
  Compiled out;
  IdAssignment& ids = out.ids;
  SlotContents& slot = out.slot;

  std::vector<std::string> service_names, tenant_names;
  for (const auto& s : p.services) service_names.push_back(s.name);
  for (const auto& t : p.tenants)
    if (t.name != kDefaultTenant) tenant_names.push_back(t.name);
  ids.services = assign_ids(service_names, previous.services, SL_MAX_SERVICES);
  ids.tenants = assign_ids(tenant_names, previous.tenants, SL_MAX_TENANTS);
  ids.tenants[kDefaultTenant] = 0;
  ids.deny = assign_ids(p.deny, previous.deny, SL_MAX_DENY_RULES);

  // Services and the port table.
  std::set<std::string> limited;
  for (const auto& l : p.limits) limited.insert(l.service);
  std::map<uint32_t, sl_port_entry> ports;
  for (const auto& s : p.services) {
    uint32_t id = ids.services.at(s.name);
    const sl_service& entry = slot.services.emplace_back(id, service_entry(s, limited.count(s.name) > 0)).second;
    sl_port_entry& port = ports[port_index(s.proto, s.port)];
    if (s.addr) {
      sl_addr_key key{};
      key.proto_index = s.proto == Proto::Tcp ? SL_PROTO_TCP : SL_PROTO_UDP;
      key.family = static_cast<uint8_t>(s.addr->family());
      key.port = s.port;
      std::memcpy(key.addr, s.addr->bytes.data(), 16);
      sl_addr_service bound{};
      bound.service = id;
      bound.admission = admission_of(entry);
      slot.svc_addr.emplace_back(key, bound);
      port.flags |= SL_PORT_BY_ADDR;
    } else {
      port.any_addr_service = static_cast<uint16_t>(id);
      port.any_addr = admission_of(entry);
    }
  }
  slot.ports.assign(ports.begin(), ports.end());

  // Tenants; the default tenant always has an entry so its level is known.
  sl_tenant fallback{};
  copy_name(fallback.name, kDefaultTenant);
  fallback.level = p.level_of(kDefaultTenant);
  slot.tenants.emplace_back(0, fallback);
  std::map<Cidr, uint32_t> tenant_of;
  for (const auto& t : p.tenants) {
    if (t.name == kDefaultTenant) continue;
    uint32_t id = ids.tenants.at(t.name);
    sl_tenant k{};
    copy_name(k.name, t.name);
    k.level = t.level;
    slot.tenants.emplace_back(id, k);
    for (const auto& c : t.prefixes) tenant_of[c] = id;
  }

  for (const auto& l : p.limits)
    slot.limits.emplace_back(sl_pair_index(ids.services.at(l.service), ids.tenants.at(l.tenant), max_tenants),
                             to_kernel(l.rate, l.burst));

  // Source tries, one per family.
  std::map<Cidr, uint32_t> deny_of(ids.deny.begin(), ids.deny.end());
  std::map<Cidr, sl_source_class> merged = merge_sources(tenant_of, deny_of);
  slot.src4_table = build_src4_table(merged);
  for (const auto& [prefix, cls] : merged) {
    if (prefix.family() == 4) {
      sl_lpm_v4_key key{static_cast<uint32_t>(prefix.length), {}};
      std::memcpy(key.addr, prefix.addr.v4_bytes(), 4);
      slot.src_v4.emplace_back(key, cls);
    } else {
      sl_lpm_v6_key key{static_cast<uint32_t>(prefix.length), {}};
      std::memcpy(key.addr, prefix.addr.bytes.data(), 16);
      slot.src_v6.emplace_back(key, cls);
    }
  }

  slot.info.epoch = epoch;
  slot.info.control_stale_ms = p.control_stale_ms;
  if (!slot.src_v4.empty()) slot.info.flags |= SL_POL_SRC_V4;
  if (!slot.src_v6.empty()) slot.info.flags |= SL_POL_SRC_V6;
  for (const auto& [_, s] : slot.services)
    if (s.flags & SL_SVC_TRACK) slot.info.flags |= SL_POL_TRACKING;
  return out;
}

IdAssignment ids_of(const SlotContents& slot) {
  IdAssignment ids;
  for (const auto& [id, s] : slot.services)
    if (s.name[0]) ids.services[name_of(s.name)] = id;
  for (const auto& [id, t] : slot.tenants)
    if (t.name[0]) ids.tenants[name_of(t.name)] = id;
  ids.tenants[kDefaultTenant] = 0;
  auto note_deny = [&](const Cidr& prefix, const sl_source_class& c) {
    if (c.origin & SL_ORIGIN_DENY) ids.deny[prefix] = c.deny_id;
  };
  for (const auto& [key, c] : slot.src_v4) note_deny(Cidr{IpAddr::from_v4(key.addr), int(key.prefixlen)}, c);
  for (const auto& [key, c] : slot.src_v6) {
    IpAddr a;
    std::memcpy(a.bytes.data(), key.addr, 16);
    note_deny(Cidr{a, int(key.prefixlen)}, c);
  }
  return ids;
}

Policy decompile(const SlotContents& slot, uint32_t max_tenants) {
  Policy p;
  p.control_stale_ms = slot.info.control_stale_ms ? slot.info.control_stale_ms : SL_DEFAULT_CONTROL_STALE_MS;
  std::map<uint32_t, std::string> service_name, tenant_name;
  for (const auto& [id, s] : slot.services) {
    if (!s.name[0]) continue;
    p.services.push_back(service_of(s));
    service_name[id] = p.services.back().name;
  }
  std::map<uint32_t, size_t> tenant_index;
  for (const auto& [id, t] : slot.tenants) {
    if (!t.name[0]) continue;
    tenant_name[id] = name_of(t.name);
    if (id == 0 && t.level == kDefaultLevel) continue;  // the implicit default
    tenant_index[id] = p.tenants.size();
    p.tenants.push_back(Tenant{name_of(t.name), {}, t.level});
  }
  auto note_source = [&](const Cidr& prefix, const sl_source_class& c) {
    if (c.origin & SL_ORIGIN_TENANT)
      if (auto it = tenant_index.find(c.tenant_id); it != tenant_index.end())
        p.tenants[it->second].prefixes.push_back(prefix);
    if (c.origin & SL_ORIGIN_DENY) p.deny.push_back(prefix);
  };
  for (const auto& [key, c] : slot.src_v4) note_source(Cidr{IpAddr::from_v4(key.addr), int(key.prefixlen)}, c);
  for (const auto& [key, c] : slot.src_v6) {
    IpAddr a;
    std::memcpy(a.bytes.data(), key.addr, 16);
    note_source(Cidr{a, int(key.prefixlen)}, c);
  }
  for (const auto& [pair, rate] : slot.limits) {
    if (!rate.interval_ns) continue;  // the array holds every pair; most have no override
    auto s = service_name.find(pair / max_tenants);
    auto t = tenant_name.find(pair % max_tenants);
    if (s == service_name.end() || t == tenant_name.end()) continue;
    p.limits.push_back(Limit{s->second, t->second, rate_of(rate), rate.burst});
  }
  normalize(p);
  return p;
}

}  // namespace sluice::policy
