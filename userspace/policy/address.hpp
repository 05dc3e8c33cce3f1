// IP addresses and prefixes as sluice stores them: IPv4 is kept IPv4-mapped
// (::ffff:a.b.c.d), the same form the kernel maps use, so one type serves both
// families.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::policy {

struct IpAddr {
  std::array<uint8_t, 16> bytes{};

  // nullopt when `text` is not an IPv4 or IPv6 address.
  static std::optional<IpAddr> parse(std::string_view text);
  static IpAddr from_v4(const uint8_t v4[4]);

  bool is_v4() const;  // within ::ffff:0:0/96
  int family() const { return is_v4() ? 4 : 6; }
  const uint8_t* v4_bytes() const { return bytes.data() + 12; }
  std::string to_string() const;

  auto operator<=>(const IpAddr&) const = default;
};

// A prefix such as 198.18.1.0/24 or 2001:db8::/32. `length` counts bits of the
// address's own family (0..32 for IPv4, 0..128 for IPv6).
struct Cidr {
  IpAddr addr;
  int length = 0;

  // Throws UsageError naming what is wrong. A bare address is a host prefix.
  // Host bits must be zero: 198.18.1.5/24 is refused with a suggestion.
  static Cidr parse(std::string_view text);

  int family() const { return addr.family(); }
  int mapped_length() const { return addr.is_v4() ? 96 + length : length; }
  bool contains(const IpAddr& a) const;
  bool contains(const Cidr& inner) const;  // inner is equal to or inside this
  // The prefix of `shorter` bits (<= length) that contains this one.
  Cidr widened(int shorter) const;
  std::string to_string() const;

  auto operator<=>(const Cidr&) const = default;
};

}  // namespace sluice::policy
