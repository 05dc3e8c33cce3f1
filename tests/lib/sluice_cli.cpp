#include "sluice_cli.hpp"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sluice::test {

namespace {

namespace fs = std::filesystem;

// "sluice-<tag>-", the start of every name of that tag.
std::string name_prefix(const std::string& tag)
{
    if (tag.empty() || !std::all_of(tag.begin(), tag.end(), [](unsigned char c) { return std::isalnum(c); }))
        throw std::invalid_argument("sluice-<tag>- names: tag '" + tag + "' is not letters and digits");
    return "sluice-" + tag + "-";
}

std::string pin_prefix(const std::string& tag) { return "/sys/fs/bpf/" + name_prefix(tag); }
std::string scratch_prefix(const std::string& tag) { return "/tmp/" + name_prefix(tag); }

std::atomic<int> g_next_pin_dir{0};

// The pid in "<prefix><pid>-..." names; 0 if the name has another form.
pid_t owner_of(const std::string& name, const std::string& prefix)
{
    if (name.rfind(prefix, 0) != 0) return 0;
    size_t i = prefix.size(), start = i;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
    if (i == start || i - start > 9 || i >= name.size() || name[i] != '-') return 0;
    return static_cast<pid_t>(std::stol(name.substr(start, i - start)));
}

bool process_gone(pid_t pid) { return pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH; }

// `sluice reset` for one pin directory; the policy file is irrelevant to it.
RunResult reset_pins(const std::string& pin_dir)
{
    return run_in("", {"/usr/bin/env", "-u", "SLUICE_DEBUG", "SLUICE_PIN_DIR=" + pin_dir,
                       "SLUICE_POLICY_FILE=/nonexistent/sluice-e2e-policy.toml", sluice_binary(), "reset"},
                  std::chrono::seconds(30));
}

}  // namespace

std::string build_dir()
{
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) throw std::runtime_error("cannot read /proc/self/exe: " + ec.message());
    // <build>/tests/<binary>, <build>/bench/<binary>
    return exe.parent_path().parent_path().string();
}

std::string sluice_binary() { return build_dir() + "/sluice"; }

std::string tool_binary(const std::string& name) { return build_dir() + "/tools/" + name; }

ScratchDir::ScratchDir(const std::string& tag)
{
    std::string tmpl = scratch_prefix(tag) + std::to_string(getpid()) + "-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    path_ = tmpl;
}

ScratchDir::~ScratchDir()
{
    std::error_code ec;
    fs::remove_all(path_, ec);
}

std::string ScratchDir::write(const std::string& name, const std::string& text) const
{
    std::string p = file(name);
    std::ofstream out(p, std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw std::runtime_error("cannot write " + p);
    return p;
}

bool contains(const std::string& haystack, const std::string& needle)
{
    return haystack.find(needle) != std::string::npos;
}

bool one_line(const std::string& s)
{
    return !s.empty() && s.back() == '\n' && std::count(s.begin(), s.end(), '\n') == 1;
}

std::string read_file(const std::string& path)
{
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::vector<std::string> remove_stale_installations(const std::string& tag)
{
    const std::string pins = pin_prefix(tag), scratch = scratch_prefix(tag);
    std::vector<std::string> removed;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/sys/fs/bpf", ec)) {
        std::string path = entry.path().string();
        pid_t pid = owner_of(path, pins);
        if (pid <= 0 || !process_gone(pid)) continue;
        reset_pins(path);  // detaches what it can; the namespaces may be gone already
        std::error_code rm;
        fs::remove_all(path, rm);
        removed.push_back(path);
    }
    for (const auto& entry : fs::directory_iterator("/tmp", ec)) {
        std::string path = entry.path().string();
        pid_t pid = owner_of(path, scratch);
        if (pid <= 0 || !process_gone(pid)) continue;
        std::error_code rm;
        fs::remove_all(path, rm);
        removed.push_back(path);
    }
    return removed;
}

SluiceCli::SluiceCli(const std::string& tag, const std::string& binary) : scratch_(tag), binary_(binary)
{
    remove_stale_installations(tag);
    pin_dir_ = pin_prefix(tag) + std::to_string(getpid()) + "-" + std::to_string(g_next_pin_dir++);
    // Left over from an earlier test of this process that could not clean up.
    if (fs::exists(pin_dir_)) {
        reset_pins(pin_dir_);
        std::error_code ec;
        fs::remove_all(pin_dir_, ec);
    }
    policy_file_ = scratch_.file("policy.toml");
}

SluiceCli::~SluiceCli()
{
    try {
        reset_pins(pin_dir_);
    } catch (...) {
        // Removing the pins below still frees the maps.
    }
    std::error_code ec;
    fs::remove_all(pin_dir_, ec);
}

std::vector<std::string> SluiceCli::command(const std::vector<std::string>& args) const
{
    // Through env(1): the child gets exactly these two settings, whatever the
    // test runner's environment says.
    std::vector<std::string> argv = {"/usr/bin/env", "-u", "SLUICE_DEBUG", "SLUICE_PIN_DIR=" + pin_dir_,
                                     "SLUICE_POLICY_FILE=" + policy_file_, binary_};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

void SluiceCli::reset() const
{
    if (fs::exists(pin_dir_)) must({"reset"});
    std::error_code ec;
    fs::remove(policy_file_, ec);
}

RunResult SluiceCli::run(const std::vector<std::string>& args, Millis timeout) const
{
    return run_in("", command(args), timeout);
}

RunResult SluiceCli::run_as(uid_t uid, gid_t gid, const std::vector<std::string>& args, Millis timeout) const
{
    std::vector<std::string> argv = {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid),
                                     "--regid=" + std::to_string(gid), "--clear-groups", "--"};
    auto rest = command(args);
    argv.insert(argv.end(), rest.begin(), rest.end());
    return run_in("", argv, timeout);
}

std::string SluiceCli::must(const std::vector<std::string>& args) const
{
    RunResult r = run(args);
    if (!r.ok())
        throw std::runtime_error("`sluice " + join(args) + "` failed (" +
                                 (r.timed_out ? "timed out" : "exit " + std::to_string(r.exit_code)) + "): " + r.err);
    return r.out;
}

nlohmann::json SluiceCli::json(const std::vector<std::string>& args) const
{
    std::string out = must(args);
    try {
        return nlohmann::json::parse(out);
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error("`sluice " + join(args) + "` printed no JSON (" + e.what() + "): " + out);
    }
}

}  // namespace sluice::test
