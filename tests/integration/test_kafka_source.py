#!/usr/bin/env python3
"""The Kafka source end to end: librdkafka's mock cluster (kafka_mock, in its own process that
outlives every sluice) -> `sluice serve` with MQTT off, in a consumer group -> rules -> a file
or the Kafka action -> read back. What is checked: rule topics and client ids from headers,
trace ids that a redelivered record reproduces, two instances splitting the partitions, kill -9
five times during a stream losing nothing (duplicates counted, order of first occurrences per
partition kept), a graceful scale-out and scale-in without duplicates, failing offset commits,
and back-pressure pausing partitions. usage: test_kafka_source.py /path/to/sluice"""
import json, os, random, re, shutil, signal, subprocess, sys, tempfile, threading, time
import unittest

from harness import *  # noqa: F401,F403 (the shared servers and clients)
from httpsink import HttpSink
from kafkamock import KafkaMock

SEED = int(os.environ.get("SLUICE_TEST_SEED", str(int(time.time()))))
RETRY = {"attempts": 1000, "baseMs": 20, "maxMs": 200, "totalMs": 300000}


def metrics(url):
    """GET /metrics as {'name{labels}': value}."""
    text = http("GET", f"{url}/metrics")[2].decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def part_metric(m, name):
    """{partition: value} of a per-partition Kafka source metric."""
    out = {}
    for k, v in m.items():
        g = re.match(r'%s\{topic="[^"]*",partition="(\d+)"\}$' % name, k)
        if g:
            out[int(g.group(1))] = v
    return out


