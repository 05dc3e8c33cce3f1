#include "policy/policy.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "core/spelling.hpp"

namespace sluice::policy {

PolicyError::PolicyError(std::string kind_, std::string item_, std::string field_, const std::string& problem)
    : UsageError(kind_ + (item_.empty() ? "" : " '" + item_ + "'") + ": " + problem),
      kind(std::move(kind_)),
      item(std::move(item_)),
      field(std::move(field_)) {}

const Service* Policy::find_service(std::string_view name) const {
  for (const auto& s : services)
    if (s.name == name) return &s;
  return nullptr;
}

const Tenant* Policy::find_tenant(std::string_view name) const {
  for (const auto& t : tenants)
    if (t.name == name) return &t;
  return nullptr;
}

std::string Policy::no_service_named(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& s : services) names.push_back(s.name);
  return "no service named '" + name + "'" + did_you_mean(one_typo_from(name, names));
}

std::string Policy::no_tenant_named(const std::string& name, bool implicit_default) const {
  std::vector<std::string> names;
  for (const auto& t : tenants) names.push_back(t.name);
  if (implicit_default) names.push_back(kDefaultTenant);
  return "no tenant named '" + name + "'" + did_you_mean(one_typo_from(name, names));
}

uint8_t Policy::level_of(std::string_view tenant) const {
  const Tenant* t = find_tenant(tenant);
  return t ? t->level : kDefaultLevel;
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() >= SL_NAME_MAX) return false;
  auto ok = [](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (!first && (c == '_' || c == '.' || c == '-'));
  };
  for (size_t i = 0; i < name.size(); i++)
    if (!ok(name[i], i == 0)) return false;
  return true;
}

