#!/usr/bin/env bash
# `make fuzz-long`: the long fuzzing runs, each bounded in time, that `make
# test` runs only briefly with a fixed seed.
#
#   tools/fuzz-long.sh BUILD [MINUTES]
#
# 1. Packets: SLUICE_FUZZ_PACKETS packets (default 10^8, about 10 minutes)
#    through BPF_PROG_TEST_RUN against the C++ reference, with a fresh seed
#    (printed, so a failure can be repeated with SLUICE_FUZZ_SEED).
# 2. Policy files and CLI sessions: each libFuzzer target for MINUTES
#    (default 15) on both cores, with its dictionary, surviving crashes;
#    new inputs go to a scratch directory and crashes to /tmp/sluice-fuzz-*.
set -uo pipefail

build=${1:?usage: tools/fuzz-long.sh BUILD [MINUTES]}
minutes=${2:-15}
[[ $minutes =~ ^[1-9][0-9]*$ ]] || { echo "fuzz-long: MINUTES must be a whole number of minutes, got '$minutes'" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "fuzz-long: the packet fuzzer loads BPF programs; run as root" >&2; exit 1; }
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

failed=()
packets=${SLUICE_FUZZ_PACKETS:-100000000}
seed=${SLUICE_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "== packets: $packets, seed $seed (SLUICE_FUZZ_SEED=$seed to repeat)"
SLUICE_FUZZ_PACKETS=$packets SLUICE_FUZZ_SEED=$seed \
  timeout --kill-after=10 $((packets / 50000 + 300)) \
  "$build/tests/bpf_tests" --gtest_filter='FuzzPackets.KernelAgrees*' || failed+=(packets)

shopt -s nullglob
for f in "$build"/fuzz/*_fuzz; do
  name=$(basename "$f")
  scratch=$(mktemp -d)
  artifacts=$(mktemp -d "/tmp/sluice-fuzz-$name-XXXXXX")
  args=(-fork=2 -ignore_crashes=1 -max_total_time=$((minutes * 60)) -artifact_prefix="$artifacts/")
  [[ -f tests/fuzz/$name.dict ]] && args+=(-dict="tests/fuzz/$name.dict")
  echo "== $name for $minutes min (crashes, if any, in $artifacts)"
  "$f" "${args[@]}" "$scratch" tests/fuzz/corpus/"$name" 2>&1 | grep -E '^#[0-9]+.*(DONE|pulse)|INFO: fuzzed for|crash|ERROR' | tail -5
  rm -rf "$scratch"
  if compgen -G "$artifacts/*" >/dev/null; then
    failed+=("$name")
  else
    rmdir "$artifacts"
  fi
done

if ((${#failed[@]})); then
  echo "fuzz-long FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz-long: no disagreement, crash or sanitizer report"
