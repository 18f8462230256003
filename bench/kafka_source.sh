#!/usr/bin/env bash
# bench/kafka_source.sh -- throughput and CPU per record of the Kafka source end to end:
# librdkafka's mock cluster (tests/integration/kafka_mock, 3 brokers, in its own process) ->
# `sluice serve` (MQTT off) consuming topic "sensors" in a consumer group -> the seed rule
#     SELECT temperature, deviceId FROM 'sensors/+/telemetry' WHERE temperature > 50.0
# -> the Kafka action, into topic "sensors-hot" of the same cluster.
# The input is preloaded before sluice starts: WARMUP records, then RECORDS records, each
# {"deviceId", "temperature", "humidity"} with the header mqtt_topic sensors/<device>/telemetry
# (1000 devices; a deterministic half of them above 50.0), written partition by partition so
# that the producer makes batches of up to 10 000 records. That matters for the mock only: its
# Fetch handler returns one stored batch per partition per request (rdkafka_mock_handlers.c,
# "FIXME: Multiple messageSets ?"), where a Kafka broker fills max.partition.fetch.bytes (1 MB)
# from as many batches as it takes; with small batches the mock, not sluice, sets the pace.
# Two figures: the steady state, from the moment sluice has taken in the warm-up (group join,
# the producer's first-produce delay and the first fetches behind it) until every record has
# finished (metrics: records in = all, in flight = 0), with sluice's and the mock's CPU over
# that window (/proc); and the whole run, from the first record in to the last, with sluice's
# CPU since it started over every record. The whole run is the fairer CPU figure: librdkafka
# prefetches up to 64 MB (about 500 000 of these records) during the warm-up, and decoding
# them costs CPU before the steady-state clock starts.
# Checks: the group's committed offsets reach the end of every input partition, the mock kept
# every input record (low watermarks 0: it keeps the last 5 MB of a partition), and the output
# got exactly the records above 50 (the sum of the output partitions' end offsets: the
# idempotent producer writes no duplicates).
# The machine may have 2 cores shared with other work: the mock cluster shares them with sluice.
# usage: bench/kafka_source.sh [BUILD_DIR]   (default build/: a Release build with benchmarks
#        and tests, so that tests/integration/kafka_mock exists)
# env: RECORDS (2000000), WARMUP (50000), PARTITIONS (64), WORKERS (2), RUNS (1),
#      CONFIG (sluice's config file as JSON; default below)
# Exit status: 0 when every run processed everything and its checks passed (the target,
# >= 200 k records/s, is reported, not enforced).
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-build}"
SLUICE="$B/engine/sluice"; KMOCK="$B/tests/integration/kafka_mock"
RECORDS="${RECORDS:-2000000}"; WARMUP="${WARMUP:-50000}"; PARTITIONS="${PARTITIONS:-64}"
WORKERS="${WORKERS:-2}"; RUNS="${RUNS:-1}"
[ -n "${CONFIG:-}" ] || CONFIG='{"sources": {"kafka": {"commitIntervalMs": 1000}}}'
for f in "$SLUICE" "$KMOCK"; do
  [ -x "$f" ] || { echo "missing $f (configure with -DSLUICE_BENCH=ON -DSLUICE_TESTS=ON)"; exit 1; }
done
work=$(mktemp -d /tmp/bench-kafkasrc.XXXXXX); pids=(); failed=0
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  exec 7>&- 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

km() {  # km COMMAND: sends it to kafka_mock and prints its reply line
  local n; n=$(wc -l < "$work/km.out"); echo "$1" >&7
  for _ in $(seq 12000); do
    if [ "$(wc -l < "$work/km.out")" -gt "$n" ]; then tail -1 "$work/km.out"; return 0; fi
    sleep 0.01
  done
  echo "kafka_mock: no answer to ${1:0:60}"; return 1
}

