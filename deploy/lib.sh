# deploy/lib.sh -- shared by run.sh and test.sh: the package list and the installer.
# shellcheck shell=bash disable=SC2034
# Sourced, not executed.

# Everything sluice needs to build, test and run, from Debian 12's repositories.
# What compiling the `sluice` binary needs: also the package list of the container's build
# stage (deploy/Dockerfile sources this file), so a new client library is added here once.
SLUICE_COMPILE_PKGS="gcc libc6-dev cmake ninja-build pkg-config libpcre2-dev libssl-dev
  libcjson-dev libmosquitto-dev libmicrohttpd-dev librdkafka-dev libpq-dev libcurl4-openssl-dev
  libsqlite3-dev"
SLUICE_BUILD_PKGS="build-essential python3 tzdata ca-certificates $SLUICE_COMPILE_PKGS"
SLUICE_RUN_PKGS="mosquitto mosquitto-clients curl awscli librdkafka1 libpq5 libcurl4 libsqlite3-0"
SLUICE_TEST_PKGS="libcriterion-dev clang libclang-rt-14-dev python3-boto3 python3-paho-mqtt postgresql
  iproute2
  $SLUICE_RUN_PKGS"
# The deployment tests (tests/deploy): podman builds deploy/Dockerfile (as root: chroot isolation,
# native overlay storage) on a base image that mmdebstrap makes; Node.js validates the manifests.
SLUICE_DEPLOY_TEST_PKGS="podman mmdebstrap nodejs"

log() { printf '\n== %s\n' "$*"; }

# Installs the packages that are not installed yet (apt-get update only when needed).
install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# npm: bundled with some Node.js packages, a package of its own in Debian's.
install_npm() { command -v npm >/dev/null || install_missing npm; }

nproc_or_2() { nproc 2>/dev/null || echo 2; }

# 0 when something accepts TCP connections on host:port.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# host and port of an mqtt:// URL.
mqtt_host() { local u="${1#*://}"; u="${u%%/*}"; echo "${u%%:*}"; }
mqtt_port() { local u="${1#*://}"; u="${u%%/*}"; [[ "$u" == *:* ]] && echo "${u##*:}" || echo 1883; }
