// The sluice command line: the command tree, parsing, and how failures end.
// Every failure ends as one line on stderr and an exit code: 2 for a command
// the operator can fix (nothing was changed), 1 when the system refused.
#include "cli/app.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/spelling.hpp"
#include "kernel/bpffs.hpp"
#include "kernel/log.hpp"
#include "policy/policy_file.hpp"

namespace {

constexpr const char* kDescription =
    "sluice protects unmodified services from overload. XDP programs shed excess new connections and\n"
    "datagrams in the kernel, per service and tenant, before they cost the service anything; 'sluice run'\n"
    "learns each service's capacity from its latency and in-flight work and adapts the limits.";

constexpr const char* kFooter =
    "A 5-minute tour:\n"
    "  sluice attach eth0                                   # shed in XDP on eth0\n"
    "  sluice service add web --port 80 --rate 1000/s --burst 100 --reject rst\n"
    "  sluice tenant add partners --prefix 198.18.7.0/24 --level 0\n"
    "  sluice limit set web partners --rate 5000/s\n"
    "  sluice deny add 198.18.66.0/24\n"
    "  sluice stats --watch                                 # admitted and shed, live\n"
    "  sluice export > policy.toml; sluice apply -f policy.toml\n"
    "  sluice detach eth0                                   # traffic flows unchecked at once\n"
    "\n"
    "Every command takes --help. Policy changes are applied atomically and saved to the policy file.\n"
    "Environment: SLUICE_PIN_DIR, SLUICE_POLICY_FILE and SLUICE_DEBUG=1 stand for the options --pin-dir,\n"
    "--policy-file and --verbose (above).";

// The subcommand of `parent` that an unknown `word` most likely meant: a
// common synonym (delete for del) or one typo from one, or a name one typo
// away. Empty if none.
std::string likely_command(const CLI::App& parent, const std::string& word) {
  static const std::map<std::string, std::string> kSynonyms = {
      {"delete", "del"}, {"remove", "del"}, {"rm", "del"},     {"ls", "list"},  {"show", "list"},
      {"create", "add"}, {"new", "add"},    {"update", "set"}, {"change", "set"}, {"modify", "set"}};
  std::vector<std::string> names;
  for (const CLI::App* sub : parent.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  auto known = [&](const std::string& name) { return std::find(names.begin(), names.end(), name) != names.end(); };
  for (const auto& [synonym, name] : kSynonyms)
    if ((word == synonym || sluice::one_typo_apart(word, synonym)) && known(name)) return name;
  return sluice::one_typo_from(word, names);
}

// The subcommand chain the user typed, e.g. "service add", for hints.
std::string command_path(const CLI::App& app) {
  std::string path;
  const CLI::App* cur = &app;
  while (true) {
    auto subs = cur->get_subcommands();
    if (subs.empty()) break;
    cur = subs.front();
    path += " " + cur->get_name();
  }
  return path;
}

}  // namespace

namespace sluice::cli {

int run_cli(int argc, const char* const* argv, Backend* backend) {
  CLI::App app(kDescription, "sluice");
  app.footer(kFooter);
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand

  GlobalOptions g;
  g.backend = backend;
  g.pin_dir = kernel::kDefaultPinDir;
  g.policy_file = policy::kDefaultPolicyFile;
  app.add_option("-n,--netns", g.netns, "Act on devices in this network namespace (as 'ip -n'); pins stay on the host.");
  app.add_option("--pin-dir", g.pin_dir, "Where sluice pins its maps.")->envname("SLUICE_PIN_DIR")->capture_default_str();
  app.add_option("--policy-file", g.policy_file, "Where policy is saved, to restore after a reboot.")
      ->envname("SLUICE_POLICY_FILE")
      ->capture_default_str();
  kernel::capture_library_logs(false);
  app.add_flag_function(
         "-v,--verbose",
         [&g](int64_t) {
           g.verbose = true;
           kernel::capture_library_logs(true);
         },
         "Show libbpf/libxdp messages and more detail.")
      ->envname("SLUICE_DEBUG");
  app.set_version_flag("--version", "sluice 0.1");

  add_attach_commands(app, g);
  add_policy_commands(app, g);
  add_stats_command(app, g);
  add_run_command(app, g);

  try {
    app.parse(argc, argv);
    return 0;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string hint = command_path(app);
    CLI::App* deepest = &app;
    while (!deepest->get_subcommands().empty()) deepest = deepest->get_subcommands().front();
    std::vector<std::string> rest = deepest->remaining();
    if (rest.empty()) rest = app.remaining();
    if (!rest.empty() && deepest->get_require_subcommand_min() > 0) {
      std::cerr << "sluice" << hint << ": unknown command '" << rest.front() << "'"
                << sluice::did_you_mean(likely_command(*deepest, rest.front())) << " (see: sluice" << hint
                << " --help)\n";
    } else {
      std::cerr << "sluice" << hint << ": " << e.what() << " (see: sluice" << hint << " --help)\n";
    }
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace sluice::cli
