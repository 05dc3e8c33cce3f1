#!/usr/bin/env bash
# Run sluice's test suites on the real kernel: unit, bpf (BPF_PROG_TEST_RUN),
# e2e (network namespaces, real servers and clients) and fuzz (bounded runs).
#   tools/run-tests.sh BUILD_DIR [unit|bpf|e2e|fuzz ...]
set -uo pipefail

build=${1:?usage: run-tests.sh BUILD_DIR [suite...]}
shift
suites=("$@")
((${#suites[@]})) || suites=(unit bpf e2e fuzz)

if [[ $(id -u) -ne 0 ]]; then
  echo "run-tests: the bpf and e2e suites load BPF programs and make network namespaces; run as root" >&2
  exit 1
fi

failed=()
run_suite() {  # name, timeout in seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "== $name"
  local start=$SECONDS
  if timeout --kill-after=10 "$limit" "$@"; then
    echo "== $name passed in $((SECONDS - start)) s"
  else
    echo "== $name FAILED (exit $?) after $((SECONDS - start)) s"
    failed+=("$name")
  fi
}

for suite in "${suites[@]}"; do
  case $suite in
    unit) run_suite "unit (ASan+UBSan)" 300 "$build/san/unit_tests" --gtest_brief=1 ;;
    bpf) run_suite bpf 600 "$build/tests/bpf_tests" --gtest_brief=1 ;;
    e2e) run_suite e2e 900 "$build/tests/e2e_tests" --gtest_brief=1 ;;
    fuzz)
      shopt -s nullglob
      for f in "$build"/fuzz/*_fuzz; do
        name=$(basename "$f")
        # New inputs go to a scratch directory, never into the source tree;
        # the seed corpus is only read.
        scratch=$(mktemp -d)
        args=(-seed=1 -runs=200000 -max_total_time=60)
        [[ -f tests/fuzz/$name.dict ]] && args+=(-dict="tests/fuzz/$name.dict")
        run_suite "fuzz $name" 300 "$f" "${args[@]}" "$scratch" $([[ -d tests/fuzz/corpus/$name ]] && echo "tests/fuzz/corpus/$name")
        rm -rf "$scratch"
      done
      ;;
    *) echo "run-tests: unknown suite '$suite' (unit, bpf, e2e, fuzz)" >&2; exit 2 ;;
  esac
done

if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all suites passed: ${suites[*]}"
