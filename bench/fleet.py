#!/usr/bin/python3
"""bench/fleet.py -- a sluice fleet on one machine: throughput with 1, 2 and 3 instances on
one Mosquitto and one PostgreSQL (the shared store), and how long a rule change takes to reach
the other instances.

    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build
    /usr/bin/python3 bench/fleet.py build            # FLEET_MESSAGES=100000 FLEET_CHANGES=200

Throughput: the instances share one $share group; sluice-loadgen floods N QoS 1 messages (the
e2e.sh seed rule: half of them pass the WHERE and are republished, QoS 1) and measures the
outputs. Printed per fleet size: outputs/s, the latency percentiles of the outputs (queueing,
under a flood), and CPU seconds per 1 000 input messages of the broker, of all sluice instances
together and of PostgreSQL, with the machine's cores: on a machine whose cores are all busy,
more instances only split the same CPU.

Propagation: on a fleet of three, FLEET_CHANGES rule changes (create, replace, delete in turn)
through one instance, the next through another; for each, the time from the admin call's answer
until the other two serve the change (GET /rules/<name> polled in a tight loop), p50 and p99.
"""
import json, os, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
SLUICE = os.path.join(BUILD, "engine", "sluice")
LOADGEN = os.path.join(BUILD, "bench", "loadgen", "sluice-loadgen")
sys.argv = [sys.argv[0], SLUICE]  # harness.py takes the sluice binary from argv[1]
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from fleet import Fleet  # noqa: E402
from harness import http  # noqa: E402

N = int(os.environ.get("FLEET_MESSAGES", "100000"))
CHANGES = int(os.environ.get("FLEET_CHANGES", "200"))
HZ = os.sysconf("SC_CLK_TCK")
PAYLOAD = '{"deviceId":"${device}","temperature":${rand:0:100},"humidity":${rand:0:100},"ts":${ts}}'
SEED = {"sql": "SELECT temperature, humidity, deviceId, ts FROM 'sensors/+/telemetry' "
               "WHERE temperature > 50.0", "awsIotSqlVersion": "2016-03-23",
        "actions": [{"republish": {"topic": "out/${deviceId}", "qos": 1}}]}


def cpu(pids):
    """CPU seconds (user + system) of these processes and their children so far."""
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            t += sum(int(x) for x in v[11:15])
        except OSError:
            pass
    return t / HZ


def pg_pids(pg):
    """The PostgreSQL server's processes (the postmaster and its backends)."""
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        pm = f.readline().strip()
    out = subprocess.run(["pgrep", "-P", pm], capture_output=True, text=True).stdout.split()
    return [pm] + out


def throughput(n_instances):
    f = Fleet(n_instances, workers=os.cpu_count())
    try:
        st, _, b = f.post(f.nodes[0], "/rules/seed", SEED)
        assert st == 200, b
        for x in f.nodes[1:]:
            f.wait_rule(x, "seed")
        time.sleep(0.5)
        pids = {"broker": [f.broker.p.pid], "sluice": [x.p.pid for x in f.nodes],
                "postgres": pg_pids(f.pg)}
        before = {k: cpu(v) for k, v in pids.items()}
        t0 = time.time()
        out = subprocess.run([LOADGEN, "--port", str(f.broker.port), "--qos", "1", "--count",
                              str(N), "--sub", "out/#", "--topic", "sensors/${device}/telemetry",
                              "--payload", PAYLOAD, "--timeout", "20", "--json"],
                             capture_output=True, text=True, check=True).stdout
        wall = time.time() - t0
        r = json.loads(out)
        used = {k: cpu(v) - before[k] for k, v in pids.items()}
        per_k = {k: v / N * 1000 for k, v in used.items()}
        busy = sum(used.values()) / wall / os.cpu_count() * 100
        print(f"{n_instances} instance{'s' if n_instances > 1 else ' '}  sent {r['sent']:6d}  "
              f"out {r['received']:6d}  {r['receive_rate']:7.0f} out/s  "
              f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
              f"CPU s per 1000 in: broker {per_k['broker']:.3f}  sluice {per_k['sluice']:.3f}  "
              f"postgres {per_k['postgres']:.3f}  (cores busy {busy:.0f} % of {os.cpu_count()})",
              flush=True)
        f.stop_all()
    finally:
        f.cleanup()


def propagation():
    f = Fleet(3, workers=1)
    delays = []
    try:
        exists = False
        for k in range(CHANGES):
            src = f.nodes[k % 3]
            others = [x for x in f.nodes if x is not src]
            sql = f"SELECT {k} AS k FROM 'p/#'"
            if not exists:
                method, want = "POST", 200
            elif k % 2:
                method, want = "PATCH", 200
            else:
                method, want = "DELETE", 404
            exists = method != "DELETE"
            body = {"sql": sql, "actions": []} if method != "DELETE" else None
            st, _, b = f.post(src, "/rules/prop", body, method=method)
            assert st == 200, b
            t0 = time.time()
            done = {}

            def watch(x):
                while time.time() - t0 < 30:
                    st, _, b = http("GET", f"{x.url}/rules/prop")
                    if st == want and (want == 404 or json.loads(b)["rule"]["sql"] == sql):
                        done[x.url] = time.time() - t0
                        return
            ts = [threading.Thread(target=watch, args=(x,)) for x in others]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert len(done) == 2, f"change {k} did not reach every instance"
            delays += list(done.values())
        f.stop_all()
    finally:
        f.cleanup()
    delays.sort()
    q = statistics.quantiles(delays, n=100)
    print(f"rule propagation over {len(delays)} (change, instance) pairs: p50 {q[49]*1000:.1f} ms"
          f"  p99 {q[98]*1000:.1f} ms  max {delays[-1]*1000:.1f} ms", flush=True)


if __name__ == "__main__":
    for f in (SLUICE, LOADGEN):
        if not os.access(f, os.X_OK):
            sys.exit(f"missing {f} (build with -DCMAKE_BUILD_TYPE=Release)")
    print(f"# fleet: {os.cpu_count()} cores, QoS 1 end to end, {N} messages per run, one "
          f"Mosquitto, one PostgreSQL (shared store), journal batch", flush=True)
    for n in (1, 2, 3):
        throughput(n)
    propagation()
