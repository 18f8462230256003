# bench/lib.sh -- what the end-to-end benchmark scripts share (sourced, not run): a work
# directory removed at exit with every process recorded in pids, free loopback ports and a
# process's CPU ticks.
# usage: work_dir [PARENT]; pids+=("$!") after starting a server
work_dir() {
  work=$(mktemp -d ${1:+"$1/bench.XXXXXX"}); pids=()
  trap cleanup EXIT
}
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
