// Child processes for end-to-end tests: spawned inside a network namespace,
// each in its own process group, always killed and reaped.
//
// Exit statuses follow one convention everywhere: the exit code (0..255) for
// a normal exit, -N for death by signal N.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::test {

using Millis = std::chrono::milliseconds;

struct RunResult {
    int exit_code = -1;
    bool timed_out = false;
    std::string out;
    std::string err;

    bool ok() const { return exit_code == 0 && !timed_out; }
};

struct ProcessOptions {
    // Empty: captured in memory (memfd); otherwise the file is truncated and written.
    std::string stdout_path;
    std::string stderr_path;
    // How long the group gets between SIGTERM and SIGKILL when it is stopped.
    Millis term_grace{1000};
};

class Process {
public:
    // ns: a name under /run/netns, or "" to stay in the caller's namespace.
    // Only the network namespace changes (no mount namespace, unlike
    // `ip netns exec`): bpffs and /sys stay the host's, /proc/net and
    // /proc/sys/net follow the new network namespace. Throws
    // std::runtime_error if setns or exec fails.
    Process(std::string ns, std::vector<std::string> argv, ProcessOptions options = {});
    // Stops the whole group (SIGTERM, grace, SIGKILL) and reaps the child.
    ~Process();

    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& netns() const { return ns_; }
    const std::vector<std::string>& argv() const { return argv_; }

    // True once `needle` appears in stdout or stderr; false on timeout or if
    // the process exits without having printed it.
    bool wait_for_output(std::string_view needle, Millis timeout);
    // The exit status once the child has exited, nullopt on timeout. The
    // child stays a zombie until stop(), so its pid and group id cannot be
    // reused while this object lives.
    std::optional<int> wait_exit(Millis timeout);
    bool running() { return !wait_exit(Millis(0)).has_value(); }
    // Sends sig to the whole process group.
    void signal(int sig);
    // SIGTERM to the group, up to term_grace for it to go, then SIGKILL; reaps
    // the child. Idempotent. Returns the child's exit status.
    int stop();

    std::string stdout_text() const;
    std::string stderr_text() const;

private:
    std::string ns_;
    std::vector<std::string> argv_;
    ProcessOptions options_;
    pid_t pid_ = -1;
    int pidfd_ = -1;
    int out_fd_ = -1;  // readable view of the child's stdout
    int err_fd_ = -1;
    int group_slot_ = -1;
    std::optional<int> status_;
    bool reaped_ = false;
};

// Runs a short command to completion (stdout and stderr captured). On timeout
// the group is killed and timed_out is set. Never throws for a non-zero exit.
RunResult run_in(const std::string& ns, const std::vector<std::string>& argv,
                 Millis timeout = std::chrono::seconds(10));

// argv as one line ("a b c"), for messages.
std::string join(const std::vector<std::string>& argv);

// Runs fn on a fresh thread that has joined network namespace ns, and waits
// for it. Sockets created there stay in ns. Exceptions from fn are rethrown.
void in_netns(const std::string& ns, const std::function<void()>& fn);

// True once some socket in ns listens on TCP port (IPv4 or IPv6).
bool wait_tcp_listening(const std::string& ns, uint16_t port, Millis timeout);

// Processes (thread-group leaders) whose network namespace is /run/netns/ns.
std::vector<pid_t> netns_pids(const std::string& ns);

// True while a process with this pid exists and is not a zombie.
bool pid_alive(pid_t pid);

namespace detail {

// Emergency cleanup for SIGINT/SIGTERM/SIGHUP, fatal signals and exit():
// kills every tracked process group, kills every process inside each tracked
// namespace and removes the namespace's /run/netns entry, then re-raises. It
// runs in a signal handler, so the tracking tables are fixed-size and
// lock-free. Entries are tied to the pid that made them, so a forked child
// never cleans its parent's resources.
void install_emergency_cleanup();
int track_netns(const std::string& name);
void untrack_netns(int slot);
bool netns_tracked(const std::string& name);
int track_group(pid_t pgid);
void untrack_group(int slot);

// Async-signal-safe: sends sig to every process in /run/netns/name but us.
// Returns how many were signalled.
int signal_netns_members(const char* name, int sig);
// Async-signal-safe: what `ip netns del` does (detach the bind mount, unlink).
bool remove_netns_entry(const char* name);

}  // namespace detail

}  // namespace sluice::test
