#include "policy/policy_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <toml++/toml.h>
#include <tuple>
#include <vector>

#include "core/error.hpp"
#include "core/spelling.hpp"

namespace sluice::policy {

namespace {

constexpr const char* kFileHeader = "# sluice policy";
constexpr const char* kFileEnd = "# end of sluice policy";

// Lines of items and fields as the file gave them, to point errors at.
class LineIndex {
 public:
  void note(const std::string& kind, const std::string& item, const std::string& field, int line) {
    lines_[{kind, item, field}] = line;
  }
  int find(const std::string& kind, const std::string& item, const std::string& field) const {
    for (const auto& key : {std::tuple{kind, item, field}, std::tuple{kind, item, std::string()}})
      if (auto it = lines_.find(key); it != lines_.end()) return it->second;
    return 0;
  }

 private:
  std::map<std::tuple<std::string, std::string, std::string>, int> lines_;
};

int line_of(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

// Reads one table's fields, refusing unknown ones and wrong types.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string source, std::string kind, std::string item)
      : table_(table), source_(std::move(source)), kind_(std::move(kind)), item_(std::move(item)) {}

  [[noreturn]] void fail(int line, const std::string& problem) const {
    throw UsageError(source_ + ":" + std::to_string(line) + ": " + kind_ +
                     (item_.empty() ? "" : " '" + item_ + "'") + ": " + problem);
  }
  void set_item(std::string item) { item_ = std::move(item); }

  const toml::node* get(const std::string& key) {
    known_.insert(key);
    return table_.get(key);
  }

  std::optional<std::string> string(const std::string& key) {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_string()) fail(line_of(*n), key + " must be a string");
    return n->as_string()->get();
  }
  std::string required_string(const std::string& key) {
    auto s = string(key);
    if (!s) fail(line_of(table_), "missing " + key);
    return *s;
  }
  std::optional<int64_t> integer(const std::string& key, int64_t lo, int64_t hi) {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_integer()) fail(line_of(*n), key + " must be an integer");
    int64_t v = n->as_integer()->get();
    if (v < lo || v > hi)
      fail(line_of(*n), key + " " + std::to_string(v) + " is out of range (" + std::to_string(lo) + ".." +
                            std::to_string(hi) + ")");
    return v;
  }
  std::optional<double> number(const std::string& key) {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (n->is_integer()) return static_cast<double>(n->as_integer()->get());
    if (!n->is_floating_point()) fail(line_of(*n), key + " must be a number");
    return n->as_floating_point()->get();
  }
  std::optional<bool> boolean(const std::string& key) {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_boolean()) fail(line_of(*n), key + " must be true or false");
    return n->as_boolean()->get();
  }
  std::vector<std::pair<std::string, int>> strings(const std::string& key) {
    std::vector<std::pair<std::string, int>> out;
    const toml::node* n = get(key);
    if (!n) return out;
    if (!n->is_array()) fail(line_of(*n), key + " must be a list of strings");
    for (const auto& e : *n->as_array()) {
      if (!e.is_string()) fail(line_of(e), key + " must be a list of strings");
      out.emplace_back(e.as_string()->get(), line_of(e));
    }
    return out;
  }
  int line(const std::string& key) const {
    const toml::node* n = table_.get(key);
    return n ? line_of(*n) : line_of(table_);
  }
  // Run `parse` on a field's value, turning its UsageError into a located one.
  template <typename F>
  auto parse_field(const std::string& key, F&& parse) -> decltype(parse()) {
    try {
      return parse();
    } catch (const UsageError& e) {
      fail(line(key), e.what());
    }
  }
  void refuse_unknown() const {
    for (const auto& [key, node] : table_) {
      std::string field(key.str());
      if (known_.count(field)) continue;
      std::string meant = one_typo_from(field, {known_.begin(), known_.end()});
      fail(line_of(node), "unknown field '" + field + "'" + did_you_mean(meant));
    }
  }

 private:
  const toml::table& table_;
  std::string source_, kind_, item_;
  std::set<std::string> known_;
};

