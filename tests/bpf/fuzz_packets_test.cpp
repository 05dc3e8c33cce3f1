// Packet fuzzing through the real kernel: a million random and mutated
// frames (SLUICE_FUZZ_PACKETS, default 10^6; SLUICE_FUZZ_SEED, default 1)
// go through the XDP program with BPF_PROG_TEST_RUN, and every decision the
// program records in its test trace is compared with an independent C++
// reference: tests/lib/reference_parser (the parsing stage) and
// tests/lib/reference_policy (deny rules, tenants, services, new
// connections, and algo::TokenBucket models of every bucket).
//
// Frames are built with tests/lib/packet.hpp and then mutated: truncated at
// every offset, wrong lengths (IPv4 IHL and total length, IPv6 payload
// length, TCP data offset, UDP length), IPv4 options, IPv6 extension header
// chains (including ones longer than the data path walks), zero to three
// VLAN tags, first and non-first fragments of both families, every TCP flag
// combination, random bytes.
//
// Phase 1 runs a policy whose rates are so large nothing is shed, so the
// comparison is about classification: same fate, service, tenant and deny
// rule for every packet. Phase 2 runs tight rates with an injected clock, so
// the verdict itself (admitted or shed, why, and the XDP action, with the
// RST reply checked byte by byte) is compared with the bucket models. Both
// phases end by comparing every counter the program keeps with the
// reference's tally, and print how many packets met each fate.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <netinet/in.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "../lib/packet.hpp"
#include "../lib/reference_parser.hpp"
#include "../lib/reference_policy.hpp"
#include "../lib/xdp_tester.hpp"
#include "core/error.hpp"
#include "kernel/counters.hpp"

using namespace sluice;
using namespace sluice::test;
using policy::Cidr;
using policy::Rate;
using Fault = ReferencePolicy::Fault;

namespace {

constexpr uint64_t kMillisecond = 1'000'000;
constexpr uint64_t kSecond = 1'000'000'000;
constexpr uint64_t kT0 = 1000 * kSecond;
// BPF_PROG_TEST_RUN takes a linear frame of at most a page less headroom
// and tailroom (about 3.5 KB), and none shorter than an Ethernet header.
constexpr size_t kMaxFrame = 3000;
constexpr size_t kEthernetHeader = 14;

uint64_t env_number(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  if (!text || !*text) return fallback;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (*end != '\0' || errno != 0)
    throw std::invalid_argument(std::string(name) + " must be a whole number, not '" + text + "'");
  return v;
}

// ---- addresses ---------------------------------------------------------------

struct Addr {
  uint8_t family = 4;
  std::array<uint8_t, 16> bytes{};  // IPv4 in the last four bytes, IPv4-mapped

