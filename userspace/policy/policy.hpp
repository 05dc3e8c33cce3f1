// The policy an operator sets: services, tenants, per-tenant limits, deny
// rules and map sizes. It is what `sluice export` prints, what the policy file
// holds, and what the CLI reads back from the kernel; compile.hpp turns it
// into map contents.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "policy/address.hpp"
#include "core/error.hpp"
#include "policy/rate.hpp"
#include "sluice/abi.h"

namespace sluice::policy {

enum class Proto : uint8_t { Tcp, Udp };
enum class RejectMode : uint8_t { Drop, Rst };
enum class Adaptive : uint8_t { Off, Bbr, Aimd, Gradient };
enum class BreakerKind : uint8_t { Off, Ratio, Sre };

// The controller's knobs for a service (issue: closing the loop). Defaults
// follow the reference implementations: kratos BBR (10 s in 100 buckets,
// CPU 80%), kratos SRE (K = 2), and a three-state breaker at 50% errors.
struct Tuning {
  Adaptive adaptive = Adaptive::Off;
  BreakerKind breaker = BreakerKind::Off;
  uint32_t cpu_threshold_pct = 80;  // 0: the in-flight limit always applies
  uint32_t timeout_ms = 0;          // latency SLO; slower requests count as failures
  uint32_t window_ms = 10'000;
  uint32_t window_buckets = 100;
  uint32_t breaker_window_ms = 1'000;  // errors must open the breaker within a second
  uint32_t breaker_min_calls = 20;
  uint32_t breaker_error_pct = 50;
  uint32_t breaker_slow_pct = 0;  // 0: slow calls never open the breaker
  uint32_t breaker_slow_ms = 0;
  uint32_t breaker_open_ms = 5'000;
  uint32_t breaker_probes = 5;
  double sre_k = 2.0;
  std::string cgroup;  // the service's cgroup v2 directory, for its CPU; empty: the host's

  bool operator==(const Tuning&) const = default;
};

struct Service {
  std::string name;
  Proto proto = Proto::Tcp;
  uint16_t port = 0;
  std::optional<IpAddr> addr;  // only packets to this destination address
  Rate rate;                   // each tenant's bucket; unset = unlimited
  uint32_t burst = 0;
  Rate per_source;             // each client address's bucket; unset = none
  uint32_t per_source_burst = 0;
  RejectMode reject = RejectMode::Drop;
  bool dry_run = false;
  bool http = false;  // HTTP/1.x: 5xx responses are errors
  Tuning tuning;

  bool operator==(const Service&) const = default;
};

inline constexpr const char* kDefaultTenant = "default";
inline constexpr uint8_t kDefaultLevel = 1;

// A tenant is a set of source prefixes with a priority level: under
// overload level 2 is shed first, level 0 last. The tenant named "default"
// has no prefixes; it is every source no prefix matches.
struct Tenant {
  std::string name;
  std::vector<Cidr> prefixes;
  uint8_t level = kDefaultLevel;

  bool operator==(const Tenant&) const = default;
};

// A per-(service, tenant) rate that replaces the service's rate for that tenant.
struct Limit {
  std::string service;
  std::string tenant;
  Rate rate;
  uint32_t burst = 0;

  bool operator==(const Limit&) const = default;
};

// Sizes of the state maps; fixed when the maps are first created.
// Per-(service, tenant) state is kept for max_services x max_tenants pairs.
struct MapSizes {
  uint32_t max_services = SL_DEFAULT_MAX_SERVICES;  // service ids stay below this
  uint32_t max_tenants = SL_DEFAULT_MAX_TENANTS;    // tenant ids stay below this
  uint32_t source_entries = SL_DEFAULT_SOURCE_ENTRIES;
  uint32_t flow_entries = SL_DEFAULT_FLOW_ENTRIES;

  uint64_t pairs() const { return uint64_t{max_services} * max_tenants; }

  bool operator==(const MapSizes&) const = default;
};

struct Policy {
  std::vector<Service> services;
  std::vector<Tenant> tenants;  // may include "default" to set its level
  std::vector<Limit> limits;
  std::vector<Cidr> deny;
  MapSizes maps;
  uint32_t control_stale_ms = SL_DEFAULT_CONTROL_STALE_MS;

  const Service* find_service(std::string_view name) const;
  const Tenant* find_tenant(std::string_view name) const;
  // The error for a name that names nothing: "no service named 'NAME'",
  // ending with the name one typo away when there is one.
  std::string no_service_named(const std::string& name) const;
  // The same for tenants; with `implicit_default` the default tenant counts
  // even when the policy does not list it (as it does for limits).
  std::string no_tenant_named(const std::string& name, bool implicit_default) const;
  // The level of a tenant by name, including the implicit default tenant.
  uint8_t level_of(std::string_view tenant) const;

  bool operator==(const Policy&) const = default;
};

// A validation failure that knows where it is: the kind of item
// ("service", "tenant", "limit", "deny", "maps"), which one, and the field,
// so a policy file loader can point at the line.
class PolicyError : public UsageError {
 public:
  PolicyError(std::string kind, std::string item, std::string field, const std::string& problem);
  std::string kind, item, field;
};

// Checks everything about a policy; throws UsageError naming the first
// problem (the service, tenant or prefix, and the field). Never changes it.
void validate(const Policy& policy);

// Canonical order (services, tenants by name; prefixes sorted) and values
// (sre_k in exact thousandths) so two equal policies serialize identically.
void normalize(Policy& policy);

const char* to_string(Proto p);
const char* to_string(RejectMode m);
const char* to_string(Adaptive a);
const char* to_string(BreakerKind b);
// Throw UsageError naming `what` and the choices on an unknown word.
Proto parse_proto(std::string_view text, std::string_view what);
RejectMode parse_reject(std::string_view text, std::string_view what);
Adaptive parse_adaptive(std::string_view text, std::string_view what);
BreakerKind parse_breaker(std::string_view text, std::string_view what);

// Names: 1..31 characters of [a-z0-9_.-], starting with a letter or digit.
bool valid_name(std::string_view name);

}  // namespace sluice::policy
