#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/close_range.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace sluice::test {

namespace {

using Clock = std::chrono::steady_clock;

std::runtime_error sys_error(const std::string& what, int err = errno)
{
    return std::runtime_error(what + ": " + std::strerror(err));
}

int ms_until(Clock::time_point deadline)
{
    auto left = std::chrono::ceil<Millis>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

std::string netns_path(const std::string& ns) { return "/run/netns/" + ns; }

// ---- async-signal-safe helpers ---------------------------------------------

// Appends src to dst (capacity cap, always NUL-terminated); no libc state.
void append(char* dst, size_t cap, const char* src)
{
    size_t n = std::strlen(dst);
    while (*src && n + 1 < cap) dst[n++] = *src++;
    dst[n] = '\0';
}

void append_uint(char* dst, size_t cap, unsigned long v)
{
    char digits[24];
    int i = sizeof digits - 1;
    digits[i] = '\0';
    do {
        digits[--i] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    append(dst, cap, digits + i);
}

struct LinuxDirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

// Calls fn for every pid in /proc. Uses only syscalls (no opendir/malloc),
// so it may run in a signal handler.
void scan_proc(void (*fn)(pid_t, void*), void* ctx)
{
    int dir = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return;
    alignas(8) char buf[8192];
    for (;;) {
        long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (n <= 0) break;
        for (long off = 0; off < n;) {
            auto* d = reinterpret_cast<LinuxDirent64*>(buf + off);
            off += d->d_reclen;
            long pid = 0;
            const char* c = d->d_name;
            for (; *c >= '0' && *c <= '9'; ++c) pid = pid * 10 + (*c - '0');
            if (*c == '\0' && pid > 0) fn(static_cast<pid_t>(pid), ctx);
        }
    }
    close(dir);
}

struct NetnsScan {
    dev_t dev;
    ino_t ino;
    pid_t self;
    int sig;  // 0: only collect
    int count;
    std::vector<pid_t>* out;  // only outside signal handlers
};

void visit_netns_member(pid_t pid, void* ctx)
{
    auto* scan = static_cast<NetnsScan*>(ctx);
    if (pid == scan->self) return;
    char path[64] = "/proc/";
    append_uint(path, sizeof path, static_cast<unsigned long>(pid));
    append(path, sizeof path, "/ns/net");
    struct stat st;
    if (stat(path, &st) != 0 || st.st_dev != scan->dev || st.st_ino != scan->ino) return;
    ++scan->count;
    if (scan->sig) kill(pid, scan->sig);
    if (scan->out) scan->out->push_back(pid);
}

bool scan_netns(const char* name, NetnsScan& scan)
{
    char path[128] = "/run/netns/";
    append(path, sizeof path, name);
    struct stat st;
    if (stat(path, &st) != 0) return false;
    scan.dev = st.st_dev;
    scan.ino = st.st_ino;
    scan.self = getpid();
    scan_proc(visit_netns_member, &scan);
    return true;
}

// ---- emergency tracking tables ------------------------------------------------

// owner: 0 free, -1 being filled in, otherwise the pid that tracks the entry.
struct NetnsSlot {
    std::atomic<pid_t> owner{0};
    char name[64];
};
struct GroupSlot {
    std::atomic<pid_t> owner{0};
    std::atomic<pid_t> pgid{0};
};

NetnsSlot g_netns_slots[128];
GroupSlot g_group_slots[512];
std::atomic<bool> g_cleaning{false};

constexpr int kHandledSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT,
                                   SIGSEGV, SIGBUS, SIGFPE, SIGILL};
struct sigaction g_previous[NSIG];

template <typename Slot>
int claim(Slot* slots, size_t count)
{
    for (size_t i = 0; i < count; ++i) {
        pid_t expected = 0;
        if (slots[i].owner.compare_exchange_strong(expected, -1)) return static_cast<int>(i);
    }
    return -1;
}

void emergency_cleanup()
{
    pid_t self = getpid();
    for (auto& slot : g_group_slots)
        if (slot.owner.load(std::memory_order_acquire) == self) kill(-slot.pgid.load(), SIGKILL);
    for (auto& slot : g_netns_slots) {
        if (slot.owner.load(std::memory_order_acquire) != self) continue;
        detail::signal_netns_members(slot.name, SIGKILL);
        detail::remove_netns_entry(slot.name);
    }
}

void on_fatal_signal(int sig)
{
    int saved_errno = errno;
    bool first = !g_cleaning.exchange(true);
    if (first) emergency_cleanup();
    // Hand the signal to whoever had it before us (by default: die of it).
    // Back here again means that handler chained to us: break the loop.
    if (first) {
        sigaction(sig, &g_previous[sig], nullptr);
    } else {
        struct sigaction dfl{};
        dfl.sa_handler = SIG_DFL;
        sigaction(sig, &dfl, nullptr);
    }
    raise(sig);
    errno = saved_errno;
}

void cleanup_at_exit()
{
    if (!g_cleaning.exchange(true)) emergency_cleanup();
}

// ---- file and /proc readers -------------------------------------------------

std::string read_fd(int fd, off_t off = 0)
{
    std::string text;
    if (fd < 0) return text;
    char buf[65536];
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(buf, static_cast<size_t>(n));
        off += n;
    }
    return text;
}

std::string read_file(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// State letter and process group of pid, from /proc/PID/stat.
bool proc_stat(pid_t pid, char& state, pid_t& pgrp)
{
    std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    // The command name may hold spaces and parentheses: parse after the last ')'.
    auto close = stat.rfind(')');
    if (close == std::string::npos) return false;
    int ppid = 0, group = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d %d", &state, &ppid, &group) != 3) return false;
    pgrp = group;
    return true;
}

struct GroupScan {
    pid_t pgid;
    bool live;
};

void visit_group_member(pid_t pid, void* ctx)
{
    auto* scan = static_cast<GroupScan*>(ctx);
    char state = 0;
    pid_t pgrp = 0;
    if (!scan->live && proc_stat(pid, state, pgrp) && pgrp == scan->pgid && state != 'Z' &&
        state != 'X')
        scan->live = true;
}

bool group_has_live_members(pid_t pgid)
{
    if (kill(-pgid, 0) != 0 && errno == ESRCH) return false;
    GroupScan scan{pgid, false};
    scan_proc(visit_group_member, &scan);
    return scan.live;
}

// Polls cond until it holds or the deadline passes; backs off from 1 ms to 20 ms.
template <typename Cond>
bool poll_until(Clock::time_point deadline, Cond cond)
{
    auto pause = Millis(1);
    for (;;) {
        if (cond()) return true;
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::min<Millis>(pause, Millis(ms_until(deadline) + 1)));
        pause = std::min(pause * 2, Millis(20));
    }
}

class UniqueFd {
public:
    explicit UniqueFd(int fd = -1) : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1)
    {
        if (fd_ >= 0) close(fd_);
        fd_ = fd;
    }

private:
    int fd_;
};