  Ipv4Addr v4() const { return {bytes[12], bytes[13], bytes[14], bytes[15]}; }
};

Addr addr(std::string_view text) {
  auto a = policy::IpAddr::parse(text);
  if (!a) throw std::invalid_argument("bad address " + std::string(text));
  return Addr{static_cast<uint8_t>(a->family()), a->bytes};
}

// The same 16 bytes carried by an IPv6 packet: ::ffff:a.b.c.d on the wire.
Addr as_ipv6(Addr a) {
  a.family = 6;
  return a;
}

void set_bit(std::array<uint8_t, 16>& b, int bit, bool on) {
  auto mask = static_cast<uint8_t>(0x80 >> (bit % 8));
  if (on)
    b[bit / 8] |= mask;
  else
    b[bit / 8] &= static_cast<uint8_t>(~mask);
}

// ---- policies ----------------------------------------------------------------

policy::Service service(const std::string& name, policy::Proto proto, uint16_t port, const char* bound_to = nullptr) {
  policy::Service s;
  s.name = name;
  s.proto = proto;
  s.port = port;
  if (bound_to) s.addr = policy::IpAddr::parse(bound_to);
  return s;
}

constexpr auto kTcp = policy::Proto::Tcp;
constexpr auto kUdp = policy::Proto::Udp;
const char* const kBoundV4 = "198.18.0.10";
const char* const kBoundV6 = "2001:db8::10";

// Tenants with nested prefixes of both families, down to /25-/32 (the third
// level of the IPv4 table), deny rules nested in each other and in tenants.
void add_sources(policy::Policy& p) {
  auto tenant = [&](const std::string& name, std::vector<std::string> prefixes, uint8_t level) {
    policy::Tenant t{name, {}, level};
    for (const auto& text : prefixes) t.prefixes.push_back(Cidr::parse(text));
    p.tenants.push_back(t);
  };
  tenant("corp", {"198.18.0.0/16", "2001:db8::/32"}, 1);
  tenant("lab", {"198.18.1.0/24", "2001:db8:1::/48"}, 1);
  tenant("lab-half", {"198.18.1.128/25", "2001:db8:1:2::/64"}, 0);
  tenant("lab-quad", {"198.18.1.200/30"}, 0);
  tenant("lab-host", {"198.18.1.201/32", "2001:db8:1:2::1/128"}, 0);
  tenant("partner", {"198.19.0.0/17", "198.19.7.16/28"}, 2);  // one tenant, nested prefixes
  tenant("legacy", {"::/16"}, 2);  // holds ::1 and every ::ffff:a.b.c.d
  tenant("default", {}, 2);
  for (const char* d : {"198.18.66.0/24", "198.18.66.128/25", "198.18.1.202/31", "203.0.113.0/24", "192.0.2.1/32",
                        "0.0.0.0/8", "2001:db8:dead::/48", "2001:db8:dead:beef::/64", "2001:db8:1:2::1/128"})
    p.deny.push_back(Cidr::parse(d));
}

// Phase 1: several services, every rate far beyond what a run can use.
policy::Policy open_policy() {
  const Rate huge{1'000'000'000, 1};
  const uint32_t deep = 1'000'000'000;
  policy::Policy p;
  auto add = [&](policy::Service s) {
    s.rate = huge;
    s.burst = deep;
    p.services.push_back(s);
  };
  add(service("web", kTcp, 80));
  add(service("web-v4", kTcp, 80, kBoundV4));  // wins over "web" for its address
  add(service("web-v6", kTcp, 80, kBoundV6));
  add(service("tls-v4", kTcp, 443, kBoundV4));  // bound, no any-address service
  add(service("dns", kUdp, 53));
  add(service("dns-tcp", kTcp, 53));
  add(service("mdns-v6", kUdp, 5353, kBoundV6));
  policy::Service api = service("api", kTcp, 8080);
  api.reject = policy::RejectMode::Rst;
  api.per_source = huge;
  api.per_source_burst = deep;
  add(api);
  policy::Service dry = service("dry", kTcp, 9000);
  dry.dry_run = true;
  add(dry);
  add_sources(p);
  p.limits.push_back({"web", "lab", huge, deep});
  return p;
}

// Phase 2: the same sources, rates that shed a good part of the traffic.
policy::Policy tight_policy() {
  policy::Policy p;
  auto add = [&](policy::Service s, Rate rate, uint32_t burst) {
    s.rate = rate;
    s.burst = burst;
    p.services.push_back(s);
  };
  policy::Service web = service("web", kTcp, 80);
  web.reject = policy::RejectMode::Rst;
  add(web, Rate{20, 1}, 4);
  add(service("web-v4", kTcp, 80, kBoundV4), Rate{10, 1}, 2);
  policy::Service web6 = service("web-v6", kTcp, 80, kBoundV6);
  web6.reject = policy::RejectMode::Rst;
  web6.per_source = Rate{120, 60};
  web6.per_source_burst = 1;
  add(web6, Rate{8, 1}, 1);
  add(service("tls-v4", kTcp, 443, kBoundV4), Rate{5, 1}, 3);
  policy::Service dns = service("dns", kUdp, 53);
  dns.per_source = Rate{3, 1};
  dns.per_source_burst = 2;
  add(dns, Rate{30, 1}, 5);
  add(service("dns-tcp", kTcp, 53), Rate{}, 0);  // unlimited
  policy::Service mdns = service("mdns-v6", kUdp, 5353, kBoundV6);
  mdns.per_source = Rate{2, 1};
  mdns.per_source_burst = 1;
  add(mdns, Rate{}, 0);
  policy::Service api = service("api", kTcp, 8080);
  api.reject = policy::RejectMode::Rst;
  api.per_source = Rate{4, 1};
  api.per_source_burst = 2;
  add(api, Rate{15, 1}, 3);
  policy::Service dry = service("dry", kTcp, 9000);
  dry.dry_run = true;
  dry.reject = policy::RejectMode::Rst;
  add(dry, Rate{5, 1}, 1);
  add_sources(p);
  p.limits.push_back({"web", "lab", Rate{3, 1}, 1});
  p.limits.push_back({"web", "default", Rate{300, 60}, 2});
  p.limits.push_back({"dns", "legacy", Rate{1, 1}, 1});
  p.limits.push_back({"api", "lab-host", Rate{1000, 1}, 50});
  return p;
}

// ---- the packet generator -------------------------------------------------------

class PacketGenerator {
 public:
  PacketGenerator(uint64_t seed, const policy::Policy& p) : rng_(seed) {
    for (const auto& t : p.tenants)
      for (const auto& c : t.prefixes) prefixes_.push_back(c);
    for (const auto& c : p.deny) prefixes_.push_back(c);
    for (const auto& c : prefixes_)
      if (c.family() == 4) v4_prefixes_.push_back(c);
    for (const char* a : {"198.18.1.200", "198.18.1.201", "198.18.1.202", "198.18.1.203", "198.18.1.127",
                          "198.18.1.128", "198.18.66.127", "198.18.66.128", "0.0.0.0", "255.255.255.255", "::", "::1",
                          "2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:dead:beef::1", "2001:db8:dead:bef0::1"})
      fixed_.push_back(addr(a));
    fixed_.push_back(as_ipv6(addr("198.18.1.201")));
    dest_v4_ = {addr(kBoundV4), addr("198.18.0.11"), addr("198.18.0.2")};
    dest_v6_ = {addr(kBoundV6), addr("2001:db8::11")};
  }

  // Also send IPv6 packets to ::ffff:198.18.0.10, which is not the IPv4
  // address a service is bound to (see kHeldOut below).
  void mapped_destinations() { dest_v6_.push_back(as_ipv6(addr(kBoundV4))); }

  // Take every source address from `pool` (bounded state in the per-source map).
  void restrict_sources(std::vector<Addr> pool) { pool_ = std::move(pool); }
  // Make this share of packets well-formed units of admission (SYNs, datagrams).
  void favor_units(int percent) { unit_percent_ = percent; }

  // One frame; `shape` says how it was made.
  Bytes next(std::string& shape) {
    while (true) {
      Bytes f = make(shape);
      if (f.size() <= kMaxFrame) return f;
    }
  }

  // ---- random helpers ----
  uint64_t below(uint64_t n) { return n ? rng_() % n : 0; }
  bool percent(int p) { return below(100) < static_cast<uint64_t>(p); }
  uint8_t byte() { return static_cast<uint8_t>(rng_()); }
  uint16_t u16() { return static_cast<uint16_t>(rng_()); }
  Bytes random_bytes(size_t n) {
    Bytes b(n);
    for (auto& x : b) x = byte();
    return b;
  }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }

 private:
  Bytes make(std::string& shape) {
    if (!sweep_.empty()) {
      shape = "truncation sweep";
      Bytes f = std::move(sweep_.front());
      sweep_.pop_front();
      return f;
    }
    if (below(1000) < 2) {
      // Truncate one well-formed frame at every offset, the whole frame too
      // (about 15% of all packets).
      Bytes base = build(percent(50) ? unit() : structured(false));
      for (size_t len = 0; len <= base.size(); len++) sweep_.emplace_back(base.begin(), base.begin() + len);
      return make(shape);
    }
    if (below(100) < static_cast<uint64_t>(unit_percent_)) {
      shape = "unit of admission";
      return build(unit());
    }
    uint64_t r = below(100);
    if (r < 8) {
      shape = "random bytes";
      return random_frame();
    }
    bool malform = r < 55;
    Bytes f = build_with_lengths(malform);
    shape = malform ? "bad fields" : "well-formed";
    r = below(100);
    if (r < 25) {
      shape += "+bytes mutated";
      int n = 1 + static_cast<int>(below(4));
      for (int i = 0; i < n && !f.empty(); i++) {
        // Mostly in the headers, where a change means something.
        size_t at = below(100) < 80 ? below(std::min<size_t>(f.size(), 96)) : below(f.size());
        switch (below(4)) {
          case 0: f[at] = byte(); break;
          case 1: f[at] ^= static_cast<uint8_t>(1 << below(8)); break;
          case 2: f[at] = 0; break;
          default: f[at] = 0xff; break;
        }
      }
    } else if (r < 40) {
      shape += "+truncated";
      f.resize(below(f.size()));
    }
    if (percent(8)) {
      Bytes pad = random_bytes(1 + below(30));  // Ethernet padding after the IP packet
      f.insert(f.end(), pad.begin(), pad.end());
    }
    return f;
  }

  Bytes random_frame() {
    Bytes f = random_bytes(kEthernetHeader + below(200));
    uint64_t r = below(100);
    const uint16_t types[] = {ethertype::IPV4, ethertype::IPV6, ethertype::VLAN_8021Q, ethertype::VLAN_8021AD};
    if (r < 70) {
      uint16_t type = types[below(4)];
      f[12] = static_cast<uint8_t>(type >> 8);
      f[13] = static_cast<uint8_t>(type);
      if (f.size() > 14 && percent(60))
        f[14] = static_cast<uint8_t>((type == ethertype::IPV6 ? 0x60 : 0x40) | (f[14] & 0x0f));
    }
    return f;
  }

  Addr inside(const Cidr& c) {
    Addr a{static_cast<uint8_t>(c.family()), c.addr.bytes};
    int first = c.family() == 4 ? 96 : 0;
    int from = first + c.length;
    uint64_t mode = below(8);  // 0: lowest address, 1: highest, 2: just outside, else anywhere
    for (int bit = from; bit < 128; bit++) set_bit(a.bytes, bit, mode == 0 ? false : mode == 1 ? true : (rng_() & 1));
    if (mode == 2 && c.length > 0) {
      int edge = first + c.length - 1;
      set_bit(a.bytes, edge, !(a.bytes[edge / 8] & (0x80 >> (edge % 8))));
    }
    return a;
  }

  Addr source() {
    if (!pool_.empty()) return pick(pool_);
    switch (below(20)) {
      case 0: case 1: case 2: case 3: case 4: case 5: case 6:
        return inside(pick(prefixes_));
      case 7: case 8:
        return as_ipv6(inside(pick(v4_prefixes_)));
      case 9: case 10:
        return inside(Cidr::parse("198.18.0.0/15"));
      case 11: case 12:
        return inside(Cidr::parse("2001:db8::/32"));
      case 13:
        return inside(Cidr::parse("0.0.0.0/0"));
      case 14:
        return inside(Cidr::parse("::/0"));
      default:
        return pick(fixed_);
    }
  }

  Addr destination(uint8_t family) {
    if (percent(75)) return pick(family == 4 ? dest_v4_ : dest_v6_);
    return inside(Cidr::parse(family == 4 ? "198.18.0.0/15" : "2001:db8::/32"));
  }

  uint16_t port() {
    static const std::vector<uint16_t> ports = {80, 80, 443, 53, 5353, 8080, 9000, 22, 0, 65535};
    return percent(75) ? pick(ports) : u16();
  }

  uint8_t tcp_flags() {
    using namespace tcp_flag;
    static const std::vector<uint8_t> flags = {SYN,       SYN,       SYN | ACK, ACK,       SYN | FIN,       SYN | RST,
                                               SYN | PSH, SYN | URG, SYN | ECE | CWR,      FIN | ACK, RST, RST | ACK,
                                               0,         0xff,      SYN | ACK | FIN,      PSH | ACK};
    return percent(60) ? pick(flags) : byte();
  }

  void add_vlans(PacketSpec& s) {
    uint64_t r = below(100);
    int tags = r < 70 ? 0 : r < 82 ? 1 : r < 93 ? 2 : 3;  // three is more than the data path walks
    for (int i = 0; i < tags; i++)
      s.eth.vlans.push_back(
          VlanTag{percent(50) ? ethertype::VLAN_8021Q : ethertype::VLAN_8021AD, static_cast<uint16_t>(u16())});
  }

  void set_l3(PacketSpec& s, const Addr& src, const Addr& dst, bool malform) {
    if (src.family == 4) {
      Ipv4Spec ip;
      ip.src = src.v4();
      ip.dst = dst.v4();
      ip.id = u16();
      ip.ttl = byte();
      ip.df = percent(50);
      uint64_t r = below(100);
      if (r < 8) {
        ip.mf = true;  // a first fragment: ports readable, length unknown
      } else if (r < 16) {
        ip.frag_offset = static_cast<uint16_t>(1 + below(0x1fff));  // non-first
        ip.mf = percent(50);
      }
      if (percent(3)) ip.reserved_flag = true;
      if (percent(20)) ip.options = random_bytes(1 + below(40));
      if (malform) {
        if (percent(5)) ip.version = static_cast<uint8_t>(below(16));
        if (percent(6)) ip.ihl = static_cast<uint8_t>(below(16));
        if (percent(5)) ip.protocol = byte();
      }
      s.l3 = ip;
    } else {
      Ipv6Spec ip;
      ip.src = src.bytes;
      ip.dst = dst.bytes;
      ip.hop_limit = byte();
      ip.flow_label = static_cast<uint32_t>(rng_());
      if (percent(35)) {
        uint64_t r = below(100);
        size_t count = r < 40 ? 1 : r < 60 ? 2 : r < 75 ? 3 : r < 85 ? 4 + below(3) : 7 + below(4);
        size_t bytes = 0;
        static const std::vector<uint8_t> types = {ipproto::HOPOPTS, ipproto::ROUTING, ipproto::DSTOPTS,
                                                   ipproto::FRAGMENT, ipproto::AH};
        for (size_t i = 0; i < count; i++) {
          Ipv6ExtSpec e;
          e.type = pick(types);
          if (e.type == ipproto::FRAGMENT) {
            e.frag_offset = percent(50) ? 0 : static_cast<uint16_t>(1 + below(0x1fff));
            e.more_fragments = percent(60);
            e.identification = static_cast<uint32_t>(rng_());
          } else {
            uint64_t l = below(100);
            e.length = static_cast<uint8_t>(l < 75 ? (e.type == ipproto::AH ? 1 + below(5) : 0)
                                            : l < 95 ? 1 + below(3)
                                                     : below(256));
            if (bytes + e.size() > 2000) e.length = e.type == ipproto::AH ? 1 : 0;
            if (percent(30)) e.body = random_bytes(below(e.size() - 1));
          }
          if (malform && percent(3)) e.next_header = percent(50) ? pick(types) : byte();
          bytes += e.size();
          ip.ext.push_back(e);
        }
      }
      if (malform) {
        if (percent(3)) ip.version = static_cast<uint8_t>(below(16));
        if (percent(3)) ip.next_header = percent(50) ? ipproto::FRAGMENT : byte();
      }
      s.l3 = ip;
    }
  }

  void set_l4(PacketSpec& s, bool malform) {
    uint64_t r = below(100);
    if (r < 45) {
      TcpSpec t;
      t.sport = u16();
      t.dport = port();
      t.seq = static_cast<uint32_t>(rng_());
      t.ack = static_cast<uint32_t>(rng_());
      t.flags = tcp_flags();
      if (percent(10)) t.reserved = static_cast<uint8_t>(below(16));
      if (percent(15)) t.options = random_bytes(below(41));
      if (percent(25)) t.payload = random_bytes(1 + below(40));
      if (malform && percent(6)) t.data_offset = static_cast<uint8_t>(below(16));
      s.l4 = t;
    } else if (r < 80) {
      UdpSpec u;
      u.sport = u16();
      u.dport = port();
      u.payload = random_bytes(below(64));
      if (malform && percent(6)) u.length = percent(50) ? u16() : static_cast<uint16_t>(below(16));
      s.l4 = u;
    } else {
      static const std::vector<uint8_t> protos = {ipproto::ICMP, ipproto::ICMPV6, ipproto::GRE,      ipproto::ESP,
                                                  ipproto::NONE, 132 /* SCTP */,  ipproto::HOPOPTS,  ipproto::ROUTING,
                                                  ipproto::AH,   ipproto::DSTOPTS, ipproto::FRAGMENT};
      s.l4 = RawL4Spec{percent(80) ? pick(protos) : byte(), random_bytes(below(40))};
    }
  }

  PacketSpec structured(bool malform) {
    PacketSpec s;
    add_vlans(s);
    if (percent(3)) {
      static const std::vector<uint16_t> types = {ethertype::ARP, 0x88cc /* LLDP */, 0x8847 /* MPLS */, 0x0842};
      s.l3 = RawL3Spec{percent(75) ? pick(types) : u16(), random_bytes(below(64))};
      return s;
    }
    Addr src = source();
    set_l3(s, src, destination(src.family), malform);
    set_l4(s, malform);
    if (malform && percent(3)) {
      static const std::vector<uint16_t> types = {ethertype::IPV4, ethertype::IPV6, ethertype::VLAN_8021Q, ethertype::ARP};
      s.eth.ethertype = pick(types);
    }
    return s;
  }

  // Lengths that disagree with the packet: chosen relative to the right value.
  uint16_t wrong_length(uint16_t right) {
    switch (below(7)) {
      case 0: return 0;
      case 1: return static_cast<uint16_t>(right - 1);
      case 2: return static_cast<uint16_t>(right + 1);
      case 3: return static_cast<uint16_t>(right - below(right + 1));
      case 4: return static_cast<uint16_t>(right + below(64));
      case 5: return 0xffff;
      default: return u16();
    }
  }

  Bytes build_with_lengths(bool malform) {
    PacketSpec s = structured(malform);
    if (!malform) return build(s);
    Bytes f = build(s);
    size_t l3 = kEthernetHeader + 4 * s.eth.vlans.size();
    if (auto* ip = std::get_if<Ipv4Spec>(&s.l3); ip && percent(15) && f.size() >= l3 + 4) {
      ip->total_length = wrong_length(static_cast<uint16_t>(f[l3 + 2] << 8 | f[l3 + 3]));
      f = build(s);
    } else if (auto* ip6 = std::get_if<Ipv6Spec>(&s.l3); ip6 && percent(15) && f.size() >= l3 + 6) {
      ip6->payload_length = wrong_length(static_cast<uint16_t>(f[l3 + 4] << 8 | f[l3 + 5]));
      f = build(s);
    }
    return f;
  }

  // A well-formed SYN or datagram, mostly to a service.
  PacketSpec unit() {
    PacketSpec s;
    uint64_t r = below(100);
    int tags = r < 75 ? 0 : r < 90 ? 1 : 2;
    for (int i = 0; i < tags; i++) s.eth.vlans.push_back(VlanTag{ethertype::VLAN_8021Q, static_cast<uint16_t>(1 + i)});
    Addr src = source();
    Addr dst = destination(src.family);
    if (src.family == 4) {
      Ipv4Spec ip;
      ip.src = src.v4();
      ip.dst = dst.v4();
      ip.df = true;
      if (percent(4)) ip.mf = true;  // a first fragment: refused, it is dropped, never answered
      if (percent(10)) ip.options = random_bytes(4 * (1 + below(10)));
      s.l3 = ip;
    } else {
      Ipv6Spec ip;
      ip.src = src.bytes;
      ip.dst = dst.bytes;
      if (percent(10)) ip.ext.push_back(Ipv6ExtSpec::hop_by_hop(static_cast<uint8_t>(below(3))));
      if (percent(4)) ip.ext.push_back(Ipv6ExtSpec::fragment(0, true, static_cast<uint32_t>(rng_())));
      s.l3 = ip;
    }
    static const std::vector<uint16_t> tcp_ports = {80, 80, 80, 443, 53, 8080, 8080, 9000};
    static const std::vector<uint16_t> udp_ports = {53, 53, 5353};
    if (percent(65)) {
      TcpSpec t;
      t.sport = u16();
      t.dport = pick(tcp_ports);
      t.seq = static_cast<uint32_t>(rng_());
      t.flags = percent(85) ? tcp_flag::SYN : percent(50) ? tcp_flag::SYN | tcp_flag::ECE | tcp_flag::CWR : tcp_flags();
      if (percent(50)) t.options = {2, 4, 0x05, 0xb4, 4, 2, 1, 1};  // MSS 1460, SACK permitted
      if (percent(5)) t.payload = random_bytes(1 + below(30));  // TCP Fast Open data
      s.l4 = t;
    } else {
      UdpSpec u;
      u.sport = u16();
      u.dport = pick(udp_ports);
      u.payload = random_bytes(below(48));
      s.l4 = u;
    }
    return s;
  }

  std::mt19937_64 rng_;
  std::vector<Cidr> prefixes_, v4_prefixes_;
  std::vector<Addr> fixed_, dest_v4_, dest_v6_, pool_;
  std::deque<Bytes> sweep_;
  int unit_percent_ = 0;
};

// ---- running packets through kernel and reference ---------------------------------

// What every counter of the data path must read after a run.
struct Expected {
  sl_global_counters global{};
  std::map<std::pair<uint32_t, uint32_t>, sl_counters> pairs;
  std::map<uint32_t, sl_service_counters> would_shed;
  std::map<uint32_t, sl_deny_counters> deny;
};

struct Tally {
  uint64_t compared = 0;
  uint64_t refused = 0;     // shorter than an Ethernet header: BPF_PROG_TEST_RUN takes none
  uint64_t unparsable = 0;  // the reference could not parse them; none was charged
  uint64_t rst_checked = 0;
  uint64_t dry_run_shed = 0;  // refused by a dry-run service, and passed
  std::map<std::string, uint64_t> fates;
  std::map<std::string, uint64_t> shapes;
  std::map<std::string, uint64_t> actions;
  std::set<uint32_t> tenants, services, deny;
};

std::string describe(const Bytes& frame, const Classification& c) {
  return "reference parser: " + to_string(c) + "\nframe (" + std::to_string(frame.size()) + " bytes): " + hex(frame);
}

const char* action_name(uint32_t a) {
  switch (a) {
    case XDP_PASS: return "pass";
    case XDP_DROP: return "drop";
    case XDP_TX: return "tx (RST)";
  }
  return "other";
}

class Comparator {
 public:
  Comparator(XdpTester& t, ReferencePolicy& ref, const policy::Policy& p) : t_(t), ref_(ref) {
    auto ids = t.running().ids;
    for (const auto& s : p.services)
      if (s.dry_run) dry_run_.insert(ids.services.at(s.name));
  }

