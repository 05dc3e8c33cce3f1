// Policy model: addresses and prefixes, rates, validation, the policy file.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <fstream>
#include <map>
#include <random>

#include "core/error.hpp"
#include "policy/compile.hpp"
#include "policy/policy_file.hpp"

using namespace sluice;
using namespace sluice::policy;

namespace {

// The message of the UsageError `f` throws, or "" if it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

Service web() {
  Service s;
  s.name = "web";
  s.port = 80;
  s.rate = Rate{100, 1};
  s.burst = 10;
  return s;
}

}  // namespace

// ---- addresses -------------------------------------------------------------

TEST(Cidr, ParsesBothFamiliesAndHostPrefixes) {
  Cidr v4 = Cidr::parse("198.18.1.0/24");
  EXPECT_EQ(v4.family(), 4);
  EXPECT_EQ(v4.length, 24);
  EXPECT_EQ(v4.mapped_length(), 120);
  EXPECT_EQ(v4.to_string(), "198.18.1.0/24");

  Cidr v6 = Cidr::parse("2001:db8::/32");
  EXPECT_EQ(v6.family(), 6);
  EXPECT_EQ(v6.to_string(), "2001:db8::/32");

  EXPECT_EQ(Cidr::parse("198.18.0.7").to_string(), "198.18.0.7/32");
  EXPECT_EQ(Cidr::parse("2001:db8::7").to_string(), "2001:db8::7/128");
  EXPECT_EQ(Cidr::parse("0.0.0.0/0").length, 0);
}

TEST(Cidr, RefusesBadInputWithSpecificReasons) {
  EXPECT_NE(error_of([] { Cidr::parse("198.18.1.5/24"); }).find("did you mean 198.18.1.0/24"), std::string::npos);
  EXPECT_NE(error_of([] { Cidr::parse("198.18.1.0/33"); }).find("from 0 to 32"), std::string::npos);
  EXPECT_NE(error_of([] { Cidr::parse("2001:db8::/129"); }).find("from 0 to 128"), std::string::npos);
  EXPECT_NE(error_of([] { Cidr::parse("198.18.1.0/"); }).find("prefix length"), std::string::npos);
  EXPECT_NE(error_of([] { Cidr::parse("198.18.1.0/2x"); }).find("prefix length"), std::string::npos);
  EXPECT_NE(error_of([] { Cidr::parse("web.example"); }).find("not an IPv4 or IPv6 prefix"), std::string::npos);
  EXPECT_NE(error_of([] { Cidr::parse("256.1.1.1/32"); }).find("not an IPv4 or IPv6 prefix"), std::string::npos);
}

TEST(Cidr, ContainmentRespectsFamilies) {
  Cidr net = Cidr::parse("198.18.0.0/15");
  EXPECT_TRUE(net.contains(*IpAddr::parse("198.19.255.255")));
  EXPECT_FALSE(net.contains(*IpAddr::parse("198.20.0.0")));
  EXPECT_TRUE(net.contains(Cidr::parse("198.18.4.0/24")));
  EXPECT_FALSE(Cidr::parse("198.18.4.0/24").contains(net));
  // ::/0 does not swallow IPv4 even though IPv4 is stored IPv4-mapped.
  EXPECT_FALSE(Cidr::parse("::/0").contains(*IpAddr::parse("198.18.0.1")));
  EXPECT_FALSE(Cidr::parse("0.0.0.0/0").contains(*IpAddr::parse("2001:db8::1")));
  EXPECT_EQ(Cidr::parse("198.18.77.9").widened(16).to_string(), "198.18.0.0/16");
}

// ---- rates -----------------------------------------------------------------