namespace {

template <typename Enum, size_t N>
Enum parse_word(std::string_view text, std::string_view what, const char* const (&words)[N]) {
  for (size_t i = 0; i < N; i++)
    if (text == words[i]) return static_cast<Enum>(i);
  std::string choices;
  for (size_t i = 0; i < N; i++) choices += (i ? "|" : "") + std::string(words[i]);
  throw UsageError(std::string(what) + " '" + std::string(text) + "': expected one of " + choices);
}

constexpr const char* kProtoWords[] = {"tcp", "udp"};
constexpr const char* kRejectWords[] = {"drop", "rst"};
constexpr const char* kAdaptiveWords[] = {"off", "bbr", "aimd", "gradient"};
constexpr const char* kBreakerWords[] = {"off", "ratio", "sre"};

// tolerance = burst × interval must fit the data path's 64-bit nanoseconds.
void check_rate(const std::string& kind, const std::string& item, const std::string& field, const Rate& rate,
                uint32_t burst) {
  std::string burst_field = field == "rate" ? "burst" : field + "_burst";
  if (burst < 1 || burst > kMaxBurst)
    throw PolicyError(kind, item, burst_field,
                      burst_field + " " + std::to_string(burst) + " is out of range (1.." + std::to_string(kMaxBurst) +
                          ")");
  sl_rate k = to_kernel(rate, 1);
  if (k.interval_ns > (uint64_t{1} << 62) / burst)
    throw PolicyError(kind, item, burst_field,
                      burst_field + " " + std::to_string(burst) + " at " + to_string(rate) +
                          " spans more time than sluice can count; lower it");
}

void check_range(const std::string& kind, const std::string& item, const std::string& field, uint64_t value,
                 uint64_t lo, uint64_t hi) {
  if (value < lo || value > hi)
    throw PolicyError(kind, item, field,
                      field + " " + std::to_string(value) + " is out of range (" + std::to_string(lo) + ".." +
                          std::to_string(hi) + ")");
}

void validate_tuning(const Service& s) {
  const Tuning& t = s.tuning;
  const std::string k = "service";
  check_range(k, s.name, "cpu_threshold", t.cpu_threshold_pct, 0, 100);
  check_range(k, s.name, "timeout_ms", t.timeout_ms, 0, 3'600'000);
  check_range(k, s.name, "window_ms", t.window_ms, 100, 600'000);
  check_range(k, s.name, "window_buckets", t.window_buckets, 1, 1000);
  if (t.window_ms % t.window_buckets != 0)
    throw PolicyError(k, s.name, "window_buckets",
                      "window_ms " + std::to_string(t.window_ms) + " must divide into window_buckets " +
                          std::to_string(t.window_buckets) + " whole milliseconds");
  check_range(k, s.name, "breaker_window_ms", t.breaker_window_ms, 100, 600'000);
  if (t.breaker_window_ms % 10 != 0)
    throw PolicyError(k, s.name, "breaker_window_ms", "breaker_window_ms must be a multiple of 10 (10 buckets)");
  check_range(k, s.name, "breaker_min_calls", t.breaker_min_calls, 1, 65535);
  check_range(k, s.name, "breaker_error_pct", t.breaker_error_pct, 1, 100);
  check_range(k, s.name, "breaker_slow_pct", t.breaker_slow_pct, 0, 100);
  check_range(k, s.name, "breaker_slow_ms", t.breaker_slow_ms, 0, 3'600'000);
  if (t.breaker_slow_pct > 0 && t.breaker_slow_ms == 0)
    throw PolicyError(k, s.name, "breaker_slow_ms", "breaker_slow_pct needs breaker_slow_ms (what counts as slow)");
  check_range(k, s.name, "breaker_open_ms", t.breaker_open_ms, 1, 3'600'000);
  check_range(k, s.name, "breaker_probes", t.breaker_probes, 1, 65535);
  if (!(t.sre_k >= 1.0 && t.sre_k <= 10.0))
    throw PolicyError(k, s.name, "sre_k", "sre_k " + std::to_string(t.sre_k) + " is out of range (1..10)");
  if (std::abs(t.sre_k * 1000 - std::round(t.sre_k * 1000)) > 1e-6)
    throw PolicyError(k, s.name, "sre_k", "sre_k has at most three decimals (the kernel keeps thousandths)");
  if (t.cgroup.size() >= sizeof(sl_service_tuning{}.cgroup) || t.cgroup.find("..") != std::string::npos ||
      t.cgroup.find('"') != std::string::npos || t.cgroup.find('\\') != std::string::npos)
    throw PolicyError(k, s.name, "cgroup",
                      "cgroup must be a path of at most 63 characters, without '..', quotes or backslashes");
}

void validate_service(const Service& s) {
  const std::string k = "service";
  if (!valid_name(s.name))
    throw PolicyError(k, s.name, "name",
                      "names are 1-31 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit");
  if (s.port == 0) throw PolicyError(k, s.name, "port", "port must be from 1 to 65535");
  if (s.rate.is_set()) check_rate(k, s.name, "rate", s.rate, s.burst);
  if (s.per_source.is_set()) check_rate(k, s.name, "per_source", s.per_source, s.per_source_burst);
  if (s.proto != Proto::Tcp && s.reject == RejectMode::Rst)
    throw PolicyError(k, s.name, "reject", "reject 'rst' needs a TCP service; UDP services can only drop");
  if (s.proto != Proto::Tcp && s.http) throw PolicyError(k, s.name, "http", "http needs a TCP service");
  validate_tuning(s);
}

}  // namespace

void validate(const Policy& p) {
  // Map sizes first: they bound how many services and tenants fit.
  check_range("maps", "", "max_services", p.maps.max_services, 2, SL_MAX_SERVICES);
  check_range("maps", "", "max_tenants", p.maps.max_tenants, 1, SL_MAX_TENANTS);
  if (p.maps.pairs() > (1u << 24))
    throw PolicyError("maps", "", "max_tenants",
                      "max_services x max_tenants may be at most 16777216 (per-pair state is preallocated)");
  check_range("maps", "", "source_entries", p.maps.source_entries, 1024, 1u << 24);
  check_range("maps", "", "flow_entries", p.maps.flow_entries, 1024, 1u << 24);
  check_range("control", "", "stale_ms", p.control_stale_ms, 100, 60'000);

  // Services: unique names and unique (proto, port, address).
  // The error points at the first service that does not fit.
  if (p.services.size() >= p.maps.max_services)
    throw PolicyError("service", p.services[p.maps.max_services - 1].name, "name",
                      "at most " + std::to_string(p.maps.max_services - 1) +
                          " services fit the maps (max_services in [maps]; resizing needs 'sluice reset')");
  std::set<std::string> names;
  std::map<std::tuple<Proto, uint16_t, std::optional<IpAddr>>, std::string> endpoints;
  for (const auto& s : p.services) {
    validate_service(s);
    if (!names.insert(s.name).second) throw PolicyError("service", s.name, "name", "defined twice");
    auto [it, fresh] = endpoints.emplace(std::make_tuple(s.proto, s.port, s.addr), s.name);
    if (!fresh)
      throw PolicyError("service", s.name, "port",
                        std::string(to_string(s.proto)) + " port " + std::to_string(s.port) +
                            (s.addr ? " on " + s.addr->to_string() : "") + " is already service '" + it->second + "'");
  }

  // Tenants: unique names, prefixes owned by one tenant, the default has none.
  names.clear();
  std::map<Cidr, std::string> prefix_owner;
  size_t v4_prefixes = 0, v6_prefixes = 0;
  for (const auto& t : p.tenants) {
    if (!valid_name(t.name))
      throw PolicyError("tenant", t.name, "name",
                        "names are 1-31 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit");
    if (!names.insert(t.name).second) throw PolicyError("tenant", t.name, "name", "defined twice");
    check_range("tenant", t.name, "level", t.level, 0, SL_LEVELS - 1);
    if (t.name == kDefaultTenant && !t.prefixes.empty())
      throw PolicyError("tenant", t.name, "prefixes",
                        "the default tenant is every source no prefix matches; it takes no prefixes");
    if (t.name != kDefaultTenant && t.prefixes.empty())
      throw PolicyError("tenant", t.name, "prefixes", "a tenant needs at least one prefix");
    for (const auto& c : t.prefixes) {
      auto [it, fresh] = prefix_owner.emplace(c, t.name);
      if (!fresh)
        throw PolicyError("tenant", t.name, "prefixes",
                          c.to_string() + " already belongs to tenant '" + it->second + "'");
      (c.family() == 4 ? v4_prefixes : v6_prefixes)++;
    }
  }
  size_t named_tenants = p.tenants.size() - (p.find_tenant(kDefaultTenant) ? 1 : 0);
  if (named_tenants >= p.maps.max_tenants)
    throw PolicyError("tenant", p.tenants.back().name, "name",
                      "at most " + std::to_string(p.maps.max_tenants - 1) +
                          " tenants fit the maps (max_tenants in [maps]; resizing needs 'sluice reset')");

  // Limits: refer to things that exist, once per pair.
  std::set<std::pair<std::string, std::string>> pairs;
  for (const auto& l : p.limits) {
    std::string item = l.service + "/" + l.tenant;
    if (!p.find_service(l.service))
      throw PolicyError("limit", item, "service", p.no_service_named(l.service));
    if (l.tenant != kDefaultTenant && !p.find_tenant(l.tenant))
      throw PolicyError("limit", item, "tenant", p.no_tenant_named(l.tenant, /*implicit_default=*/true));
    if (!l.rate.is_set()) throw PolicyError("limit", item, "rate", "a limit needs a rate");
    check_rate("limit", item, "rate", l.rate, l.burst);
    if (!pairs.emplace(l.service, l.tenant).second) throw PolicyError("limit", item, "service", "defined twice");
  }

  // Deny rules.
  if (p.deny.size() >= SL_MAX_DENY_RULES)
    throw PolicyError("deny", "", "", "at most " + std::to_string(SL_MAX_DENY_RULES - 1) + " deny rules");
  std::set<Cidr> denied;
  for (const auto& c : p.deny) {
    if (!denied.insert(c).second) throw PolicyError("deny", c.to_string(), "deny", "listed twice");
    if (!prefix_owner.count(c)) (c.family() == 4 ? v4_prefixes : v6_prefixes)++;
  }
  if (v4_prefixes > SL_MAX_SRC_PREFIXES || v6_prefixes > SL_MAX_SRC_PREFIXES)
    throw PolicyError("tenant", "", "prefixes",
                      "at most " + std::to_string(SL_MAX_SRC_PREFIXES) +
                          " tenant and deny prefixes per address family");
}

void normalize(Policy& p) {
  // A default tenant at the default level says nothing; drop it.
  std::erase_if(p.tenants, [](const Tenant& t) { return t.name == kDefaultTenant && t.level == kDefaultLevel; });
  auto by_name = [](const auto& a, const auto& b) { return a.name < b.name; };
  std::sort(p.services.begin(), p.services.end(), by_name);
  std::sort(p.tenants.begin(), p.tenants.end(), by_name);
  for (auto& t : p.tenants) std::sort(t.prefixes.begin(), t.prefixes.end());
  std::sort(p.limits.begin(), p.limits.end(),
            [](const Limit& a, const Limit& b) { return std::tie(a.service, a.tenant) < std::tie(b.service, b.tenant); });
  std::sort(p.deny.begin(), p.deny.end());
  // validate() takes any sre_k within a rounding error of thousandths (1.001
  // has no exact double); keep the thousandth itself, which is what the
  // kernel and the policy file hold, so the file reads back to this policy.
  for (auto& s : p.services) s.tuning.sre_k = std::round(s.tuning.sre_k * 1000) / 1000;
}

const char* to_string(Proto p) { return kProtoWords[static_cast<int>(p)]; }
const char* to_string(RejectMode m) { return kRejectWords[static_cast<int>(m)]; }
const char* to_string(Adaptive a) { return kAdaptiveWords[static_cast<int>(a)]; }
const char* to_string(BreakerKind b) { return kBreakerWords[static_cast<int>(b)]; }

Proto parse_proto(std::string_view text, std::string_view what) { return parse_word<Proto>(text, what, kProtoWords); }
RejectMode parse_reject(std::string_view text, std::string_view what) {
  return parse_word<RejectMode>(text, what, kRejectWords);
}
Adaptive parse_adaptive(std::string_view text, std::string_view what) {
  return parse_word<Adaptive>(text, what, kAdaptiveWords);
}
BreakerKind parse_breaker(std::string_view text, std::string_view what) {
  return parse_word<BreakerKind>(text, what, kBreakerWords);
}

}  // namespace sluice::policy
