#!/usr/bin/env python3
"""`sluice serve` with http actions against local HTTP/1.1 servers (httpsink.py) and a private
Mosquitto: templates substituted per message, batched JSON-array bodies within batchConfig,
transient 500s retried until delivered, a permanent 500 going to the error action (AWS's error
document) or else to the dead-letter store and back out through redrive, and per-topic order
kept across retries.
usage: test_http.py /path/to/sluice"""
import base64, json, os, shutil, subprocess, sys, tempfile, time, unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403 (the shared servers and clients)
from httpsink import HttpSink

ATTEMPTS = 5
CONFIG = {"actions": {"retry": {"attempts": ATTEMPTS, "baseMs": 20, "maxMs": 100},
                      "http": {"allowedHosts": ["127.0.0.1"], "timeoutMs": 3000,
                               "connectTimeoutMs": 1000}}}


def feed(port, topic, lines, clientid=None):
    """Publishes lines at QoS 1 through one mosquitto_pub -l (MQTT 5; with clientid, as the
    user property sluice reads clientid() from)."""
    argv = ["mosquitto_pub", "-p", str(port), "-t", topic, "-q", "1", "-l", "-V", "5"]
    if clientid:
        argv += ["-D", "publish", "user-property", "clientid", clientid]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, text=True)
    p.communicate("".join(line + "\n" for line in lines), timeout=120)
    assert p.returncode == 0, "mosquitto_pub failed"