const toml::array* array_of_tables(const toml::table& root, const std::string& key, const std::string& source) {
  const toml::node* n = root.get(key);
  if (!n) return nullptr;
  const toml::array* a = n->as_array();
  if (!a || !a->is_array_of_tables())
    throw UsageError(source + ":" + std::to_string(line_of(*n)) + ": write services, tenants and limits as [[" + key +
                     "]] tables");
  return a;
}

Service read_service(TableReader& r, LineIndex& lines) {
  Service s;
  s.name = r.required_string("name");
  r.set_item(s.name);
  lines.note("service", s.name, "", r.line("name"));
  for (const char* f : {"name", "port", "proto", "addr", "rate", "burst", "per_source", "per_source_burst", "reject",
                        "dry_run", "http", "adaptive", "breaker", "timeout_ms", "cpu_threshold", "window_ms",
                        "window_buckets", "breaker_window_ms", "breaker_min_calls", "breaker_error_pct", "breaker_slow_pct",
                        "breaker_slow_ms", "breaker_open_ms", "breaker_probes", "sre_k", "cgroup"})
    lines.note("service", s.name, f, r.line(f));

  auto port = r.integer("port", 1, 65535);
  if (!port) r.fail(r.line("name"), "missing port");
  s.port = static_cast<uint16_t>(*port);
  if (auto v = r.string("proto")) s.proto = r.parse_field("proto", [&] { return parse_proto(*v, "proto"); });
  if (auto v = r.string("addr")) {
    s.addr = IpAddr::parse(*v);
    if (!s.addr) r.fail(r.line("addr"), "addr '" + *v + "' is not an IPv4 or IPv6 address");
  }
  if (auto v = r.string("rate")) {
    s.rate = r.parse_field("rate", [&] { return parse_rate(*v, "rate"); });
    s.burst = default_burst(s.rate);
  }
  if (auto v = r.integer("burst", 1, kMaxBurst)) {
    if (!s.rate.is_set()) r.fail(r.line("burst"), "burst needs a rate");
    s.burst = static_cast<uint32_t>(*v);
  }
  if (auto v = r.string("per_source")) {
    s.per_source = r.parse_field("per_source", [&] { return parse_rate(*v, "per_source"); });
    s.per_source_burst = default_burst(s.per_source);
  }
  if (auto v = r.integer("per_source_burst", 1, kMaxBurst)) {
    if (!s.per_source.is_set()) r.fail(r.line("per_source_burst"), "per_source_burst needs per_source");
    s.per_source_burst = static_cast<uint32_t>(*v);
  }
  if (auto v = r.string("reject")) s.reject = r.parse_field("reject", [&] { return parse_reject(*v, "reject"); });
  if (auto v = r.boolean("dry_run")) s.dry_run = *v;
  if (auto v = r.boolean("http")) s.http = *v;

  Tuning& t = s.tuning;
  if (auto v = r.string("adaptive")) t.adaptive = r.parse_field("adaptive", [&] { return parse_adaptive(*v, "adaptive"); });
  if (auto v = r.string("breaker")) t.breaker = r.parse_field("breaker", [&] { return parse_breaker(*v, "breaker"); });
  auto u32 = [&](const char* key, uint32_t& out) {
    if (auto v = r.integer(key, 0, UINT32_MAX)) out = static_cast<uint32_t>(*v);
  };
  u32("timeout_ms", t.timeout_ms);
  u32("cpu_threshold", t.cpu_threshold_pct);
  u32("window_ms", t.window_ms);
  u32("window_buckets", t.window_buckets);
  u32("breaker_window_ms", t.breaker_window_ms);
  u32("breaker_min_calls", t.breaker_min_calls);
  u32("breaker_error_pct", t.breaker_error_pct);
  u32("breaker_slow_pct", t.breaker_slow_pct);
  u32("breaker_slow_ms", t.breaker_slow_ms);
  u32("breaker_open_ms", t.breaker_open_ms);
  u32("breaker_probes", t.breaker_probes);
  if (auto v = r.number("sre_k")) t.sre_k = *v;
  if (auto v = r.string("cgroup")) t.cgroup = *v;
  r.refuse_unknown();
  return s;
}