  // Runs one frame through both; returns what differs, or nothing.
  std::string step(const Bytes& frame, uint64_t now, const std::string& shape) {
    Classification c = classify(frame);
    ReferenceDecision want = ref_.judge(frame, c, now);
    XdpResult r;
    try {
      r = t_.run(frame);
    } catch (const SystemError& e) {
      if (frame.size() < kEthernetHeader) {
        tally_.refused++;
        return {};
      }
      return std::string("BPF_PROG_TEST_RUN failed: ") + e.what() + "\n" + describe(frame, c);
    }
    ReferenceDecision got = from_trace(t_.last_decision());
    std::string why;
    if (got.action != static_cast<uint32_t>(r.action))
      why += "the trace says action " + std::to_string(got.action) + " but the program returned " +
             std::to_string(r.action) + "\n";
    // Asserted on its own: whatever else differs, a packet the reference
    // cannot parse must never reach a tenant's accounts.
    if (c.result != ParseResult::Ok) {
      tally_.unparsable++;
      if (got.reached_service() || got.service_id || got.tenant_id || got.reason)
        why += std::string("UNPARSABLE PACKET CHARGED: the reference says ") + to_string(c.result) +
               ", the kernel charged it to service " + std::to_string(got.service_id) + " tenant " +
               std::to_string(got.tenant_id) + "\n";
    }
    if (!(got == want)) why += "kernel:    " + to_string(got) + "\nreference: " + to_string(want) + "\n";
    if (got.action == XDP_TX && why.empty()) why += check_rst(frame, c, r.packet);
    if (!why.empty()) return "packet " + std::to_string(tally_.compared) + " (" + shape + ")\n" + why + describe(frame, c);

    tally_.compared++;
    tally_.fates[fate_name(want)]++;
    tally_.shapes[shape]++;
    tally_.actions[action_name(want.action)]++;
    account(want, frame.size());
    return {};
  }

