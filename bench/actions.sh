#!/usr/bin/env bash
# bench/actions.sh -- throughput and CPU per message of the Kafka, PostgreSQL, HTTP and file
# actions through the real delivery pipeline (bench_actions: no MQTT, no SQL), each against a
# private server on a free loopback port that this script starts and stops:
#   postgres       a PostgreSQL 15 cluster (initdb in a temp dir, run as the postgres user,
#                  fsync=on, trust auth), batched inserts; row count checked with psql
#   kafka          librdkafka's mock cluster (tests/integration/kafka_mock, 3 brokers, 4
#                  partitions) with a key template, after a 10 000-message warm-up (the first
#                  produce rounds of a new producer can take ~1 s); the records are counted
#                  from the partitions' end offsets, read back by consuming the topic
#   http           httpsink (bench/httpsink.c, libmicrohttpd keep-alive), one request per
#                  message over the action's 4 lanes; message count checked by the sink
#   http_batch     the same with batchConfig (10 messages per request, a JSON array)
#   file           a temp file, fdatasync per batch; line count checked
# The machine may have few cores: every server shares them with the benchmark, so the
# figures are those of client and server together, and both CPU costs are reported.
# usage: bench/actions.sh [BUILD_DIR]   (default build/; a Release build with benchmarks and
#        tests, so that tests/integration/kafka_mock exists). Run as root (PostgreSQL runs as
#        the postgres user through runuser).
# env: PG_ROWS (200000), KAFKA_MSGS (1000000), HTTP_REQS (100000), HTTP_BATCH_MSGS (200000),
#      FILE_MSGS (1000000), ONLY (a subset of: postgres kafka http http_batch file)
# Exit status: 0 when every run delivered everything and its check passed (the targets are
# reported, not enforced: they depend on the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-build}"
BENCH="$B/bench/bench_actions"; SINK="$B/bench/httpsink"; KMOCK="$B/tests/integration/kafka_mock"
PG_ROWS="${PG_ROWS:-200000}"; KAFKA_MSGS="${KAFKA_MSGS:-1000000}"; HTTP_REQS="${HTTP_REQS:-100000}"
HTTP_BATCH_MSGS="${HTTP_BATCH_MSGS:-200000}"; FILE_MSGS="${FILE_MSGS:-1000000}"
ONLY="${ONLY:-postgres kafka http http_batch file}"
KAFKA_WARMUP=10000
PGBIN=/usr/lib/postgresql/15/bin
for f in "$BENCH" "$SINK" "$KMOCK"; do
  [ -x "$f" ] || { echo "missing $f (configure with -DSLUICE_BENCH=ON -DSLUICE_TESTS=ON)"; exit 1; }
done

