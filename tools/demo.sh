#!/usr/bin/env bash
# make demo: sluice protecting real, unmodified servers in a namespace testbed.
#
#   act 1  static limits in XDP: per-tenant rates, a deny rule, RST replies,
#          in front of Python's http.server
#   act 2  overload: a server of known capacity (8 workers x 20 ms = 400/s)
#          offered 5x that, first unprotected (it collapses), then governed by
#          `sluice run` (it keeps serving its capacity)
#   act 3  detach: traffic flows unchecked at once
#
# Everything it makes (namespaces, veths, processes, pins, files) is removed
# on exit, also on Ctrl-C or failure. Addresses: 198.18.100.0/24, 2001:db8:100::/64.
set -euo pipefail

BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
SLUICE=$BUILD/sluice
LOADGEN=$BUILD/tools/loadgen
CAPSRV=$BUILD/tools/capsrv
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it loads BPF programs and makes network namespaces)" >&2; exit 1; }

ID=$$
C=sld$ID-c S=sld$ID-s         # namespaces
CDEV=sld$ID-c SDEV=sld$ID-s   # veth ends, named after their namespaces
SERVER=198.18.100.2 CLIENT=198.18.100.1 PARTNER=198.18.100.20 BLOCKED=198.18.100.70
WORK=$(mktemp -d /tmp/sluice-demo.XXXXXX)
export SLUICE_PIN_DIR=/sys/fs/bpf/sluice-demo-$ID SLUICE_POLICY_FILE=$WORK/policy.toml
PIDS=()

cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  "$SLUICE" reset >/dev/null 2>&1
  for ns in "$S" "$C"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { printf '  $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/    /'; }

# Offered load from one source: prints a one-line summary from loadgen's JSON.
load() {  # name source rate seconds port [extra loadgen args]
  local name=$1 src=$2 rate=$3 secs=$4 port=$5
  shift 5
  ip netns exec "$C" "$LOADGEN" http --target "$SERVER:$port" --bind "$src" --rate "$rate" --duration "$secs" \
    --timeout 1000 --json "$@" >"$WORK/$name.json" 2>/dev/null
}
summary() {  # name
  python3 - "$WORK/$1.json" "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); o = r["outcomes"]
lat = r["latency_us"]
print(f"  {sys.argv[2]:<10} offered {r['offered_rate']:6.0f}/s  ok {r['goodput']:6.1f}/s  "
      f"refused {o['refused']:5d}  timeout {o['timeout']:5d}  p50 {lat['p50']/1000:6.1f} ms  p99 {lat['p99']/1000:7.1f} ms")
print(f"  {'':<10} successes per second: {r['series']['success']}")
EOF
}

say "Testbed: client and server namespaces on a veth pair"
ip netns add "$C"
ip netns add "$S"
ip link add "$CDEV" index $((30000 + ID % 30000)) type veth peer name "$SDEV" index $((30001 + ID % 30000))
ip link set "$CDEV" netns "$C"
ip link set "$SDEV" netns "$S"
for ns in "$C" "$S"; do ip -n "$ns" link set lo up; done
ip -n "$C" addr add $CLIENT/24 dev "$CDEV"
ip -n "$C" addr add $PARTNER/32 dev "$CDEV"
ip -n "$C" addr add $BLOCKED/32 dev "$CDEV"
ip -n "$S" addr add $SERVER/24 dev "$SDEV"
ip -n "$C" link set "$CDEV" up
ip -n "$S" link set "$SDEV" up
ip netns exec "$C" ethtool -K "$CDEV" tx off >/dev/null
ip netns exec "$S" ethtool -K "$SDEV" tx off gro on >/dev/null
# veth delivers XDP_TX frames (sluice's RST replies) only to a peer running XDP.
ip -n "$C" link set dev "$CDEV" xdp obj "$BUILD/bpf/baseline.bpf.o" program xdp_pass
echo "  client $C: $CLIENT (default tenant), $PARTNER (partners), $BLOCKED (denied)"
echo "  server $S: $SERVER, device $SDEV"

say "Act 1: static limits in XDP, in front of Python's http.server (unmodified)"
ip netns exec "$S" python3 -m http.server 8080 --bind $SERVER --directory "$WORK" >"$WORK/http.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do ip netns exec "$S" ss -ltn | grep -q ":8080 " && break; sleep 0.1; done
run "$SLUICE" -n "$S" attach "$SDEV"
run "$SLUICE" service add web --port 8080 --rate 50/s --burst 10 --reject rst
run "$SLUICE" tenant add partners --prefix $PARTNER/32 --level 0
run "$SLUICE" limit set web partners --rate 150/s --burst 20
run "$SLUICE" deny add $BLOCKED/32
echo "  offering 250 requests/s from each source for 4 s, at once:"
load default $CLIENT 250 4 8080 & a=$!
load partners $PARTNER 250 4 8080 & b=$!
load blocked $BLOCKED 25 4 8080 & c=$!
wait $a $b $c
summary default
summary partners
summary blocked
echo "  the default tenant gets its 50/s, partners their 150/s; refusals come back at once as RSTs;"
echo "  the denied source gets nothing through. What sluice saw:"
run "$SLUICE" stats

say "Act 2: 5x overload on a server of known capacity (capsrv: 8 workers x 20 ms = 400/s)"
ip netns exec "$S" "$CAPSRV" --listen $SERVER:8081 --workers 8 --service-time 20 >"$WORK/capsrv.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do ip netns exec "$S" ss -ltn | grep -q ":8081 " && break; sleep 0.1; done
echo "  unprotected (2000 requests/s for 5 s, clients give up after 1 s):"
load unprotected $CLIENT 2000 5 8081
summary unprotected
echo "  the server queues everything and serves requests whose clients are gone: goodput collapses."
# Let the backlog drain before the next round.
for _ in $(seq 100); do
  q=$(ip netns exec "$C" curl -s --max-time 1 http://$SERVER:8081/stats | python3 -c 'import json,sys; print(json.load(sys.stdin).get("queue_length", 1))' 2>/dev/null || echo 1)
  [[ $q == 0 ]] && break
  sleep 0.2
done
run "$SLUICE" service add api --port 8081 --adaptive bbr --cpu-threshold 0 --http --reject rst
"$SLUICE" run --metrics off >"$WORK/run.log" 2>&1 &
PIDS+=($!)
sleep 0.5
echo "  governed by 'sluice run' (same load):"
load governed $CLIENT 2000 5 8081
summary governed
echo "  the controller learned the server's concurrency from its latency (Little's law) and refuses"
echo "  the excess in the kernel; admitted requests are served at once. Its log:"
sed 's/^/    /' "$WORK/run.log"

say "Act 3: detach; traffic flows unchecked at once"
run "$SLUICE" -n "$S" detach "$SDEV"
load after_detach $CLIENT 100 2 8080
summary after_detach
run "$SLUICE" status

say "Done: everything the demo made is being removed."
