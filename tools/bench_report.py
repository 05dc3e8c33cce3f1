#!/usr/bin/env python3
"""Turn sluice_bench's results.json into docs/benchmarks.md and plots.

    tools/bench_report.py --results R.json --docs docs --mode quick|full \
        --command CMD --bench-command CMD --started ISO --elapsed S \
        --load-before L --load-after L --source REV

Writes DOCS/benchmarks.md, DOCS/bench/results.json (the results with a
"meta" section: machine, date, commands) and DOCS/bench/*.png (gnuplot).
Standard library only. Every number in the report comes from the results;
the text around them only explains how they were measured.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile


# ---- machine -------------------------------------------------------------------

def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def cpuinfo_field(cpuinfo, name):
    return next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines()
                 if l.split(":", 1)[0].strip() == name), "")


def hypervisor(cpuinfo):
    """The hypervisor's name as the guest kernel logged it at boot, else what
    the CPU flags say. Packet rates on a VM depend on how the host places and
    switches its vCPUs, so a run records what it ran under."""
    if os.path.exists("/sys/hypervisor/type"):
        return read("/sys/hypervisor/type").strip()
    try:
        log = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
        found = re.search(r"Hypervisor detected: (.+)", log)
        if found:
            return found.group(1).strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    flags = cpuinfo_field(cpuinfo, "flags").split()
    return "unnamed (the CPU flags say a hypervisor)" if "hypervisor" in flags else "none (bare metal)"


def threads_per_core():
    siblings = read("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list").strip()
    count = 0
    for part in filter(None, siblings.split(",")):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count or None


def hardware_pmu():
    """Whether perf has CPU counters (a core PMU) here."""
    devices = "/sys/bus/event_source/devices"
    names = os.listdir(devices) if os.path.isdir(devices) else []
    return any(n in ("cpu", "cpu_core", "cpu_atom") or n.startswith("armv") for n in names)


def mitigations():
    """The CPU vulnerability mitigations that cost the data path time on every
    kernel entry or indirect branch (page-table isolation, Spectre v2)."""
    out = {}
    for name in ("meltdown", "spectre_v2"):
        state = read(f"/sys/devices/system/cpu/vulnerabilities/{name}").strip()
        if state:
            out[name] = state
    return out


def machine():
    cpuinfo = read("/proc/cpuinfo")
    model = cpuinfo_field(cpuinfo, "model name") or "unknown"
    mem_kb = next((int(l.split()[1]) for l in read("/proc/meminfo").splitlines() if l.startswith("MemTotal")), 0)
    git = "unknown"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        git = head + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "cpu_model": model,
        "cpu_id": "family {} model {} stepping {}".format(cpuinfo_field(cpuinfo, "cpu family") or "?",
                                                         cpuinfo_field(cpuinfo, "model") or "?",
                                                         cpuinfo_field(cpuinfo, "stepping") or "?"),
        "cpus": os.cpu_count(),
        "threads_per_core": threads_per_core(),
        "hypervisor": hypervisor(cpuinfo),
        "hardware_pmu": hardware_pmu(),
        "mitigations": mitigations(),
        "bpf_jit": {"enable": read("/proc/sys/net/core/bpf_jit_enable").strip(),
                    "harden": read("/proc/sys/net/core/bpf_jit_harden").strip()},
        "kernel": platform.release(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "git": git,
        "nft": first_line(["nft", "--version"]),
        "nginx": first_line(["nginx", "-v"]),
    }


def machine_lines(m):
    """The machine as recorded with the results (older results lack some fields)."""
    cpu = f"- CPU: {m['cpu_model']}"
    if m.get("cpu_id"):
        cpu += f" ({m['cpu_id']})"
    cpu += f", {m['cpus']} CPUs"
    if m.get("threads_per_core"):
        cpu += f" ({m['threads_per_core']} thread per core as the kernel sees them)"
    cpu += f"; {m['memory_gib']} GiB; kernel {m['kernel']}"
    if "hz_note" in m:  # results recorded before the probe below existed
        return [cpu + f"; {m['hz_note']}"]
    lines = [cpu]
    lines.append(f"- Hypervisor: {m['hypervisor']}. Hardware PMU: "
                 + ("yes" if m["hardware_pmu"] else "none (perf counters unsupported)")
                 + "; busy times come from the scheduler's clock either way.")
    mit = m.get("mitigations", {})
    if mit:
        lines.append("- Mitigations: " + "; ".join(f"{k}: {v}" for k, v in mit.items()))
    jit = m.get("bpf_jit", {})
    if jit:
        lines.append(f"- BPF JIT: net.core.bpf_jit_enable={jit.get('enable') or '?'}, "
                     f"bpf_jit_harden={jit.get('harden') or '?'}")
    return lines


def first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


# ---- formatting -------------------------------------------------------------------

def num(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, float) and abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ms(us):
    return "–" if not us else f"{us / 1000:.1f}"


def pct(v):
    return f"{100 * v:.0f}%"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def code(text, lang=""):
    return f"```{lang}\n{text.rstrip()}\n```"


# ---- plots ------------------------------------------------------------------------

class Plotter:
    def __init__(self, outdir):
        self.outdir = outdir
        self.tmp = tempfile.mkdtemp(prefix="sluice-bench-plot-")
        self.made = []
        self.ok = shutil.which("gnuplot") is not None

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, name, script, data):
        if not self.ok:
            return None
        for fname, text in data.items():
            with open(os.path.join(self.tmp, fname), "w") as f:
                f.write(text)
        out = os.path.join(self.outdir, name)
        full = (f'set terminal pngcairo size 900,480 font "DejaVu Sans,10"\nset output "{out}"\n'
                f'cd "{self.tmp}"\nset grid ytics\n' + script)
        r = subprocess.run(["gnuplot"], input=full, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"bench_report: gnuplot failed for {name}: {r.stderr.strip()}")
            return None
        self.made.append(name)
        return name

    def bars(self, name, title, rows, ylabel):
        """rows: [(label, value, min, max)]"""
        data = "\n".join(f'"{l}" {v} {lo} {hi}' for l, v, lo, hi in rows) + "\n"
        script = f"""