def wait_until(fn, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        r = fn()
        if r:
            return r
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


class Instance:
    """One `sluice serve` reading the mock cluster in a consumer group, MQTT off. Its rules are
    created first by a start without the source, so that no record can find them missing."""

    def __init__(self, kafka, data, group, topics, rules=(), source=None, config=None,
                 workers=2):
        self.kafka, self.data, self.group, self.topics = kafka, data, group, topics
        self.config = dict(config or {})
        # the instances of one test write their file actions' output side by side
        self.config["actions"] = dict(self.config.get("actions", {}))
        self.config["actions"].setdefault("file", {"baseDir": os.path.dirname(data)})
        self.config["sources"] = {"kafka": dict({"sessionTimeoutMs": 6000,
                                                 "commitIntervalMs": 200}, **(source or {}))}
        self.workers = workers
        if rules:
            s = self._start(with_source=False)
            for name, body in rules:
                st, _, resp = http("POST", f"{s.url}/rules/{name}", json.dumps(body))
                assert st == 200, resp
            assert s.stop() == 0, s.logs()
        self.s = self._start()

    def _start(self, with_source=True):
        env = {"SLUICE_MQTT_URL": "none", "SLUICE_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap,
               "SLUICE_KAFKA_GROUP_ID": self.group,
               "SLUICE_KAFKA_TOPICS": self.topics if with_source else "",
               "SLUICE_LOG_LEVEL": os.environ.get("SLUICE_TEST_LOG_LEVEL", "warn")}
        return Sluice(0, self.data, workers=self.workers, config=self.config, env_extra=env)

    @property
    def url(self):
        return self.s.url

    def kill(self):
        self.s.p.kill()
        self.s.p.wait(30)

    def restart(self):
        self.s = self._start()

    def stop(self):
        return self.s.stop()

    def log(self):
        with open(self.s.log.name, "rb") as f:
            return f.read().decode(errors="replace")


def file_rule(sql, path):
    return {"sql": sql, "awsIotSqlVersion": "2016-03-23", "actions": [{"file": {"path": path}}]}


def kafka_rule(sql, bootstrap, topic, partition=None, headers=()):
    act = {"topic": topic, "clientProperties": {"bootstrap.servers": bootstrap, "acks": "all"},
           "headers": [{"key": k, "value": v} for k, v in headers]}
    if partition:
        act["partition"] = partition
    return {"sql": sql, "awsIotSqlVersion": "2016-03-23", "actions": [{"kafka": act}]}


class KafkaSource(unittest.TestCase):
    def setUp(self):
        self.kafka = KafkaMock(3)
        self.addCleanup(lambda: self.assertEqual(self.kafka.stop(), 0))
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.instances = []

    def tearDown(self):
        for i in self.instances:
            rc = i.stop()
            self.assertIn(rc, (0, -9), i.log()[-3000:])

    def instance(self, name, group, topics, **kw):
        kw.setdefault("config", {"actions": {"retry": RETRY}})
        i = Instance(self.kafka, os.path.join(self.tmp, name), group, topics, **kw)
        self.instances.append(i)
        return i

    def wait_committed(self, group, topic, timeout):
        """Until the group's committed offsets reach the end of every partition."""
        def done():
            end = self.kafka.offsets(topic)
            return end if self.kafka.committed(group, topic) == end else None
        return wait_until(done, timeout, f"group {group} to commit the end of {topic}")

    # {====== topics and client ids from headers, trace ids

    def test_records_fire_rules_by_their_header_topic_and_client_id(self):
        k = self.kafka
        k.cmd("create src-a 2")
        k.cmd("create src-b 1")
        k.cmd("create out 1")
        dev = os.path.join(self.tmp, "dev.jsonl")
        bare = os.path.join(self.tmp, "bare.jsonl")
        rules = [
            ("dev", file_rule("SELECT v, topic() AS t, clientid() AS c, traceid() AS tr FROM "
                              "'dev/+/telemetry'", dev)),
            ("bare", file_rule("SELECT v, topic() AS t, clientid() AS c FROM 'src-a'", bare)),
            ("fwd", kafka_rule("SELECT v, topic() AS t, clientid() AS c FROM 'src-b'",
                               k.bootstrap, "out", headers=[("rule-topic", "${topic()}")])),
        ]
        a = self.instance("a", "g-basic", "src-a,src-b", rules=rules)

        def hdr(**h):
            return [{"key": key, "value": val} for key, val in h.items()]
        # src-a: 20 with a topic header and a client id, 5 without headers, 1 whose topic
        # header is a wildcard (unusable: it goes by its Kafka topic, and is counted)
        k.produce("src-a", [{"partition": v % 2, "value": json.dumps({"v": v}),
                             "headers": hdr(mqtt_topic=f"dev/d{v}/telemetry", clientid=f"d{v}")}
                            for v in range(20)] +
                  [{"partition": 0, "value": json.dumps({"v": v})} for v in range(100, 105)] +
                  [{"partition": 1, "value": json.dumps({"v": 200}),
                    "headers": hdr(mqtt_topic="dev/+/telemetry")}])
        # src-b: 10 with only a client id (rule topic: the Kafka topic), 3 with a topic header
        k.produce("src-b", [{"value": json.dumps({"v": v}), "headers": hdr(clientid=f"b{v}")}
                            for v in range(300, 310)] +
                  [{"value": json.dumps({"v": v}), "headers": hdr(mqtt_topic="dev/b/telemetry")}
                   for v in range(400, 403)])
        wait_until(lambda: len(lines(dev)) >= 23 and len(lines(bare)) >= 6, 60,
                   "the file rules")
        out = k.consume("out", 10, 30000)
        self.assertEqual(len(out), 10, out)
        got = sorted(((json.loads(r["value"]), r["headers"]) for r in out),
                     key=lambda x: x[0]["v"])
        self.assertEqual(got, [({"v": v, "t": "src-b", "c": f"b{v}"},
                                [{"key": "rule-topic", "value": "src-b"}])
                               for v in range(300, 310)])
        d = sorted(lines(dev), key=lambda r: r["v"])
        self.assertEqual([(r["v"], r["t"], r["c"]) for r in d],
                         [(v, f"dev/d{v}/telemetry", f"d{v}") for v in range(20)] +
                         [(v, "dev/b/telemetry", "n/a") for v in range(400, 403)])
        self.assertTrue(all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}"
                                         r"-[0-9a-f]{12}", r["tr"]) for r in d), d)
        self.assertEqual(len({r["tr"] for r in d}), len(d))
        self.assertEqual(sorted((r["v"], r["t"], r["c"]) for r in lines(bare)),
                         [(v, "src-a", "n/a") for v in range(100, 105)] + [(200, "src-a", "n/a")])
        m = metrics(a.url)
        self.assertEqual(m['sluice_messages_in_total{source="kafka"}'], 39)
        self.assertEqual(m["sluice_kafka_bad_headers_total"], 1)
        self.assertEqual(m["sluice_kafka_partitions"], 3)
        # a clean stop commits what was processed, synchronously, before leaving the group
        self.assertEqual(a.stop(), 0, a.log()[-3000:])
        self.assertEqual(k.committed("g-basic", "src-a"), k.offsets("src-a"))
        self.assertEqual(k.committed("g-basic", "src-b"), k.offsets("src-b"))

        # The same records read again (another group): the same trace ids.
        again = os.path.join(self.tmp, "again.jsonl")
        self.instance("b", "g-again", "src-a,src-b", rules=[("dev", file_rule(
            "SELECT v, traceid() AS tr FROM 'dev/+/telemetry'", again))])
        wait_until(lambda: len(lines(again)) >= 23, 60, "the second group")
        self.assertEqual({r["v"]: r["tr"] for r in lines(again)}, {r["v"]: r["tr"] for r in d})

    def test_bad_source_configuration_is_refused_at_start(self):
        cases = [
            ({"clientProperties": {"group.id": "x"}}, 'clientProperties "group.id" is set by '
                                                      'sluice: use sources.kafka.groupId'),
            ({"clientProperties": {"enable.auto.commit": True}}, "at-least-once"),
            ({"clientProperties": {"plugin.library.paths": "/tmp/x.so"}},
             'sources.kafka: clientProperties "plugin.library.paths" is not allowed'),
            ({"clientProperties": {"fetch.wait.max.msec": "5"}},
             'sources.kafka: clientProperties "fetch.wait.max.msec" is not one'),
            ({"clientProperties": {"fetch.wait.max.ms": "-5"}},
             'sources.kafka: clientProperties "fetch.wait.max.ms" refused by librdkafka'),
            ({"topics": ["ok", "bad topic"]}, '"bad topic" is not a Kafka topic name'),
            ({"topics": "t"}, "must be a non-empty array"),
            ({"autoOffsetReset": "smallest"}, "must be one of: earliest latest"),
            ({"maxInflight": 5}, 'unknown key "sources.kafka.maxInflight"'),
        ]
        for i, (src, want) in enumerate(cases):
            data = os.path.join(self.tmp, f"bad{i}")
            os.makedirs(data)
            cfg = os.path.join(data, "c.json")
            with open(cfg, "w") as f:
                json.dump({"sources": {"kafka": dict({"topics": ["t"]}, **src)}}, f)
            env = dict(AWS_ENV, SLUICE_MQTT_URL="none", SLUICE_DATA_DIR=data,
                       SLUICE_HTTP_ADDR=f"127.0.0.1:{free_port()}",
                       SLUICE_KAFKA_BOOTSTRAP_SERVERS=self.kafka.bootstrap)
            r = subprocess.run([SLUICE, "serve", "--config", cfg], env=env, capture_output=True,
                               text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0, src)
            self.assertIn(want, r.stderr, src)

    # }======

    # {====== two instances, kill -9

    def stream(self, topic, nparts, n, chunk, pause, start=0):
        """Produces records start..n-1 as {"p", "s"} round-robin over nparts partitions (s: the
        record's number within its partition), each with the rule topic load/p<p>, in
        chunks."""
        for base in range(start, n, chunk):
            recs = []
            for i in range(base, min(n, base + chunk)):
                p, s = i % nparts, i // nparts
                recs.append({"partition": p, "value": json.dumps({"p": p, "s": s}),
                             "headers": [{"key": "mqtt_topic", "value": f"load/p{p}"}]})
            self.kafka.produce(topic, recs)
            time.sleep(pause)

    def check_output(self, recs, nparts, n):
        """Every input's output at least once, each in its partition, first occurrences in
        order per partition. Returns the number of duplicates."""
        seen, last, dups = set(), {}, 0
        for r in sorted(recs, key=lambda r: (r["partition"], r["offset"])):
            v = json.loads(r["value"])
            key = (v["p"], v["s"])
            self.assertEqual(r["partition"], v["p"], r)
            if key in seen:
                dups += 1
                continue
            seen.add(key)
            self.assertGreater(v["s"], last.get(v["p"], -1),
                               f"partition {v['p']}: {v['s']} first seen after "
                               f"{last.get(v['p'])}")
            last[v["p"]] = v["s"]
        lost = [(i % nparts, i // nparts) for i in range(n)
                if (i % nparts, i // nparts) not in seen]
        self.assertEqual(lost[:20], [], f"{len(lost)} records lost")
        self.assertEqual(len(seen), n)
        return dups

    def test_two_instances_killed_five_times_lose_nothing(self):
        n, nparts = 50000, 8
        self.kafka.cmd(f"create load {nparts}")
        self.kafka.cmd(f"create loadout {nparts}")
        rule = [("load", kafka_rule("SELECT p, s FROM 'load/+'", self.kafka.bootstrap,
                                    "loadout", partition="${p}"))]
        inst = [self.instance(x, "chaos", "load", rules=rule) for x in ("a", "b")]
        rng = random.Random(SEED)
        t0 = time.time()
        prod = threading.Thread(target=self.stream, args=("load", nparts, n, 500, 0.25))
        prod.start()
        kills = []
        for _ in range(5):
            time.sleep(rng.uniform(1.5, 4.0))
            victim = rng.randrange(2)
            inst[victim].kill()
            down = rng.uniform(0, 3)
            kills.append((round(time.time() - t0, 1), "ab"[victim], round(down, 1)))
            time.sleep(down)
            inst[victim].restart()
        prod.join()
        t_prod = time.time() - t0
        self.wait_committed("chaos", "load", 300)
        t_done = time.time() - t0
        # both members own partitions once the group settles: the group splits the work
        wait_until(lambda: all(metrics(i.url)["sluice_kafka_partitions"] > 0 for i in inst), 60,
                   "both instances to own partitions")
        recs = self.kafka.consume("loadout", 0, 120000)
        try:
            dups = self.check_output(recs, nparts, n)
        except AssertionError as e:
            dl = [http("GET", f"{i.url}/deadletter?limit=3")[2].decode()[:1500] for i in inst]
            raise AssertionError(f"{e}\nkills: {kills}\ndead letters: {dl}") from None
        print(f"\nkill -9 x5 (seed {SEED}; at s, instance, down s: {kills}): {n} records over "
              f"{nparts} partitions, produced in {t_prod:.1f}s, all committed after "
              f"{t_done:.1f}s; 0 lost, {dups} duplicates, order of first occurrences kept",
              file=sys.stderr)

    def scale_out_and_in(self, strategy):
        """A second member joins mid-stream and leaves cleanly: nothing is lost, the order of
        first occurrences per partition holds, and the duplicates are reported. (No duplicate
        at all is what a real broker gives, since each revocation drains and commits; the
        2.0.2 mock refuses commits while its group is joining -- rdkafka_mock_cgrp.c answers
        REBALANCE_IN_PROGRESS in its JOINING state, where Kafka's GroupCoordinator accepts
        commits during PreparingRebalance -- so a revocation that meets a join there cannot
        commit. test_stopping_drains_and_commits_what_was_in_flight pins the drain and
        commit without that race.)"""
        n, nparts = 20000, 8
        self.kafka.cmd(f"create grow {nparts}")
        self.kafka.cmd(f"create growout {nparts}")
        rule = [("grow", kafka_rule("SELECT p, s FROM 'load/+'", self.kafka.bootstrap,
                                    "growout", partition="${p}"))]
        src = {"assignmentStrategy": strategy}
        a = self.instance("a", "grow", "grow", rules=rule, source=src)
        prod = threading.Thread(target=self.stream, args=("grow", nparts, n, 250, 0.1))
        prod.start()
        wait_until(lambda: metrics(a.url)["sluice_kafka_partitions"] == nparts, 60,
                   "the first instance to own every partition")
        b = self.instance("b", "grow", "grow", rules=rule, source=src)
        wait_until(lambda: metrics(b.url)["sluice_kafka_partitions"] > 0 and
                   metrics(a.url)["sluice_kafka_partitions"] < nparts, 60,
                   "the second instance to take partitions over")
        time.sleep(2)
        mb = metrics(b.url)
        self.assertEqual(b.stop(), 0, b.log()[-3000:])
        self.instances.remove(b)
        prod.join()
        self.wait_committed("grow", "grow", 120)
        wait_until(lambda: metrics(a.url)["sluice_kafka_partitions"] == nparts, 60,
                   "the first instance to own every partition again")
        recs = self.kafka.consume("growout", 0, 60000)
        dups = self.check_output(recs, nparts, n)
        ma = metrics(a.url)
        self.assertGreater(sum(part_metric(mb, "sluice_kafka_records_total").values()), 0)
        self.assertEqual(ma["sluice_kafka_lost_assignments_total"], 0)
        self.assertEqual(ma["sluice_kafka_drain_timeouts_total"], 0)
        refused = (a.log() + b.log()).count("Group rebalance in progress")
        print(f"\nscale out and in ({strategy}): {n} records, 0 lost, {dups} duplicates, "
              f"{refused} commits refused by the mock during a join, "
              f"{int(ma['sluice_kafka_rebalances_total'])} rebalances on the first instance",
              file=sys.stderr)

    def test_scaling_out_and_in_loses_nothing(self):
        self.scale_out_and_in("cooperative-sticky")

    def test_eager_assignment_scales_without_loss_too(self):
        self.scale_out_and_in("range")

    def stop_with_records_in_flight(self, drain_ms):
        """A sink that refuses until 1.5 s after SIGTERM; 400 records in flight when the
        instance stops. Returns (committed, end, records the next start reads again)."""
        sink = HttpSink()
        self.addCleanup(sink.stop)
        topic = f"st{drain_ms}"
        self.kafka.cmd(f"create {topic} 2")
        rule = [("st", {"sql": "SELECT p, s FROM 'load/+'", "awsIotSqlVersion": "2016-03-23",
                        "actions": [{"http": {"url": sink.url("/in")}}]})]
        a = self.instance("a", topic, topic, rules=rule, source={"drainMs": drain_ms})
        sink.set_status(503)
        self.stream(topic, 2, 400, 400, 0)
        wait_until(lambda: metrics(a.url)["sluice_kafka_in_flight_records"] == 400, 60,
                   "400 records in flight")
        threading.Timer(1.5, sink.set_status, (200,)).start()
        self.assertEqual(a.stop(), 0, a.log()[-3000:])
        committed, end = self.kafka.committed(topic, topic), self.kafka.offsets(topic)
        delivered = len(sink.bodies("/in"))
        a.restart()
        self.wait_committed(topic, topic, 60)
        time.sleep(1)
        again = len(sink.bodies("/in")) - delivered
        self.assertEqual({(json.loads(b)["p"], json.loads(b)["s"]) for b in sink.bodies("/in")},
                         {(i % 2, i // 2) for i in range(400)})
        return committed, end, again

    def test_stopping_drains_and_commits_what_was_in_flight(self):
        committed, end, again = self.stop_with_records_in_flight(10000)
        self.assertEqual(committed, end, "the stop waited for the records in flight")
        self.assertEqual(again, 0, "nothing is read twice after a clean stop")

    def test_stopping_without_a_drain_commits_only_what_was_finished(self):
        # the control for the test above: without the wait, the commit stays behind what was
        # in flight, and the next start reads those records again (duplicates, not loss)
        committed, end, again = self.stop_with_records_in_flight(0)
        self.assertLess(sum(committed.values()), sum(end.values()))
        self.assertGreater(again, 0)

    # }======

    # {====== failing commits, back-pressure

    def test_failing_offset_commits_are_retried_and_lose_nothing(self):
        self.kafka.cmd("create ce 4")
        out = os.path.join(self.tmp, "ce.jsonl")
        rule = [("ce", file_rule("SELECT p, s FROM 'load/+'", out))]
        # REBALANCE_IN_PROGRESS (27) fails a commit outright; REQUEST_TIMED_OUT (7) and
        # COORDINATOR_NOT_AVAILABLE (15) are retried inside librdkafka
        self.kafka.errors("OffsetCommit", [27, 27, 7, 27, 15, 27, 27, 27])
        a = self.instance("a", "ce", "ce", rules=rule)
        self.stream("ce", 4, 2000, 500, 0)
        wait_until(lambda: metrics(a.url)["sluice_kafka_commit_errors_total"] >= 3, 60,
                   "failed commits")
        a.kill()  # committed offsets lag behind what was processed: records come again
        self.stream("ce", 4, 4000, 500, 0, start=2000)
        a.restart()
        self.wait_committed("ce", "ce", 120)
        got = [(r["p"], r["s"]) for r in lines(out)]
        missing = {(i % 4, i // 4) for i in range(4000)} - set(got)
        self.assertEqual(sorted(missing)[:20], [])
        m = metrics(a.url)
        self.assertGreater(m["sluice_kafka_commits_total"], 0)
        print(f"\ncommit errors: {len(got)} outputs for 4000 records, "
              f"{len(got) - len(set(got))} duplicates", file=sys.stderr)

    def slow_sink(self, source, check):
        """A sink that refuses (503) while 4000 records come in over 2 partitions: the pipeline
        retries, records stay in flight, the source pauses. check(metrics) then looks at what
        was read while paused. Once the sink accepts, everything arrives."""
        sink = HttpSink()
        self.addCleanup(sink.stop)
        self.kafka.cmd("create bp 2")
        rule = [("bp", {"sql": "SELECT p, s FROM 'load/+'", "awsIotSqlVersion": "2016-03-23",
                        "actions": [{"http": {"url": sink.url("/in")}}]})]
        a = self.instance("a", "bp", "bp", rules=rule, source=source)
        sink.set_status(503)
        self.stream("bp", 2, 4000, 1000, 0)

        def paused():
            m = metrics(a.url)
            return m if m["sluice_kafka_paused_partitions"] == 2 else None
        wait_until(paused, 60, "both partitions to pause")
        time.sleep(1)
        m = metrics(a.url)
        self.assertEqual(m["sluice_kafka_paused_partitions"], 2)
        check(m)
        sink.set_status(200)
        self.wait_committed("bp", "bp", 120)
        m = metrics(a.url)
        self.assertEqual(m["sluice_kafka_paused_partitions"], 0)
        self.assertGreaterEqual(m["sluice_kafka_pauses_total"], 2)
        got = {(json.loads(b)["p"], json.loads(b)["s"]) for b in sink.bodies("/in")}
        self.assertEqual(got, {(i % 2, i // 2) for i in range(4000)})

    def test_a_slow_sink_pauses_each_partition_at_its_bound(self):
        limit = 100

        def check(m):
            for p, v in part_metric(m, "sluice_kafka_records_total").items():
                # paused: no more records are read than the bound and one poll batch
                self.assertLessEqual(v, limit + 1024, f"partition {p} read {v} records")
            for p, v in part_metric(m, "sluice_kafka_unstored").items():
                self.assertGreaterEqual(v, limit, f"partition {p} paused below its bound")
        self.slow_sink({"maxInFlightPerPartition": limit}, check)

    def test_a_slow_sink_pauses_every_partition_at_the_source_bound(self):
        limit = 150

        def check(m):
            self.assertEqual(m["sluice_kafka_in_flight_records"], limit)
            self.assertLessEqual(sum(part_metric(m, "sluice_kafka_records_total").values()),
                                 limit)
        self.slow_sink({"maxInFlight": limit}, check)

    # }======


if __name__ == "__main__":
    print(f"seed {SEED} (SLUICE_TEST_SEED)", file=sys.stderr)
    unittest.main(verbosity=2)