// Opens where a child's stream goes. Returns the fd the child writes to;
// read_fd gets one the parent can pread (the same memfd when captured).
UniqueFd open_sink(const std::string& path, const char* name, UniqueFd& read_side)
{
    if (path.empty()) {
        int fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0) throw sys_error("memfd_create");
        read_side.reset(fd);
        int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dup_fd < 0) throw sys_error("dup memfd");
        return UniqueFd(dup_fd);
    }
    UniqueFd write_side(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644));
    if (write_side.get() < 0) throw sys_error("open " + path);
    read_side.reset(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (read_side.get() < 0) throw sys_error("open " + path);
    return UniqueFd(write_side.release());
}

std::string describe(const std::vector<std::string>& argv)
{
    std::string s;
    for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
    return s;
}

// What a child reports through its close-on-exec pipe when it cannot exec.
struct SpawnFailure {
    int stage;  // 0 setns, 1 exec
    int err;
};

[[noreturn]] void child_fail(int pipe_fd, int stage)
{
    SpawnFailure failure{stage, errno};
    ssize_t ignored = write(pipe_fd, &failure, sizeof failure);
    (void)ignored;
    _exit(127);
}

}  // namespace

// ---- detail -------------------------------------------------------------------

namespace detail {

void install_emergency_cleanup()
{
    // Checked on every call, not once: a test may have reset a signal or put
    // its own handler in since; ours then goes in front of it again.
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    for (int sig : kHandledSignals) {
        struct sigaction current{};
        sigaction(sig, nullptr, &current);
        // A signal the test runner chose to ignore stays ignored.
        if (current.sa_handler == SIG_IGN || current.sa_handler == on_fatal_signal) continue;
        g_previous[sig] = current;
        struct sigaction action{};
        action.sa_handler = on_fatal_signal;
        sigemptyset(&action.sa_mask);
        sigaction(sig, &action, nullptr);
    }
    static std::once_flag once;
    std::call_once(once, [] { std::atexit(cleanup_at_exit); });
}

int track_netns(const std::string& name)
{
    if (name.size() >= sizeof(NetnsSlot::name)) throw std::invalid_argument("netns name too long: " + name);
    int i = claim(g_netns_slots, std::size(g_netns_slots));
    if (i < 0) throw std::runtime_error("too many live test namespaces");
    std::memcpy(g_netns_slots[i].name, name.c_str(), name.size() + 1);
    g_netns_slots[i].owner.store(getpid(), std::memory_order_release);
    return i;
}

void untrack_netns(int slot)
{
    if (slot >= 0) g_netns_slots[slot].owner.store(0, std::memory_order_release);
}

bool netns_tracked(const std::string& name)
{
    pid_t self = getpid();
    for (auto& slot : g_netns_slots)
        if (slot.owner.load(std::memory_order_acquire) == self && name == slot.name) return true;
    return false;
}

int track_group(pid_t pgid)
{
    int i = claim(g_group_slots, std::size(g_group_slots));
    if (i < 0) throw std::runtime_error("too many live test processes");
    g_group_slots[i].pgid.store(pgid);
    g_group_slots[i].owner.store(getpid(), std::memory_order_release);
    return i;
}

void untrack_group(int slot)
{
    if (slot >= 0) g_group_slots[slot].owner.store(0, std::memory_order_release);
}

int signal_netns_members(const char* name, int sig)
{
    NetnsScan scan{};
    scan.sig = sig;
    return scan_netns(name, scan) ? scan.count : 0;
}

bool remove_netns_entry(const char* name)
{
    char path[128] = "/run/netns/";
    append(path, sizeof path, name);
    umount2(path, MNT_DETACH);
    return unlink(path) == 0;
}

}  // namespace detail

