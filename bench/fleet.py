#!/usr/bin/python3
"""bench/fleet.py -- a sluice fleet on one machine: throughput with 1, 2 and 3 instances on
one Mosquitto and one PostgreSQL (the shared store), and how long a rule change takes to reach
the other instances.

    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build
    /usr/bin/python3 bench/fleet.py build            # FLEET_MESSAGES=100000 FLEET_CHANGES=200

Throughput: the instances share one $share group; sluice-loadgen floods N QoS 1 messages (the
e2e.sh seed rule: half of them pass the WHERE and are republished, QoS 1) and measures the
outputs. First the broker alone (the load generator publishing to the topic it measures), then
fleets of 1, 2 and 3 instances. Printed: the input and output rates, the latency percentiles of
the outputs (queueing, under a flood), the CPU per input message of the broker, of all sluice
instances together, of PostgreSQL and of the load generator, and how busy that kept the
machine's cores: on a machine whose cores are all busy, more instances only split the same CPU.
Each flood is followed by a paced run (FLEET_RATE msgs/s for FLEET_PACED_SECONDS), whose
latency is processing rather than queueing and whose CPU per message compares fleets at the
same load.

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
from fleet import NODELAY, Fleet  # noqa: E402
from harness import http  # noqa: E402
from test_durability import Broker  # noqa: E402

N = int(os.environ.get("FLEET_MESSAGES", "100000"))
CHANGES = int(os.environ.get("FLEET_CHANGES", "200"))
RATE = int(os.environ.get("FLEET_RATE", "2000"))        # the paced runs: msgs/s ...
PACED_S = int(os.environ.get("FLEET_PACED_SECONDS", "10"))  # ... for this long
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


def flood(port, sub, topic, pids, name, rate=0):
    """sluice-loadgen's QoS 1 flood of N messages (rate 0), or RATE msgs/s for PACED_S
    seconds, measuring the outputs on sub; prints the rates, the latency of the outputs and the
    CPU of each group of pids per input message."""
    before = {k: cpu(v) for k, v in pids.items()}
    how = ["--count", str(N)] if not rate else ["--rate", str(rate), "--duration", str(PACED_S)]
    lg = subprocess.Popen([LOADGEN, "--port", str(port), "--qos", "1", *how,
                           "--sub", sub, "--topic", topic, "--payload", PAYLOAD, "--timeout",
                           "30" if not rate else "10", "--json"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    pids = dict(pids, loadgen=[lg.pid])
    before["loadgen"] = 0
    used, t0 = {}, time.time()
    # the CPU is read while the load generator still runs (it waits out --timeout after the
    # last output: half the messages never come out), so its own counts too
    while lg.poll() is None:
        used = {k: cpu(v) - before[k] for k, v in pids.items()}
        time.sleep(0.05)
    r = json.loads(lg.stdout.read())
    active = r["received"] / r["receive_rate"] if r["receive_rate"] else time.time() - t0
    us = {k: v / r["sent"] * 1e6 for k, v in used.items()}
    busy = sum(used.values()) / active / os.cpu_count() * 100
    print(f"{name + (' paced' if rate else ' flood'):18s} in {r['send_rate']:6.0f}/s  out {r['received']:6d} at "
          f"{r['receive_rate']:6.0f}/s  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
          f"CPU per input msg (us): " +
          "  ".join(f"{k} {us[k]:.1f}" for k in ("broker", "sluice", "postgres", "loadgen")
                    if k in us) +
          f"  cores busy {busy:.0f} % of {os.cpu_count()}", flush=True)


def baseline():
    """The broker alone: the load generator publishing to the topic it measures."""
    b = Broker(extra=NODELAY)
    try:
        flood(b.port, "direct/#", "direct/${device}", {"broker": [b.p.pid]}, "broker alone")
        flood(b.port, "direct/#", "direct/${device}", {"broker": [b.p.pid]}, "broker alone",
              RATE)
    finally:
        b.cleanup()


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
        name = f"{n_instances} instance{'s' if n_instances > 1 else ''}"
        flood(f.broker.port, "out/#", "sensors/${device}/telemetry", pids, name)
        flood(f.broker.port, "out/#", "sensors/${device}/telemetry", pids, name, RATE)
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
    baseline()
    for n in (1, 2, 3):
        throughput(n)
    propagation()
