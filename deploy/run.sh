#!/usr/bin/env bash
# deploy/run.sh -- install what is missing, build (release), and show sluice on the seed rule.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/lib.sh

# shellcheck disable=SC2086
install_missing $SLUICE_BUILD_PKGS
log "build (release): build/"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF -DSLUICE_BENCH=OFF >/dev/null
cmake --build build -j "$(nproc_or_2)"

SQL="SELECT temperature, humidity, deviceId FROM 'sensors/+/telemetry' WHERE temperature > 50.0"
log "the seed rule: $SQL"
for payload in '{"deviceId":"dev-1","temperature":72.5,"humidity":40}' \
               '{"deviceId":"dev-2","temperature":21.0,"humidity":55}'; do
  echo "\$ sluice eval --topic sensors/dev/telemetry --payload '$payload'"
  build/engine/sluice eval --sql "$SQL" --topic sensors/dev/telemetry --payload "$payload" \
    && echo "(fired)" || echo "(not fired: exit $?)"
done
log "compiled bytecode"
build/engine/sluice explain --sql "$SQL"
