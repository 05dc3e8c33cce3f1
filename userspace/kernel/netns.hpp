// `-n NETNS`: act on interfaces inside another network namespace, as `ip -n`
// does. Only the network namespace changes; the mount namespace (and so the
// host's bpffs with sluice's pins) stays the same, which is why sluice does
// this itself instead of running under `ip netns exec`.
#pragma once

#include <string>

#include "kernel/map.hpp"

namespace sluice::kernel {

class NetnsScope {
 public:
  // Enters /run/netns/NAME (or NAME itself when it is a path); an empty name
  // stays where we are. Throws UsageError when there is no such namespace.
  explicit NetnsScope(const std::string& name);
  ~NetnsScope();  // returns to the original namespace
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;

 private:
  Fd original_;
};

}  // namespace sluice::kernel
