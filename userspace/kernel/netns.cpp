#include "kernel/netns.hpp"

#include <fcntl.h>
#include <sched.h>

#include <cerrno>

#include "core/error.hpp"

namespace sluice::kernel {

NetnsScope::NetnsScope(const std::string& name) {
  if (name.empty()) return;
  std::string path = name.find('/') == std::string::npos ? "/run/netns/" + name : name;
  Fd target(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!target) {
    if (errno == ENOENT) throw UsageError("no network namespace '" + name + "' (see: ip netns list)");
    throw SystemError("cannot open network namespace " + path, errno);
  }
  original_ = Fd(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!original_) throw SystemError("cannot open the current network namespace", errno);
  if (setns(target.get(), CLONE_NEWNET) != 0) throw SystemError("cannot enter network namespace " + name, errno);
}

NetnsScope::~NetnsScope() {
  if (original_) setns(original_.get(), CLONE_NEWNET);
}

}  // namespace sluice::kernel
