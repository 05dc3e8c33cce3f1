#!/usr/bin/env bash
# `make bench`: runs the benchmarks and publishes the report.
#
#   tools/bench.sh BUILD [--quick]
#
# Runs BUILD/bench/sluice_bench (every benchmark; --quick for the bounded
# run, under 3 minutes), then tools/bench_report.py, which writes
# docs/benchmarks.md, docs/bench/results.json (the raw results plus the
# machine and the commands) and the plots in docs/bench/.
#
# Environment:
#   BENCH_ONLY=name,...   run only these benchmarks (packet_cost, shed_rate,
#                         syn_flood, overload, ...); the report covers what ran
#   BENCH_DOCS=DIR        write the report under DIR instead of docs/
#
# Needs root (namespaces, XDP, nftables), two CPUs, and: ip, ethtool, nft,
# nginx, gnuplot, python3. Everything the benchmarks create (namespaces,
# veths, pins under /sys/fs/bpf/sluice-bench-*, processes, scratch
# directories) is removed when they end, also on failure or Ctrl-C.
set -euo pipefail

usage() { echo "usage: tools/bench.sh BUILD [--quick]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
build=$1
shift
quick=""
case "${1:-}" in
  "") ;;
  --quick) quick=--quick ;;
  *) usage ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bench="$build/bench/sluice_bench"
[[ $EUID -eq 0 ]] || { echo "bench: needs root (network namespaces, XDP, nftables)" >&2; exit 1; }
[[ -x "$bench" ]] || { echo "bench: $bench not built (run make first)" >&2; exit 1; }
for tool in ip ethtool nft nginx gnuplot python3 taskset nice; do
  command -v "$tool" >/dev/null || { echo "bench: '$tool' is missing" >&2; exit 1; }
done

scratch=$(mktemp -d /tmp/sluice-bench-run-XXXXXX)
# If sluice_bench was killed before its destructors ran, its namespaces are
# gone already (the test harness removes them from its signal handler), but
# a private sluice pin directory or scratch directory may remain: remove
# those of benchmark processes that no longer run. (The next sluice_bench
# run would sweep them too.)
sweep() {
  local d pid
  for d in /sys/fs/bpf/sluice-bench-[0-9]*-* /tmp/sluice-bench-[0-9]*-*; do
    [[ -e "$d" ]] || continue
    pid=${d##*/sluice-bench-}
    pid=${pid%%-*}
    kill -0 "$pid" 2>/dev/null && continue
    if [[ $d == /sys/fs/bpf/* ]]; then
      "$build/sluice" --pin-dir "$d" --policy-file /nonexistent/sluice-bench.toml reset >/dev/null 2>&1 || true
    fi
    rm -rf "$d"
  done
}
trap 'sweep; rm -rf "$scratch"' EXIT

args=($quick --out "$scratch" --build "$build")
[[ -n "${BENCH_ONLY:-}" ]] && args+=(--only "$BENCH_ONLY")
# The source the benchmarks ran, taken now: the tree may move on during a
# 25-minute run, and the report is written at its end.
source_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] && source_rev+=" with uncommitted changes"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$(date +%s)
echo "bench: $bench ${args[*]}" >&2
rc=0
"$bench" "${args[@]}" || rc=$?
t1=$(date +%s)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

if [[ ! -s "$scratch/results.json" ]]; then
  echo "bench: sluice_bench wrote no results (exit $rc)" >&2
  exit 1
fi
python3 tools/bench_report.py \
  --results "$scratch/results.json" \
  --docs "${BENCH_DOCS:-docs}" \
  --mode "$([[ -n $quick ]] && echo quick || echo full)" \
  --command "make bench${quick:+ QUICK=1}${BENCH_ONLY:+ BENCH_ONLY=$BENCH_ONLY}  (tools/bench.sh $build${quick:+ $quick})" \
  --bench-command "$bench ${args[*]//$scratch/OUT}" \
  --started "$started" --elapsed $((t1 - t0)) --source "$source_rev" \
  --load-before "$load_before" --load-after "$load_after"
echo "bench: took $((t1 - t0)) s; report in ${BENCH_DOCS:-docs}/benchmarks.md" >&2
exit $rc