set title "{title}"
set ylabel "{ylabel}"
set logscale y
set yrange [0.05:*]
set style fill solid 0.6 border -1
set boxwidth 0.6
set xtics rotate by -20 noenhanced
set key off
plot "bars.dat" using 0:2:xtic(1) with boxes lc rgb "#4477aa", \\
     "" using 0:2:3:4 with yerrorbars lc rgb "black" pt 0, \\
     "" using 0:($4*1.3):(sprintf("%.2f", $2)) with labels
"""
        return self.run(name, script, {"bars.dat": data})

    def curves(self, name, title, ylabel, series, logy=False, extra=""):
        """series: [(label, [(x, y)])]"""
        data = {}
        plots = []
        for i, (label, points) in enumerate(series):
            fname = f"s{i}.dat"
            data[fname] = "\n".join(f"{x} {y}" for x, y in points if y is not None) + "\n"
            plots.append(f'"{fname}" using 1:2 with linespoints lw 2 pt {i + 5} title "{label}"')
        script = f"""
set title "{title}"
set xlabel "offered load (x capacity)"
set ylabel "{ylabel}"
set logscale x
set xrange [0.4:25]
set xtics (0.5, 1, 2, 5, 10, 20)
{"set logscale y" if logy else "set yrange [0:*]"}
set key top left noenhanced
{extra}
plot {", ".join(plots)}
"""
        return self.run(name, script, data)


# ---- sections -----------------------------------------------------------------------

def each_target(results):
    """(benchmark, target) for every target the run recorded."""
    for name, section in results.items():
        if isinstance(section, dict):
            for t in section.get("targets", []):
                yield name, t


def wanted(t):
    return (("≤ " if t.get("at_most") else "≥ ") + num(t["target"], 2)) if "target" in t else ""


def measured(t):
    v = t.get("ratio", t.get("value"))
    return num(v, 3) if isinstance(v, (int, float)) else "–"


def target_rows(results):
    rows = []
    for name, t in each_target(results):
        if t.get("not_judged"):
            verdict = ("met" if t["met"] else "not met") + ", to compare (not judged)"
        elif t.get("compare_only"):
            verdict = ("met" if t["met"] else "not met") + ", to compare"
        else:
            verdict = "**met**" if t["met"] else "not met"
        rows.append([t["what"], measured(t), wanted(t) or "(as stated)", verdict, target_context(t), f"`{name}`"])
    return rows


def target_context(t):
    """What bounds a target on this machine, where the run recorded it."""
    ref = t.get("reference")
    cost = ""
    if "ns" in t and "bare_ns" in t:
        cost = f"{num(t['ns'], 1)} ns vs bare {num(t['bare_ns'], 1)} ns: +{num(t['ns'] - t['bare_ns'], 1)} ns"
    if ref:
        what = ref.get("what", "reads the headers, drops")  # older results name only the shed-rate reference
        text = f"`{ref['case']}` ({what}): {num(ref['ratio'], 3)}"
        if cost and "ns" in ref:
            text += f" ({num(ref['ns'], 1)} ns); sluice {cost}"
        return text
    if cost:
        return cost
    by_second = t.get("by_second") or []
    later = [x for x in by_second[1:] if x is not None]
    if by_second and by_second[0] is not None and later:
        return (f"the same ratio in the first second of the load: {num(by_second[0], 2)}, in the seconds after: "
                f"{num(statistics.median(later), 2)} (median)")
    return ""


def packet_cost_section(sec):
    out = ["## 1. Per-packet cost (`packet_cost`)", "", sec.get("method", ""), ""]
    rows = [[f"`{r['case']}`", r["what"], num(r["ns"], 1), num(r["ratio"], 2)] for r in sec.get("rows", [])]
    out.append(table(["case", "what", "ns per packet (median)", "× bare XDP_DROP"], rows))
    ns = {r["case"]: r["ns"] for r in sec.get("rows", [])}
    if all(k in ns for k in ("bare_xdp_drop", "admitted", "shed", "least_work_admitted", "least_work_shed")):
        bare = ns["bare_xdp_drop"]
        least_shed, least_admitted = ns["least_work_shed"] / bare, ns["least_work_admitted"] / bare
        if least_shed > 2.0 and least_admitted > 2.5:
            verdict = (f"here a bare drop costs only {num(bare, 1)} ns, so the work itself takes more than the "
                       f"targets leave")
        else:
            verdict = "the work itself fits within at least one of them here"
        out += ["",
                f"- The yardsticks `least_work_shed` and `least_work_admitted` run bpf/least_work.bpf.c on the maps "
                f"of the same data paths, with the same policy and the same frame: it counts the packet, reads the "
                f"policy root, walks the source table, reads the port entry, counts the pair's verdict and runs the "
                f"GCRA on the pair's bucket, and does nothing else. It cost {num(least_shed, 2)}× and "
                f"{num(least_admitted, 2)}× the bare drop (shed, admitted), where the targets ask 2.0× and 2.5× "
                f"of sluice: {verdict}.",
                f"- sluice took {num(ns['shed'] - ns['least_work_shed'], 1)} ns more than the yardstick to shed and "
                f"{num(ns['admitted'] - ns['least_work_admitted'], 1)} ns more to admit: the price of what the "
                f"yardstick leaves out (VLAN tags, IPv6, IP options and fragments, the hand-over to the complete "
                f"judge, per-source and per-tenant rates, deny counters, the tests' switches for trace records "
                f"and an injected clock)."]
    return out


def controller_cost_section(sec):
    out = ["## 5. Controller cost (`controller_cost`)", "", "Method: " + sec.get("method", ""), ""]
    rows = [["policy", f"{sec['services']} services × {sec['tenants']:,} tenants"]]
    setup = "making the maps and applying that policy"
    if "connections" in sec:
        rows.append(["open connections in the flow table", f"{sec['connections']:,}"])
        setup = "making the maps, applying that policy and opening the connections"
    rows += [["CPU time of `sluice run`, share of one core", f"{100 * sec['cpu_share_of_one_core']:.1f}%"],
             [setup, f"{sec['policy_apply_s']:.2f} s"]]
    out.append(table(["", ""], rows))
    return out


def shed_table(rows):
    body = []
    for r in rows:
        body.append([f"`{r['case']}`", num(r["mpps_per_core"]), f"{num(r['min_mpps_per_core'])} – {num(r['max_mpps_per_core'])}",
                     num(r["ratio_to_bare_xdp_drop"], 3), num(r["throughput_mpps"]), pct(r["busy_fraction"]),
                     num(r["offered_mpps"]), r["what"]])
    return table(["case", "Mpps per core-second (median)", "min – max", "× bare XDP drop (per-round median)",
                  "shed Mpps (wall)", "receive core busy", "offered Mpps", "what"], body)


def row_of(sec, name):
    return next((r for r in sec.get("rows", []) if r["case"] == name), None)


def shed_section(sec, plotter, title, plot_name, plot_title, intro):
    out = [title, "", intro, "", "Method: " + sec.get("method", ""), ""]
    if sec.get("hook_method"):
        out += ["Time in the XDP hook: " + sec["hook_method"] + ".", ""]
    rows = sec.get("rows", [])
    if rows:
        out.append(shed_table(rows))
        out.append("")
        png = plotter.bars(plot_name, plot_title,
                           [(r["case"], r["mpps_per_core"], r["min_mpps_per_core"], r["max_mpps_per_core"]) for r in rows],
                           "Mpps shed per second of receive-core time (log)")
        if png:
            out += [f"![{plot_title}](bench/{png})", ""]
    return out


# The header-reading program at this fraction of the bare drop or more: reading the frame cost nothing.
FRAME_READ_FREE = 0.85


def generator_text(sec):
    """How the run made its frames: live frames, or the pump where the kernel refused them."""
    if sec.get("generator") == "pump":
        why = sec.get("why_pump", "the kernel refused live frames")
        return ("driven like a NIC as far as this run allows. " +
                ("The kernel refused BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES, so the frames come"
                 if "refused" in why else f"Not live frames: {why}, the frames come") +
                " from the **XDP pump** (`pump` in "
                "bpf/traffic_gen.bpf.c): a veth loop in the client netns whose native XDP program, on CPU 0, "
                "broadcasts each frame into the client veth and, cloned, back into the loop. The client veth's peer "
                "receives each frame in NAPI as an xdp_frame: no socket, no skb, no copy on the receiving core. But "
                "where live frames go back to a page pool, each of these frames is a page that the receiving core "
                "frees. Every case pays that, so every ratio to the bare drop is nearer 1 than with live frames, "
                "and issue 4's shed-rate and SYN targets, which are set for live frames, are shown to compare, not "
                "judged.")
    return ("driven like a NIC: a generator injects frames into a veth with BPF_PROG_TEST_RUN + "
            "BPF_F_TEST_XDP_LIVE_FRAMES (its XDP program bpf_redirect()s each frame into the client veth, whose "
            "peer receives it in NAPI as an xdp_frame: no socket, no skb, no copy on the way in, unlike "
            "socket-originated traffic, which native XDP on veth would copy).")


def shed_notes(sec, what_floor):
    """Observations computed from the numbers: where the gap to the bare drop comes from."""
    out = []
    bare, read, sl = row_of(sec, "bare_xdp_drop"), row_of(sec, "xdp_read_drop"), row_of(sec, "sluice")
    if bare and read and sl:
        vs_read = sec.get("sluice_vs_read_drop")
        spread = read["max_mpps_per_core"] / read["min_mpps_per_core"] if read["min_mpps_per_core"] else 0
        touch_costs = read["ratio_to_bare_xdp_drop"] < FRAME_READ_FREE
        extra_ns = 1e3 / sl["mpps_per_core"] - 1e3 / bare["mpps_per_core"] if sl["mpps_per_core"] else 0
        out.append(
            f"- `xdp_read_drop` does nothing but read the {what_floor} headers and drop: it reached "
            f"{num(read['ratio_to_bare_xdp_drop'], 2)}× bare XDP drop (per-round median). sluice reached "
            f"{num(vs_read, 2)}× `xdp_read_drop` in the same rounds, and took {num(extra_ns, 0)} ns of the "
            "receiving core per packet more than the bare drop (from the medians).")
        if touch_costs:
            out.append(
                "- Here reading the first bytes of the frame cost a lot: the generator wrote the frame on the other "
                "CPU, and the receiving CPU has to fetch that cache line (as it would fetch a frame a NIC had just "
                "written by DMA; `xdp_drop` reads only the frame descriptor). That fetch bounds every XDP filter "
                "that looks at the packet.")
        else:
            out.append(
                "- Here reading the first bytes of the frame cost nothing measurable, so the gap to the bare drop "
                "comes from running sluice: its program's own work, and what that work costs the rest of the "
                "receive path.")
        if "hook_ns_per_packet" in sl and "hook_ns_per_packet" in bare:
            out.append(hook_note(bare, read, sl, extra_ns))
        if spread > 1.5:
            out.append(
                f"- The cost of touching the frame was not the same in every round (`xdp_read_drop` ranged "
                f"{num(read['min_mpps_per_core'])}–{num(read['max_mpps_per_core'])} Mpps): on this machine there are "
                "phases in which a header-reading program runs as fast as the bare drop (on a VM, presumably while "
                "the hypervisor runs the two vCPUs on cores that share a cache), and phases in which it runs at less "
                "than half of it. Medians of interleaved rounds and per-round ratios keep the comparison fair; the "
                "min–max column shows the phases.")
        phases = phase_note(read, sl)
        if phases:
            out.append(phases)
        nft, app, cookies = row_of(sec, "nft_limit_rate"), row_of(sec, "udp_app"), row_of(sec, "syn_cookies")
        ceil = []
        for other, label in ((nft, "`nft_limit_rate`"), (app, "`udp_app`"), (cookies, "`syn_cookies`")):
            if other and other["mpps_per_core"]:
                ceil.append(f"{num(read['mpps_per_core'] / other['mpps_per_core'], 1)}× {label}")
        if ceil:
            out.append("- For scale, the program that only reads the headers and drops reached " + ", ".join(ceil) +
                       " (ratios of medians): no XDP filter that looks at the packet does better on this setup.")
        for name, ratio in sec.get("variants_vs_sluice", {}).items():
            out.append(f"- Variant `{name}` (`--sluice-variant`, another build measured in the same rounds) reached "
                       f"{num(ratio, 3)}× this build's sluice (per-round median).")
    return out


def phase_note(read, sl, fast=FRAME_READ_FREE):
    """sluice's ratio to the bare drop apart in the rounds where reading the frame was free and where it was not.

    `xdp_read_drop` differs from the bare drop only in reading the headers, so its ratio within a round tells
    the round's phase."""
    pairs = list(zip(read.get("samples_ratio", []), sl.get("samples_ratio", [])))
    free = [s for r, s in pairs if r >= fast]
    costly = [s for r, s in pairs if r < fast]
    if not free or not costly:
        return None
    return (f"- Split by phase: in the {len(free)} round(s) where `xdp_read_drop` ran at ≥ {fast}× the bare drop "
            f"(reading the frame was free), sluice reached {num(statistics.median(free), 2)}× the bare drop "
            f"(median); in the other {len(costly)} round(s), {num(statistics.median(costly), 2)}×.")