// ---- Process ------------------------------------------------------------------

Process::Process(std::string ns, std::vector<std::string> argv, ProcessOptions options)
    : ns_(std::move(ns)), argv_(std::move(argv)), options_(std::move(options))
{
    if (argv_.empty()) throw std::invalid_argument("Process: empty argv");
    detail::install_emergency_cleanup();

    // Everything the child needs is prepared here: between fork and exec it
    // may only make async-signal-safe calls.
    UniqueFd ns_fd;
    if (!ns_.empty()) {
        ns_fd.reset(open(netns_path(ns_).c_str(), O_RDONLY | O_CLOEXEC));
        if (ns_fd.get() < 0) throw sys_error("open netns " + ns_);
    }
    UniqueFd out_read, err_read;
    UniqueFd out_write = open_sink(options_.stdout_path, "stdout", out_read);
    UniqueFd err_write = open_sink(options_.stderr_path, "stderr", err_read);
    UniqueFd dev_null(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (dev_null.get() < 0) throw sys_error("open /dev/null");
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) throw sys_error("pipe2");
    UniqueFd report_read(pipe_fds[0]), report_write(pipe_fds[1]);
    std::vector<char*> cargv;
    for (auto& arg : argv_) cargv.push_back(arg.data());
    cargv.push_back(nullptr);

    pid_t pid = fork();
    if (pid < 0) throw sys_error("fork");
    if (pid == 0) {
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        struct sigaction dfl{};
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
        if (ns_fd.get() >= 0 && setns(ns_fd.get(), CLONE_NEWNET) != 0) child_fail(report_write.get(), 0);
        dup2(dev_null.get(), STDIN_FILENO);
        dup2(out_write.get(), STDOUT_FILENO);
        dup2(err_write.get(), STDERR_FILENO);
        // Descriptors the test holds (sockets, BPF objects) must not leak into the child.
        syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
        execvp(cargv[0], cargv.data());
        child_fail(report_write.get(), 1);
    }

    pid_ = pid;
    group_slot_ = detail::track_group(pid);
    setpgid(pid, pid);  // also from here, so the group exists before we signal it
    report_write.reset();
    SpawnFailure failure{};
    ssize_t n;
    do n = read(report_read.get(), &failure, sizeof failure);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        detail::untrack_group(group_slot_);
        int status;
        waitpid(pid, &status, 0);
        reaped_ = true;
        throw sys_error(std::string(failure.stage == 0 ? "setns " + ns_ : "exec") + " for `" + describe(argv_) + "`",
                        failure.err);
    }
    pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    out_fd_ = out_read.release();
    err_fd_ = err_read.release();
}

Process::~Process()
{
    stop();
    for (int fd : {pidfd_, out_fd_, err_fd_})
        if (fd >= 0) close(fd);
}

std::optional<int> Process::wait_exit(Millis timeout)
{
    if (status_) return status_;
    auto deadline = Clock::now() + timeout;
    for (;;) {
        siginfo_t info{};
        // WNOWAIT: learn the status but leave the zombie, which keeps the pid
        // and the process group id ours until stop().
        if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == pid_) {
            status_ = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
            return status_;
        }
        int left = ms_until(deadline);
        if (left == 0) return std::nullopt;
        if (pidfd_ >= 0) {
            pollfd pfd{pidfd_, POLLIN, 0};
            poll(&pfd, 1, left);
        } else {
            std::this_thread::sleep_for(Millis(std::min(left, 10)));
        }
    }
}

