"""A sluice fleet for the tests and the benchmark: one private Mosquitto (the durability tests'
Broker: queues that never drop), one private PostgreSQL (pgtest.py), and N `sluice serve`
instances on it, each with its own data dir (its journal and MQTT session), all in one MQTT
shared-subscription group on one store, as deploy/compose.yaml runs them.

    with Fleet(3) as f:
        a, b, c = f.nodes
        f.post(a, "/rules/r", rule)
        f.wait_rule(b, "r")            # seconds until b serves it
        f.restart(1)                   # SIGTERM, then start again on the same data dir
        f.kill(2); f.start(2)          # kill -9, then start again
"""
import json, os, shutil, signal, tempfile, time

from harness import Sluice, http
from pgtest import PgCluster
from test_durability import Broker, metric  # noqa: F401 (metric: for the tests)

GROUP = "fleet"
# Nagle off on the broker's sockets: a request answered over MQTT (a shadow update) otherwise
# waits for a delayed ACK on each hop, 40 ms or more (README.md, "Running a fleet")
NODELAY = "set_tcp_nodelay true\n"


class Fleet:
    def __init__(self, n, config=None, workers=1, pg=None, broker=None):
        self.tmp = tempfile.mkdtemp(prefix="sluice-fleet-")
        self.config = config or {}
        self.workers = workers
        self.pg = pg or PgCluster()
        self.broker = broker or Broker(extra=NODELAY)
        self.nodes = [None] * n
        try:
            for i in range(n):
                self.start(i)
        except BaseException:
            self.cleanup()
            raise

    def env(self, i):
        return {"SLUICE_STORE_URL": self.pg.conninfo, "SLUICE_MQTT_SHARED_GROUP": GROUP,
                "SLUICE_MQTT_CLIENT_ID": f"fleet-{i}"}

    def start(self, i, wait=True):
        self.nodes[i] = Sluice(self.broker.port, os.path.join(self.tmp, f"node{i}"),
                               config=self.config, workers=self.workers, env_extra=self.env(i),
                               wait=wait, ready_timeout=120)
        return self.nodes[i]

    def restart(self, i):
        """SIGTERM (drains, keeps the session and the journal), then start again."""
        rc = self.nodes[i].stop()
        assert rc == 0, f"node {i} exited {rc}: " + self.nodes[i].logs()
        return self.start(i)

    def kill(self, i):
        self.nodes[i].p.send_signal(signal.SIGKILL)
        self.nodes[i].p.wait()

    def post(self, node, path, body=None, method="POST"):
        data = json.dumps(body) if isinstance(body, (dict, list)) else body
        return http(method, node.url + path, data)

    def wait_rule(self, node, name, present=True, sql=None, timeout=30):
        """Seconds until GET /rules/<name> on node answers as expected (present, with that
        SQL); raises after timeout."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            st, _, b = http("GET", f"{node.url}/rules/{name}")
            ok = st == 200 if present else st == 404
            if ok and sql is not None:
                ok = json.loads(b)["rule"]["sql"] == sql
            if ok:
                return time.time() - t0
            time.sleep(0.005)
        raise AssertionError(f"rule {name} never became {'present' if present else 'absent'}"
                             f" on {node.url}")

    def taken(self, node):
        return metric(node.url, 'sluice_messages_in_total{source="mqtt"}') or 0

    def stop_all(self):
        rcs = []
        for s in self.nodes:
            if s and s.p.poll() is None:
                rcs.append(s.stop())
        return rcs

    def cleanup(self):
        for s in self.nodes:
            if s and s.p.poll() is None:
                s.p.kill()
                s.p.wait()
        self.broker.cleanup()
        self.pg.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