  // Every counter of the data path against the reference's tally.
  std::string check_counters() const {
    std::ostringstream out;
    kernel::CounterSnapshot snap = t_.counters();
    // The counters this reference decides (not the controller's CONTROL_STALE).
    for (int g : {SL_G_PACKETS, SL_G_NOT_IP, SL_G_TRUNCATED, SL_G_MALFORMED, SL_G_HEADER_LIMIT, SL_G_FRAGMENT,
                  SL_G_OTHER_L4, SL_G_NOT_SERVICE, SL_G_NO_POLICY, SL_G_DENIED, SL_G_RST_SENT, SL_G_RST_FAILED,
                  SL_G_OUT_OF_RANGE})
      if (snap.global.c[g] != expected_.global.c[g])
        out << "global counter " << kernel::global_counter_name(g) << ": kernel " << snap.global.c[g]
            << ", reference " << expected_.global.c[g] << "\n";
    std::map<std::pair<uint32_t, uint32_t>, sl_counters> kernel_pairs;
    for (const auto& pc : snap.pairs) kernel_pairs[{pc.service_id, pc.tenant_id}] = pc.counters;
    std::set<std::pair<uint32_t, uint32_t>> keys;
    for (const auto& [k, _] : kernel_pairs) keys.insert(k);
    for (const auto& [k, _] : expected_.pairs) keys.insert(k);
    for (const auto& k : keys) {
      sl_counters a = kernel_pairs.count(k) ? kernel_pairs.at(k) : sl_counters{};
      sl_counters b = expected_.pairs.count(k) ? expected_.pairs.at(k) : sl_counters{};
      for (int r = 0; r < SL_R__COUNT; r++)
        if (a.verdict[r] != b.verdict[r])
          out << "pair (service " << k.first << ", tenant " << k.second << ") " << kernel::reason_name(r) << ": kernel "
              << a.verdict[r] << ", reference " << b.verdict[r] << "\n";
    }
    std::set<uint32_t> services;
    for (const auto& [id, _] : snap.services) services.insert(id);
    for (const auto& [id, _] : expected_.would_shed) services.insert(id);
    for (uint32_t id : services) {
      sl_service_counters a = snap.services.count(id) ? snap.services.at(id) : sl_service_counters{};
      sl_service_counters b = expected_.would_shed.count(id) ? expected_.would_shed.at(id) : sl_service_counters{};
      for (int r = 0; r < SL_R__COUNT; r++)
        if (a.would_shed[r] != b.would_shed[r])
          out << "service " << id << " would_shed " << kernel::reason_name(r) << ": kernel " << a.would_shed[r]
              << ", reference " << b.would_shed[r] << "\n";
    }
    std::set<uint32_t> rules;
    for (const auto& [id, _] : snap.deny) rules.insert(id);
    for (const auto& [id, _] : expected_.deny) rules.insert(id);
    for (uint32_t id : rules) {
      sl_deny_counters a = snap.deny.count(id) ? snap.deny.at(id) : sl_deny_counters{};
      sl_deny_counters b = expected_.deny.count(id) ? expected_.deny.at(id) : sl_deny_counters{};
      if (a.packets != b.packets || a.bytes != b.bytes)
        out << "deny rule " << id << ": kernel " << a.packets << " packets " << a.bytes << " bytes, reference "
            << b.packets << " packets " << b.bytes << " bytes\n";
    }
    return out.str();
  }

