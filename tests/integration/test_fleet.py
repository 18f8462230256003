"""Many instances, one system: sluice instances sharing a PostgreSQL store (SLUICE_STORE_URL) and
splitting one Mosquitto's traffic through a $share group. Real Mosquitto, real PostgreSQL, paho
clients with persistent sessions (Debian's python3-paho-mqtt).

- a rule created on one instance fires for the messages the others handle; replaced on a
  second, every instance switches; deleted on a third, none fires; every message is processed
  once across the fleet;
- the database stopped for 10 s: the message path keeps running, admin writes get 503, and
  the fleet converges once it is back;
- dead letters written by several instances are listed on another, and two re-drives at once
  on two instances send each record once;
- two clients updating one shadow through two instances, 1 000 updates each, over MQTT and
  over REST with an expected version: version 2 000, and no version given twice (a lost update
  would give one twice);
- the '$' topics (shadow requests, rules on $aws/...), which Mosquitto never delivers to a
  shared subscription, are taken by one instance of the group at a time and move to another
  when it restarts;
- an instance that ran on its data dir brings its rules into the store once, and a rule the
  fleet deletes afterwards stays deleted.

Rolling restarts and kill -9 under a stream: test_fleet_restarts.py."""
import base64, http.client as http_client, json, os, shutil, socket, sys, tempfile, threading, time, unittest

sys.path.insert(0, os.path.dirname(__file__))
import paho.mqtt.client as mqtt  # noqa: E402
from fleet import NODELAY, Fleet, metric  # noqa: E402
from harness import Sluice, http  # noqa: E402
from httpsink import HttpSink  # noqa: E402
from pgtest import PgCluster  # noqa: E402
from test_durability import Broker, Collector, Publisher  # noqa: E402


def rule(sql, actions=None):
    return {"sql": sql, "awsIotSqlVersion": "2016-03-23",
            "actions": actions or [{"republish": {"topic": "out/${topic(2)}", "qos": 1}}]}


