#!/usr/bin/env python3
"""The failure path end to end, with the file action as the sink (a directory that does not
exist yet is a transient failure; creating it is the sink's recovery): dead letters listed,
surviving a restart, re-driven, purged; the error action's AWS document; SIGTERM with a failing
sink leaves what is queued in the journal for the next start (or, without a journal,
dead-letters it) instead of losing it. usage: test_deadletter.py /path/to/sluice"""
import base64, json, os, re, shutil, tempfile, time, unittest

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

from harness import Broker, Sluice, http

FAST_RETRY = {"actions": {"retry": {"attempts": 3, "baseMs": 5, "maxMs": 20, "totalMs": 5000}}}


def post_rule(s, name, rule):
    st, _, body = http("POST", f"{s.url}/rules/{name}", json.dumps(rule))
    assert st == 200, body


def publish(s, topic, payload):
    st, _, body = http("POST", f"{s.url}/topics/{topic}?qos=1", json.dumps(payload))
    assert st == 200, body


def dead_letters(s, rule=None):
    q = f"?rule={rule}" if rule else ""
    st, _, body = http("GET", f"{s.url}/deadletter{q}")
    assert st == 200, body
    return json.loads(body)["records"]


def wait_for(fn, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return fn()


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def metric(s, name, **labels):
    _, _, body = http("GET", f"{s.url}/metrics")
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in body.decode().splitlines():
        if line.startswith(name + ("{" + want if want else "")):
            return float(line.rsplit(" ", 1)[1])
    return None


class DeadLetters(unittest.TestCase):
    def setUp(self):
        self.broker = Broker()
        self.tmp = tempfile.mkdtemp()
        self.data = os.path.join(self.tmp, "data")
        # beneath the file action's base directory (default <dataDir>/out); does not exist yet
        self.sink_dir = os.path.join(self.data, "out", "sink")
        self.s = Sluice(self.broker.port, self.data, config=FAST_RETRY)

    def tearDown(self):
        self.s.stop()
        self.broker.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def rule(self, path, error_action=None, sql="SELECT * FROM 'dev/+/t'"):
        r = {"sql": sql, "awsIotSqlVersion": "2016-03-23",
             "actions": [{"file": {"path": path}}]}
        if error_action:
            r["errorAction"] = error_action
        return r

    def test_failed_messages_are_listed_survive_restart_and_redrive(self):
        out = os.path.join(self.sink_dir, "out.jsonl")
        post_rule(self.s, "dl", self.rule(out))
        for i in range(3):
            publish(self.s, f"dev/d{i}/t", {"seq": i})
        recs = wait_for(lambda: len(dead_letters(self.s, "dl")) == 3 and dead_letters(self.s, "dl"))
        self.assertEqual(len(recs), 3, recs)
        r = recs[0]
        self.assertEqual(r["rule"], "dl")
        self.assertEqual(r["action"], "file")
        self.assertEqual(r["actionIndex"], 0)
        self.assertEqual(r["topic"], "dev/d0/t")
        self.assertEqual(json.loads(base64.b64decode(r["payload"])), {"seq": 0})
        self.assertEqual(r["attempts"], 3)
        self.assertEqual(len(r["errors"]), 3)
        self.assertIn("No such file or directory", r["errors"][0]["message"])
        self.assertLessEqual(r["firstFailureAt"], r["lastFailureAt"])
        self.assertRegex(r["traceId"], UUID)
        self.assertEqual(len({x["traceId"] for x in recs}), 3, "one trace id per message")
        self.assertEqual(metric(self.s, "sluice_action_failed_total", rule="dl", action="file"), 3)
        self.assertEqual(metric(self.s, "sluice_deadletter_records"), 3)
        self.assertEqual(metric(self.s, "sluice_action_retries_total", rule="dl"), 6)

        # a restart keeps them
        self.assertEqual(self.s.stop(), 0)
        self.s = Sluice(self.broker.port, self.data, config=FAST_RETRY)
        self.assertEqual(len(dead_letters(self.s, "dl")), 3)

        # the sink recovers: a re-drive delivers each exactly once and empties the store
        os.makedirs(self.sink_dir)
        st, _, body = http("POST", f"{self.s.url}/deadletter/redrive", json.dumps({"rule": "dl"}))
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["redriven"], 3)
        got = wait_for(lambda: len(lines(out)) == 3 and lines(out))
        self.assertEqual(sorted(x["seq"] for x in got), [0, 1, 2])
        self.assertTrue(wait_for(lambda: dead_letters(self.s, "dl") == []))
        self.assertEqual(len(lines(out)), 3)

    def test_redrive_by_id_and_purge(self):
        post_rule(self.s, "p", self.rule(os.path.join(self.sink_dir, "p.jsonl")))
        for i in range(4):
            publish(self.s, f"dev/x/t", {"seq": i})
        recs = wait_for(lambda: len(dead_letters(self.s, "p")) == 4 and dead_letters(self.s, "p"))
        self.assertEqual([json.loads(base64.b64decode(r["payload"]))["seq"] for r in recs],
                         [0, 1, 2, 3], "oldest first")
        st, _, body = http("POST", f"{self.s.url}/deadletter/redrive", '{"rule": 5}')
        self.assertEqual(st, 400)
        os.makedirs(self.sink_dir)
        st, _, body = http("POST", f"{self.s.url}/deadletter/redrive",
                           json.dumps({"ids": [recs[1]["id"]]}))
        self.assertEqual(json.loads(body)["redriven"], 1)
        self.assertTrue(wait_for(lambda: len(dead_letters(self.s, "p")) == 3))
        st, _, body = http("DELETE", f"{self.s.url}/deadletter?rule=p")
        self.assertEqual(json.loads(body), {"purged": 3})
        self.assertEqual(dead_letters(self.s), [])

    def test_redrive_after_the_rule_changed_uses_the_rule_as_it_is_now(self):
        out = os.path.join(self.sink_dir, "c.jsonl")
        post_rule(self.s, "c", self.rule(out, sql="SELECT seq FROM 'dev/+/t'"))
        publish(self.s, "dev/a/t", {"seq": 7, "extra": "e"})
        self.assertTrue(wait_for(lambda: len(dead_letters(self.s, "c")) == 1))
        os.makedirs(self.sink_dir)
        st, _, body = http("PATCH", f"{self.s.url}/rules/c",
                           json.dumps(self.rule(out, sql="SELECT seq, extra FROM 'dev/+/t'")))
        self.assertEqual(st, 200, body)
        st, _, body = http("POST", f"{self.s.url}/deadletter/redrive", '{"rule": "c"}')
        self.assertEqual(json.loads(body)["redriven"], 1, body)
        got = wait_for(lambda: lines(out))
        self.assertEqual(got, [{"seq": 7, "extra": "e"}])

    def test_the_error_action_gets_aws_error_document(self):
        errors = os.path.join(self.data, "out", "errors.jsonl")
        post_rule(self.s, "ea", self.rule(os.path.join(self.sink_dir, "x.jsonl"),
                                          error_action={"file": {"path": errors}}))
        publish(self.s, "dev/e1/t", {"temperature": 99})
        docs = wait_for(lambda: lines(errors))
        self.assertEqual(len(docs), 1, docs)
        d = docs[0]
        self.assertEqual(d["ruleName"], "ea")
        self.assertEqual(d["topic"], "dev/e1/t")
        self.assertEqual(d["clientId"], "n/a")
        self.assertEqual(json.loads(base64.b64decode(d["base64OriginalPayload"])),
                         {"temperature": 99})
        f = d["failures"][0]
        self.assertEqual(f["failedAction"], "FileAction")
        self.assertTrue(f["failedResource"].endswith("x.jsonl"))
        self.assertIn("No such file", f["errorMessage"])
        self.assertRegex(d["cloudwatchTraceId"], UUID)
        self.assertEqual(dead_letters(self.s, "ea"), [], "handled by the error action")

    def sigterm_with_a_failing_sink(self, journal):
        """20 messages queued for a failing sink, then SIGTERM: the shutdown must not wait
        out the retries."""
        self.s.stop()
        slow = {"actions": {"retry": {"attempts": 100, "baseMs": 2000, "maxMs": 2000,
                                      "totalMs": 600000}}, "ingest": {"journal": journal}}
        self.s = Sluice(self.broker.port, self.data, config=slow)
        out = os.path.join(self.sink_dir, "s.jsonl")
        post_rule(self.s, "st", self.rule(out))
        for i in range(20):
            publish(self.s, "dev/s/t", {"seq": i})
        time.sleep(0.3)
        t0 = time.time()
        self.assertEqual(self.s.stop(), 0)
        self.assertLess(time.time() - t0, 20, "shutdown does not wait out the retries")
        return out

    def test_sigterm_with_a_failing_sink_leaves_the_queue_in_the_journal(self):
        out = self.sigterm_with_a_failing_sink("batch")
        os.makedirs(self.sink_dir)  # the sink recovers while sluice is down
        self.s = Sluice(self.broker.port, self.data, config=FAST_RETRY)
        got = wait_for(lambda: len(lines(out)) >= 20 and lines(out))
        self.assertEqual(sorted(l["seq"] for l in got), list(range(20)),
                         "every queued message is delivered after the restart, none lost")
        self.assertEqual(dead_letters(self.s, "st"), [])

    def test_sigterm_without_a_journal_dead_letters_the_queue(self):
        self.sigterm_with_a_failing_sink("off")
        self.s = Sluice(self.broker.port, self.data, config=FAST_RETRY)
        recs = dead_letters(self.s, "st")
        self.assertEqual(sorted(json.loads(base64.b64decode(r["payload"]))["seq"] for r in recs),
                         list(range(20)), "every queued message is a dead letter, none lost")
    def test_an_evaluation_error_is_a_dead_letter_and_redrives_once_the_rule_is_fixed(self):
        """AWS drops a message whose rule fails to evaluate; sluice keeps it with the error."""
        os.makedirs(self.sink_dir)
        out = os.path.join(self.sink_dir, "eval.jsonl")
        bad = "SELECT regexp_matches(s, '(a+)+$') AS m, seq FROM 'dev/+/t'"
        post_rule(self.s, "ev", self.rule(out, sql=bad))
        publish(self.s, "dev/e/t", {"seq": 1, "s": "a" * 40 + "b"})
        publish(self.s, "dev/e/t", {"seq": 2, "s": "ab"})  # evaluates fine
        recs = wait_for(lambda: dead_letters(self.s, "ev"))
        self.assertEqual(len(recs), 1, recs)
        r = recs[0]
        self.assertEqual((r["action"], r["actionIndex"]), ("evaluation", -2))
        self.assertIn("backtracking limit", r["errors"][0]["message"])
        self.assertEqual(json.loads(base64.b64decode(r["payload"]))["seq"], 1)
        self.assertEqual([l["seq"] for l in wait_for(lambda: lines(out))], [2])
        # the rule is fixed; the re-drive runs it as it is now and resolves the record
        fixed = self.rule(out, sql="SELECT regexp_matches(s, 'a+b') AS m, seq FROM 'dev/+/t'")
        st, _, body = http("PATCH", f"{self.s.url}/rules/ev", json.dumps(fixed))
        self.assertEqual(st, 200, body)
        st, _, body = http("POST", f"{self.s.url}/deadletter/redrive", json.dumps({"rule": "ev"}))
        self.assertEqual((st, json.loads(body)["redriven"]), (200, 1), body)
        got = wait_for(lambda: len(lines(out)) == 2 and lines(out))
        self.assertEqual([l["seq"] for l in got], [2, 1])
        self.assertEqual(wait_for(lambda: dead_letters(self.s, "ev") == [] and [1]), [1])

    def test_evaluation_errors_can_be_left_out_of_the_dead_letters(self):
        self.s.stop()
        cfg = dict(FAST_RETRY, deadLetter={"evalErrors": False})
        self.s = Sluice(self.broker.port, self.data, config=cfg)
        post_rule(self.s, "ev", self.rule("x.jsonl",
                                          sql="SELECT regexp_matches(s, '(a+)+$') FROM 'dev/+/t'"))
        publish(self.s, "dev/e/t", {"s": "a" * 40 + "b"})
        self.assertIsNotNone(wait_for(lambda: metric(self.s, "sluice_rule_errors_total",
                                                     rule="ev") == 1 or None))
        self.assertEqual(dead_letters(self.s, "ev"), [])

    def test_a_payload_over_the_limit_is_a_dead_letter_before_its_puback(self):
        big = "x" * (200 * 1024)
        import subprocess
        post_rule(self.s, "big", self.rule("big.jsonl"))  # subscribes to dev/+/t
        time.sleep(0.5)
        subprocess.run(["mosquitto_pub", "-p", str(self.broker.port), "-t", "dev/big/t", "-q",
                        "1", "-s"], input=big.encode(), check=True)
        recs = wait_for(lambda: [r for r in dead_letters(self.s) if r["action"] == "ingest"])
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual((recs[0]["rule"], recs[0]["actionIndex"], recs[0]["topic"]),
                         ("", -2, "dev/big/t"))
        self.assertEqual(len(base64.b64decode(recs[0]["payload"])), 200 * 1024)
        self.assertIn("limit", recs[0]["errors"][0]["message"])
        self.assertEqual(metric(self.s, "sluice_dropped_total", reason="too_large"), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
