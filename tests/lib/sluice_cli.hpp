// Running the real `sluice` binary from end-to-end tests, against a private
// installation: its own pin directory in the host's bpffs and its own policy
// file in a scratch directory, both removed again however the test ends.
// The benchmarks (bench/) use the same classes with the tag "bench" in the
// names instead of "e2e", so that tools/bench.sh can tell theirs apart.
//
//   sluice::test::SluiceCli cli;                       // /sys/fs/bpf/sluice-e2e-<pid>-<n>
//   sluice::test::SluiceCli bench_cli("bench");        // /sys/fs/bpf/sluice-bench-<pid>-<n>
//   cli.must({"-n", tb.server_ns(), "attach", tb.server_dev()});
//   cli.must({"service", "add", "web", "--port", "8080", "--rate", "100/s"});
//   auto stats = cli.json({"stats", "--json"});
//   RunResult r = cli.run({"apply", "-f", "bad.toml"});  // r.exit_code == 2
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "process.hpp"

namespace sluice::test {

// The build directory the running binary belongs to: <build> for
// <build>/tests/<binary> or <build>/bench/<binary>. Tools and the sluice
// binary live next to it.
std::string build_dir();
std::string sluice_binary();                      // <build>/sluice
std::string tool_binary(const std::string& name);  // <build>/tools/<name>

// The tag in the names of scratch and pin directories of the tests.
inline constexpr const char* kE2eTag = "e2e";

// A fresh directory /tmp/sluice-<tag>-<pid>-XXXXXX, removed with everything
// in it when the object goes. tag: letters and digits (std::invalid_argument
// otherwise).
class ScratchDir {
public:
    explicit ScratchDir(const std::string& tag = kE2eTag);
    ~ScratchDir();
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;

    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }
    // Writes (replaces) a file in the directory; returns its path.
    std::string write(const std::string& name, const std::string& text) const;

private:
    std::string path_;
};

std::string read_file(const std::string& path);

// For checking what the CLI printed.
bool contains(const std::string& haystack, const std::string& needle);
// "a\n" is one line; "", "a" (no newline) or "a\nb\n" are not: every refusal
// is one line.
bool one_line(const std::string& s);

// The sluice binary (this build's, or `binary`) with SLUICE_PIN_DIR
// (/sys/fs/bpf/sluice-<tag>-<pid>-<n>) and SLUICE_POLICY_FILE (in a
// ScratchDir of the same tag) of its own.
// The destructor runs `sluice reset` (detaching wherever this installation
// is attached) and removes the pin directory and the policy file's directory.
class SluiceCli {
public:
    explicit SluiceCli(const std::string& tag = kE2eTag, const std::string& binary = sluice_binary());
    ~SluiceCli();
    SluiceCli(const SluiceCli&) = delete;
    SluiceCli& operator=(const SluiceCli&) = delete;

    const std::string& pin_dir() const { return pin_dir_; }
    const std::string& policy_file() const { return policy_file_; }
    const ScratchDir& scratch() const { return scratch_; }

    // Runs `sluice ARGS...` in the caller's network namespace.
    RunResult run(const std::vector<std::string>& args, Millis timeout = std::chrono::seconds(30)) const;
    // The same as user uid/gid (no supplementary groups), for refusals.
    RunResult run_as(uid_t uid, gid_t gid, const std::vector<std::string>& args,
                     Millis timeout = std::chrono::seconds(30)) const;
    // Runs and throws std::runtime_error (with the command and its stderr)
    // unless it exits 0; returns stdout.
    std::string must(const std::vector<std::string>& args) const;
    // must(), parsed as JSON.
    nlohmann::json json(const std::vector<std::string>& args) const;
    // `sluice ARGS...` on this installation as argv, for a Process: the
    // commands a test runs in the background, signals or kills itself.
    std::vector<std::string> command(const std::vector<std::string>& args) const;
    // Detaches everywhere and removes the pinned state (`sluice reset`, which
    // throws like must() if it fails) and the policy file: the next command
    // starts afresh, as on a new installation.
    void reset() const;

private:
    ScratchDir scratch_;
    std::string binary_;
    std::string pin_dir_;
    std::string policy_file_;
};

// Pin directories /sys/fs/bpf/sluice-<tag>-<pid>-<n> and scratch directories
// /tmp/sluice-<tag>-<pid>-* whose process is gone (a test or benchmark that
// was killed): reset with the CLI and removed. SluiceCli's constructor calls
// it for its tag. Returns the paths removed.
std::vector<std::string> remove_stale_installations(const std::string& tag = kE2eTag);

}  // namespace sluice::test