def hook_note(bare, read, sl, extra_ns):
    """How much of sluice's extra cost per packet (extra_ns, from the throughput rounds) its program accounts for,
    from the pass with the kernel's BPF statistics on."""
    inside = sl["hook_ns_per_packet"] - bare["hook_ns_per_packet"]
    read_hook = f", the header-reading program {num(read['hook_ns_per_packet'], 1)} ns" \
        if "hook_ns_per_packet" in read else ""
    text = (f"- Time in the XDP hook per packet, from the kernel's BPF statistics in a pass of their own (they add "
            f"two clock reads to every run, so only differences count): bare drop {num(bare['hook_ns_per_packet'], 1)} "
            f"ns{read_hook}, sluice {num(sl['hook_ns_per_packet'], 1)} ns: sluice's program took {num(inside, 0)} ns "
            "per packet more than the bare drop (`packet_cost` above measures the same work with hot caches).")
    if extra_ns - inside > 0.25 * extra_ns:
        text += (f" Of the {num(extra_ns, 0)} ns per packet more that the receiving core spent in the throughput "
                 f"rounds, the statistics did not see the other {num(extra_ns - inside, 0)} ns. They undercount loads: "
                 "a reference program that loads a few map lines nothing writes loses far more rate than its "
                 "hook time shows (docs/architecture.md, \"What the hook time does not show\").")
    elif inside - extra_ns > 0.25 * inside:
        text += (f" In the throughput rounds the receiving core spent only {num(extra_ns, 0)} ns per packet more: "
                 "the statistics' pass ran after the rounds, and the cost of reading a frame can change between "
                 "them.")
    else:
        text += (f" In the throughput rounds the receiving core spent {num(extra_ns, 0)} ns per packet more: about "
                 "what the program took.")
    return text


