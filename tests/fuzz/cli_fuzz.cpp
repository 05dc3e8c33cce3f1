// libFuzzer target: the sluice command line.
//
// The input is a short session of commands, one per line; the words of a
// command are separated by spaces or NUL bytes (two separators in a row make
// an empty argument; blank lines are skipped). Each command runs through
// sluice::cli::run_cli with an in-memory backend that starts from a small
// policy (a service, a tenant, a limit and a deny rule), so later commands
// see what earlier ones did:
//
//   service add web2 --port 8080 --rate 100/s --burst 20
//   limit set web2 gold --rate 10/s
//
// The backend keeps a policy::Policy. change_policy(edit) edits a copy, then
// validates and normalizes it and keeps it; replace_policy(p) likewise;
// require_kernel() throws (commands that need the kernel stop there).
//
// After every command: run_cli returned 0, 1 or 2 and did not crash; the
// kept policy validates; an exit code of 2 (a bad command) left it exactly as
// it was; and the kept policy survives the policy file format
// (parse_policy(to_toml(p)) == p), since the CLI saves every change to it.
//
// Output is silenced: the C++ streams the CLI writes to go nowhere (libFuzzer
// keeps stderr for its own reports), and stdin is /dev/null so no command
// can wait on it.
//
//   build-fuzz/fuzz/cli_fuzz -dict=tests/fuzz/cli_fuzz.dict tests/fuzz/corpus/cli_fuzz
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <vector>

#include "cli/app.hpp"
#include "cli/context.hpp"
#include "core/error.hpp"
#include "policy/policy.hpp"
#include "policy/policy_file.hpp"

namespace {

constexpr size_t kMaxCommands = 16;
constexpr size_t kMaxWords = 48;

// Commands that need the kernel end here, as they would without root.
class NeedsKernel : public std::runtime_error {
 public:
  NeedsKernel() : std::runtime_error("this command needs the kernel (not in the fuzzing backend)") {}
};

class MemoryBackend : public sluice::cli::Backend {
 public:
  explicit MemoryBackend(sluice::policy::Policy start) : kept(std::move(start)) {}

  uint64_t change_policy(const std::function<void(sluice::policy::Policy&)>& change) override {
    sluice::policy::Policy next = kept;
    change(next);
    sluice::policy::validate(next);
    sluice::policy::normalize(next);
    kept = std::move(next);
    return ++epoch;
  }
  uint64_t replace_policy(const sluice::policy::Policy& next) override {
    sluice::policy::Policy p = next;
    sluice::policy::validate(p);
    sluice::policy::normalize(p);
    kept = std::move(p);
    return ++epoch;
  }
  [[noreturn]] void require_kernel() override { throw NeedsKernel(); }

  sluice::policy::Policy kept;
  uint64_t epoch = 0;
};

sluice::policy::Policy starting_policy() {
  using namespace sluice::policy;
  Policy p;
  Service web;
  web.name = "web";
  web.port = 80;
  web.rate = Rate{100, 1};
  web.burst = 100;
  p.services.push_back(web);
  p.tenants.push_back(Tenant{"gold", {Cidr::parse("198.18.1.0/24"), Cidr::parse("2001:db8:1::/48")}, 0});
  p.limits.push_back(Limit{"web", "gold", Rate{1000, 1}, 1000});
  p.deny.push_back(Cidr::parse("198.18.66.0/24"));
  validate(p);
  normalize(p);
  return p;
}

class NullBuffer : public std::streambuf {
 protected:
  int overflow(int c) override { return c == EOF ? 0 : c; }
  std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
};

[[noreturn]] void bug(const std::string& what, std::string_view input, const std::string& command,
                      const std::string& detail = "") {
  std::fprintf(stderr, "\ncli_fuzz: BUG: %s\ncommand: %s\n", what.c_str(), command.c_str());
  if (!detail.empty()) std::fprintf(stderr, "%s\n", detail.c_str());
  std::fprintf(stderr, "---- input (%zu bytes) ----\n%.*s\n---- end of input ----\n", input.size(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

// One line of the input as an argv (without argv[0]).
std::vector<std::string> words_of(std::string_view line) {
  std::vector<std::string> words;
  size_t start = 0;
  for (size_t i = 0; i <= line.size() && words.size() < kMaxWords; i++) {
    if (i == line.size() || line[i] == ' ' || line[i] == '\0') {
      words.emplace_back(line.substr(start, i - start));
      start = i + 1;
    }
  }
  return words;
}

std::string printable(const std::vector<std::string>& words) {
  std::string s = "sluice";
  for (const auto& w : words) s += " '" + w + "'";
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  static NullBuffer null_buffer;
  std::cout.rdbuf(&null_buffer);
  std::cerr.rdbuf(&null_buffer);
  std::clog.rdbuf(&null_buffer);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) {
    dup2(devnull, STDIN_FILENO);
    close(devnull);
  }
  // Nothing from the environment: the same input always runs the same way.
  unsetenv("SLUICE_PIN_DIR");
  unsetenv("SLUICE_DEBUG");
  setenv("SLUICE_POLICY_FILE", "/nonexistent/sluice-cli-fuzz/policy.toml", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  MemoryBackend backend(starting_policy());

  size_t start = 0, commands = 0;
  while (start <= input.size() && commands < kMaxCommands) {
    size_t end = input.find('\n', start);
    if (end == std::string_view::npos) end = input.size();
    std::string_view line = input.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;  // blank lines separate nothing
    std::vector<std::string> words = words_of(line);
    commands++;

    std::vector<const char*> argv = {"sluice"};
    for (const auto& w : words) argv.push_back(w.c_str());
    argv.push_back(nullptr);
    std::string command = printable(words);

    const sluice::policy::Policy before = backend.kept;
    int rc = -1;
    try {
      rc = sluice::cli::run_cli(static_cast<int>(argv.size() - 1), argv.data(), &backend);
    } catch (const std::exception& e) {
      bug("run_cli let an exception out", input, command, std::string("what(): ") + e.what());
    } catch (...) {
      bug("run_cli let a non-standard exception out", input, command);
    }
    if (rc != 0 && rc != 1 && rc != 2) bug("exit code " + std::to_string(rc) + " (expected 0, 1 or 2)", input, command);
    try {
      sluice::policy::validate(backend.kept);
    } catch (const std::exception& e) {
      bug("the kept policy no longer validates", input, command, e.what());
    }
    if (rc == 2 && !(backend.kept == before))
      bug("exit code 2 (a bad command) but the policy changed", input, command,
          "---- before ----\n" + sluice::policy::to_toml(before) + "---- after ----\n" +
              sluice::policy::to_toml(backend.kept));
    if (!(backend.kept == before)) {
      // The CLI saves every change to the policy file; it must read back.
      std::string saved = sluice::policy::to_toml(backend.kept);
      sluice::policy::Policy back;
      try {
        back = sluice::policy::parse_policy(saved, "saved.toml");
      } catch (const std::exception& e) {
        bug("the CLI accepted a policy its own file format refuses", input, command,
            std::string(e.what()) + "\n---- to_toml ----\n" + saved);
      }
      if (!(back == backend.kept))
        bug("a policy the CLI accepted changes when saved and read back", input, command,
            "---- to_toml ----\n" + saved + "---- read back ----\n" + sluice::policy::to_toml(back));
    }
  }
  return 0;
}
