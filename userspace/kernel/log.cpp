#include "kernel/log.hpp"

#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace sluice::kernel {

namespace {

std::mutex g_mutex;
std::string g_last;
bool g_verbose = false;

int record(bool is_debug, const char* format, va_list args) {
  char line[1024];
  vsnprintf(line, sizeof(line), format, args);
  if (g_verbose) fputs(line, stderr);
  if (is_debug) return 0;
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  std::lock_guard lock(g_mutex);
  g_last = text;
  return 0;
}

int from_libbpf(enum libbpf_print_level level, const char* format, va_list args) {
  return record(level == LIBBPF_DEBUG, format, args);
}

int from_libxdp(enum libxdp_print_level level, const char* format, va_list args) {
  return record(level == LIBXDP_DEBUG, format, args);
}

}  // namespace

void capture_library_logs(bool verbose) {
  g_verbose = verbose;
  libbpf_set_print(from_libbpf);
  libxdp_set_print(from_libxdp);
}

std::string last_library_message() {
  std::lock_guard lock(g_mutex);
  return g_last;
}

void clear_library_message() {
  std::lock_guard lock(g_mutex);
  g_last.clear();
}

std::string library_detail() {
  std::string m = last_library_message();
  return m.empty() ? "" : " (" + m + ")";
}

std::string with_library_message(const std::string& what) { return what + library_detail(); }

}  // namespace sluice::kernel