echo "# kafka source bench: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg), mock cluster on the same machine"
for run in $(seq "$RUNS"); do
  rm -f "$work/km.in" "$work/km.out"; mkfifo "$work/km.in"; : > "$work/km.out"
  "$KMOCK" 3 < "$work/km.in" >> "$work/km.out" 2> "$work/km.err" & kpid=$!; pids+=("$kpid")
  exec 7> "$work/km.in"
  for _ in $(seq 100); do [ -s "$work/km.out" ] && break; sleep 0.05; done
  boot=$(head -1 "$work/km.out")
  [ -n "$boot" ] || { echo "kafka_mock did not start: $(cat "$work/km.err")"; exit 1; }
  km "create sensors $PARTITIONS" >/dev/null
  km "create sensors-hot 16" >/dev/null
  # the input: produce commands of 20 000 records each, written by python, sent through km
  hot=$(python3 - "$work/produce" "$WARMUP" "$RECORDS" "$PARTITIONS" <<'PY'
import json, sys
path, warm, n, parts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
hot = 0
def rec(i):
    dev = f"dev-{i % 1000}"
    t = round((i * 37 % 1000) / 10.0 + 0.05, 2)  # 0.05 .. 99.95
    return t > 50.0, {"partition": i % parts, "headers": [{"key": "mqtt_topic",
                      "value": f"sensors/{dev}/telemetry"}], "value": json.dumps(
                      {"deviceId": dev, "temperature": t, "humidity": round(i % 700 / 10, 1)},
                      separators=(",", ":"))}
# The warm-up first, then the rest; each produce command holds one partition's records, so
# that the producer writes them in large batches (see the note on the mock's fetches)
with open(path, "w") as f:
    for lo, hi in ((0, warm), (warm, warm + n)):
        for p in range(parts):
            idx = range(lo + (p - lo) % parts, hi, parts)
            for c in range(0, len(idx), 20000):
                chunk = []
                for i in idx[c:c + 20000]:
                    h, r = rec(i)
                    hot += h
                    chunk.append(r)
                f.write("produce " + json.dumps({"topic": "sensors", "records": chunk}) + "\n")
print(hot)
PY
)
  t0=$(date +%s.%N)
  while IFS= read -r line; do
    r=$(km "$line"); case "$r" in *'"ok":true'*) ;; *) echo "produce failed: $r"; exit 1;; esac
  done < "$work/produce"
  t1=$(date +%s.%N)
  low=$(km "offsets sensors")
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert all(v == 0 for v in r["low"].values()), "the mock dropped input records: fewer records or more partitions"; assert sum(r["high"].values()) == int(sys.argv[2]), r' "$low" "$((WARMUP + RECORDS))" || exit 1
  echo "# run $run: preloaded $((WARMUP + RECORDS)) records over $PARTITIONS partitions in $(python3 -c "print(f'{$t1-$t0:.1f}')") s"

  port=$(free_port); data="$work/data$run"; mkdir -p "$data"
  echo "$CONFIG" > "$work/cfg.json"
  SLUICE_MQTT_URL=none SLUICE_HTTP_ADDR="127.0.0.1:$port" SLUICE_DATA_DIR="$data" \
  SLUICE_WORKERS="$WORKERS" SLUICE_LOG_LEVEL=warn SLUICE_KAFKA_BOOTSTRAP_SERVERS="$boot" \
  SLUICE_KAFKA_TOPICS="" \
    "$SLUICE" serve --config "$work/cfg.json" > "$work/provision.log" 2>&1 & spid=$!
  # the rule first (a start without the source), so that no record finds it missing
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
  rule=$(python3 -c 'import json,sys; print(json.dumps({"sql": "SELECT temperature, deviceId FROM '"'"'sensors/+/telemetry'"'"' WHERE temperature > 50.0", "awsIotSqlVersion": "2016-03-23", "actions": [{"kafka": {"topic": "sensors-hot", "key": "${deviceId}", "clientProperties": {"bootstrap.servers": sys.argv[1]}}}]}))' "$boot")
  curl -sf -X POST "http://127.0.0.1:$port/rules/seed" -d "$rule" >/dev/null
  kill "$spid"; wait "$spid" || true
  SLUICE_MQTT_URL=none SLUICE_HTTP_ADDR="127.0.0.1:$port" SLUICE_DATA_DIR="$data" \
  SLUICE_WORKERS="$WORKERS" SLUICE_LOG_LEVEL=warn SLUICE_KAFKA_BOOTSTRAP_SERVERS="$boot" \
  SLUICE_KAFKA_TOPICS=sensors SLUICE_KAFKA_GROUP_ID="bench$run" \
    "$SLUICE" serve --config "$work/cfg.json" > "$work/sluice$run.log" 2>&1 & spid=$!; pids+=("$spid")
  # sample /metrics until every record is in and none is in flight
  out=$(python3 - "$port" "$spid" "$kpid" "$WARMUP" "$RECORDS" "$hz" <<'PY'
import json, sys, time, urllib.request
port, spid, kpid, warm, n, hz = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:])
def metrics():
    try:
        t = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except Exception:
        return {}
    return {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in t.splitlines()
            if l and not l.startswith("#")}
