// Prometheus metrics of `sluice run`, served over plain HTTP on a local
// address: admitted and shed work per service and tenant and reason,
// in-flight work, limits, breaker states, reject probabilities, and each
// governed service's latency histogram.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "control/controller.hpp"
#include "kernel/datapath.hpp"

namespace sluice::control {

// The exposition text (format 0.0.4) for the current state.
std::string render_metrics(const kernel::DataPath& dp, const std::vector<ServiceReport>& governed);

class MetricsServer {
 public:
  // Listens on "IP:PORT" (port 0: any free port). Throws UsageError on a
  // bad address, SystemError when it cannot listen.
  MetricsServer(const std::string& address, std::function<std::string()> render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  std::string address() const;  // where it really listens

 private:
  void serve();

  int fd_ = -1;
  std::function<std::string()> render_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace sluice::control