def case_commands(sec):
    """The shared set-up commands of a shedding benchmark, then each case's own."""
    out = ["Commands (setup, then each case):", "", code("\n".join(sec.get("commands", [])), "sh"), ""]
    for r in sec["rows"]:
        out += [f"`{r['case']}`:", "", code(r.get("how", "")), ""]
    return out


def overload_section(sec, plotter):
    out = ["## 4. Overload curves with a real server (`overload`)", ""]
    cap = sec.get("capacity_rps", 0)
    out += [
        f"The server is **capsrv** (`tools/capsrv`) in sleep mode with {cap:.0f} requests/s capacity: "
        "4 workers × 10 ms. Why capsrv rather than nginx serving a file: its capacity is known exactly and does "
        "not move with whatever else runs on this shared 2-core machine, so \"× capacity\" on the x axis is exact "
        "and a static limit can be set at capacity; and it queues every request without shedding (an unbounded "
        "FIFO, served even after the client gave up), so unprotected it collapses the way real services do. "
        "Because the work is sleep, not CPU, the CPU cost of protection does not lower the server's capacity "
        "here; it is reported separately as the CPU left to the server.",
        "",
        "Load: `loadgen http`, open loop (constant arrival rate, latency measured from the scheduled time, so "
        "the generator's own lateness counts against the result), a new TCP connection per request, clients "
        "give up after 1 s. Goodput: 2xx responses completed within the load window per second. Latency "
        "percentiles are of admitted (2xx) requests. **CPU left to the server** = 1 − (server veth NAPI thread "
        "+ protection processes) / wall time, on the server's core (CPU 1): the NAPI thread is where the "
        "kernel receives every packet (and where sluice's XDP program runs), the protection processes are "
        "nginx or `sluice run`; what is left is what the server could use. `core busy` is CPU 1's total from /proc/stat, "
        "including other people's work on this shared machine.",
        "",
        "Method: " + sec.get("method", ""), ""]
    cmds = sec.get("commands", {})
    if cmds:
        out.append(code("\n".join(f"# {k}\n{v}" for k, v in cmds.items()), "sh"))
        out.append("")

    curves = sec.get("curves", [])
    if curves:
        series = lambda key, scale=1.0: [(c["protection"], [(p["load_x"], (p[key] * scale) if p[key] else None)
                                                             for p in c["points"]]) for c in curves]
        g = plotter.curves("overload_goodput.png", "Goodput vs offered load", "goodput (requests/s)",
                           series("goodput_rps"),
                           extra=f'set yrange [0:{cap * 1.2}]\nset key bottom left\n'
                                 f'set arrow from 0.4,{cap} to 25,{cap} nohead dt 2 lc rgb "gray"\n'
                                 f'set label "capacity {cap:.0f}/s" at 0.42,{cap * 1.05}')
        p = plotter.curves("overload_p99.png", "Admitted p99 latency vs offered load", "p99 latency (ms, log)",
                           series("p99_us", 1 / 1000), logy=True)
        c = plotter.curves("overload_cpu.png", "CPU left to the server vs offered load",
                           "share of the server's core not used by receive + protection", series("cpu_left_to_server"),
                           extra="set yrange [0:1.05]\nset key bottom left")
        for png, t in ((g, "goodput"), (p, "p99"), (c, "CPU left")):
            if png:
                out += [f"![{t}](bench/{png})", ""]
        unloaded = sec.get("unloaded_p99_us", 0)
        out.append(f"Unloaded p99 (no protection, 0.5×, median of rounds): **{ms(unloaded)} ms**.")
        out.append("")
        top = max(p["load_x"] for p in curves[0]["points"])
        out.append(f"At the highest load ({top:g}× capacity):")
        out.append("")
        for cv in curves:
            pt = next(p for p in cv["points"] if p["load_x"] == top)
            out.append(f"- `{cv['protection']}`: goodput {pct(pt['goodput_of_capacity'])} of capacity, admitted p99 "
                       f"{ms(pt['p99_us'])} ms ({num(pt['p99_vs_unloaded'], 2)}× unloaded), CPU left to the server "
                       f"{pct(pt['cpu_left_to_server'])} (receive path {pct(pt['napi_cpu'])}, protection "
                       f"processes {pct(pt['protection_cpu'])}).")
        out.append("")
        adaptive = next((c for c in curves if c["protection"] == "sluice_adaptive"), None)
        at10 = next((p for p in adaptive["points"] if p["load_x"] == 10), {}) if adaptive else {}
        by_second = at10.get("p99_vs_unloaded_by_second") or []
        if len(by_second) >= 2:
            out += ["`sluice_adaptive` learns its limit from nothing at every point (a fresh `sluice run`, started "
                    "before the load). Its admitted p99 in each second of the load at 10×, against the unloaded "
                    "p99: " + ", ".join(num(x, 2) for x in by_second) + ". The first second holds the cold start: "
                    "the limit starts at 4 (admitted as 5–6, a small queue over these 4 workers), and a drain probe "
                    "tests the first response-time floor before the limit first grows (docs/controller.md, "
                    "\"The cold start under overload\"; `tests/unit/service_control_test.cpp` models it). The "
                    "shorter a point, the more that second weighs in its p99.", ""]
        sl = next((c for c in curves if c["protection"] == "sluice_static"), None)
        if sl and sec.get("seconds_per_point"):
            lo = next(p for p in sl["points"] if p["load_x"] == 1)
            hi = next(p for p in sl["points"] if p["load_x"] == top)
            refused_per_s = hi["refused"] / sec["seconds_per_point"]
            if refused_per_s > 0:
                us = (hi["napi_cpu"] - lo["napi_cpu"]) / refused_per_s * 1e6
                out += [f"With sluice the receive path's share grows from {pct(lo['napi_cpu'])} at 1× to "
                        f"{pct(hi['napi_cpu'])} at {top:g}×, about {us:.1f} µs of NAPI-thread time per refused "
                        "connection attempt, far more than the XDP program itself (tens of ns, see `packet_cost`): "
                        "it is the receive path's fixed cost per packet and the XDP_TX of each RST. At these rates the "
                        "threaded NAPI kthread is woken for about one packet at a time"
                        + (f" ({num(hi['rx_pps'] / hi['napi_wakeups_per_s'], 1)} packets per wakeup at {top:g}×: "
                           f"{num(hi['rx_pps'], 0)} packets/s, {num(hi['napi_wakeups_per_s'], 0)} wakeups/s)"
                           if hi.get("napi_wakeups_per_s") else "") +
                        ". The kernel receives each SYN "
                        "with or without a protection; nginx needs the whole TCP exchange of every refused request "
                        "and its own CPU to refuse it.", ""]
        for cv in curves:
            out += [f"### `{cv['protection']}`: {cv['what']}", ""]
            if cv.get("how"):
                out += [code(cv["how"]), ""]
            rows = []
            for pt in cv["points"]:
                rejected = pt["refused"] + pt["http_5xx"] + pt["reset"]
                rows.append([f"{pt['load_x']:g}×", num(pt["offered_rps"], 0), num(pt["goodput_rps"], 0),
                             pct(pt["goodput_of_capacity"]), ms(pt["p50_us"]), ms(pt["p99_us"]), ms(pt["p999_us"]),
                             num(pt["p99_vs_unloaded"], 2), num(rejected, 0), num(pt["timeout"], 0),
                             pct(pt["cpu_left_to_server"]), pct(pt["napi_cpu"]), pct(pt["protection_cpu"]),
                             pct(pt["server_cpu"]), pct(pt["core_busy"]), ms(pt["send_lag_p99_us"])])
            out.append(table(["load", "offered/s", "goodput/s", "of capacity", "p50 ms", "p99 ms", "p99.9 ms",
                              "p99 / unloaded", "rejected fast", "timed out", "CPU left to server", "NAPI thread",
                              "nginx / sluice run", "capsrv", "core busy", "loadgen lag p99 ms"], rows))
            out.append("")
    return out