  const Tally& tally() const { return tally_; }

 private:
  // A refused SYN answered in place: a RST+ACK back to the client, with
  // correct checksums, acknowledging the SYN and its data.
  std::string check_rst(const Bytes& frame, const Classification& c, const Bytes& reply) {
    DecodedPacket d = decode(reply);
    std::string bad;
    if (!d.ok() || !d.tcp) return "the RST reply does not decode: " + d.error + "\nreply: " + hex(reply) + "\n";
    if (d.tcp->flags != (tcp_flag::RST | tcp_flag::ACK)) bad += "flags are not RST+ACK; ";
    if (d.tcp->sport != c.dport || d.tcp->dport != c.sport) bad += "ports not swapped; ";
    if (d.tcp->ack != c.tcp_seq + 1 + c.tcp_payload) bad += "wrong acknowledgment number; ";
    ChecksumReport sums = d.verify_checksums();
    if (!sums.ok()) bad += "checksums: " + sums.describe() + "; ";
    std::array<uint8_t, 16> src{}, dst{};
    if (d.ipv4) {
      src = ipv4_mapped(d.ipv4->src);
      dst = ipv4_mapped(d.ipv4->dst);
    } else if (d.ipv6) {
      src = d.ipv6->src;
      dst = d.ipv6->dst;
    }
    if (src != c.daddr || dst != c.saddr) bad += "addresses not swapped; ";
    if (!std::equal(reply.begin(), reply.begin() + 6, frame.begin() + 6) ||
        !std::equal(reply.begin() + 6, reply.begin() + 12, frame.begin()))
      bad += "MAC addresses not swapped; ";
    if (!bad.empty()) return "bad RST reply: " + bad + "\nreply: " + hex(reply) + "\n";
    tally_.rst_checked++;
    return {};
  }