work=$(mktemp -d /tmp/bench-actions.XXXXXX); pgdir=""; pids=(); failed=0
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "$pgdir" ] && [ -f "$pgdir/data/postmaster.pid" ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1
  fi
  exec 7>&- 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work" ${pgdir:+"$pgdir"}
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
hz=$(getconf CLK_TCK)
# CPU ticks of a process and its descendants (exited children count once reaped: cutime)
tree_ticks() {
  local pid=$1 t c
  t=$(awk '{print $14+$15+$16+$17}' "/proc/$pid/stat" 2>/dev/null || echo 0)
  for c in $(pgrep -P "$pid" 2>/dev/null); do t=$((t + $(tree_ticks "$c"))); done
  echo "$t"
}
wants() { [[ " $ONLY " == *" $1 "* ]]; }

# bench NAME TARGET SERVER_PID VERIFY_CMD -- BENCH_ARGS...: runs bench_actions --json and
# records its result, the server's CPU over the run, and what VERIFY_CMD (a shell command that
# prints its finding and fails on a mismatch) says.
bench() {
  local name=$1 target=$2 spid=$3 verify=$4; shift 5
  local s0=0 s1=0 out rc=0 check
  [ "$spid" != - ] && s0=$(tree_ticks "$spid")
  echo "# $name: $BENCH $*" | sed "s|$work|\$WORK|g"
  out=$("$BENCH" --json "$@") || rc=$?
  sleep 0.3  # let the server reap what the run's connections left
  [ "$spid" != - ] && s1=$(tree_ticks "$spid")
  if [ $rc -ne 0 ] || [ -z "$out" ]; then
    echo "# $name: bench_actions FAILED (exit $rc)"; failed=1
    out=${out:-'{}'}
  fi
  check=$($verify 2>&1) || { echo "# $name: check FAILED: $check"; failed=1; }
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$target" "$out" "$((s1 - s0))" "$check" >> "$work/results"
}

echo "# actions bench: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), servers on the same machine"

# {====== PostgreSQL
pg_check() {  # every row, each with its 5 columns bound (100 devices, 100 topics)
  local n want="$PG_ROWS|100|$PG_ROWS|$PG_ROWS|$PG_ROWS|100"
  n=$("${PSQL[@]}" -c 'SELECT count(*), count(DISTINCT dev), count(temperature), count(humidity),
                              count(ts), count(DISTINCT topic) FROM readings')
  [ "$n" = "$want" ] && echo "$PG_ROWS rows in the table, all columns set" ||
    { echo "rows|devices|temperatures|humidities|ts|topics = $n, expected $want"; false; }
}
if wants postgres; then
  pgdir=$(mktemp -d /tmp/bench-pg.XXXXXX); chown postgres: "$pgdir"
  pgport=$(free_port)
  runuser -u postgres -- "$PGBIN/initdb" -D "$pgdir/data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w start \
    -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=on" >/dev/null
  pgpid=$(head -1 "$pgdir/data/postmaster.pid")
  PSQL=(psql -X -q -t -A -h 127.0.0.1 -p "$pgport" -U postgres -d postgres -v ON_ERROR_STOP=1)
  "${PSQL[@]}" -c "CREATE TABLE readings (dev text NOT NULL, temperature double precision,
                   humidity double precision, ts bigint, topic text)"
  conninfo="postgresql://postgres@127.0.0.1:$pgport/postgres"
  stmt='INSERT INTO readings (dev, temperature, humidity, ts, topic) VALUES (${deviceId}, ${temperature}, ${humidity}, ${ts}, ${topic()})'
  bench postgres ">= 100k rows/s" "$pgpid" pg_check -- \
    --action "{\"postgres\": {\"conninfo\": \"$conninfo\", \"statement\": \"$stmt\", \"batchSize\": 1000, \"poolSize\": 2}}" \
    --count "$PG_ROWS"
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null
fi
# }======

# {====== Kafka (librdkafka's mock cluster, driven through a fifo: one command per line)
# kafka_mock sets TCP_NODELAY on the brokers' sockets as real brokers do (see kafka_mock.c).
km() {  # km COMMAND: sends it to kafka_mock and prints its last reply line (ok/done/error)
  local n; n=$(wc -l < "$work/km.out"); echo "$1" >&7
  for _ in $(seq 6000); do
    if [ "$(wc -l < "$work/km.out")" -gt "$n" ] && tail -1 "$work/km.out" | grep -q '"ok"\|"done"\|"error"'; then
      tail -1 "$work/km.out"; return 0; fi
    sleep 0.05
  done
  echo "kafka_mock: no answer to $1"; return 1
}
# The mock keeps only the latest few MB of each partition, so the check reads the partitions'
# end offsets (the last record's offset + 1) rather than counting what is left; the idempotent
# producer appends no duplicates, so their sum is the number of records written.
kafka_check() {
  local want=$((KAFKA_MSGS + KAFKA_WARMUP)) from n
  from=$(($(wc -l < "$work/km.out") + 1))
  km "consume bench 0 60000" >/dev/null
  n=$(tail -n +"$from" "$work/km.out" | python3 -c '
import json, sys
end = {}
for line in sys.stdin:
    r = json.loads(line)
    if "offset" in r:
        end[r["partition"]] = max(end.get(r["partition"], 0), r["offset"] + 1)
print(sum(end.values()))')
  : > "$work/km.out"
  [ "$n" = "$want" ] && echo "$n records (warm-up included) by the partitions' end offsets" ||
    { echo "$n records by the partitions' end offsets, expected $want"; false; }
}
kafka_run() {  # kafka_run NAME [PRELOAD_SO]
  local name=$1 so=${2:-} kpid boot
  rm -f "$work/km.in"; mkfifo "$work/km.in"
  env ${so:+LD_PRELOAD="$so"} "$KMOCK" 3 < "$work/km.in" > "$work/km.out" 2> "$work/km.err" &
  kpid=$!; pids+=("$kpid")
  exec 7> "$work/km.in"
  for _ in $(seq 100); do [ -s "$work/km.out" ] && break; sleep 0.05; done
  boot=$(head -1 "$work/km.out")
  [ -n "$boot" ] || { echo "kafka_mock did not start: $(cat "$work/km.err")"; exit 1; }
  km "create bench 4" >/dev/null
  bench "$name" ">= 500k msgs/s" "$kpid" kafka_check -- \
    --action "{\"kafka\": {\"topic\": \"bench\", \"key\": \"\${deviceId}\", \"clientProperties\": {\"bootstrap.servers\": \"$boot\"}}}" \
    --count "$KAFKA_MSGS" --warmup "$KAFKA_WARMUP"
  echo quit >&7; exec 7>&-; wait "$kpid" 2>/dev/null || true
}
if wants kafka; then
  kafka_run kafka
fi
# }======

# {====== HTTP (httpsink: its last stdout line is a JSON object with its counts)
http_check() {
  local c m
  kill "$spid"  # it prints its counts and exits (this runs in a subshell: no wait)
  for _ in $(seq 100); do [ "$(wc -l < "$work/sink.out")" -ge 2 ] && break; sleep 0.05; done
  c=$(tail -1 "$work/sink.out")
  m=$(echo "$c" | python3 -c 'import json,sys;c=json.load(sys.stdin);print(c["messages"])')
  [ "$m" = "$http_n" ] && echo "sink: $c" || { echo "sink: $c, expected $http_n messages"; false; }
}
http_run() {  # http_run NAME TARGET COUNT ACTION_JSON (@PORT@ is the sink's port)
  local name=$1 target=$2 action=$4 sport
  http_n=$3
  "$SINK" 0 60 > "$work/sink.out" 2>&1 & spid=$!; pids+=("$spid")
  for _ in $(seq 100); do [ -s "$work/sink.out" ] && break; sleep 0.05; done
  sport=$(head -1 "$work/sink.out")
  bench "$name" "$target" "$spid" http_check -- --action "${action//@PORT@/$sport}" --count "$http_n"
}
if wants http; then
  http_run http ">= 20k req/s" "$HTTP_REQS" \
    '{"http": {"url": "http://127.0.0.1:@PORT@/hook/${topic(2)}", "headers": [{"key": "x-device", "value": "${deviceId}"}]}}'
fi
if wants http_batch; then
  http_run http_batch "(none)" "$HTTP_BATCH_MSGS" \
    '{"http": {"url": "http://127.0.0.1:@PORT@/hook", "enableBatching": true, "batchConfig": {"maxBatchSize": 10, "maxBatchOpenMs": 20, "maxBatchSizeBytes": 131072, "batchAcrossTopics": true}}}'
fi
# }======

# {====== file
file_check() {
  local n; n=$(wc -l < "$work/out.jsonl")
  [ "$n" = "$FILE_MSGS" ] && echo "$n lines in the file" || { echo "$n lines, expected $FILE_MSGS"; false; }
}
if wants file; then
  bench file "(none)" - file_check -- \
    --action "{\"file\": {\"path\": \"$work/out.jsonl\", \"fsync\": \"batch\"}}" --count "$FILE_MSGS"
fi
# }======

echo
python3 - "$work/results" "$hz" <<'PY'
import json, sys
hz = int(sys.argv[2])
rows = []
for line in open(sys.argv[1]):
    name, target, out, sticks, check = line.rstrip("\n").split("\t")
    rows.append((name, target, json.loads(out), int(sticks), check))
def lat(v):
    return "> 131 ms" if v is None else (f"{v/1000:.1f} ms" if v >= 1000 else f"{v:.0f} us")
def warm(o):
    n = o.get("warmup_messages") or 0
    return f"{n:.0f} in {o.get('warmup_seconds', 0):.2f} s" if n else "-"
print(f"{'run':13s} {'delivered':>9s} {'seconds':>7s} {'msgs/s':>8s} {'target':>14s} "
      f"{'client CPU':>10s} {'server CPU':>10s} {'lanes':>5s} {'batch':>7s} "
      f"{'p50':>8s} {'warm-up':>14s}  check")
for name, target, o, sticks, check in rows:
    n = o.get("messages") or 1
    server = f"{sticks / hz / n * 1e6:.2f} us" if name != "file" else "-"
    print(f"{name:13s} {o.get('delivered', 0):9.0f} {o.get('seconds', 0):7.3f} "
          f"{o.get('msgs_per_s', 0):8.0f} {target:>14s} {o.get('cpu_us_per_msg', 0):7.2f} us "
          f"{server:>10s} {o.get('lanes', 0):5d} {o.get('mean_batch', 0):7.1f} "
          f"{lat(o.get('latency_p50_le_us')):>8s} {warm(o):>14s}  {check}")
PY
echo "# client CPU: bench_actions' own user+sys per message (submitter, pipeline lanes, client" \
     "library threads); server CPU: the server's processes (PostgreSQL: postmaster and" \
     "backends) per message, in ${hz} Hz ticks; p50: submit to delivered, time queued behind" \
     "the closed-loop window included (histogram bucket bound)"
exit $failed