# ---- main ---------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="results.json -> DOCS/benchmarks.md + plots. Given a published "
                                 "DOCS/bench/results.json instead, re-renders it with its recorded meta.")
    ap.add_argument("--results", required=True)
    ap.add_argument("--docs", default="docs")
    ap.add_argument("--mode", choices=["quick", "full"])
    ap.add_argument("--command")
    ap.add_argument("--bench-command")
    ap.add_argument("--started")
    ap.add_argument("--elapsed", type=int)
    ap.add_argument("--load-before")
    ap.add_argument("--load-after")
    ap.add_argument("--source", help="the git revision the run measured (default: the tree's now)")
    a = ap.parse_args()

    with open(a.results) as f:
        results = json.load(f)
    prev = {}
    while isinstance(results, dict) and "meta" in results and "results" in results:
        prev, results = results["meta"], results["results"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    pick = lambda given, key, default: given if given is not None else prev.get(key, default)
    a.mode = pick(a.mode, "mode", "full")
    a.command = pick(a.command, "command", "make bench")
    a.bench_command = pick(a.bench_command, "bench_command", "")
    a.started = pick(a.started, "started", now)
    a.elapsed = pick(a.elapsed, "elapsed_s", 0)
    a.load_before = pick(a.load_before, "load_average_before", "")
    a.load_after = pick(a.load_after, "load_average_after", "")
    measured_on = prev.get("machine") or machine()
    if a.source:
        measured_on["git"] = a.source
    meta = {"machine": measured_on, "started": a.started, "elapsed_s": a.elapsed,
            "mode": a.mode, "command": a.command, "bench_command": a.bench_command,
            "load_average_before": a.load_before, "load_average_after": a.load_after}
    benchdir = os.path.join(a.docs, "bench")
    os.makedirs(benchdir, exist_ok=True)
    for old in os.listdir(benchdir):
        if old.endswith(".png"):
            os.remove(os.path.join(benchdir, old))
    with open(os.path.join(benchdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)
        f.write("\n")

    plotter = Plotter(benchdir)
    try:
        render(a, meta, results, plotter)
    finally:
        plotter.close()
    print_targets(results)


def print_targets(results):
    """The targets on the terminal, so a run's outcome shows without opening the report."""
    lines = []
    for _, t in each_target(results):
        verdict = "compare" if t.get("compare_only") else "met    " if t["met"] else "NOT MET"
        line = f"  {verdict} {t['what']}: {measured(t)}" + (f" ({wanted(t)})" if wanted(t) else "")
        context = target_context(t)
        if context:
            line += "; on this machine: " + context.replace("`", "")
        lines.append(line)
    if lines:
        print("bench: targets (issue 4), measured (wanted):")
        print("\n".join(lines))
    for reason in sorted({t["not_judged"] for _, t in each_target(results) if t.get("not_judged")}):
        print(f"bench: not judged in this run: {reason}")


def render(a, meta, results, plotter):
    m = meta["machine"]
    out = [
        "# sluice benchmarks",
        "",
        f"_Generated by `{a.command}` on {a.started} ({a.mode} mode; the run took "
        f"{a.elapsed // 60} min {a.elapsed % 60} s). Do not edit by hand: rerun `make bench`. "
        "Raw results: [bench/results.json](bench/results.json)._",
        "",
    ]
    if a.mode == "quick":
        out += ["> **Quick mode**: fewer and shorter rounds than the full run (shown in each method line: the "
                "overload curves use a single round), so the medians are less robust. Each `sluice_adaptive` "
                "point learns its limit from nothing, and the requests admitted while it learns weigh more in the "
                "p99 of a quick run's shorter points: its p99 targets are for the full run. Publish a full run.", ""]
    errors = {k: v["error"] for k, v in results.items() if isinstance(v, dict) and "error" in v}
    if errors:
        out += ["> **Benchmarks that failed in this run:** " +
                "; ".join(f"`{k}`: {v}" for k, v in errors.items()), ""]

    out += ["## Targets (issue 4)", "",
            "Each ratio is against a baseline measured in the same run (same rounds, interleaved).", ""]
    out.append(table(["target", "measured", "wanted", "", "on this machine", "benchmark"], target_rows(results)))
    out += ["",
            "Issue 4 sets the overload targets at 10× for sluice adaptive (BBR); the rows of the other "
            "protections are there to compare. *On this machine*: for the shed-rate and SYN targets, the same "
            "ratio for a program that only reads the headers and drops, in the same rounds: roughly the ceiling "
            "of any XDP filter that looks at the packet; for the per-packet targets, the same ratio for a program "
            "that does only the work of that path, on the same maps (bpf/least_work.bpf.c), and the nanoseconds "
            "behind the ratio" + ("; for the p99 targets, the same ratio in the first second of the load (a "
                                  "limit learned from nothing shows there) and in the seconds after"
                                  if any(t.get("by_second") for _, t in each_target(results)) else "") + ".", ""]
    not_judged = sorted({t["not_judged"] for _, t in each_target(results) if t.get("not_judged")})
    if not_judged:
        out += ["**Not judged in this run:** " + "; ".join(not_judged) + ". Those rows are there to compare; "
                "a run on a kernel that allows live frames judges them.", ""]

    out += ["## Machine", "",
            *machine_lines(m),
            f"- Tools: {m['nft']}; {m['nginx']}",
            f"- Source: git {m['git']}",
            f"- Load average (1, 5, 15 min) when the run started: {a.load_before or '?'}; when it ended: "
            f"{a.load_after or '?'}. The machine is shared with other work (builds, tests); everything is "
            "measured as ratios within interleaved rounds for that reason.",
            "",
            "## How to rerun", "",
            code("make bench            # full run (writes this file, docs/bench/results.json and the plots)\n"
                 "make bench QUICK=1    # bounded quick run, under 3 minutes\n"
                 "# the same by hand, after `make`:\n"
                 "tools/bench.sh build [--quick]\n"
                 "build/bench/sluice_bench [--quick] [--only packet_cost,shed_rate,syn_flood,overload] "
                 "--out DIR --build build\n"
                 "# another build of sluice side by side with this one, in the same rounds (case sluice_NAME):\n"
                 "build/bench/sluice_bench --only shed_rate --sluice-variant NAME=/path/to/other/sluice "
                 "--out DIR --build build\n"
                 "# the shedding benchmarks' frames: live frames, the XDP pump, or auto (live where allowed):\n"
                 "build/bench/sluice_bench --only shed_rate,syn_flood --generator pump --out DIR --build build\n"
                 "tools/bench_report.py --results DIR/results.json --docs docs", "sh"),
            "",
            f"This run: `{a.bench_command}`. Needs root, CPUs 0 and 1, `ip`, `ethtool`, `nft`, `nginx`, "
            "`gnuplot`, `python3`. The benchmarks create their own network namespaces (198.18.0.0/15 and "
            "spoofed sources from 198.19.0.0/16), veth pairs, a private sluice pin directory "
            "(`/sys/fs/bpf/sluice-bench-<pid>-<n>`) and policy file, and scratch directories under /tmp; all "
            "are removed when the benchmark ends, also on failure or Ctrl-C. Every load loop is bounded in time "
            "and count.",
            ""]

    if "packet_cost" in results and "rows" in results["packet_cost"]:
        out += packet_cost_section(results["packet_cost"]) + [""]

    if "shed_rate" in results and "rows" in results["shed_rate"]:
        sec = results["shed_rate"]
        out += shed_section(
            sec, plotter, "## 2. Shedding rate of one receiving core (`shed_rate`)", "shed_rate.png",
            "UDP flood: packets shed per second of receive-core time",
            "How many packets one core can shed, each way of shedding in turn, " + generator_text(sec) +
            " The receiving veth runs **threaded NAPI**, its kthread pinned to CPU 1: that thread is "
            "the whole receive path (XDP, GRO, nft's netdev ingress hook, IP, UDP). Threaded NAPI works on veth "
            "once GRO (or an XDP program) has given the device NAPI. Its CPU time "
            "(`/proc/<pid>/schedstat`, the scheduler's ns clock) is the busy time; for the user-space case the "
            "reading thread's time (same core) is added. **Shed rate = packets shed / busy seconds**; the "
            "generator on one core cannot saturate a receiving core that only drops, hence per busy second "
            "rather than per wall second (both are shown).")
        out += shed_notes(sec, "Ethernet, IPv4 and UDP")
        out += [f"- The user-space server is the best case for an application: `recvmmsg` 64 datagrams at a time, "
                "nothing sent back, SO_RCVBUF 4 MB; a server that answers each datagram pays more.",
                "- Frames the receiving core had no room for (veth's 256-frame ring full) are dropped on the "
                "generator's core and not counted: `offered` vs `shed Mpps (wall)`.", ""]
        out += case_commands(sec)

    if "syn_flood" in results and "rows" in results["syn_flood"]:
        sec = results["syn_flood"]
        out += shed_section(
            sec, plotter, "## 3. SYN floods (`syn_flood`)", "syn_flood.png",
            "SYN flood: SYNs shed per second of receive-core time",
            "The same testbed and generator, now crafting TCP SYNs (MSS option, valid IP and TCP checksums, a "
            "fresh spoofed source from 198.19.0.0/16, source port and ISN per SYN) to a listening, unmodified "
            "server (capsrv on port 80). The server has a route back to the spoofed range through the client "
            "veth, where xdp_drop discards the SYN-ACKs: the receiving core pays for building and sending each "
            "SYN-ACK (as a real server would) and nothing after. The kernel's path is SYN cookies for every SYN "
            "(`net.ipv4.tcp_syncookies=2`), its cheapest defence: no request socket, no backlog." +
            (" As in section 2, the frames come from the XDP pump" +
             (f" ({sec['why_pump']})" if sec.get("why_pump") else "") +
             ", so every ratio is nearer 1 than with live frames, and the SYN target is not judged."
             if sec.get("generator") == "pump" else ""))
        out += shed_notes(sec, "Ethernet, IPv4 and TCP")
        out += [""]
        out += case_commands(sec)

    if "overload" in results and "curves" in results["overload"]:
        out += overload_section(results["overload"], plotter)

    if "controller_cost" in results and "cpu_share_of_one_core" in results["controller_cost"]:
        out += controller_cost_section(results["controller_cost"]) + [""]

    other = [k for k in results if k not in ("packet_cost", "shed_rate", "syn_flood", "overload", "controller_cost")]
    for k in other:
        # A benchmark this script has no layout for: its method, its scalar values, the rest as JSON.
        sec = results[k]
        out += [f"## `{k}`", ""]
        if not isinstance(sec, dict):
            out += [code(json.dumps(sec, indent=2)[:6000], "json"), ""]
            continue
        if "method" in sec:
            out += ["Method: " + str(sec["method"]), ""]
        scalars = [[f"`{name}`", num(v, 4) if isinstance(v, float) else str(v)] for name, v in sec.items()
                   if name not in ("method", "targets", "error") and isinstance(v, (int, float, str))]
        if scalars:
            out += [table(["value", ""], scalars), ""]
        rest = {name: v for name, v in sec.items() if isinstance(v, (list, dict)) and name != "targets"}
        if rest:
            out += [code(json.dumps(rest, indent=2)[:6000], "json"), ""]

    with open(os.path.join(a.docs, "benchmarks.md"), "w") as f:
        f.write("\n".join(out).rstrip() + "\n")
    print(f"bench_report: wrote {os.path.join(a.docs, 'benchmarks.md')} and {len(plotter.made)} plots in "
          f"{os.path.join(a.docs, 'bench')}")


if __name__ == "__main__":
    main()