  void account(const ReferenceDecision& d, size_t bytes) {
    expected_.global.c[SL_G_PACKETS]++;
    if (!d.reached_service()) {
      expected_.global.c[d.global]++;
      if (d.global == SL_G_DENIED) {
        expected_.deny[d.deny_id].packets++;
        expected_.deny[d.deny_id].bytes += bytes;
        tally_.deny.insert(d.deny_id);
      }
      return;
    }
    tally_.services.insert(d.service_id);
    tally_.tenants.insert(d.tenant_id);
    sl_counters& pc = expected_.pairs[{d.service_id, d.tenant_id}];
    if (d.reason == SL_R_ADMITTED || d.reason == SL_R_PASSED) {
      pc.verdict[d.reason]++;
    } else if (dry_run_.count(d.service_id)) {
      pc.verdict[SL_R_ADMITTED]++;
      expected_.would_shed[d.service_id].would_shed[d.reason]++;
      tally_.dry_run_shed++;
    } else {
      pc.verdict[d.reason]++;
      if (d.action == XDP_TX) expected_.global.c[SL_G_RST_SENT]++;
    }
  }

  XdpTester& t_;
  ReferencePolicy& ref_;
  std::set<uint32_t> dry_run_;
  Tally tally_;
  Expected expected_;
};

void print_tally(const std::string& title, const Tally& t, double seconds, const policy::IdAssignment& ids) {
  std::ostringstream out;
  out << "[fuzz] " << title << ": " << t.compared << " packets compared in " << std::fixed;
  out.precision(1);
  out << seconds << " s (" << static_cast<uint64_t>(t.compared / std::max(seconds, 1e-9)) << "/s)\n";
  out << "[fuzz]   fate                      packets\n";
  for (const auto& [fate, n] : t.fates) {
    std::string name = fate;
    name.resize(std::max<size_t>(name.size(), 24), ' ');
    out << "[fuzz]   " << name << "  " << n << "\n";
  }
  out << "[fuzz]   verdicts:";
  for (const auto& [a, n] : t.actions) out << " " << a << " " << n << ";";
  out << "\n[fuzz]   made as:";
  for (const auto& [s, n] : t.shapes) out << " " << s << " " << n << ";";
  out << "\n[fuzz]   unparsable by the reference and never charged: " << t.unparsable
      << "; shorter than Ethernet, refused by BPF_PROG_TEST_RUN: " << t.refused
      << "; RST replies checked byte by byte: " << t.rst_checked << "; shed in dry run (passed): " << t.dry_run_shed
      << "\n";
  out << "[fuzz]   tenants charged: " << t.tenants.size() << ", services reached: " << t.services.size()
      << ", deny rules that dropped: " << t.deny.size() << "\n";
  out << "[fuzz]   ids:";
  for (const auto& [name, id] : ids.services) out << " " << name << "=" << id;
  out << ";";
  for (const auto& [name, id] : ids.tenants) out << " " << name << "=" << id;
  out << ";";
  for (const auto& [cidr, id] : ids.deny) out << " " << cidr.to_string() << "=" << id;
  out << "\n";
  std::cout << out.str() << std::flush;
}

// IPv6 headers carrying IPv4-mapped addresses (::ffff:a.b.c.d). The data
// path once keyed services bound to an address, and per-source buckets, by
// the 16-byte IPv4-mapped form without the family, so an IPv6 packet to
// ::ffff:198.18.0.10 was charged to the service bound to IPv4 198.18.0.10,
// and an IPv6 client ::ffff:198.18.1.5 could empty the IPv4 client
// 198.18.1.5's bucket (docs/fuzzing.md, "Bugs found"). Both keys carry the
// family now; these packets are in every run (SLUICE_FUZZ_MAPPED=0 leaves
// them out).
constexpr const char* kHeldOut = "SLUICE_FUZZ_MAPPED";

struct Campaign {
  policy::Policy policy;
  uint64_t seed = 1;
  uint64_t packets = 0;
  bool tight = false;  // phase 2: the clock moves by small steps between packets
  Fault fault = Fault::None;
  uint64_t max_mismatches = 1;  // stop after this many disagreements
  bool mapped = false;          // the held-out packets too
};

struct Outcome {
  std::string mismatch;  // the packets kernel and reference disagreed on (up to max_mismatches)
  uint64_t mismatches = 0;
  std::string counters;  // counter disagreements at the end
  Tally tally;
  double seconds = 0;
  policy::IdAssignment ids;
};

Outcome run(const Campaign& c) {
  Outcome o;
  XdpTester t(c.policy, /*fake_clock=*/true, /*trace=*/true);
  o.ids = t.running().ids;
  ReferencePolicy ref(c.policy, o.ids, c.fault);
  Comparator cmp(t, ref, c.policy);
  PacketGenerator gen(c.seed, c.policy);
  if (c.tight) {
    // A bounded set of clients (the per-source map stays far from its LRU
    // limit), among them an IPv4 client and its ::ffff: twin over IPv6.
    std::vector<Addr> pool;
    for (const char* a : {"198.18.1.5", "198.18.1.130", "198.18.1.201", "198.18.1.203", "198.18.7.7", "198.19.7.17",
                          "198.19.1.1", "203.0.113.9", "198.18.66.200", "192.0.2.1", "192.0.2.2", "2001:db8::77",
                          "2001:db8:1::9", "2001:db8:1:2::1", "2001:db8:1:2::99", "2001:db8:dead:beef::1", "::1",
                          "2001:db9::1"})
      pool.push_back(addr(a));
    if (c.mapped) {
      pool.push_back(as_ipv6(addr("198.18.1.5")));
      pool.push_back(as_ipv6(addr("198.18.7.7")));
    }
    gen.restrict_sources(pool);
    gen.favor_units(55);
  } else {
    gen.favor_units(15);
  }
  if (c.mapped) gen.mapped_destinations();
  uint64_t now = kT0;
  t.set_now(now);
  auto start = std::chrono::steady_clock::now();
  std::string shape;
  for (uint64_t i = 0; i < c.packets; i++) {
    if (c.tight) {
      switch (gen.below(10)) {
        case 0: case 1: case 2: case 3: break;  // same instant
        case 4: case 5: case 6: case 7: now += gen.below(kMillisecond); break;
        case 8: now += gen.below(5) * kMillisecond; break;  // whole milliseconds: buckets exactly full or empty
        default: now += gen.below(60 * kMillisecond); break;
      }
      t.set_now(now);
    } else if (i % 4096 == 4095) {
      now += kMillisecond;
      t.set_now(now);
    }
    Bytes frame = gen.next(shape);
    std::string why = cmp.step(frame, now, shape);
    if (!why.empty()) {
      o.mismatch += why + "\n";
      if (++o.mismatches >= c.max_mismatches) break;
    }
  }
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.mismatches == 0) o.counters = cmp.check_counters();
  o.tally = cmp.tally();
  return o;
}