class Http(unittest.TestCase):
    def setUp(self):
        self.sink = HttpSink()
        self.broker = Broker()
        self.data = tempfile.mkdtemp()
        try:
            self.s = Sluice(self.broker.port, self.data, config=CONFIG)
        except BaseException:
            self.broker.stop()
            self.sink.stop()
            raise

    def tearDown(self):
        rc = self.s.stop()
        self.broker.stop()
        self.sink.stop()
        shutil.rmtree(self.data, ignore_errors=True)
        self.assertEqual(rc, 0, self.s.logs())

    def rule(self, name, sql, action, error_action=None, expect=200):
        body = {"sql": sql, "awsIotSqlVersion": "2016-03-23", "actions": [{"http": action}]}
        if error_action:
            body["errorAction"] = error_action
        st, _, b = http("POST", f"{self.s.url}/rules/{name}", json.dumps(body))
        self.assertEqual(st, expect, b)
        if st == 200:
            time.sleep(0.3)  # the MQTT subscription of the new rule
        return json.loads(b) if b else {}

    def deadletters(self, rule):
        st, _, b = http("GET", f"{self.s.url}/deadletter?rule={rule}")
        self.assertEqual(st, 200, b)
        return json.loads(b)["records"]

    def wait_deadletters(self, rule, n, timeout=20):
        end = time.time() + timeout
        while True:
            recs = self.deadletters(rule)
            if len(recs) == n or time.time() > end:
                return recs
            time.sleep(0.1)

    def test_url_and_headers_are_templates_substituted_per_message(self):
        self.rule("hook", "SELECT temperature, deviceId FROM 'sensors/+/telemetry'",
                  {"url": self.sink.url("/hook/${topic(2)}?t=${temperature}"),
                   "headers": [{"key": "x-src", "value": "${clientid()}"},
                               {"key": "x-dev-${deviceId}", "value": "t=${temperature}"}]})
        for d in range(3):
            feed(self.broker.port, f"sensors/dev-{d}/telemetry",
                 [json.dumps({"deviceId": f"dev-{d}", "temperature": 20 + 10 * d + k})
                  for k in range(4)], clientid=f"client-{d}")
        reqs = self.sink.wait(12)
        self.assertEqual(len(reqs), 12, self.s.logs())
        seen = {}
        for r in reqs:
            self.assertEqual(r.method, "POST")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["content-type"], "application/json")
            body = json.loads(r.body)
            dev, t = body["deviceId"], body["temperature"]
            self.assertEqual(r.path, f"/hook/{dev}?t={t}")
            self.assertEqual(r.headers["x-src"], "client-" + dev[-1])
            self.assertEqual(r.headers[f"x-dev-{dev}"], f"t={t}")
            seen.setdefault(dev, []).append(t)
        # every message once, in publish order per topic
        self.assertEqual(seen, {f"dev-{d}": [20 + 10 * d + k for k in range(4)]
                                for d in range(3)})
        # one kept-alive connection per lane at most (3 topics use at most 3 lanes)
        self.assertLessEqual(self.sink.connections, 3)
        # the allow-list (127.0.0.1 only) refuses a literal host when the rule is created
        err = self.rule("elsewhere", "SELECT * FROM 'x'", {"url": "http://hooks.example/in"},
                        expect=400)
        self.assertIn("hooks.example", err["message"])

    def test_batches_are_json_arrays_within_batch_config(self):
        # by count: maxBatchSize 5 (payloads are small)
        self.rule("bycount", "SELECT i FROM 'b/count'",
                  {"url": self.sink.url("/count"), "enableBatching": True,
                   "batchConfig": {"maxBatchSize": 5, "maxBatchOpenMs": 100}})
        # by bytes: 56- or 57-byte outputs, so at most 3 fit in 200 bytes ("[" a,b,c "]")
        self.rule("bybytes", "SELECT i, pad FROM 'b/bytes'",
                  {"url": self.sink.url("/bytes"),
                   "batchConfig": {"maxBatchSize": 10, "maxBatchSizeBytes": 200,
                                   "maxBatchOpenMs": 100}})
        pad = "x" * 40
        feed(self.broker.port, "b/count", [json.dumps({"i": i}) for i in range(40)])
        feed(self.broker.port, "b/bytes", [json.dumps({"i": i, "pad": pad}) for i in range(30)])
        for path, n, most, limit in (("/count", 40, 5, None), ("/bytes", 30, 3, 200)):
            end = time.time() + 20
            while time.time() < end:
                items = [x for b in self.sink.bodies(path) for x in json.loads(b)]
                if len(items) >= n:
                    break
                time.sleep(0.05)
            bodies = self.sink.bodies(path)
            arrays = [json.loads(b) for b in bodies]
            self.assertTrue(all(isinstance(a, list) for a in arrays), bodies[:3])
            self.assertEqual([x["i"] for a in arrays for x in a], list(range(n)), path)
            self.assertLessEqual(max(len(a) for a in arrays), most, path)
            self.assertGreater(max(len(a) for a in arrays), 1, f"{path}: nothing was batched")
            if limit:
                self.assertLessEqual(max(len(b) for b in bodies), limit)
            self.assertLess(len(arrays), n)

    def test_transient_500s_are_retried_until_delivered(self):
        self.sink.script([500, 500, 500])
        self.rule("flaky", "SELECT i FROM 'f/t'", {"url": self.sink.url("/in")})
        feed(self.broker.port, "f/t", [json.dumps({"i": i}) for i in range(10)])
        ok = self.sink.wait(10, ok=True)
        self.assertEqual([json.loads(b)["i"] for b in self.sink.bodies()], list(range(10)),
                         self.s.logs())
        self.assertEqual(len(self.sink.snapshot()), 13)
        self.assertEqual(self.deadletters("flaky"), [])
        self.assertEqual(len(ok), 10)

    def test_permanent_500_goes_to_the_error_action_with_awss_error_document(self):
        url = self.sink.url("/down/${topic(2)}")
        self.sink.set_status(500, "/down/d7")
        self.rule("witherr", "SELECT * FROM 'e/+'", {"url": url},
                  error_action={"http": {"url": self.sink.url("/errors")}})
        payload = json.dumps({"deviceId": "d7", "temperature": 99})
        feed(self.broker.port, "e/d7", [payload], clientid="client-7")
        errs = self.sink.wait(1, path="/errors", ok=True)
        self.assertEqual(len(errs), 1, self.s.logs())
        doc = json.loads(errs[0].body)
        self.assertEqual(doc["ruleName"], "witherr")
        self.assertEqual(doc["topic"], "e/d7")
        self.assertEqual(doc["clientId"], "client-7")
        self.assertEqual(base64.b64decode(doc["base64OriginalPayload"]).decode(), payload)
        self.assertIn("cloudwatchTraceId", doc)
        f = doc["failures"][0]
        self.assertEqual(f["failedAction"], "HttpAction")
        self.assertEqual(f["failedResource"], url)
        self.assertIn("HTTP 500", f["errorMessage"])
        self.assertEqual(len(self.sink.snapshot("/down/d7")), ATTEMPTS)
        self.assertEqual(self.deadletters("witherr"), [])

    def test_permanent_500_without_error_action_is_dead_lettered_then_redriven(self):
        self.sink.set_status(500, "/dl")
        self.rule("deadl", "SELECT * FROM 'd/t'", {"url": self.sink.url("/dl")})
        payload = json.dumps({"n": 1, "s": "héllo"})
        feed(self.broker.port, "d/t", [payload])
        recs = self.wait_deadletters("deadl", 1)
        self.assertEqual(len(recs), 1, self.s.logs())
        rec = recs[0]
        self.assertEqual(rec["rule"], "deadl")
        self.assertEqual(rec["action"], "http")
        self.assertEqual(rec["topic"], "d/t")
        self.assertEqual(base64.b64decode(rec["payload"]).decode(), payload)
        self.assertEqual(rec["attempts"], ATTEMPTS)
        self.assertIn("HTTP 500", rec["errors"][-1]["message"])
        self.assertEqual(len(self.sink.snapshot("/dl")), ATTEMPTS)

        self.sink.set_status(200, "/dl")
        st, _, b = http("POST", f"{self.s.url}/deadletter/redrive", json.dumps({"rule": "deadl"}))
        self.assertEqual(st, 200, b)
        self.assertEqual(json.loads(b)["redriven"], 1, b)
        got = self.sink.wait(1, path="/dl", ok=True)
        self.assertEqual([json.loads(r.body) for r in got], [json.loads(payload)])
        self.assertEqual(self.wait_deadletters("deadl", 0), [])

    def test_order_per_topic_holds_across_retries(self):
        # the 5th to 8th requests fail: one message is retried 4 times, the rest wait behind it
        self.sink.script([200] * 4 + [500] * 4)
        self.rule("ordered", "SELECT i FROM 'o/t'", {"url": self.sink.url("/o")})
        n = 200
        feed(self.broker.port, "o/t", [json.dumps({"i": i}) for i in range(n)])
        self.sink.wait(n, ok=True, timeout=60)
        self.assertEqual([json.loads(b)["i"] for b in self.sink.bodies()], list(range(n)),
                         self.s.logs())
        failed = [r for r in self.sink.snapshot() if r.status == 500]
        self.assertEqual([json.loads(r.body)["i"] for r in failed], [4, 4, 4, 4])
        self.assertEqual(self.deadletters("ordered"), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
