#!/usr/bin/env bash
# bench/e2e.sh -- end-to-end throughput, latency and CPU per message, measured in one run for:
#   broker   the load generator publishing straight to the topic it measures (broker alone)
#   relay    bench/relay: subscribe, scan for "temperature":, republish the bytes unchanged
#   sluice   sluice serve with the seed rule and a republish action, with ingest.journal=batch and =off
# each flooded (as fast as possible) and paced at 5 000 msgs/s. Private Mosquitto on a free
# loopback port; everything is stopped at exit.
# usage: bench/e2e.sh [BUILD_DIR]   (default build/; needs a Release build with benchmarks)
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-build}"
LOADGEN="$B/bench/loadgen/sluice-loadgen"; RELAY="$B/bench/relay/sluice-relay"; SLUICE="$B/engine/sluice"
N="${E2E_MESSAGES:-100000}"; PACED_SECONDS="${E2E_PACED_SECONDS:-10}"
for f in "$LOADGEN" "$RELAY" "$SLUICE"; do [ -x "$f" ] || { echo "missing $f (build with -DCMAKE_BUILD_TYPE=Release)"; exit 1; }; done

. bench/lib.sh
work_dir

port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\nmax_inflight_messages 0\n' "$port" > "$work/m.conf"
mosquitto -c "$work/m.conf" > "$work/mosq.log" 2>&1 & broker=$!; pids+=("$broker")
sleep 0.5

# run NAME ENGINE_PID SUB_FILTER TOPIC_TEMPLATE LOADGEN_ARGS...
run() {
  local name=$1 epid=$2 sub=$3 topic=$4; shift 4
  local b0 e0=0 b1 e1=0 out
  b0=$(cpu_ticks "$broker"); [ "$epid" != - ] && e0=$(cpu_ticks "$epid")
  out=$("$LOADGEN" --port "$port" --sub "$sub" --topic "$topic" --json --timeout 10 "$@" 2>/dev/null)
  b1=$(cpu_ticks "$broker"); [ "$epid" != - ] && e1=$(cpu_ticks "$epid")
  python3 - "$name" "$out" "$((b1-b0))" "$((e1-e0))" "$hz" <<'PY'
import json, sys
name, out, bt, et, hz = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
n = max(out["sent"], 1)
print(f"{name:16s} sent {out['sent']:7d} out {out['received']:7d} {out['receive_rate']:9.0f} out/s  "
      f"p50 {out['p50_ms']:7.3f} ms  p99 {out['p99_ms']:7.3f} ms  p99.9 {out['p999_ms']:7.3f} ms  "
      f"cpu/msg: engine {et/hz/n*1e6:6.2f} us  broker {bt/hz/n*1e6:6.2f} us")
PY
}

# half of the generated temperatures are above 50
PAYLOAD='{"deviceId":"${device}","temperature":${rand:0:100},"humidity":${rand:0:100},"ts":${ts}}'
QOS="${E2E_QOS:-1}"
echo "# e2e: $(nproc) cores, QoS $QOS end to end, $N messages per flood run, ${PACED_SECONDS}s at 5000 msgs/s per paced run"

run "broker flood" - 'direct/#' 'direct/${device}' --qos "$QOS" --count "$N" --payload "$PAYLOAD"
run "broker 5k/s" - 'direct/#' 'direct/${device}' --qos "$QOS" --rate 5000 --duration "$PACED_SECONDS" --payload "$PAYLOAD"

"$RELAY" "$port" "$QOS" & relay=$!; pids+=("$relay"); sleep 0.3
run "relay flood" "$relay" 'out/#' 'sensors/${device}/telemetry' --qos "$QOS" --count "$N" --payload "$PAYLOAD"
run "relay 5k/s" "$relay" 'out/#' 'sensors/${device}/telemetry' --qos "$QOS" --rate 5000 --duration "$PACED_SECONDS" --payload "$PAYLOAD"
kill "$relay"

# sluice with each ingest.journal mode: batch (fdatasync before the PUBACK, the default) and off
for journal in ${E2E_JOURNALS:-batch off}; do
  http=$(free_port)
  rm -rf "$work/data"
  SLUICE_MQTT_URL="mqtt://127.0.0.1:$port" SLUICE_HTTP_ADDR="127.0.0.1:$http" SLUICE_DATA_DIR="$work/data" \
    SLUICE_JOURNAL="$journal" SLUICE_LOG_LEVEL=warn "$SLUICE" serve > "$work/sluice.log" 2>&1 & sl=$!; pids+=("$sl")
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$http/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  if ! curl -fs "http://127.0.0.1:$http/readyz" >/dev/null 2>&1; then
    echo "sluice: not measured (serve not available)"; exit 0
  fi
  curl -fs -X POST "http://127.0.0.1:$http/rules/seed" -d '{"sql": "SELECT temperature, humidity, deviceId, ts FROM '"'"'sensors/+/telemetry'"'"' WHERE temperature > 50.0", "awsIotSqlVersion": "2016-03-23", "actions": [{"republish": {"topic": "out/${deviceId}", "qos": '"$QOS"'}}]}' >/dev/null
  sleep 0.3
  run "sluice $journal flood" "$sl" 'out/#' 'sensors/${device}/telemetry' --qos "$QOS" --count "$N" --payload "$PAYLOAD"
  run "sluice $journal 5k/s" "$sl" 'out/#' 'sensors/${device}/telemetry' --qos "$QOS" --rate 5000 --duration "$PACED_SECONDS" --payload "$PAYLOAD"
  kill "$sl"; wait "$sl" 2>/dev/null || true
done