def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])
start = time.time()
tf = None
while True:
    m = metrics()
    got = m.get('sluice_messages_in_total{source="kafka"}', 0)
    if got > 0 and tf is None:
        tf, inf = time.time(), got  # the first records are in: the group is joined
    if got >= warm:
        break
    if time.time() - start > 120:
        sys.exit("no progress: " + json.dumps({k: v for k, v in m.items() if "kafka" in k}))
    time.sleep(0.005)
t0, s0, k0, in0 = time.time(), ticks(spid), ticks(kpid), m['sluice_messages_in_total{source="kafka"}']
while True:
    m = metrics()
    if (m.get('sluice_messages_in_total{source="kafka"}', 0) >= warm + n and
            m.get("sluice_kafka_in_flight_records", 1) == 0):
        break
    if time.time() - t0 > 600:
        sys.exit("timed out")
    time.sleep(0.005)
t1, s1, k1 = time.time(), ticks(spid), ticks(kpid)
done = warm + n - in0
print(json.dumps({"records": done, "seconds": t1 - t0, "rps": done / (t1 - t0),
                  "sluice_us": (s1 - s0) / hz / done * 1e6, "mock_us": (k1 - k0) / hz / done * 1e6,
                  "all_rps": (warm + n - inf) / (t1 - tf), "all_seconds": t1 - tf,
                  "all_sluice_us": s1 / hz / (warm + n) * 1e6,
                  "pauses": m.get("sluice_kafka_pauses_total", 0),
                  "fired": m.get('sluice_rule_fired_total{rule="seed"}', 0),
                  "delivered": m.get('sluice_action_delivered_total{rule="seed",action="kafka",index="0"}', 0),
                  "failed": m.get('sluice_action_failed_total{rule="seed",action="kafka",index="0"}', 0),
                  "batches": m.get('sluice_action_batches_total{rule="seed",action="kafka",index="0"}', 0),
                  "commits": m.get("sluice_kafka_commits_total", 0)}))
PY
) || { echo "# run $run FAILED: $out"; tail -5 "$work/sluice$run.log"; failed=1; }
  kill -TERM "$spid"; wait "$spid" || { echo "# sluice exited $?"; failed=1; }
  # checks: committed = end of input; output = the hot records, exactly
  check=$(python3 - "$(km "committed bench$run sensors")" "$(km "offsets sensors")" "$(km "offsets sensors-hot")" "$hot" <<'PY'
import json, sys
c, i, o, hot = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
# the mock keeps the last 5 MB of each partition: the output is counted by its end offsets
ok = c["committed"] == i["high"] and sum(o["high"].values()) == hot
print(("ok: " if ok else "MISMATCH: ") + f"committed {sum(c['committed'].values())} of "
      f"{sum(i['high'].values())} input records, {sum(o['high'].values())} outputs for {hot} "
      "records above 50")
sys.exit(0 if ok else 1)
PY
) || failed=1
  python3 - "$out" "$check" <<'PY'
import json, sys
try:
    o = json.loads(sys.argv[1])
except ValueError:
    sys.exit(0)
print(f"steady state: {o['rps']:,.0f} records/s (target >= 200 k) over {o['records']:,.0f} "
      f"records in {o['seconds']:.2f} s; CPU per record: sluice {o['sluice_us']:.2f} us, mock "
      f"cluster {o['mock_us']:.2f} us")
print(f"whole run: {o['all_rps']:,.0f} records/s from the first record in to the last "
      f"({o['all_seconds']:.2f} s); sluice CPU per record since its start "
      f"{o['all_sluice_us']:.2f} us")
print(f"rule fired {o['fired']:,.0f}, delivered {o['delivered']:,.0f} in "
      f"{o['batches']:,.0f} batches, failed {o['failed']:,.0f}; pauses {o['pauses']:,.0f}, "
      f"commits {o['commits']:,.0f}")
print(f"check: {sys.argv[2]}")
PY
  echo quit >&7; exec 7>&-; wait "$kpid" 2>/dev/null || true
done
exit $failed
