#!/usr/bin/env bash
# tests/deploy/container.sh -- builds deploy/Dockerfile with podman and runs the image
# (tests/deploy/smoke.py), then shows that the smoke test fails on broken images.
#
# No registry is reachable here, so the base image the Dockerfile names is made locally: a
# Debian 12 minbase rootfs by mmdebstrap (without docs, man pages and locales, as Debian's slim
# images), imported under that name. Everything lives in a private podman store in a temporary
# directory, removed at the end whatever happens: the machine's own podman store is not touched.
# Needs root (run by deploy/test.sh, which installs podman and mmdebstrap).
set -euo pipefail
cd "$(dirname "$0")/../.."

[ "$(id -u)" -eq 0 ] || { echo "container.sh needs root" >&2; exit 1; }
BASE=$(sed -n 's/^ARG BASE=//p' deploy/Dockerfile)
[ -n "$BASE" ] || { echo "deploy/Dockerfile names no ARG BASE" >&2; exit 1; }
IMAGE="localhost/sluice:smoke-$$"
work=$(mktemp -d /var/tmp/sluice-image.XXXXXX)
mkdir "$work/tmp"
chmod 711 "$work" "$work/tmp"  # the smoke test's broker runs as mosquitto, its files are in there
export TMPDIR="$work/tmp"      # smoke.py's rootfs and broker live there too
PODMAN=(podman --root "$work/storage" --runroot "$work/run" --storage-driver overlay
        --events-backend file --cgroup-manager cgroupfs)

cleanup() {
  local rc=$? p
  # Whatever a killed smoke test left running: the processes rooted in, or started from, $work.
  for p in /proc/[0-9]*; do
    if [[ "$(readlink "$p/root" 2>/dev/null)" == "$work"/* ]] ||
       { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null | grep -q -- "$work/"; then
      kill -9 "${p#/proc/}" 2>/dev/null || true
    fi
  done
  "${PODMAN[@]}" rm -af >/dev/null 2>&1 || true
  "${PODMAN[@]}" rmi -af >/dev/null 2>&1 || true
  if grep -q " $work/" /proc/self/mountinfo; then
    echo "container.sh: mounts left under $work, not deleting it:" >&2
    grep " $work/" /proc/self/mountinfo >&2
    exit 1
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPU seconds used so far by this script and what it waited for (a figure that, unlike the wall
# clock, does not grow when other work shares the machine).
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%d", ($12 + $13 + $14 + $15) / hz }' \
          "/proc/$$/stat"; }
t0=$(date +%s) c0=$(cpu)
echo "-- base image $BASE: mmdebstrap --variant=minbase bookworm"
# As Debian's own container images: dpkg without fsync (force-unsafe-io) and apt without
# translations, which also speeds up the Dockerfile's stages. The Valid-Until check is off because
# the mirror reached here can be a dated snapshot.
mmdebstrap --variant=minbase --mode=root --format=tar \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --dpkgopt=force-unsafe-io --aptopt='Acquire::Languages "none"' \
  --aptopt='Acquire::Check-Valid-Until "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  bookworm "$work/base.tar" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main" </dev/null \
  > "$work/mmdebstrap.log" 2>&1 || { tail -n 40 "$work/mmdebstrap.log"; echo "mmdebstrap failed" >&2; exit 1; }
"${PODMAN[@]}" import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' "$work/base.tar" "$BASE" >/dev/null
rm -f "$work/base.tar"
t1=$(date +%s) c1=$(cpu)

echo "-- podman build -f deploy/Dockerfile (chroot isolation, base from the local store)"
"${PODMAN[@]}" build --isolation=chroot --pull=never --format docker --layers=false \
  -f deploy/Dockerfile -t "$IMAGE" . > "$work/build.log" 2>&1 || {
  tail -n 60 "$work/build.log"; echo "podman build failed" >&2; exit 1; }
grep -E '^runtime packages:' "$work/build.log" || true
t2=$(date +%s) c2=$(cpu)
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
base_size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$BASE")
echo "image: $(( size / 1000000 )) MB ($(( base_size / 1000000 )) MB of it the Debian base," \
     "$(( (size - base_size) / 1000000 )) MB sluice and its libraries)"

echo "-- smoke test: tests/deploy/smoke.py"
python3 tests/deploy/smoke.py --image "$IMAGE" --podman "${PODMAN[*]}"
t3=$(date +%s) c3=$(cpu)

echo "-- the smoke test fails on broken images"
broken() {  # name, expected failure, Containerfile lines after FROM
  local name=$1 want=$2 tag="localhost/sluice-broken:${1// /-}"; shift 2
  rm -rf "$work/broken" && mkdir "$work/broken"
  { printf 'FROM %s\n' "$IMAGE"; printf '%s\n' "$@"; } > "$work/broken/Containerfile"
  "${PODMAN[@]}" build --isolation=chroot --pull=never --format docker --layers=false \
    -t "$tag" "$work/broken" > "$work/broken.log" 2>&1 || { cat "$work/broken.log"; return 1; }
  if out=$(python3 tests/deploy/smoke.py --image "$tag" --podman "${PODMAN[*]}" 2>&1); then
    echo "$out" | tail -n 5; echo "FAIL: the smoke test passed an image that $name" >&2; return 1
  fi
  if ! grep -q -- "not ok - .*$want" <<<"$out"; then
    echo "$out" | tail -n 5; echo "FAIL: image that $name: not the expected failure ($want)" >&2; return 1
  fi
  echo "ok - an image that $name fails: $(grep -m1 'not ok - ' <<<"$out" | cut -c1-110)"
  "${PODMAN[@]}" rmi -f "$tag" >/dev/null
}
broken "runs as root" "the image's user is not root" 'USER 0:0'
broken "has no entrypoint" "is an executable file" 'USER 0:0' 'RUN rm /usr/local/bin/sluice' 'USER 10001:10001'
broken "lacks a library" "every library the binary links resolves" \
  'USER 0:0' 'RUN rm /usr/lib/x86_64-linux-gnu/libmosquitto.so.1*' 'USER 10001:10001'
broken "bakes in a token" "no credential is baked into the image" 'ENV SLUICE_ADMIN_TOKEN=hunter2'
broken "exits at start" "sluice exited with" 'ENV SLUICE_LOG_LEVEL=loud'
broken "does not serve" "the command is .serve." 'CMD ["version"]'
broken "lets the user write its binary" "nothing outside the volume is writable" \
  'USER 0:0' 'RUN chown 10001 /usr/local/bin' 'USER 10001:10001'
t4=$(date +%s) c4=$(cpu)

echo "container image, wall (CPU) seconds: base $((t1 - t0)) ($((c1 - c0))), build $((t2 - t1)) ($((c2 - c1)))," \
     "smoke $((t3 - t2)) ($((c3 - c2))), broken images $((t4 - t3)) ($((c4 - c3)))," \
     "total $((t4 - t0)) ($((c4 - c0)))"
