#!/usr/bin/env python3
"""`sluice serve` with postgres actions against a private PostgreSQL 15 cluster (pgtest.py) and
a private Mosquitto: bulk load with exactly one row per message, injection text stored as a
value, a server restart in the middle of a stream, and one bad row of a batch going to the
dead-letter store while the rest of the batch is stored.
usage: test_postgres.py /path/to/sluice"""
import base64, json, os, shutil, subprocess, sys, tempfile, threading, time, unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403 (the shared servers and clients)
from pgtest import PgCluster

# Retries long enough to cover a server restart: ~100 ms apart on average, for 60 s.
CONFIG = {"actions": {"queueDepth": 200000,
                      "retry": {"attempts": 1000, "baseMs": 20, "maxMs": 200,
                                "totalMs": 60000}}}


def feed(port, topic, lines, pace=None):
    """Publishes lines at QoS 1 through one mosquitto_pub -l; pace=(every, seconds) sleeps
    between chunks so the stream lasts a while. Returns when mosquitto_pub has exited."""
    p = subprocess.Popen(["mosquitto_pub", "-p", str(port), "-t", topic, "-q", "1", "-l"],
                         stdin=subprocess.PIPE, text=True)
    for i, line in enumerate(lines):
        p.stdin.write(line + "\n")
        if pace and i % pace[0] == pace[0] - 1:
            p.stdin.flush()
            time.sleep(pace[1])
    p.stdin.close()
    assert p.wait(120) == 0, "mosquitto_pub failed"