class FleetTest(unittest.TestCase):
    def tearDown(self):
        if getattr(self, "fleet", None):
            self.fleet.cleanup()

    def warm_up(self, col, n_nodes):
        """Publishes until a message has come out (the rule's shared subscription is live on
        every instance that has the rule)."""
        end = time.time() + 30
        while not col.warm and time.time() < end:
            os.system(f"mosquitto_pub -p {self.fleet.broker.port} -t load/warmup -m '{{}}' -q 1")
            time.sleep(0.2)
        self.assertTrue(col.warm, "the rule never fired")

    def stream(self, col, n, rate=1500):
        """Publishes n QoS 1 messages (seq 0..n-1) and waits until the collector saw each seq
        or nothing moved for 5 s. Returns the seqs that came out, with duplicates."""
        base = len(col.got)
        pub = Publisher(self.fleet.broker.port, n, rate)
        pub.start()
        pub.join()
        self.assertEqual(pub.acked, n, "the broker did not acknowledge every publish")
        pub.stop()
        last, still = -1, time.time()
        while time.time() - still < 5:
            with col.lock:
                got = [seq for _, seq, _ in col.got[base:]]
            if len(set(got)) >= n:
                time.sleep(0.5)  # late duplicates would show here
                break
            if len(got) != last:
                last, still = len(got), time.time()
            time.sleep(0.1)
        with col.lock:
            return [seq for _, seq, _ in col.got[base:]]

    def test_rules_propagate_and_every_message_is_processed_once(self):
        self.fleet = f = Fleet(3)
        a, b, c = f.nodes
        col = Collector(f.broker.port)
        try:
            st, _, body = f.post(a, "/rules/fleet", rule("SELECT *, 1 AS v FROM 'load/#'"))
            self.assertEqual(st, 200, body)
            delays = [f.wait_rule(b, "fleet"), f.wait_rule(c, "fleet")]
            print(f"\ncreated on A, served by B and C after {delays[0]*1000:.0f} and "
                  f"{delays[1]*1000:.0f} ms", flush=True)
            # every instance answers the same
            lists = [http("GET", n.url + "/rules")[2] for n in f.nodes]
            self.assertEqual(lists[0], lists[1])
            self.assertEqual(lists[0], lists[2])
            self.warm_up(col, 3)
            before = [f.taken(n) for n in f.nodes]
            n = 3000
            got = self.stream(col, n)
            self.assertEqual(sorted(got), list(range(n)),
                             "each message exactly once across the fleet")
            shares = [f.taken(x) - before[i] for i, x in enumerate(f.nodes)]
            print(f"messages taken per instance: {shares}", flush=True)
            for i, s in enumerate(shares):
                self.assertGreater(s, 0, f"instance {i} handled none: no $share split")

            # replaced on B: every instance switches
            sql2 = "SELECT *, 2 AS v FROM 'load/#'"
            st, _, body = f.post(b, "/rules/fleet", rule(sql2), method="PATCH")
            self.assertEqual(st, 200, body)
            delays = [f.wait_rule(x, "fleet", sql=sql2) for x in (a, c)]
            print(f"replaced on B, served by A and C after {delays[0]*1000:.0f} and "
                  f"{delays[1]*1000:.0f} ms", flush=True)
            with col.lock:
                base = len(col.got)
            col.c.on_message = self.versions_too(col)
            got = self.stream(col, 2000)
            self.assertEqual(sorted(got), list(range(2000)))
            with col.lock:
                vs = col.versions[:]
            self.assertEqual(set(vs), {2}, "an instance still ran the old rule")

            # deleted on C: none fires
            st, _, body = f.post(c, "/rules/fleet", method="DELETE")
            self.assertEqual(st, 200, body)
            for x in (a, b):
                f.wait_rule(x, "fleet", present=False)
            with col.lock:
                base = len(col.got)
            pub = Publisher(f.broker.port, 500, 1500)
            pub.start()
            pub.join()
            pub.stop()
            time.sleep(2)
            with col.lock:
                self.assertEqual(len(col.got), base, "a deleted rule still fired")

            st, _, body = http("GET", a.url + "/cluster/instances")
            self.assertEqual(st, 200, body)
            inst = json.loads(body)["instances"]
            self.assertEqual(len(inst), 3, body)
            self.assertEqual({i["status"] for i in inst}, {"up"}, body)
            self.assertEqual(sum(1 for i in inst if i["self"]), 1)
            self.assertEqual({i["clientId"] for i in inst}, {"fleet-0", "fleet-1", "fleet-2"})
        finally:
            col.stop()
        self.assertEqual(f.stop_all(), [0, 0, 0])

    @staticmethod
    def versions_too(col):
        """An on_message that also records each output's "v" (the rule version that ran)."""
        col.versions = []

        def on(c, u, m):
            d = json.loads(m.payload)
            with col.lock:
                if "seq" in d:
                    col.got.append((m.topic, d["seq"], d["tseq"]))
                    col.versions.append(d.get("v"))
        return on

    def test_the_database_away_for_10_s(self):
        self.fleet = f = Fleet(3)
        a, b, c = f.nodes
        col = Collector(f.broker.port)
        try:
            self.assertEqual(f.post(a, "/rules/fleet", rule("SELECT * FROM 'load/#'"))[0], 200)
            for x in (b, c):
                f.wait_rule(x, "fleet")
            self.warm_up(col, 3)
            n = 15000
            pub = Publisher(f.broker.port, n, 1000)  # 15 s of traffic
            pub.start()
            time.sleep(2)
            f.pg.stop()
            t_down = time.time()
            # admin writes: a clear 503; reads answer from what each instance holds
            st, h, body = f.post(b, "/rules/other", rule("SELECT * FROM 'x'"))
            self.assertEqual(st, 503, body)
            self.assertEqual(h.get("x-amzn-ErrorType"), "ServiceUnavailableException")
            self.assertIn(b"shared store", body)
            self.assertNotIn(b"password", body)
            for path, method in (("/rules/fleet", "DELETE"), ("/rules/fleet/disable", "POST"),
                                 ("/deadletter", "GET"), ("/cluster/instances", "GET")):
                st, h, body = http(method, c.url + path)
                self.assertEqual(st, 503, f"{method} {path}: {body}")
            self.assertEqual(http("GET", a.url + "/rules/fleet")[0], 200)
            taken = [f.taken(x) for x in f.nodes]
            time.sleep(max(0, 10 - (time.time() - t_down)))
            moved = [f.taken(x) - taken[i] for i, x in enumerate(f.nodes)]
            print(f"\nmessages taken per instance while the database was away: {moved}",
                  flush=True)
            for i, m in enumerate(moved):
                self.assertGreater(m, 0, f"instance {i} stopped taking messages")
            f.pg.start()
            pub.join()
            self.assertEqual(pub.acked, n)
            pub.stop()
            end = time.time() + 60
            while time.time() < end and len({s for _, s, _ in col.got}) < n:
                time.sleep(0.2)
            seqs = [s for _, s, _ in col.got]
            self.assertEqual(set(seqs), set(range(n)), "messages lost while the database was away")
            # the fleet converges: a change made anywhere reaches everyone again
            end = time.time() + 30
            while time.time() < end:
                st, _, body = f.post(c, "/rules/after", rule("SELECT * FROM 'after'"))
                if st == 200:
                    break
                time.sleep(0.5)
            self.assertEqual(st, 200, body)
            for x in (a, b):
                f.wait_rule(x, "after")
            self.assertEqual(f.post(a, "/rules/fleet", rule("SELECT 9 AS v FROM 'load/#'"),
                                    method="PATCH")[0], 200)
            for x in (b, c):
                f.wait_rule(x, "fleet", sql="SELECT 9 AS v FROM 'load/#'")
            end = time.time() + 30
            while time.time() < end:
                st, _, body = http("GET", b.url + "/cluster/instances")
                inst = json.loads(body)["instances"] if st == 200 else []
                if len(inst) == 3 and all(i["status"] == "up" and i["health"] == "healthy"
                                          for i in inst):
                    break
                time.sleep(0.5)
            self.assertEqual(len(inst), 3, body)
            self.assertTrue(all(i["health"] == "healthy" for i in inst), body)
        finally:
            col.stop()
        self.assertEqual(f.stop_all(), [0, 0, 0])

    def test_dead_letters_listed_anywhere_and_redriven_once(self):
        sink = HttpSink()
        sink.set_status(503)
        # few, quick retries: the messages reach the dead-letter store within a second
        cfg = {"actions": {"retry": {"attempts": 2, "baseMs": 10, "maxMs": 20, "totalMs": 500}}}
        self.fleet = f = Fleet(3, config=cfg)
        a, b, c = f.nodes
        try:
            r = rule("SELECT * FROM 'load/#'", [{"http": {"url": sink.url("/hook")}}])
            self.assertEqual(f.post(a, "/rules/dl", r)[0], 200)
            for x in (b, c):
                f.wait_rule(x, "dl")
            time.sleep(0.5)  # the shared subscriptions
            n = 300
            pub = Publisher(f.broker.port, n, 500)
            pub.start()
            pub.join()
            pub.stop()
            # listed on c: every instance's records
            end = time.time() + 60
            recs = []
            while time.time() < end:
                recs, token = [], ""
                while True:
                    st, _, body = http("GET", c.url + "/deadletter?rule=dl&limit=100" +
                                       (f"&nextToken={token}" if token else ""))
                    self.assertEqual(st, 200, body)
                    page = json.loads(body)
                    recs += page["records"]
                    token = page.get("nextToken")
                    if not token:
                        break
                if len(recs) >= n:
                    break
                time.sleep(0.5)
            seqs = sorted(json.loads(base64.b64decode(x["payload"]))["seq"] for x in recs
                          if "seq" in json.loads(base64.b64decode(x["payload"])))
            self.assertEqual(seqs, list(range(n)))
            writers = {x["instanceId"] for x in recs}
            print(f"\n{len(recs)} dead letters written by {len(writers)} instances, "
                  f"listed on a third", flush=True)
            self.assertGreaterEqual(len(writers), 2)
            self.assertEqual(len({x["id"] for x in recs}), n, "ids are unique fleet-wide")
            # the sink is back: two re-drives at once, on a and b
            sink.set_status(200)
            res = {}

            def redrive(node, key):
                res[key] = http("POST", node.url + "/deadletter/redrive",
                                json.dumps({"rule": "dl"}))
            ts = [threading.Thread(target=redrive, args=(x, k)) for k, x in (("a", a), ("b", b))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            counts = {}
            for k, (st, _, body) in res.items():
                self.assertEqual(st, 200, body)
                counts[k] = json.loads(body)["redriven"]
            print(f"re-driven at once: {counts}", flush=True)
            self.assertEqual(sum(counts.values()), n, res)
            delivered = sink.wait(n, timeout=60, path="/hook", ok=True)
            time.sleep(1)
            delivered = [json.loads(x)["seq"] for x in sink.bodies("/hook")]
            self.assertEqual(sorted(delivered), list(range(n)), "each record re-sent once")
            end = time.time() + 30
            while time.time() < end:
                st, _, body = http("GET", b.url + "/deadletter?rule=dl")
                if st == 200 and not json.loads(body)["records"]:
                    break
                time.sleep(0.3)
            self.assertEqual(json.loads(body)["records"], [], "delivered records are resolved")
        finally:
            sink.stop()
        self.assertEqual(f.stop_all(), [0, 0, 0])

    def test_two_clients_update_one_shadow_through_two_instances(self):
        """Two brokers, one store: instance A takes broker 1's traffic (group g1), instance B
        broker 2's (group g2); client x updates shadow "hot" through A, client y through B,
        1 000 times each, at once. Only the database is between A and B."""
        pg = PgCluster()
        b1, b2 = Broker(extra=NODELAY), Broker(extra=NODELAY)
        tmp = tempfile.mkdtemp(prefix="sluice-shadow-")
        nodes = []
        try:
            for i, (br, grp) in enumerate(((b1, "g1"), (b2, "g2"))):
                nodes.append(Sluice(br.port, os.path.join(tmp, f"n{i}"), workers=1,
                                    env_extra={"SLUICE_STORE_URL": pg.conninfo,
                                               "SLUICE_MQTT_SHARED_GROUP": grp},
                                    ready_timeout=120))
            for x in nodes:
                self.wait_metric_lease(x)
            N = 1000
            results = {}
            secs, (rx, ry) = self.two_clients(lambda br, n: self.shadow_client(br, n, N, results),
                                              ((b1, "x"), (b2, "y")), results, N)
            reqs = [metric(x.url, "sluice_shadow_requests_total") for x in nodes]
            print(f"\n2 x {N} shadow updates through 2 instances in {secs:.1f} s "
                  f"({rx + ry} answered 503 and sent again); requests per instance: {reqs}",
                  flush=True)
            self.assertTrue(all(r >= N for r in reqs), reqs)
            doc = self.shadow_get(b1, "hot")
            self.assertEqual(doc["version"], 2 * N)
            self.assertEqual(doc["state"]["reported"], {"x": N, "y": N})
            self.assertEqual([x.stop() for x in nodes], [0, 0])
        finally:
            for x in nodes:
                if x.p.poll() is None:
                    x.p.kill()
                    x.p.wait()
            b1.cleanup()
            b2.cleanup()
            pg.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_two_rest_clients_update_one_shadow_through_two_instances(self):
        """Over REST (iot-data UpdateThingShadow), each update with the version it expects and
        sent again after a 409: 1 000 updates from each of two clients, one through instance
        A, the other through B, at once."""
        self.fleet = f = Fleet(2)
        a, b = f.nodes
        N = 1000
        results = {}

        def client(node, name):
            version, conflicts, mine = 0, 0, []
            conn = http_client.HTTPConnection("127.0.0.1", int(node.url.rsplit(":", 1)[1]),
                                              timeout=30)
            try:
                for i in range(N):
                    while True:
                        body = {"state": {"reported": {name: i + 1}}}
                        if version:
                            body["version"] = version
                        conn.request("POST", "/things/rest-hot/shadow", json.dumps(body))
                        r = conn.getresponse()
                        d = json.loads(r.read() or b"{}")
                        if r.status == 200:
                            version = d["version"]
                            mine.append(version)
                            break
                        if r.status != 409:
                            return
                        conflicts += 1  # another client won: read the version, try again
                        conn.request("GET", "/things/rest-hot/shadow")
                        g = conn.getresponse()
                        version = json.loads(g.read())["version"]
                results[name] = (mine, conflicts)
            finally:
                conn.close()

        secs, (cx, cy) = self.two_clients(client, ((a, "x"), (b, "y")), results, N)
        print(f"\n2 x {N} REST shadow updates with an expected version through 2 instances in "
              f"{secs:.1f} s, {cx + cy} conflicts answered 409 and sent again", flush=True)
        st, _, body = http("GET", b.url + "/things/rest-hot/shadow")
        self.assertEqual(st, 200, body)
        doc = json.loads(body)
        self.assertEqual(doc["version"], 2 * N)
        self.assertEqual(doc["state"]["reported"], {"x": N, "y": N})
        self.assertEqual(f.stop_all(), [0, 0])

    def test_dollar_topics_go_to_one_instance_and_move_on_a_restart(self):
        """Mosquitto never delivers a '$' topic to a shared subscription: one instance of the
        group (the lease holder) takes the shadow requests and rules on $aws/...; each update
        is handled once, a rule on its /accepted fires once, and a clean restart of the
        holder hands the topics over with no request lost."""
        self.fleet = f = Fleet(3)
        col = Collector(f.broker.port)
        try:
            r = rule("SELECT state.reported.n AS n FROM '$aws/things/+/shadow/update/accepted'",
                     [{"republish": {"topic": "out/accepted", "qos": 1}}])
            self.assertEqual(f.post(f.nodes[0], "/rules/acc", r)[0], 200)
            for x in f.nodes[1:]:
                f.wait_rule(x, "acc")
            holders = [self.wait_metric_lease(x) for x in f.nodes]
            self.assertEqual(sorted(holders), [0, 0, 1], "exactly one instance holds the lease")
            seen = []
            col.c.on_message = lambda c, u, m: seen.append(json.loads(m.payload).get("n"))
            results = {}
            self.shadow_client(f.broker, "z", 200, results, reported="n")
            versions, _ = results["z"]
            self.assertEqual(versions, list(range(1, 201)), "each update handled once")
            end = time.time() + 20
            while len(seen) < 200 and time.time() < end:
                time.sleep(0.1)
            time.sleep(0.5)
            self.assertEqual(sorted(seen), list(range(1, 201)), "the rule fired once per update")
            reqs = [metric(x.url, "sluice_shadow_requests_total") or 0 for x in f.nodes]
            self.assertEqual(sorted(reqs), [0, 0, 200], reqs)
            # the holder restarts while a client keeps updating: none lost
            h = holders.index(1)
            stop = threading.Event()
            results2 = {}
            t = threading.Thread(target=self.shadow_client,
                                 args=(f.broker, "w", 300, results2), kwargs={"rate": 100})
            t.start()
            time.sleep(1)
            f.restart(h)
            t.join()
            self.assertIn("w", results2, "client w failed: a request was lost")
            vw, _ = results2["w"]
            self.assertEqual(len(vw), 300)
            self.assertEqual(len(set(vw)), 300, "a version given twice")
            holders = [self.wait_metric_lease(x) for x in f.nodes]
            self.assertEqual(sum(holders), 1, holders)
            print(f"\nlease moved from instance {h} to {holders.index(1)}", flush=True)
            stop.set()
        finally:
            col.stop()
        self.assertEqual(f.stop_all(), [0, 0, 0])

    def test_rules_of_a_data_dir_move_into_the_store(self):
        """An instance that ran on its data dir and is started on the shared store brings its
        rules along (as POST /rules would create them), once: the data dir's copy is set aside,
        so a rule deleted in the fleet afterwards stays deleted; a name the store holds already
        keeps the store's rule."""
        pg, broker = PgCluster(), Broker(extra=NODELAY)
        self.fleet = Fleet(1, pg=pg, broker=broker)  # node 0: on the store from the start
        f, tmp = self.fleet, self.fleet.tmp
        alone_dir = os.path.join(tmp, "alone")
        alone = Sluice(broker.port, alone_dir)
        try:
            for name, sql in (("moved", "SELECT * FROM 'imp/a'"),
                              ("taken", "SELECT * FROM 'imp/local'"),
                              ("gone", "SELECT * FROM 'imp/c'")):
                st, _, b = f.post(alone, f"/rules/{name}", rule(sql))
                self.assertEqual(st, 200, b)
            st, _, _ = f.post(alone, "/rules/moved/disable", method="POST")
        finally:
            self.assertEqual(alone.stop(), 0, alone.logs())
        st, _, b = f.post(f.nodes[0], "/rules/taken", rule("SELECT * FROM 'imp/store'"))
        self.assertEqual(st, 200, b)

        moved = Sluice(broker.port, alone_dir, env_extra=dict(f.env(1)), ready_timeout=120)
        f.nodes.append(moved)
        for name in ("moved", "gone"):
            f.wait_rule(f.nodes[0], name)
        st, _, b = http("GET", f"{f.nodes[0].url}/rules/taken")
        self.assertEqual(json.loads(b)["rule"]["sql"], "SELECT * FROM 'imp/store'",
                         "the store's rule must win over the data dir's")
        st, _, b = http("GET", f"{f.nodes[0].url}/rules/moved")
        self.assertTrue(json.loads(b)["rule"]["ruleDisabled"], "disabled on the data dir")
        self.assertFalse(os.path.exists(os.path.join(alone_dir, "rules")))
        self.assertTrue(os.path.isdir(os.path.join(alone_dir, "rules.imported")))
        self.assertIn("kept the store's version", moved.logs())

        st, _, b = f.post(f.nodes[0], "/rules/gone", method="DELETE")
        self.assertEqual(st, 200, b)
        f.wait_rule(moved, "gone", present=False)
        self.assertEqual(moved.stop(), 0, moved.logs())
        again = Sluice(broker.port, alone_dir, env_extra=dict(f.env(1)), ready_timeout=120)
        f.nodes[1] = again
        st, _, _ = http("GET", f"{again.url}/rules/gone")
        self.assertEqual(st, 404, "a rule deleted in the fleet came back from the data dir")
        st, _, _ = http("GET", f"{again.url}/rules/moved")
        self.assertEqual(st, 200)

    def two_clients(self, client, args, results, n):
        """Runs client(*a) for both a in args at once; each leaves (versions it got accepted,
        retries) in results under its name. Checks that the 2n versions are 1..2n, each once
        (a lost update gives one twice). Returns the seconds taken and the two retry counts."""
        ts = [threading.Thread(target=client, args=a) for a in args]
        t0 = time.time()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        names = [a[1] for a in args]
        for name in names:
            self.assertIn(name, results, f"client {name} failed")
        versions = [v for name in names for v in results[name][0]]
        self.assertEqual(sorted(versions), list(range(1, 2 * n + 1)),
                         "a version given twice or skipped: a lost update")
        return time.time() - t0, [results[name][1] for name in names]

    def wait_metric_lease(self, node, timeout=30):
        """sluice_store_lease (1: this instance takes the '$' topics) once it is decided."""
        end = time.time() + timeout
        while time.time() < end:
            v = metric(node.url, "sluice_store_lease")
            if v is not None and v >= 0:
                return v
            time.sleep(0.1)
        self.fail("the lease was never decided on " + node.url)

    def shadow_client(self, broker, name, n, results, reported=None, rate=None):
        """n updates of shadow "hot" from client `name`, each waiting for its answer (sent
        again after a 503); results[name] = (versions accepted, 503s)."""
        done = threading.Event()
        box = {}
        c = mqtt.Client(client_id=f"shadow-{name}", protocol=mqtt.MQTTv311)

        def on_message(c, u, m):
            d = json.loads(m.payload)
            if d.get("clientToken", "") == box.get("token"):
                box["reply"] = (m.topic.endswith("/accepted"), d)
                done.set()
        c.on_message = on_message
        c.connect("127.0.0.1", broker.port, 30)
        c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the broker's
        c.subscribe([("$aws/things/hot/shadow/update/accepted", 1),
                     ("$aws/things/hot/shadow/update/rejected", 1)])
        c.loop_start()
        time.sleep(0.5)
        versions, rejected = [], 0
        try:
            for i in range(n):
                while True:
                    done.clear()
                    box["token"] = f"{name}-{i}-{rejected}"
                    body = {"state": {"reported": {reported or name: i + 1}},
                            "clientToken": box["token"]}
                    c.publish("$aws/things/hot/shadow/update", json.dumps(body), qos=1)
                    if not done.wait(60):
                        return  # results lacks name: the caller fails
                    ok, d = box["reply"]
                    if ok:
                        versions.append(d["version"])
                        break
                    if d.get("code") != 503:
                        return
                    rejected += 1  # too many lost compare-and-sets in a row: again
                if rate:
                    time.sleep(1 / rate)
            results[name] = (versions, rejected)
        finally:
            c.loop_stop()
            c.disconnect()

    def shadow_get(self, broker, thing):
        got = threading.Event()
        doc = {}
        c = mqtt.Client(client_id="shadow-get", protocol=mqtt.MQTTv311)
        c.on_message = lambda c, u, m: (doc.update(json.loads(m.payload)), got.set())
        c.connect("127.0.0.1", broker.port, 30)
        c.subscribe(f"$aws/things/{thing}/shadow/get/accepted", 1)
        c.loop_start()
        time.sleep(0.3)
        c.publish(f"$aws/things/{thing}/shadow/get", "", qos=1)
        self.assertTrue(got.wait(30), "no answer to get")
        c.loop_stop()
        c.disconnect()
        return doc


if __name__ == "__main__":
    unittest.main(verbosity=2)
