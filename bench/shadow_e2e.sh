#!/usr/bin/env bash
# bench/shadow_e2e.sh -- durable device-shadow updates per second through `sluice serve`:
#   mqtt   devices publish $aws/things/<thing>/shadow/update through a private Mosquitto, one
#          update in flight each, the next one sent when its /update/accepted arrives
#   rest   concurrent keep-alive clients POST /things/<thing>/shadow
# with p50/p99 from the update to its answer, and the CPU seconds sluice and the broker used
# per update. Every counted update is durable before its answer: the MQTT request is journaled
# (ingest.journal=batch, fdatasync) before its PUBACK, and the shadow store commits (fsync)
# before /accepted or the 200. The data dir lives under the build dir (a real disk, not a
# tmpfs). Everything runs on 127.0.0.1 on free ports and is stopped at exit.
# usage: bench/shadow_e2e.sh [BUILD_DIR]     (default build-rel; a Release build:
#   cmake -S . -B build-rel -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF)
# SHADOW_SECONDS (10), SHADOW_DEVICES ("100 1000 4000"), SHADOW_CLIENTS ("16 64 256"),
# SHADOW_BROKER_NODELAY (true). The CPU columns are CPU seconds of the process over the run
# divided by the updates; the load generator's own share is printed too.
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-build-rel}"
LOAD="$B/bench/shadowload/sluice-shadowload"; SLUICE="$B/engine/sluice"
SECONDS_RUN="${SHADOW_SECONDS:-10}"
for f in "$LOAD" "$SLUICE"; do [ -x "$f" ] || { echo "missing $f (build $B as Release)"; exit 1; }; done

. bench/lib.sh
work_dir "$PWD/$B"  # on the disk being measured, not a tmpfs

port=$(free_port)
# set_tcp_nodelay: without it, the broker's /accepted waits behind Nagle for the device's
# delayed ACK of the PUBACK just before it (p50 42 ms instead of 10 ms at 100 devices)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\nmax_inflight_messages 0\nset_tcp_nodelay %s\n' \
  "$port" "${SHADOW_BROKER_NODELAY:-true}" > "$work/m.conf"
mosquitto -c "$work/m.conf" > "$work/mosq.log" 2>&1 & broker=$!; pids+=("$broker")

http=$(free_port)
# enough connections for the REST clients (all from 127.0.0.1)
echo '{"http": {"maxConnections": 2048, "maxConnectionsPerClient": 1024}}' > "$work/sluice.json"
SLUICE_MQTT_URL="mqtt://127.0.0.1:$port" SLUICE_HTTP_ADDR="127.0.0.1:$http" SLUICE_DATA_DIR="$work/data" \
  SLUICE_LOG_LEVEL=warn "$SLUICE" serve --config "$work/sluice.json" > "$work/sluice.log" 2>&1 & sl=$!; pids+=("$sl")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$http/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$http/readyz" >/dev/null || { echo "sluice did not start:"; cat "$work/sluice.log"; exit 1; }

# run NAME LOAD_ARGS...
run() {
  local name=$1; shift
  local b0 s0 b1 s1 out
  b0=$(cpu_ticks "$broker"); s0=$(cpu_ticks "$sl")
  out=$("$LOAD" --json --seconds "$SECONDS_RUN" "$@") || echo "# $name: some updates were rejected or failed" >&2
  b1=$(cpu_ticks "$broker"); s1=$(cpu_ticks "$sl")
  python3 - "$name" "$out" "$((b1-b0))" "$((s1-s0))" "$hz" <<'PY'
import json, sys
name, out, bt, st, hz = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
n = max(out["updates"], 1)
print(f"{name:18s} {out['updates']:8d} updates {out['rate']:8.0f}/s  p50 {out['p50_ms']:7.3f} ms  "
      f"p99 {out['p99_ms']:7.3f} ms  p99.9 {out['p999_ms']:7.3f} ms  rejected {out['rejected']} "
      f"failed {out['failed']}  cpu/update: sluice {st/hz/n*1e6:5.1f} us  broker {bt/hz/n*1e6:5.1f} us  "
      f"load {out['cpu_s']/n*1e6:5.1f} us")
PY
}

echo "# shadow_e2e: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg), ${SECONDS_RUN}s per run"
for n in ${SHADOW_DEVICES:-100 1000 4000}; do
  run "mqtt $n devices" --mode mqtt --port "$port" --devices "$n" --connections 8 --prefix "m$n"
done
for n in ${SHADOW_CLIENTS:-16 64 256}; do
  run "rest $n clients" --mode rest --port "$http" --clients "$n" --prefix "r$n"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
curl -fs "http://127.0.0.1:$http/metrics" | grep -E '^sluice_(shadow|journal_syncs)' || true
