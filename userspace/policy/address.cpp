#include "policy/address.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "core/error.hpp"

namespace sluice::policy {

namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// Does `a` match `b` in the first `bits` bits?
bool same_prefix(const IpAddr& a, const IpAddr& b, int bits) {
  int whole = bits / 8, rest = bits % 8;
  if (std::memcmp(a.bytes.data(), b.bytes.data(), whole) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[whole] & mask) == (b.bytes[whole] & mask);
}

IpAddr masked(const IpAddr& a, int mapped_bits) {
  IpAddr out = a;
  for (int i = 0; i < 16; i++) {
    int keep = std::clamp(mapped_bits - i * 8, 0, 8);
    out.bytes[i] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  return out;
}

}  // namespace

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) return std::nullopt;  // inet_pton would stop there
  std::string s(text);
  IpAddr out;
  uint8_t v4[4];
  if (inet_pton(AF_INET, s.c_str(), v4) == 1) return from_v4(v4);
  if (inet_pton(AF_INET6, s.c_str(), out.bytes.data()) == 1) return out;
  return std::nullopt;
}

IpAddr IpAddr::from_v4(const uint8_t v4[4]) {
  IpAddr out;
  std::memcpy(out.bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
  std::memcpy(out.bytes.data() + 12, v4, 4);
  return out;
}

bool IpAddr::is_v4() const {
  return std::memcmp(bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0;
}

std::string IpAddr::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  if (is_v4())
    inet_ntop(AF_INET, v4_bytes(), buf, sizeof(buf));
  else
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  return buf;
}

Cidr Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  std::string_view addr_text = text.substr(0, slash);
  auto addr = IpAddr::parse(addr_text);
  if (!addr)
    throw UsageError("'" + std::string(text) + "' is not an IPv4 or IPv6 prefix (e.g. 198.18.1.0/24, 2001:db8::/32)");
  int max_len = addr->is_v4() ? 32 : 128;
  int length = max_len;
  if (slash != std::string_view::npos) {
    std::string_view len_text = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), length);
    if (ec != std::errc() || end != len_text.data() + len_text.size() || len_text.empty() || length < 0 ||
        length > max_len)
      throw UsageError("'" + std::string(text) + "': prefix length must be a number from 0 to " +
                       std::to_string(max_len));
  }
  Cidr out{*addr, length};
  IpAddr network = masked(*addr, out.mapped_length());
  if (network != *addr) {
    Cidr suggestion{network, length};
    throw UsageError("'" + std::string(text) + "' has host bits set; did you mean " + suggestion.to_string() + "?");
  }
  return out;
}

Cidr Cidr::widened(int shorter) const {
  Cidr out{addr, shorter};
  out.addr = masked(addr, out.mapped_length());
  return out;
}

bool Cidr::contains(const IpAddr& a) const {
  return a.is_v4() == addr.is_v4() && same_prefix(addr, a, mapped_length());
}

bool Cidr::contains(const Cidr& inner) const {
  return inner.addr.is_v4() == addr.is_v4() && inner.length >= length && same_prefix(addr, inner.addr, mapped_length());
}

std::string Cidr::to_string() const { return addr.to_string() + "/" + std::to_string(length); }

}  // namespace sluice::policy
