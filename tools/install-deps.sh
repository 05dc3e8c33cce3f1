#!/usr/bin/env bash
# Install the Debian packages sluice builds, tests and benchmarks with.
# Only what is missing is installed; each package is here for one job.
set -euo pipefail

packages=(
  # build
  clang llvm make g++ pkg-config bpftool libbpf-dev libxdp-dev libelf-dev zlib1g-dev
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libgtest-dev
  libclang-rt-14-dev                # libFuzzer and sanitizer runtimes
  # run
  xdp-tools iproute2 ethtool
  # tests, demo and benchmarks: real servers, real clients, baselines
  python3 nginx-light curl nftables iptables
  redis-server libhiredis-dev       # the shared global limit
  gnuplot-nox                       # plots in docs/benchmarks.md
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || {
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}
# nginx-light starts a default server on install where an init system runs;
# sluice's tests start their own and need port 80 free of surprises.
if command -v service >/dev/null && pgrep -x nginx >/dev/null; then service nginx stop >/dev/null 2>&1 || true; fi
echo "deps: done"
