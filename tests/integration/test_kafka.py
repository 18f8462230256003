#!/usr/bin/env python3
"""The Kafka action end to end: Mosquitto -> `sluice serve` -> librdkafka's mock cluster
(kafka_mock, the real Kafka protocol on 127.0.0.1), read back with a consumer. 100 000 messages
must all arrive with their keys and headers; brokers going down mid-stream must lose nothing.
usage: test_kafka.py /path/to/sluice"""
import json, os, re, shutil, subprocess, sys, tempfile, threading, time, unittest

from harness import *  # noqa: F401,F403 (the shared servers and clients)
from kafkamock import KafkaMock

TOPIC = "tele-data"  # the action's topic template "tele-${topic(3)}" on k/<site>/data


def metric(text, name, rule):
    m = re.search(r'^%s\{rule="%s",action="kafka",index="0"\} (\d+)$' % (name, rule), text,
                  re.M)
    return int(m.group(1)) if m else None


def publish(port, site, seqs, pace=None):
    """Publishes {"deviceId", "seq"} for each seq to k/<site>/data through one mosquitto_pub -l
    -q 1 (one message per stdin line). pace: (lines, seconds) to spread them out."""
    p = subprocess.Popen(["mosquitto_pub", "-p", str(port), "-t", f"k/{site}/data", "-l",
                          "-q", "1"], stdin=subprocess.PIPE, text=True)
    chunk = []
    for s in seqs:
        chunk.append(json.dumps({"deviceId": f"dev-{s % 1000}", "seq": s}) + "\n")
        if pace and len(chunk) == pace[0]:
            p.stdin.write("".join(chunk))
            p.stdin.flush()
            chunk = []
            time.sleep(pace[1])
    p.stdin.write("".join(chunk))
    p.stdin.close()
    assert p.wait(300) == 0