class Postgres(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = PgCluster()

    @classmethod
    def tearDownClass(cls):
        cls.pg.cleanup()

    def setUp(self):
        self.broker = Broker()
        self.data = tempfile.mkdtemp()
        try:
            self.s = Sluice(self.broker.port, self.data, config=CONFIG)
        except BaseException:
            self.broker.stop()
            raise

    def tearDown(self):
        rc = self.s.stop()
        self.broker.stop()
        shutil.rmtree(self.data, ignore_errors=True)
        if not self.pg.running():
            self.pg.start()
        self.assertEqual(rc, 0, self.s.logs())

    def rule(self, name, sql, statement, **params):
        action = dict({"conninfo": self.pg.conninfo, "statement": statement}, **params)
        body = {"sql": sql, "awsIotSqlVersion": "2016-03-23", "actions": [{"postgres": action}]}
        st, _, b = http("POST", f"{self.s.url}/rules/{name}", json.dumps(body))
        self.assertEqual(st, 200, b)
        time.sleep(0.3)  # the MQTT subscription of the new rule

    def wait_count(self, table, n, timeout):
        end = time.time() + timeout
        got = -1
        while time.time() < end:
            got = int(self.pg.query(f"SELECT count(*) FROM {table}"))
            if got >= n:
                break
            time.sleep(0.25)
        return got

    def deadletters(self, rule):
        st, _, b = http("GET", f"{self.s.url}/deadletter?rule={rule}")
        self.assertEqual(st, 200, b)
        return json.loads(b)["records"]

    def metric(self, name, rule):
        st, _, b = http("GET", f"{self.s.url}/metrics")
        self.assertEqual(st, 200)
        prefix = f'{name}{{rule="{rule}",action="postgres",index="0"}} '
        for line in b.decode().splitlines():
            if line.startswith(prefix):
                return int(line[len(prefix):])
        self.fail(f"no {prefix} in /metrics")

    def test_100000_messages_give_exactly_100000_rows(self):
        self.pg.psql("CREATE TABLE bulk(seq int, dev text, temp numeric, topic text)")
        self.rule("pgbulk", "SELECT * FROM 'pg/bulk/+'",
                  "INSERT INTO bulk(seq, dev, temp, topic) "
                  "VALUES (${seq}, ${deviceId}, ${temperature}, ${topic()})")
        n, feeders = 100000, 4
        t0 = time.time()
        threads = [threading.Thread(target=feed, args=(
            self.broker.port, f"pg/bulk/{f}",
            [json.dumps({"seq": i, "deviceId": f"dev-{i % 17}", "temperature": i / 4})
             for i in range(f, n, feeders)])) for f in range(feeders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = self.wait_count("bulk", n, 90)
        elapsed = time.time() - t0
        time.sleep(0.5)  # anything extra (a duplicate) would land now
        row = self.pg.rows("SELECT count(*), count(DISTINCT seq), min(seq), max(seq), "
                           "sum(temp) = sum(seq) / 4.0, count(DISTINCT topic) FROM bulk")[0]
        self.assertEqual(row, [str(n), str(n), "0", str(n - 1), "t", str(feeders)],
                         f"{got} rows; {self.s.logs()}")
        self.assertEqual(self.deadletters("pgbulk"), [])
        self.assertEqual(self.metric("sluice_action_delivered_total", "pgbulk"), n)
        self.assertEqual(self.metric("sluice_action_failed_total", "pgbulk"), 0)
        batches = self.metric("sluice_action_batches_total", "pgbulk")
        print(f"\n{n} messages -> {n} rows in {elapsed:.1f} s ({n / elapsed:.0f} msg/s), "
              f"{batches} transactions (mean batch {n / batches:.0f})", file=sys.stderr)

    def test_injection_text_is_stored_as_a_value_and_null_as_null(self):
        self.pg.psql("CREATE TABLE t(seq int, dev text, temp numeric)")
        self.rule("pginject", "SELECT * FROM 'pg/inject'",
                  "INSERT INTO t(seq, dev, temp) VALUES (${seq}, ${deviceId}, ${temperature})")
        evil = "x'); DROP TABLE t;--"
        for body in ({"seq": 1, "deviceId": evil, "temperature": 1.5},
                     {"seq": 2, "deviceId": "$1 ${seq} \\'", "temperature": None},
                     {"seq": 3, "deviceId": "no temperature"}):
            st, _, b = http("POST", f"{self.s.url}/topics/pg/inject?qos=1", json.dumps(body))
            self.assertEqual(st, 200, b)
        self.assertEqual(self.wait_count("t", 3, 30), 3, self.s.logs())
        self.assertEqual(self.pg.query("SELECT to_regclass('t') IS NOT NULL"), "t")
        rows = self.pg.rows("SELECT seq, dev, coalesce(temp::text, 'NULL') FROM t ORDER BY seq")
        self.assertEqual(rows, [["1", evil, "1.5"], ["2", "$1 ${seq} \\'", "NULL"],
                                ["3", "no temperature", "NULL"]])

    def test_server_restart_mid_stream_loses_and_duplicates_nothing(self):
        self.pg.psql("CREATE TABLE outage(seq int, dev text)")
        self.rule("pgoutage", "SELECT * FROM 'pg/outage/+'",
                  "INSERT INTO outage(seq, dev) VALUES (${seq}, ${deviceId})", batchSize=200)
        n, feeders = 30000, 3
        # ~6 s of traffic: 500 messages every 0.1 s per feeder
        threads = [threading.Thread(target=feed, args=(
            self.broker.port, f"pg/outage/{f}",
            [json.dumps({"seq": i, "deviceId": f"d{f}"}) for i in range(f, n, feeders)],
            (500, 0.1))) for f in range(feeders)]
        for t in threads:
            t.start()
        try:
            self.assertGreater(self.wait_count("outage", 2000, 30), 0, self.s.logs())
            self.pg.stop("fast")
            stopped_at = time.time()
            still_feeding = any(t.is_alive() for t in threads)
            time.sleep(3)
            self.pg.start()
            down = time.time() - stopped_at
        finally:
            for t in threads:
                t.join()
        self.assertTrue(still_feeding, "the stream ended before the server stopped")
        got = self.wait_count("outage", n, 90)
        time.sleep(1)
        row = self.pg.rows("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) "
                           "FROM outage")[0]
        self.assertEqual(row, [str(n), str(n), "0", str(n - 1)], f"{got} rows; {self.s.logs()}")
        self.assertEqual(self.deadletters("pgoutage"), [])
        retries = self.metric("sluice_action_retries_total", "pgoutage")
        self.assertGreater(retries, 0, "the outage never reached a delivery")
        self.assertEqual(self.metric("sluice_action_delivered_total", "pgoutage"), n)
        print(f"\nserver down {down:.1f} s mid-stream: {n} messages -> {n} rows "
              f"({retries} retries)", file=sys.stderr)

    def test_a_constraint_violation_dead_letters_only_that_message(self):
        self.pg.psql("CREATE TABLE strict(seq int, dev text NOT NULL, "
                     "temp numeric CHECK (temp < 1000))")
        self.rule("pgstrict", "SELECT * FROM 'pg/strict'",
                  "INSERT INTO strict(seq, dev, temp) VALUES (${seq}, ${deviceId}, ${temp})")
        n, bad_check, bad_null = 60, 20, 45
        msgs = [json.dumps({"seq": i, "deviceId": f"d{i}", "temp": 5000 if i == bad_check else i}
                           if i != bad_null else {"seq": i, "temp": i}) for i in range(n)]
        # Hold the table locked while the messages queue up, so they are delivered as a few
        # large batches rather than one at a time.
        lock = subprocess.Popen(
            ["psql", "-h", "127.0.0.1", "-p", str(self.pg.port), "-U", "postgres", "-d",
             self.pg.db, "-qc", "BEGIN; LOCK TABLE strict; SELECT pg_sleep(2); COMMIT;"],
            stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            feed(self.broker.port, "pg/strict", msgs)
        finally:
            lock.wait(30)
        self.assertEqual(self.wait_count("strict", n - 2, 30), n - 2, self.s.logs())
        end = time.time() + 20
        records = []
        while len(records) < 2 and time.time() < end:
            records = self.deadletters("pgstrict")
            time.sleep(0.2)
        time.sleep(0.5)
        seqs = [int(s[0]) for s in self.pg.rows("SELECT seq FROM strict ORDER BY seq")]
        self.assertEqual(seqs, [i for i in range(n) if i not in (bad_check, bad_null)])
        # the good rows around each bad one came in shared transactions (batches), not one by one
        xacts = int(self.pg.query("SELECT count(DISTINCT xmin::text) FROM strict"))
        self.assertLess(xacts, 12, "messages were not batched")
        self.assertEqual(self.metric("sluice_action_failed_total", "pgstrict"), 2)
        self.assertEqual(len(records), 2, records)
        by_seq = {json.loads(base64.b64decode(r["payload"]))["seq"]: r for r in records}
        self.assertEqual(sorted(by_seq), [bad_check, bad_null])
        self.assertIn("23514", by_seq[bad_check]["errors"][-1]["message"])
        self.assertIn("23502", by_seq[bad_null]["errors"][-1]["message"])
        for r in records:
            self.assertEqual(r["action"], "postgres")
            self.assertEqual(r["attempts"], 1, "a permanent error must not be retried")


if __name__ == "__main__":
    unittest.main(verbosity=2)