bool Process::wait_for_output(std::string_view needle, Millis timeout)
{
    auto deadline = Clock::now() + timeout;
    // Reads only what is new since the last look (plus an overlap, in case
    // the needle straddles the boundary), so chatty processes stay cheap.
    off_t searched[2] = {0, 0};
    auto printed = [&] {
        int fds[2] = {out_fd_, err_fd_};
        for (int i = 0; i < 2; ++i) {
            off_t from = std::max<off_t>(0, searched[i] - static_cast<off_t>(needle.size()));
            std::string fresh = read_fd(fds[i], from);
            if (fresh.find(needle) != std::string::npos) return true;
            searched[i] = from + static_cast<off_t>(fresh.size());
        }
        return false;
    };
    for (;;) {
        if (printed()) return true;
        if (Clock::now() >= deadline) return false;
        // Sleeps at most 5 ms, and wakes at once if the child exits.
        if (wait_exit(Millis(std::min(ms_until(deadline), 5)))) return printed();
    }
}

void Process::signal(int sig)
{
    if (!reaped_) kill(-pid_, sig);
}

int Process::stop()
{
    if (reaped_) return status_.value_or(-1);
    auto group_gone = [&] { return !group_has_live_members(pid_); };
    if (!group_gone()) {
        kill(-pid_, SIGTERM);
        auto grace_end = Clock::now() + options_.term_grace;
        wait_exit(options_.term_grace);
        if (!poll_until(grace_end, group_gone)) {
            kill(-pid_, SIGKILL);
            poll_until(Clock::now() + std::chrono::seconds(5), group_gone);
        }
    }
    // Untrack before reaping: once the zombie is gone the group id may be reused.
    detail::untrack_group(group_slot_);
    group_slot_ = -1;
    if (wait_exit(std::chrono::seconds(5))) {
        int ignored;
        waitpid(pid_, &ignored, 0);
        reaped_ = true;
    }
    return status_.value_or(-1);
}

std::string Process::stdout_text() const { return read_fd(out_fd_); }
std::string Process::stderr_text() const { return read_fd(err_fd_); }

// ---- free functions -------------------------------------------------------------

std::string join(const std::vector<std::string>& argv)
{
    std::string s;
    for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
    return s;
}

RunResult run_in(const std::string& ns, const std::vector<std::string>& argv, Millis timeout)
{
    Process process(ns, argv, ProcessOptions{.stdout_path = {}, .stderr_path = {}, .term_grace = Millis(200)});
    RunResult result;
    auto status = process.wait_exit(timeout);
    result.timed_out = !status;
    int stopped = process.stop();
    result.exit_code = status ? *status : stopped;
    result.out = process.stdout_text();
    result.err = process.stderr_text();
    return result;
}

void in_netns(const std::string& ns, const std::function<void()>& fn)
{
    if (ns.empty()) {
        fn();
        return;
    }
    UniqueFd ns_fd(open(netns_path(ns).c_str(), O_RDONLY | O_CLOEXEC));
    if (ns_fd.get() < 0) throw sys_error("open netns " + ns);
    std::exception_ptr error;
    // setns(CLONE_NEWNET) changes only the calling thread: use a fresh one.
    std::thread worker([&] {
        try {
            if (setns(ns_fd.get(), CLONE_NEWNET) != 0) throw sys_error("setns " + ns);
            fn();
        } catch (...) {
            error = std::current_exception();
        }
    });
    worker.join();
    if (error) std::rethrow_exception(error);
}

namespace {

// True if a /proc/net/tcp{,6} table lists a LISTEN socket on port.
bool table_has_listener(const std::string& table, uint16_t port)
{
    std::istringstream lines(table);
    std::string line;
    std::getline(lines, line);  // header
    while (std::getline(lines, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state;
        if (!(fields >> slot >> local >> remote >> state)) continue;
        auto colon = local.rfind(':');
        if (colon == std::string::npos) continue;
        if (state == "0A" && std::stoul(local.substr(colon + 1), nullptr, 16) == port) return true;
    }
    return false;
}

}  // namespace

bool wait_tcp_listening(const std::string& ns, uint16_t port, Millis timeout)
{
    bool listening = false;
    auto deadline = Clock::now() + timeout;
    in_netns(ns, [&] {
        // thread-self: /proc/self/net would show the main thread's namespace.
        listening = poll_until(deadline, [&] {
            return table_has_listener(read_file("/proc/thread-self/net/tcp"), port) ||
                   table_has_listener(read_file("/proc/thread-self/net/tcp6"), port);
        });
    });
    return listening;
}

std::vector<pid_t> netns_pids(const std::string& ns)
{
    std::vector<pid_t> pids;
    NetnsScan scan{};
    scan.out = &pids;
    scan_netns(ns.c_str(), scan);
    return pids;
}

bool pid_alive(pid_t pid)
{
    char state = 0;
    pid_t pgrp = 0;
    return proc_stat(pid, state, pgrp) && state != 'Z' && state != 'X';
}

}  // namespace sluice::test