Tenant read_tenant(TableReader& r, LineIndex& lines) {
  Tenant t;
  t.name = r.required_string("name");
  r.set_item(t.name);
  for (const char* f : {"name", "prefixes", "level"}) lines.note("tenant", t.name, f, r.line(f));
  lines.note("tenant", t.name, "", r.line("name"));
  for (const auto& [text, line] : r.strings("prefixes")) {
    try {
      t.prefixes.push_back(Cidr::parse(text));
    } catch (const UsageError& e) {
      r.fail(line, std::string("prefixes: ") + e.what());
    }
  }
  if (auto v = r.integer("level", 0, SL_LEVELS - 1)) t.level = static_cast<uint8_t>(*v);
  r.refuse_unknown();
  return t;
}

Limit read_limit(TableReader& r, LineIndex& lines) {
  Limit l;
  l.service = r.required_string("service");
  l.tenant = r.required_string("tenant");
  std::string item = l.service + "/" + l.tenant;
  r.set_item(item);
  for (const char* f : {"service", "tenant", "rate", "burst"}) lines.note("limit", item, f, r.line(f));
  lines.note("limit", item, "", r.line("service"));
  auto rate = r.string("rate");
  if (!rate) r.fail(r.line("service"), "missing rate");
  l.rate = r.parse_field("rate", [&] { return parse_rate(*rate, "rate"); });
  l.burst = default_burst(l.rate);
  if (auto v = r.integer("burst", 1, kMaxBurst)) l.burst = static_cast<uint32_t>(*v);
  r.refuse_unknown();
  return l;
}