TEST(Rate, ParsesPeriodsAndComputesTheGcraForm) {
  EXPECT_EQ(parse_rate("100/s", "--rate"), (Rate{100, 1}));
  EXPECT_EQ(parse_rate("100", "--rate"), (Rate{100, 1}));
  EXPECT_EQ(parse_rate("7/m", "--rate"), (Rate{7, 60}));
  EXPECT_EQ(parse_rate("3600/h", "--rate"), (Rate{3600, 3600}));
  sl_rate k = to_kernel(Rate{10, 1}, 5);
  EXPECT_EQ(k.interval_ns, 100'000'000u);
  EXPECT_EQ(k.tolerance_ns, 500'000'000u);
  EXPECT_EQ(to_kernel(Rate{7, 60}, 1).interval_ns, 8'571'428'571u);  // nearest nanosecond
  EXPECT_EQ(default_burst(Rate{7, 60}), 1u);
  EXPECT_EQ(default_burst(Rate{250, 1}), 250u);
  EXPECT_EQ(to_kernel(Rate{}, 0).interval_ns, 0u);  // unset: unlimited
}

TEST(Rate, RefusesWhatItCannotExpress) {
  EXPECT_NE(error_of([] { parse_rate("2.5/s", "--rate"); }).find("150/m"), std::string::npos);
  EXPECT_NE(error_of([] { parse_rate("0/s", "--rate"); }).find("at least 1"), std::string::npos);
  EXPECT_NE(error_of([] { parse_rate("10/d", "--rate"); }).find("unknown period"), std::string::npos);
  EXPECT_NE(error_of([] { parse_rate("fast", "--rate"); }).find("100/s"), std::string::npos);
  EXPECT_NE(error_of([] { parse_rate("2000000000/s", "--rate"); }).find("at most"), std::string::npos);
}

// ---- validation ------------------------------------------------------------

TEST(Validate, AcceptsAFullPolicy) {
  Policy p;
  p.services.push_back(web());
  p.tenants.push_back(Tenant{"gold", {Cidr::parse("198.18.1.0/24")}, 0});
  p.limits.push_back(Limit{"web", "gold", Rate{500, 1}, 50});
  p.limits.push_back(Limit{"web", "default", Rate{5, 1}, 5});
  p.deny.push_back(Cidr::parse("198.18.66.0/24"));
  EXPECT_NO_THROW(validate(p));
}

TEST(Validate, NamesTheItemAndFieldOfEachProblem) {
  auto check = [](auto mutate, const std::string& expected) {
    Policy p;
    p.services.push_back(web());
    p.tenants.push_back(Tenant{"gold", {Cidr::parse("198.18.1.0/24")}, 0});
    mutate(p);
    std::string msg = error_of([&] { validate(p); });
    EXPECT_NE(msg.find(expected), std::string::npos) << "got: " << msg;
  };
  check([](Policy& p) { p.services.push_back(web()); }, "service 'web': defined twice");
  check([](Policy& p) { p.services[0].name = "Web!"; }, "names are 1-31 characters");
  check([](Policy& p) { p.services[0].burst = 0; }, "service 'web': burst 0 is out of range");
  check([](Policy& p) { p.services[0].port = 0; }, "port must be from 1 to 65535");
  check([](Policy& p) {
    Service s = web();
    s.name = "other";
    p.services.push_back(s);
  }, "tcp port 80 is already service 'web'");
  check([](Policy& p) {
    p.services[0].proto = Proto::Udp;
    p.services[0].reject = RejectMode::Rst;
  }, "reject 'rst' needs a TCP service");
  check([](Policy& p) { p.tenants.push_back(Tenant{"silver", {Cidr::parse("198.18.1.0/24")}, 1}); },
        "198.18.1.0/24 already belongs to tenant 'gold'");
  check([](Policy& p) { p.tenants.push_back(Tenant{"empty", {}, 1}); }, "needs at least one prefix");
  check([](Policy& p) { p.tenants.push_back(Tenant{"default", {Cidr::parse("198.18.9.0/24")}, 1}); },
        "it takes no prefixes");
  check([](Policy& p) { p.tenants[0].level = 3; }, "level 3 is out of range");
  check([](Policy& p) { p.limits.push_back(Limit{"web", "nobody", Rate{1, 1}, 1}); }, "no tenant named 'nobody'");
  check([](Policy& p) { p.limits.push_back(Limit{"nothing", "gold", Rate{1, 1}, 1}); }, "no service named 'nothing'");
  check([](Policy& p) { p.limits.push_back(Limit{"wbe", "gold", Rate{1, 1}, 1}); },
        "no service named 'wbe'; did you mean 'web'?");
  check([](Policy& p) { p.limits.push_back(Limit{"web", "glod", Rate{1, 1}, 1}); },
        "no tenant named 'glod'; did you mean 'gold'?");
  check([](Policy& p) { p.limits.push_back(Limit{"web", "defualt", Rate{1, 1}, 1}); },
        "no tenant named 'defualt'; did you mean 'default'?");
  check([](Policy& p) {
    p.deny.push_back(Cidr::parse("198.18.9.0/24"));
    p.deny.push_back(Cidr::parse("198.18.9.0/24"));
  }, "listed twice");
  check([](Policy& p) {
    p.services[0].rate = Rate{1, 3600};
    p.services[0].burst = 1'000'000'000;
  }, "spans more time than sluice can count");
  check([](Policy& p) { p.services[0].tuning.window_buckets = 7; }, "whole milliseconds");
}

// ---- the policy file ---------------------------------------------------------

TEST(PolicyFile, RoundTripsThroughToml) {
  Policy p;
  Service s = web();
  s.addr = IpAddr::parse("198.18.0.2");
  s.per_source = Rate{10, 60};
  s.per_source_burst = 3;
  s.reject = RejectMode::Rst;
  s.dry_run = true;
  s.http = true;
  s.tuning.adaptive = Adaptive::Bbr;
  s.tuning.breaker = BreakerKind::Sre;
  s.tuning.timeout_ms = 250;
  s.tuning.sre_k = 1.5;
  s.tuning.cgroup = "system.slice/web.service";
  p.services.push_back(s);
  Service dns;
  dns.name = "dns";
  dns.proto = Proto::Udp;
  dns.port = 53;
  p.services.push_back(dns);
  p.tenants.push_back(Tenant{"gold", {Cidr::parse("2001:db8:1::/48"), Cidr::parse("198.18.1.0/24")}, 0});
  p.tenants.push_back(Tenant{"default", {}, 2});
  p.limits.push_back(Limit{"web", "gold", Rate{500, 1}, 50});
  p.deny.push_back(Cidr::parse("198.18.66.0/24"));
  p.maps.source_entries = 4096;
  normalize(p);

  Policy back = parse_policy(to_toml(p), "roundtrip.toml");
  EXPECT_EQ(back, p);
  EXPECT_EQ(to_toml(back), to_toml(p));
}

TEST(PolicyFile, ErrorsNameFileLineAndField) {
  auto err = [](const std::string& text) { return error_of([&] { parse_policy(text, "p.toml"); }); };
  EXPECT_EQ(err("[[service]]\nname = \"web\"\nport = 80\nburst = 0\nrate = \"10/s\"\n"),
            "p.toml:4: service 'web': burst 0 is out of range (1..1000000000)");
  EXPECT_EQ(err("[[service]]\nname = \"web\"\nport = 80\nrate = \"2.5/s\"\n"),
            "p.toml:4: service 'web': rate '2.5/s': rates are whole numbers per period; write e.g. 150/m instead "
            "of 2.5/s");
  EXPECT_EQ(err("[[service]]\nname = \"web\"\nport = 80\nbrust = 3\n"), "p.toml:4: service 'web': unknown field 'brust'; did you mean 'burst'?");
  EXPECT_EQ(err("[[service]]\nname = \"web\"\nport = \"80\"\n"), "p.toml:3: service 'web': port must be an integer");
  EXPECT_EQ(err("[[service]]\nname = \"web\"\n"), "p.toml:2: service 'web': missing port");
  EXPECT_EQ(err("[[tenant]]\nname = \"a\"\nprefixes = [\"198.18.1.1/24\"]\n"),
            "p.toml:3: tenant 'a': prefixes: '198.18.1.1/24' has host bits set; did you mean 198.18.1.0/24?");
  EXPECT_EQ(err("deny = [\"198.18.0.0/16\", \"198.18.0.0/16\"]\n"), "p.toml:1: deny '198.18.0.0/16': listed twice");
  EXPECT_EQ(err("[[limit]]\nservice = \"web\"\ntenant = \"gold\"\nrate = \"5/s\"\n"),
            "p.toml:2: limit 'web/gold': no service named 'web'");
  EXPECT_EQ(err("[[service]]\nname = \"a\"\nport = 1\n[[service]]\nname = \"b\"\nport = 1\n"),
            "p.toml:6: service 'b': tcp port 1 is already service 'a'");
  std::string syntax = err("[[service]\nname = 1\n");
  EXPECT_EQ(syntax.rfind("p.toml:1: ", 0), 0u) << syntax;
  EXPECT_EQ(err("color = \"blue\"\n"), "p.toml:1: policy: unknown field 'color'");
}

TEST(PolicyFile, SaveIsAtomicAndPrivate) {
  std::string dir = ::testing::TempDir() + "sluice-policy-" + std::to_string(getpid());
  std::string path = dir + "/nested/policy.toml";
  Policy p;
  p.services.push_back(web());
  save_policy_file(path, p);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(load_policy_file(path), p);
  // No temporary file is left next to it.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/nested")) entries += e.is_regular_file();
  EXPECT_EQ(entries, 1);
  std::filesystem::remove_all(dir);
}

// ---- compile: ids and the merged source trie ---------------------------------

TEST(Compile, IdsStayWithTheirNames) {
  Policy p;
  Service a = web(), b = web(), c = web();
  a.name = "a", a.port = 1;
  b.name = "b", b.port = 2;
  c.name = "c", c.port = 3;
  p.services = {a, b, c};
  Compiled first = compile(p, {}, 1, p.maps.max_tenants);
  p.services = {a, c};  // b goes away
  Compiled second = compile(p, first.ids, 2, p.maps.max_tenants);
  EXPECT_EQ(second.ids.services.at("a"), first.ids.services.at("a"));
  EXPECT_EQ(second.ids.services.at("c"), first.ids.services.at("c"));
  Service d = web();
  d.name = "d", d.port = 4;
  p.services.push_back(d);
  Compiled third = compile(p, second.ids, 3, p.maps.max_tenants);
  EXPECT_EQ(third.ids.services.at("d"), first.ids.services.at("b"));  // the lowest free id
  EXPECT_EQ(third.ids.tenants.at("default"), 0u);
}

// The data path decides static admission from the copy of a service that
// sits next to its id (port entry, address map), without its entry: every
// copy must say what the entry says.
TEST(Compile, EveryWayToAServiceCarriesWhatItsEntrySaysOfAdmission) {
  Policy p;
  Service any = web(), bound = web(), strict = web();
  any.name = "any", any.reject = RejectMode::Rst, any.dry_run = true;
  bound.name = "bound", bound.addr = IpAddr::parse("198.18.0.1"), bound.rate = Rate{5, 1}, bound.burst = 2;
  strict.name = "strict", strict.port = 53, strict.proto = Proto::Udp, strict.rate = Rate{7, 60};
  strict.per_source = Rate{1, 1};
  p.services = {any, bound, strict};
  p.tenants = {Tenant{"lab", {}, 1}};
  p.limits = {Limit{"strict", "lab", Rate{3, 1}, 1}};
  Compiled c = compile(p, {}, 1, p.maps.max_tenants);

  std::map<uint32_t, sl_service> entry(c.slot.services.begin(), c.slot.services.end());
  auto expect_copy_of = [&](uint32_t id, const sl_admission& copy) {
    const sl_service& e = entry.at(id);
    EXPECT_EQ(copy.flags, e.flags) << e.name;
    EXPECT_EQ(copy.reject, e.reject) << e.name;
    EXPECT_EQ(copy.interval_ns, e.rate.interval_ns) << e.name;
    EXPECT_EQ(copy.tolerance_ns, e.rate.tolerance_ns) << e.name;
  };
  std::map<uint32_t, sl_port_entry> port(c.slot.ports.begin(), c.slot.ports.end());
  const sl_port_entry& web_port = port.at(port_index(Proto::Tcp, 80));
  EXPECT_EQ(web_port.any_addr_service, c.ids.services.at("any"));
  EXPECT_EQ(web_port.flags, SL_PORT_BY_ADDR);
  expect_copy_of(web_port.any_addr_service, web_port.any_addr);
  const sl_port_entry& dns_port = port.at(port_index(Proto::Udp, 53));
  EXPECT_EQ(dns_port.any_addr_service, c.ids.services.at("strict"));
  expect_copy_of(dns_port.any_addr_service, dns_port.any_addr);
  ASSERT_EQ(c.slot.svc_addr.size(), 1u);
  EXPECT_EQ(c.slot.svc_addr[0].second.service, c.ids.services.at("bound"));
  expect_copy_of(c.slot.svc_addr[0].second.service, c.slot.svc_addr[0].second.admission);

  // And the copies carry what each service asked for.
  EXPECT_EQ(web_port.any_addr.reject, SL_REJECT_RST);
  EXPECT_TRUE(web_port.any_addr.flags & SL_SVC_DRY_RUN);
  EXPECT_EQ(dns_port.any_addr.flags & (SL_SVC_PER_SOURCE | SL_SVC_TENANT_LIMITS),
            SL_SVC_PER_SOURCE | SL_SVC_TENANT_LIMITS);
  EXPECT_EQ(c.slot.svc_addr[0].second.admission.interval_ns, 200'000'000u);
  EXPECT_EQ(c.slot.svc_addr[0].second.admission.tolerance_ns, 400'000'000u);
}

// The merged trie must answer, for any address, the longest tenant prefix
// and the longest deny prefix containing it. Checked against brute force on
// random nested prefixes.
TEST(Compile, MergedSourceTrieAnswersBothQuestions) {
  std::mt19937 rng(7);
  for (int round = 0; round < 50; round++) {
    Policy p;
    std::set<Cidr> used;
    auto random_prefix = [&] {
      int len = 8 + static_cast<int>(rng() % 25);  // /8 .. /32 inside 198.0.0.0/8 to force nesting
      uint8_t a[4] = {198, static_cast<uint8_t>(rng() % 4), static_cast<uint8_t>(rng() % 4),
                      static_cast<uint8_t>(rng() % 4)};
      return Cidr{IpAddr::from_v4(a), 32}.widened(len);
    };
    for (int t = 0; t < 6; t++) {
      Tenant tn{"t" + std::to_string(t), {}, 1};
      for (int k = 0; k < 3; k++)
        if (Cidr c = random_prefix(); used.insert(c).second) tn.prefixes.push_back(c);
      if (!tn.prefixes.empty()) p.tenants.push_back(tn);
    }
    for (int d = 0; d < 5; d++)
      if (Cidr c = random_prefix(); std::find(p.deny.begin(), p.deny.end(), c) == p.deny.end()) p.deny.push_back(c);
    ASSERT_NO_THROW(validate(p));
    Compiled c = compile(p, {}, 1, p.maps.max_tenants);

    for (int probe = 0; probe < 200; probe++) {
      uint8_t a[4] = {198, static_cast<uint8_t>(rng() % 4), static_cast<uint8_t>(rng() % 4),
                      static_cast<uint8_t>(rng() % 4)};
      IpAddr addr = IpAddr::from_v4(a);
      // Brute force: the longest prefix of each kind containing addr.
      uint32_t want_tenant = 0, want_deny = 0;
      int best_t = -1, best_d = -1;
      for (const auto& t : p.tenants)
        for (const auto& pre : t.prefixes)
          if (pre.contains(addr) && pre.length > best_t) best_t = pre.length, want_tenant = c.ids.tenants.at(t.name);
      for (const auto& pre : p.deny)
        if (pre.contains(addr) && pre.length > best_d) best_d = pre.length, want_deny = c.ids.deny.at(pre);
      // What the kernel would find: the longest trie entry containing addr.
      int best = -1;
      sl_source_class got{};
      for (const auto& [key, cls] : c.slot.src_v4) {
        Cidr entry{IpAddr::from_v4(key.addr), static_cast<int>(key.prefixlen)};
        if (entry.contains(addr) && entry.length > best) best = entry.length, got = cls;
      }
      EXPECT_EQ(got.tenant_id, want_tenant) << addr.to_string();
      EXPECT_EQ(got.deny_id, want_deny) << addr.to_string();
    }
    // And the trie reads back into the same policy.
    Policy back = decompile(c.slot, p.maps.max_tenants);
    back.maps = p.maps;
    normalize(p);
    EXPECT_EQ(back, p);
  }
}

// validate() lets sre_k miss a thousandth by a rounding error (1.001 has no
// exact double); the policy kept must still be the one the file reads back.
// Found by cli_fuzz: --sre-k 1.0000000001 was kept whole and saved as 1.000.
TEST(PolicyFile, SreKWithinRoundingOfAThousandthIsKeptAsThatThousandth) {
  for (double given : {1.0000000001, 1.0009999999, 2.5, 9.999}) {
    Policy p;
    Service s = web();
    s.tuning.breaker = BreakerKind::Sre;
    s.tuning.sre_k = given;
    p.services.push_back(s);
    validate(p);
    normalize(p);
    EXPECT_EQ(p.services[0].tuning.sre_k, std::round(given * 1000) / 1000) << given;
    EXPECT_EQ(parse_policy(to_toml(p), "p.toml"), p) << given;
  }
}

// A file sluice wrote, cut short anywhere, is refused as truncated even
// where what is left would parse: it would describe less than was meant.
TEST(PolicyFile, TruncatedFilesAreRefusedWherePossiblyValid) {
  Policy p;
  p.services.push_back(web());
  Service dns = web();
  dns.name = "dns";
  dns.port = 53;
  p.services.push_back(dns);
  p.deny.push_back(Cidr::parse("198.18.66.0/24"));
  normalize(p);
  std::string text = to_toml(p);
  EXPECT_EQ(parse_policy(text, "p.toml"), p);
  for (size_t cut = 1; cut + 1 < text.size(); cut++) {
    std::string msg = error_of([&] { parse_policy(text.substr(0, cut), "p.toml"); });
    EXPECT_FALSE(msg.empty()) << "cut at " << cut << " was accepted";
  }
  // Lines appended after the marker are an operator's edit, not a cut.
  Policy more = parse_policy(text + "[[tenant]]\nname = \"gold\"\nprefixes = [\"198.18.7.0/24\"]\n", "p.toml");
  EXPECT_EQ(more.tenants.size(), p.tenants.size() + 1);
  // The marker counts only as a line of its own.
  std::string without_end = text.substr(0, text.rfind("# end"));
  EXPECT_NE(error_of([&] { parse_policy(without_end + "deny = [] # end of sluice policy\n", "p.toml"); }).find("truncated"),
            std::string::npos);
  // A hand-written file (no sluice header) needs no marker.
  EXPECT_EQ(parse_policy("[[service]]\nname = \"web\"\nport = 80\nrate = \"100/s\"\nburst = 10\n", "p.toml").services.size(),
            1u);
}