// Every id of the policy, plus the default tenant 0.
std::set<uint32_t> all_tenants(const policy::IdAssignment& ids) {
  std::set<uint32_t> out{0};
  for (const auto& [_, id] : ids.tenants) out.insert(id);
  return out;
}
template <typename Map>
std::set<uint32_t> values(const Map& m) {
  std::set<uint32_t> out;
  for (const auto& [_, id] : m) out.insert(id);
  return out;
}

uint64_t fate(const Tally& t, const std::string& name) { return t.fates.count(name) ? t.fates.at(name) : 0; }

}  // namespace

TEST(FuzzPackets, KernelAgreesWithReferenceOnEveryPacket) {
  const uint64_t total = env_number("SLUICE_FUZZ_PACKETS", 1'000'000);
  const uint64_t seed = env_number("SLUICE_FUZZ_SEED", 1);
  const uint64_t tight_packets = total / 10;
  // To survey every disagreement rather than stop at the first.
  const uint64_t max_mismatches = std::max<uint64_t>(1, env_number("SLUICE_FUZZ_MAX_MISMATCHES", 1));
  const bool mapped = env_number(kHeldOut, 1) != 0;
  // Coverage is asserted on runs big enough to reach every path.
  const bool full = total >= 100'000;

  // ---- phase 1: classification (nothing is shed) ----
  Campaign open{open_policy(), seed, total - tight_packets, false, Fault::None, max_mismatches, mapped};
  Outcome one = run(open);
  print_tally("phase 1, open rates, seed " + std::to_string(seed), one.tally, one.seconds, one.ids);
  EXPECT_EQ(one.mismatches, 0u) << "kernel and reference disagree (SLUICE_FUZZ_SEED=" << seed << "):\n" << one.mismatch;
  EXPECT_EQ(one.counters, "") << "counters disagree with the reference's tally";
  if (one.mismatches == 0) {
    EXPECT_EQ(one.tally.compared + one.tally.refused, open.packets);
  }
  for (const auto& [name, n] : one.tally.fates)
    EXPECT_TRUE(name == "service/admitted" || name == "service/passed" || name.find("service/") != 0)
        << n << " packets were shed at rates that should shed nothing: " << name;
  if (full) {
    for (const char* f : {"not_ip", "truncated", "malformed", "header_limit", "fragment", "other_l4", "not_service",
                          "denied", "service/admitted", "service/passed"})
      EXPECT_GT(fate(one.tally, f), 0u) << "no packet met the fate " << f;
    EXPECT_GT(one.tally.refused, 0u) << "no truncation below an Ethernet header";
    EXPECT_EQ(one.tally.tenants, all_tenants(one.ids)) << "some tenant was never charged";
    EXPECT_EQ(one.tally.services, values(one.ids.services)) << "some service was never reached";
    EXPECT_EQ(one.tally.deny, values(one.ids.deny)) << "some deny rule never dropped anything";
  }

  // ---- phase 2: verdicts under tight rates, against the bucket models ----
  Campaign tight{tight_policy(), seed + 1, tight_packets, true, Fault::None, max_mismatches, mapped};
  Outcome two = run(tight);
  print_tally("phase 2, tight rates, seed " + std::to_string(seed + 1), two.tally, two.seconds, two.ids);
  EXPECT_EQ(two.mismatches, 0u) << "kernel and reference disagree (SLUICE_FUZZ_SEED=" << seed << "):\n" << two.mismatch;
  EXPECT_EQ(two.counters, "") << "counters disagree with the reference's tally";
  if (full) {
    for (const char* f : {"service/admitted", "service/passed", "service/tenant_limit", "service/source_limit",
                          "denied", "fragment"})
      EXPECT_GT(fate(two.tally, f), 0u) << "no packet met the fate " << f;
    EXPECT_GT(two.tally.rst_checked, 0u) << "no refused SYN was answered with a RST";
    EXPECT_GT(two.tally.dry_run_shed, 0u) << "no dry-run service would have shed anything";
    EXPECT_GT(two.tally.actions.count("drop") ? two.tally.actions.at("drop") : 0, 0u);
  }
  std::ostringstream summary;
  summary.precision(1);
  summary << std::fixed << "[fuzz] total: " << one.tally.compared + two.tally.compared << " packets compared in "
          << one.seconds + two.seconds << " s\n";
  std::cout << summary.str();
}

// The comparison above is only worth something if it notices a wrong rule:
// each deliberately wrong variant of the reference must be caught.
TEST(FuzzPackets, ComparisonCatchesAWrongReference) {
  const std::vector<std::pair<Fault, const char*>> faults = {
      {Fault::SynFinIsNewConnection, "SYN+FIN counted as a new connection"},
      {Fault::ShortestTenantWins, "shortest tenant prefix wins"},
      {Fault::AnyAddressServiceWins, "any-address service beats the bound one"},
      {Fault::FragmentBeforeDeny, "fragments pass before deny rules"},
      {Fault::PerSourceIgnored, "per-source buckets ignored"},
  };
  for (const auto& [fault, what] : faults) {
    bool tight = fault == Fault::PerSourceIgnored;
    Campaign c{tight ? tight_policy() : open_policy(), 7, 200'000, tight, fault};
    Outcome o = run(c);
    EXPECT_NE(o.mismatch, "") << "a reference with the fault '" << what << "' agreed with the kernel on "
                              << o.tally.compared << " packets";
    std::cout << "[fuzz] wrong reference '" << what << "' caught after " << o.tally.compared + 1 << " packets\n";
  }
}