class Kafka(unittest.TestCase):
    def setUp(self):
        self.broker = Broker()
        self.addCleanup(self.broker.stop)
        self.kafka = KafkaMock()
        self.addCleanup(lambda: self.assertEqual(self.kafka.stop(), 0))
        self.kafka.cmd(f"create {TOPIC} 6")
        self.data = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.data, True)
        # The whole backlog fits in the action's queue; retries are short.
        self.s = Sluice(self.broker.port, self.data, config={
            "queueDepth": 20000,
            "actions": {"queueDepth": 200000,
                        "retry": {"attempts": 100, "baseMs": 20, "maxMs": 300,
                                  "totalMs": 120000}}})

    def tearDown(self):
        rc = self.s.stop()
        self.assertEqual(rc, 0, self.s.logs())

    def rule(self, name, props):
        action = {"kafka": {
            "destinationArn": "arn:aws:iot:us-east-1:123456789012:ruledestination/vpc/x",
            "topic": "tele-${topic(3)}", "key": "${deviceId}",
            "clientProperties": dict({"bootstrap.servers": self.kafka.bootstrap}, **props),
            "headers": [{"key": "site", "value": "${topic(2)}"},
                        {"key": "src", "value": "${topic()}"}]}}
        body = json.dumps({"sql": "SELECT * FROM 'k/+/data'", "awsIotSqlVersion": "2016-03-23",
                           "actions": [action]})
        st, _, resp = http("POST", f"{self.s.url}/rules/{name}", body)
        self.assertEqual(st, 200, resp)

    def wait_delivered(self, name, n, timeout):
        end = time.time() + timeout
        text = ""
        while time.time() < end:
            text = http("GET", f"{self.s.url}/metrics")[2].decode()
            done = sum(metric(text, m, name) or 0 for m in ("sluice_action_delivered_total",
                                                             "sluice_action_failed_total"))
            if done >= n and metric(text, "sluice_action_queue_depth", name) == 0:
                break
            time.sleep(0.2)
        failed = metric(text, "sluice_action_failed_total", name)
        if failed or time.time() >= end:
            dl = http("GET", f"{self.s.url}/deadletter?rule={name}&limit=5")[2].decode()
            self.fail(f"not delivered in {timeout}s (failed: {failed}):\n" +
                      "\n".join(l for l in text.splitlines()
                                if 'rule="%s"' % name in l and "_seconds" not in l) +
                      "\ndead letters: " + dl[:3000])
        return text

    def check_records(self, recs, sites, n):
        """Every seq 0..n-1 exactly once or more (duplicates counted and returned), with the
        key and headers its message was published with."""
        seen = {}
        for r in recs:
            v = json.loads(r["value"])
            s = v["seq"]
            seen[s] = seen.get(s, 0) + 1
            site = sites(s)
            self.assertEqual(r["topic"], TOPIC)
            self.assertEqual(r["key"], f"dev-{s % 1000}", r)
            self.assertEqual(v, {"deviceId": f"dev-{s % 1000}", "seq": s})
            self.assertEqual(r["headers"], [{"key": "site", "value": site},
                                            {"key": "src", "value": f"k/{site}/data"}], r)
        missing = sorted(set(range(n)) - set(seen))
        self.assertEqual(missing[:20], [], f"{len(missing)} messages lost")
        self.assertEqual(len(seen), n)
        # The partitioner hashes the key: one device's records share a partition.
        part = {}
        for r in recs:
            part.setdefault(r["key"], set()).add(r["partition"])
        self.assertTrue(all(len(p) == 1 for p in part.values()))
        return sum(c - 1 for c in seen.values())

    def test_a_property_librdkafka_refuses_is_a_400_naming_it(self):
        body = json.dumps({"sql": "SELECT * FROM 'k/+/data'", "actions": [{"kafka": {
            "topic": "t", "clientProperties": {"bootstrap.servers": self.kafka.bootstrap,
                                               "acks": "sometimes"}}}]})
        st, h, resp = http("POST", f"{self.s.url}/rules/bad", body)
        self.assertEqual((st, h.get("x-amzn-ErrorType")), (400, "InvalidRequestException"))
        self.assertIn('clientProperties \\"acks\\" refused by librdkafka: Invalid value',
                      resp.decode())

    def test_100k_messages_arrive_once_with_keys_and_headers(self):
        n, nsites = 100000, 4
        self.rule("k", {"acks": "all"})
        t0 = time.time()
        per = n // nsites
        pubs = [threading.Thread(target=publish, args=(self.broker.port, f"site{i}",
                                                       range(i * per, (i + 1) * per)))
                for i in range(nsites)]
        for t in pubs:
            t.start()
        for t in pubs:
            t.join()
        t_pub = time.time() - t0
        text = self.wait_delivered("k", n, 240)
        t_del = time.time() - t0
        recs = self.kafka.consume(TOPIC, 0, 60000)
        t_read = time.time() - t0
        dups = self.check_records(recs, lambda s: f"site{s // per}", n)
        batches = metric(text, "sluice_action_batches_total", "k")
        print(f"\n100k: published in {t_pub:.1f}s, delivered after {t_del:.1f}s, read back "
              f"after {t_read:.1f}s; {len(recs)} records, {dups} duplicates, {batches} "
              f"batches, retries {metric(text, 'sluice_action_retries_total', 'k')}",
              file=sys.stderr)
        self.assertEqual(metric(text, "sluice_action_failed_total", "k"), 0)
        if metric(text, "sluice_action_retries_total", "k") == 0:
            # Duplicates come only from re-sending after a failed round (at-least-once);
            # without one, the idempotent producer must have written each record once.
            self.assertEqual(dups, 0)
        self.assertLess(batches, n // 10, "deliveries were not batched")

    def outage(self, name, props, n, down_s):
        """Publishes n messages over a few seconds and takes every broker down for down_s
        seconds in the middle. Returns (records, metrics text, sluice logs)."""
        self.rule(name, props)
        pub = threading.Thread(target=publish, args=(self.broker.port, "site0", range(n),
                                                     (200, 0.05)))
        pub.start()
        time.sleep(1.5)
        for b in range(1, self.kafka.brokers + 1):
            self.kafka.cmd(f"down {b}")
        time.sleep(down_s)
        for b in range(1, self.kafka.brokers + 1):
            self.kafka.cmd(f"up {b}")
        pub.join()
        text = self.wait_delivered(name, n, 120)
        recs = self.kafka.consume(TOPIC, 0, 60000)
        with open(self.s.log.name, "rb") as f:
            logs = f.read().decode(errors="replace")
        return recs, text, logs

    def test_brokers_down_past_the_message_timeout_are_retried_without_loss(self):
        # message.timeout.ms shorter than the outage: librdkafka gives up on the messages in
        # flight, the action reports RETRY and the pipeline re-sends them once brokers are up.
        n = 20000
        recs, text, logs = self.outage("down", {"message.timeout.ms": "1000"}, n, 3)
        dups = self.check_records(recs, lambda s: "site0", n)
        retries = metric(text, "sluice_action_retries_total", "down")
        print(f"\noutage past the timeout: {len(recs)} records, {dups} duplicates, "
              f"{retries} retries", file=sys.stderr)
        self.assertGreater(retries, 0, text)
        self.assertEqual(metric(text, "sluice_action_failed_total", "down"), 0)
        self.assertIn("_ALL_BROKERS_DOWN", logs)

    def test_brokers_down_within_the_message_timeout_are_recovered_by_librdkafka(self):
        # The default 30 s timeout outlasts the outage: librdkafka reconnects and resends by
        # itself, the action never fails, and the idempotent producer writes no duplicates.
        n = 20000
        recs, text, logs = self.outage("wait", {}, n, 3)
        dups = self.check_records(recs, lambda s: "site0", n)
        print(f"\noutage within the timeout: {len(recs)} records, {dups} duplicates",
              file=sys.stderr)
        self.assertEqual(metric(text, "sluice_action_retries_total", "wait"), 0)
        self.assertEqual(metric(text, "sluice_action_failed_total", "wait"), 0)
        self.assertEqual(dups, 0)
        self.assertIn("_ALL_BROKERS_DOWN", logs)


if __name__ == "__main__":
    unittest.main(verbosity=2)