// Whether `line` is one whole line of `text` (trailing blanks allowed).
bool has_line(std::string_view text, std::string_view line) {
  for (size_t at = text.find(line); at != std::string_view::npos; at = text.find(line, at + 1)) {
    if (at != 0 && text[at - 1] != '\n') continue;
    size_t end = text.find('\n', at);
    std::string_view tail = text.substr(at + line.size(), end == std::string_view::npos ? std::string_view::npos
                                                                                         : end - at - line.size());
    if (tail.find_first_not_of(" \t\r") == std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

Policy parse_policy(std::string_view text, const std::string& source) {
  // Files sluice writes begin with its header and end with its marker; one
  // that has the first and not the second was cut short (a copy, a full
  // disk) and may still be valid TOML describing less than was meant. Lines
  // an operator appends after the marker are an edit, not a truncation.
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos)
    throw UsageError(source + ": the file is empty (to apply an empty policy, write a file with a comment in it)");
  std::string_view header(kFileHeader);
  if (text.size() < header.size() && header.substr(0, text.size()) == text)
    throw UsageError(source + ": truncated: it ends inside sluice's first line");
  if (text.rfind(kFileHeader, 0) == 0 && !has_line(text, kFileEnd))
    throw UsageError(source + ": truncated: it was written by sluice but its last line, '" + std::string(kFileEnd) +
                     "', is missing (delete the first line if you cut it on purpose)");
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw UsageError(source + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }

  Policy p;
  LineIndex lines;
  TableReader top(root, source, "policy", "");
  for (const auto& [text_, line] : top.strings("deny")) {
    try {
      p.deny.push_back(Cidr::parse(text_));
    } catch (const UsageError& e) {
      top.fail(line, std::string("deny: ") + e.what());
    }
    lines.note("deny", p.deny.back().to_string(), "deny", line);
  }
  if (auto v = top.integer("control_stale_ms", 0, UINT32_MAX)) p.control_stale_ms = static_cast<uint32_t>(*v);
  lines.note("control", "", "stale_ms", top.line("control_stale_ms"));

  if (const toml::node* maps = top.get("maps")) {
    if (!maps->is_table()) top.fail(line_of(*maps), "[maps] must be a table");
    TableReader r(*maps->as_table(), source, "maps", "");
    auto u32 = [&](const char* key, uint32_t& out) {
      lines.note("maps", "", key, r.line(key));
      if (auto v = r.integer(key, 0, UINT32_MAX)) out = static_cast<uint32_t>(*v);
    };
    u32("max_services", p.maps.max_services);
    u32("max_tenants", p.maps.max_tenants);
    u32("source_entries", p.maps.source_entries);
    u32("flow_entries", p.maps.flow_entries);
    r.refuse_unknown();
  }

  auto each_table = [&](const char* key, const char* kind, auto&& read) {
    top.get(key);
    if (const toml::array* items = array_of_tables(root, key, source))
      for (const auto& node : *items) {
        TableReader r(*node.as_table(), source, kind, "");
        read(r);
      }
  };
  each_table("service", "service", [&](TableReader& r) { p.services.push_back(read_service(r, lines)); });
  each_table("tenant", "tenant", [&](TableReader& r) { p.tenants.push_back(read_tenant(r, lines)); });
  each_table("limit", "limit", [&](TableReader& r) { p.limits.push_back(read_limit(r, lines)); });
  top.refuse_unknown();

  try {
    validate(p);
  } catch (const PolicyError& e) {
    int line = lines.find(e.kind, e.item, e.field);
    throw UsageError(source + ":" + std::to_string(line) + ": " + e.what());
  }
  normalize(p);
  return p;
}

std::optional<std::string> read_policy_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::nullopt;
    throw SystemError("cannot read policy file " + path, errno);
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Policy load_policy_file(const std::string& path) {
  std::optional<std::string> text = read_policy_text(path);
  if (!text) throw SystemError("cannot read policy file " + path, ENOENT);
  return parse_policy(*text, path);
}

std::string to_toml(const Policy& policy) {
  Policy p = policy;
  normalize(p);
  const Policy defaults;
  const Tuning tuning_defaults;
  std::ostringstream out;
  out << kFileHeader << ". Apply with: sluice apply -f FILE\n";

  auto quoted = [](const std::string& s) { return "\"" + s + "\""; };
  auto list = [&](const std::vector<Cidr>& cidrs) {
    std::string s = "[";
    for (size_t i = 0; i < cidrs.size(); i++) s += (i ? ", " : "") + quoted(cidrs[i].to_string());
    return s + "]";
  };
  if (!p.deny.empty()) out << "deny = " << list(p.deny) << "\n";
  if (p.control_stale_ms != defaults.control_stale_ms) out << "control_stale_ms = " << p.control_stale_ms << "\n";

  if (p.maps != defaults.maps) {
    out << "\n[maps]\n";
    out << "max_services = " << p.maps.max_services << "\n";
    out << "max_tenants = " << p.maps.max_tenants << "\n";
    out << "source_entries = " << p.maps.source_entries << "\n";
    out << "flow_entries = " << p.maps.flow_entries << "\n";
  }

  for (const auto& s : p.services) {
    out << "\n[[service]]\nname = " << quoted(s.name) << "\nproto = " << quoted(to_string(s.proto))
        << "\nport = " << s.port << "\n";
    if (s.addr) out << "addr = " << quoted(s.addr->to_string()) << "\n";
    if (s.rate.is_set()) out << "rate = " << quoted(to_string(s.rate)) << "\nburst = " << s.burst << "\n";
    if (s.per_source.is_set())
      out << "per_source = " << quoted(to_string(s.per_source)) << "\nper_source_burst = " << s.per_source_burst
          << "\n";
    if (s.reject != RejectMode::Drop) out << "reject = " << quoted(to_string(s.reject)) << "\n";
    if (s.dry_run) out << "dry_run = true\n";
    if (s.http) out << "http = true\n";
    const Tuning& t = s.tuning;
    if (t.adaptive != tuning_defaults.adaptive) out << "adaptive = " << quoted(to_string(t.adaptive)) << "\n";
    if (t.breaker != tuning_defaults.breaker) out << "breaker = " << quoted(to_string(t.breaker)) << "\n";
    auto field = [&](const char* key, uint32_t value, uint32_t fallback) {
      if (value != fallback) out << key << " = " << value << "\n";
    };
    field("timeout_ms", t.timeout_ms, tuning_defaults.timeout_ms);
    field("cpu_threshold", t.cpu_threshold_pct, tuning_defaults.cpu_threshold_pct);
    field("window_ms", t.window_ms, tuning_defaults.window_ms);
    field("window_buckets", t.window_buckets, tuning_defaults.window_buckets);
    field("breaker_window_ms", t.breaker_window_ms, tuning_defaults.breaker_window_ms);
    field("breaker_min_calls", t.breaker_min_calls, tuning_defaults.breaker_min_calls);
    field("breaker_error_pct", t.breaker_error_pct, tuning_defaults.breaker_error_pct);
    field("breaker_slow_pct", t.breaker_slow_pct, tuning_defaults.breaker_slow_pct);
    field("breaker_slow_ms", t.breaker_slow_ms, tuning_defaults.breaker_slow_ms);
    field("breaker_open_ms", t.breaker_open_ms, tuning_defaults.breaker_open_ms);
    field("breaker_probes", t.breaker_probes, tuning_defaults.breaker_probes);
    if (t.sre_k != tuning_defaults.sre_k) {
      char k[32];
      snprintf(k, sizeof(k), "%.3f", t.sre_k);  // thousandths: what validate() allows
      out << "sre_k = " << k << "\n";
    }
    if (!t.cgroup.empty()) out << "cgroup = " << quoted(t.cgroup) << "\n";
  }
  for (const auto& t : p.tenants) {
    out << "\n[[tenant]]\nname = " << quoted(t.name) << "\n";
    if (!t.prefixes.empty()) out << "prefixes = " << list(t.prefixes) << "\n";
    if (t.level != kDefaultLevel) out << "level = " << int(t.level) << "\n";
  }
  for (const auto& l : p.limits)
    out << "\n[[limit]]\nservice = " << quoted(l.service) << "\ntenant = " << quoted(l.tenant)
        << "\nrate = " << quoted(to_string(l.rate)) << "\nburst = " << l.burst << "\n";
  out << "\n" << kFileEnd << "\n";
  return out.str();
}

namespace {

// Creates the missing directories down to `dir`: the last 0700 (only root
// reads policy), those above it 0755, whatever the umask.
void make_directories(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::vector<fs::path> missing;
  for (fs::path d = dir; !d.empty() && !fs::exists(d); d = d.parent_path()) {
    missing.push_back(d);
    if (d == d.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    mode_t mode = *it == dir ? 0700 : 0755;
    if (mkdir(it->c_str(), mode) != 0 && errno != EEXIST) throw SystemError("cannot create " + it->string(), errno);
    chmod(it->c_str(), mode);  // mkdir's mode passes through the umask
  }
}

// Temporary files of saves that were killed before their rename.
void remove_abandoned_temporaries(const std::filesystem::path& target) {
  namespace fs = std::filesystem;
  std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    char* end = nullptr;
    long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
    if (pid > 0 && *end == '\0' && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove(e.path(), ec);
  }
}

}  // namespace

PendingPolicyFile::PendingPolicyFile(std::string path, const std::string& text) : path_(std::move(path)) {
  namespace fs = std::filesystem;
  fs::path target(path_);
  dir_ = target.has_parent_path() ? target.parent_path().string() : ".";
  make_directories(dir_);
  remove_abandoned_temporaries(target);
  tmp_ = path_ + ".tmp." + std::to_string(getpid());
  int fd = open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw SystemError("cannot write " + tmp_, errno);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      int err = errno;
      close(fd);
      unlink(tmp_.c_str());
      throw SystemError("cannot write " + tmp_, err);
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    int err = errno;
    unlink(tmp_.c_str());
    throw SystemError("cannot write " + tmp_, err);
  }
}

PendingPolicyFile::~PendingPolicyFile() {
  if (!committed_) unlink(tmp_.c_str());
}

void PendingPolicyFile::commit() {
  if (rename(tmp_.c_str(), path_.c_str()) != 0) throw SystemError("cannot replace " + path_, errno);
  committed_ = true;
  int dfd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);  // make the rename itself durable
    close(dfd);
  }
}

void save_policy_text(const std::string& path, const std::string& text) { PendingPolicyFile(path, text).commit(); }

void save_policy_file(const std::string& path, const Policy& policy) { save_policy_text(path, to_toml(policy)); }

}  // namespace sluice::policy
