#!/usr/bin/env bash
# deploy/run.sh -- install what is missing, build (release), start a local Mosquitto when no
# broker answers at SLUICE_MQTT_URL, load the example rules, and run `sluice serve` in the
# foreground (Ctrl-C stops it, draining its queues first).
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/lib.sh

# shellcheck disable=SC2086
install_missing $SLUICE_BUILD_PKGS $SLUICE_RUN_PKGS
log "build (release): build/"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF -DSLUICE_BENCH=OFF >/dev/null
cmake --build build -j "$(nproc_or_2)"

export SLUICE_MQTT_URL="${SLUICE_MQTT_URL:-mqtt://127.0.0.1:1883}"
export SLUICE_HTTP_ADDR="${SLUICE_HTTP_ADDR:-127.0.0.1:8088}"
export SLUICE_DATA_DIR="${SLUICE_DATA_DIR:-$PWD/data}"
host=$(mqtt_host "$SLUICE_MQTT_URL"); port=$(mqtt_port "$SLUICE_MQTT_URL")
mosq_pid=""
if ! port_open "$host" "$port"; then
  log "no broker at $host:$port: starting a local Mosquitto on 127.0.0.1:$port"
  mkdir -p "$SLUICE_DATA_DIR"
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$SLUICE_DATA_DIR/mosquitto.conf"
  mosquitto -c "$SLUICE_DATA_DIR/mosquitto.conf" > "$SLUICE_DATA_DIR/mosquitto.log" 2>&1 &
  mosq_pid=$!
  for _ in $(seq 50); do port_open 127.0.0.1 "$port" && break; sleep 0.1; done
fi

log "sluice serve (http://$SLUICE_HTTP_ADDR, broker $SLUICE_MQTT_URL, data $SLUICE_DATA_DIR)"
build/engine/sluice serve "$@" &
sluice_pid=$!
cleanup() {
  kill -TERM "$sluice_pid" 2>/dev/null && wait "$sluice_pid" 2>/dev/null
  [ -n "$mosq_pid" ] && kill "$mosq_pid" 2>/dev/null
  return 0
}
trap cleanup EXIT
trap 'exit 0' INT TERM
for _ in $(seq 100); do curl -fs "http://$SLUICE_HTTP_ADDR/healthz" >/dev/null && break; sleep 0.1; done

# the example rules go in as admin: with the admin token, or signed with the admin credential
auth=()
if [ -n "${SLUICE_ADMIN_TOKEN:-}" ]; then
  auth=(-H "Authorization: Bearer $SLUICE_ADMIN_TOKEN")
elif [ -n "${SLUICE_ACCESS_KEY_ID:-}" ]; then
  auth=(--aws-sigv4 "aws:amz:us-east-1:iot" --user "$SLUICE_ACCESS_KEY_ID:${SLUICE_SECRET_ACCESS_KEY:-}")
fi
for f in deploy/examples/*.json; do
  [ "$(basename "$f")" = sluice.json ] && continue
  name=$(basename "$f" .json)
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$SLUICE_HTTP_ADDR/rules/$name" \
         -H 'Content-Type: application/json' "${auth[@]}" --data-binary "@$f")
  case "$code" in
    200) echo "example rule $name created" ;;
    409) echo "example rule $name already exists" ;;
    *) echo "example rule $name: HTTP $code" ;;
  esac
done
cat <<TXT

sluice is running. Try, in another terminal:
  mosquitto_sub -h $host -p $port -t 'alerts/#' -v &
  mosquitto_pub -h $host -p $port -t sensors/dev-7/telemetry -m '{"deviceId":"dev-7","temperature":72.5,"humidity":40}'
TXT
wait "$sluice_pid"
