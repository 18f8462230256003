#!/usr/bin/env python3
"""Device shadows end to end: `sluice serve` with a real Mosquitto, devices that are paho MQTT
clients, and the real AWS CLI and boto3 on the REST data plane (iot-data). Covers every MQTT
answer topic and document, versions and conflicts, clientToken echo, the modeled errors as
botocore raises them, roles, the seed rule on /update/documents and get_thing_shadow(),
persistence across restarts, racing clients and malformed requests. Every server listens on
127.0.0.1 on a free port and is stopped by the test. usage: test_shadow.py /path/to/sluice"""
import http.client as httpclient, json, os, shutil, signal, subprocess, sys, tempfile, threading, time, unittest

import paho.mqtt.client as mqtt

from harness import *  # noqa: F401,F403 (the shared servers and clients)
from harness import AWS_ENV

ROLE = "arn:aws:iam::123456789012:role/x"  # get_thing_shadow() and the SDKs want one; ignored
SEED = ("SELECT * FROM '$aws/things/+/shadow/name/+/update/documents' WHERE isNull(previous) "
        "OR previous.state.reported.value <> current.state.reported.value")
PUBLISHER = ("AKIDSHADOWPUB", "publisher-secret-0123456789")
READER = ("AKIDSHADOWREAD", "reader-secret-0123456789")
ADMIN = ("AKIDSHADOWADMIN", "admin-secret-0123456789")


def topic(thing, op, shadow=None, suffix=None):
    t = f"$aws/things/{thing}/shadow" + (f"/name/{shadow}" if shadow else "") + f"/{op}"
    return t + (f"/{suffix}" if suffix else "")


def untimed(doc, now=None):
    """doc with every "timestamp" (checked to be about now, in epoch seconds) replaced by "T"."""
    now = now or time.time()
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if k == "timestamp" and isinstance(v, int):
                assert abs(v - now) < 600, f"timestamp {v} is not about now ({now})"
                out[k] = "T"
            else:
                out[k] = untimed(v, now)
        return out
    if isinstance(doc, list):
        return [untimed(v, now) for v in doc]
    return doc


class Device:
    """A paho MQTT client acting as a device: subscribes, publishes at QoS 1 and collects what
    arrives as (topic, parsed payload) in arrival order."""

    def __init__(self, port, cid, subscriptions=()):
        try:  # paho 2 wants the callback API version; Debian 12's paho 1.6 has none
            self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=cid)
        except AttributeError:
            self.c = mqtt.Client(client_id=cid)
        self.cv = threading.Condition()
        self.msgs, self.acks, self.connected = [], set(), False
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        with self.cv:
            assert self.cv.wait_for(lambda: self.connected, 10), "no CONNACK"
        for s in subscriptions:
            self.subscribe(s)

    def _on_connect(self, c, ud, flags, rc):
        with self.cv:
            self.connected = rc == 0
            self.cv.notify_all()

    def _on_subscribe(self, c, ud, mid, granted):
        with self.cv:
            self.acks.add(mid)
            self.cv.notify_all()

    def _on_message(self, c, ud, m):
        try:
            payload = json.loads(m.payload)
        except ValueError:
            payload = m.payload
        with self.cv:
            self.msgs.append((m.topic, payload))
            self.cv.notify_all()

    def subscribe(self, filt):
        rc, mid = self.c.subscribe(filt, 1)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        with self.cv:
            assert self.cv.wait_for(lambda: mid in self.acks, 10), "no SUBACK"

    def publish(self, t, payload):
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        self.c.publish(t, data, qos=1).wait_for_publish()

    def wait(self, pred, n=1, timeout=20):
        """The first n messages (topic, payload) for which pred holds, once they are there."""
        with self.cv:
            self.cv.wait_for(lambda: len([m for m in self.msgs if pred(*m)]) >= n, timeout)
            got = [m for m in self.msgs if pred(*m)]
        assert len(got) >= n, f"{len(got)} of {n} messages after {timeout}s: {self.msgs[-10:]}"
        return got[:n]

    def on(self, t, n=1, token=None, timeout=20):
        """The first n payloads on topic t (with that clientToken, when given)."""
        return [p for _, p in self.wait(
            lambda tt, p: tt == t and (token is None or p.get("clientToken") == token), n,
            timeout)]

    def request(self, t, payload, token, answers=("accepted", "rejected")):
        """Publishes a request and returns (suffix, payload) of its answer, found by token."""
        self.publish(t, payload)
        got = self.wait(lambda tt, p: isinstance(p, dict) and p.get("clientToken") == token and
                        tt.rsplit("/", 1)[1] in answers and tt.startswith(t + "/"))
        return got[0][0][len(t) + 1:], got[0][1]

    def seen(self, t):
        with self.cv:
            return [p for tt, p in self.msgs if tt == t]

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def boto3_client(url, cred=("local", "local"), retries=None):
    import boto3, botocore.config
    cfg = botocore.config.Config(retries={"max_attempts": retries}) if retries is not None \
        else None
    return boto3.client("iot-data", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=cred[0], aws_secret_access_key=cred[1], config=cfg)


def clis():
    """The AWS CLIs here, one per version: (command, needs --cli-binary-format). Debian's is v2;
    a v1 from pip may come first on PATH."""
    found, seen = [], set()
    for exe in ("aws", "/usr/bin/aws"):
        path = shutil.which(exe)
        if not path or os.path.realpath(path) in seen:
            continue
        seen.add(os.path.realpath(path))
        r = subprocess.run([path, "--version"], capture_output=True, text=True)
        found.append((path, (r.stdout + r.stderr).startswith("aws-cli/2")))
    return found


def cli(exe, v2, url, op, *args, payload=None, env=None):
    """`aws iot-data <op>`; get/update/delete write their body to an outfile, returned parsed
    as (returncode, body or None, stderr)."""
    argv = [exe, "--endpoint-url", url, "iot-data", op, *args]
    if payload is not None:
        argv += ["--payload", payload] + (["--cli-binary-format", "raw-in-base64-out"] if v2
                                          else [])
    out = None
    if op != "list-named-shadows-for-thing":
        fd, out = tempfile.mkstemp()
        os.close(fd)
        argv.append(out)
    r = subprocess.run(argv, env=env or AWS_ENV, capture_output=True, text=True, timeout=60)
    body = None
    if out:
        with open(out) as f:
            text = f.read()
        os.unlink(out)
        body = json.loads(text) if r.returncode == 0 and text else None
    elif r.returncode == 0:
        body = json.loads(r.stdout)
    return r.returncode, body, r.stderr


class Shared(unittest.TestCase):
    """One Mosquitto and one sluice for the tests that need no configuration of their own; each
    test uses its own thing names."""

    @classmethod
    def setUpClass(cls):
        cls.broker = Broker()
        cls.data = tempfile.mkdtemp()
        cls.s = Sluice(cls.broker.port, cls.data)

    @classmethod
    def tearDownClass(cls):
        rc = cls.s.stop()
        cls.broker.stop()
        shutil.rmtree(cls.data, ignore_errors=True)
        assert rc == 0, cls.s.logs()

    def setUp(self):
        self.devices = []

    def tearDown(self):
        for d in self.devices:
            d.close()
        self.assertIsNone(self.s.p.poll(), self.s.logs())

    def device(self, *subscriptions):
        d = Device(self.broker.port, f"dev-{self._testMethodName[:40]}-{len(self.devices)}",
                   subscriptions)
        self.devices.append(d)
        return d


class Mqtt(Shared):
    def lifecycle(self, thing, shadow):
        d = self.device(f"$aws/things/{thing}/shadow/#")
        name = shadow or thing
        up, get, delete = (topic(thing, op, shadow) for op in ("update", "get", "delete"))
        # a get before the shadow exists
        self.assertEqual(d.request(get, {"clientToken": "g0"}, "g0"),
                         ("rejected", {"code": 404, "message": f"No shadow exists with name: "
                                                               f"'{name}'", "clientToken": "g0"}))
        # the creating update: accepted, a delta (desired without reported), documents with
        # previous null
        d.publish(up, {"state": {"desired": {"color": "red", "lvl": [1, 2]}}, "clientToken": "u1"})
        self.assertEqual(untimed(d.on(up + "/accepted", token="u1")[0]), {
            "state": {"desired": {"color": "red", "lvl": [1, 2]}},
            "metadata": {"desired": {"color": {"timestamp": "T"},
                                     "lvl": [{"timestamp": "T"}, {"timestamp": "T"}]}},
            "version": 1, "timestamp": "T", "clientToken": "u1"})
        self.assertEqual(untimed(d.on(up + "/delta", token="u1")[0]), {
            "version": 1, "timestamp": "T", "state": {"color": "red", "lvl": [1, 2]},
            "metadata": {"color": {"timestamp": "T"},
                         "lvl": [{"timestamp": "T"}, {"timestamp": "T"}]},
            "clientToken": "u1"})
        docs = untimed(d.on(up + "/documents", token="u1")[0])
        self.assertEqual(docs, {"previous": None, "current": {
            "state": {"desired": {"color": "red", "lvl": [1, 2]}},
            "metadata": {"desired": {"color": {"timestamp": "T"},
                                     "lvl": [{"timestamp": "T"}, {"timestamp": "T"}]}},
            "version": 1}, "timestamp": "T", "clientToken": "u1"})
        # the device reports what is desired: no delta for version 2
        d.publish(up, {"state": {"reported": {"color": "red", "lvl": [1, 2]}},
                       "clientToken": "u2"})
        docs = untimed(d.on(up + "/documents", token="u2")[0])
        self.assertEqual(docs["previous"]["version"], 1)
        self.assertEqual(docs["current"]["version"], 2)
        self.assertEqual(docs["current"]["state"], {"desired": {"color": "red", "lvl": [1, 2]},
                                                    "reported": {"color": "red", "lvl": [1, 2]}})
        # the three answers of one update leave in order: accepted, delta, documents
        self.assertEqual([p["version"] for p in d.seen(up + "/delta")], [1])
        # get: the whole document, no delta when in sync, the token echoed
        self.assertEqual(untimed(d.request(get, {"clientToken": "g1"}, "g1")[1]), {
            "state": {"desired": {"color": "red", "lvl": [1, 2]},
                      "reported": {"color": "red", "lvl": [1, 2]}},
            "metadata": {"desired": {"color": {"timestamp": "T"},
                                     "lvl": [{"timestamp": "T"}, {"timestamp": "T"}]},
                         "reported": {"color": {"timestamp": "T"},
                                      "lvl": [{"timestamp": "T"}, {"timestamp": "T"}]}},
            "version": 2, "timestamp": "T", "clientToken": "g1"})
        # a new desired value: the delta holds only what differs, with the token of the update
        # that caused it even though reported did not change
        d.publish(up, {"state": {"desired": {"color": "blue"}}, "clientToken": "u3"})
        self.assertEqual(untimed(d.on(up + "/delta", token="u3")[0])["state"], {"color": "blue"})
        # the version check: a stale version is a 409, the current one passes
        self.assertEqual(d.request(up, {"state": {"reported": {"color": "blue"}}, "version": 2,
                                        "clientToken": "u4"}, "u4"),
                         ("rejected", {"code": 409, "message": "Version conflict",
                                       "clientToken": "u4"}))
        kind, acc = d.request(up, {"state": {"reported": {"color": "blue"}}, "version": 3,
                                   "clientToken": "u5"}, "u5")
        self.assertEqual((kind, acc["version"]), ("accepted", 4))
        d.on(up + "/documents", token="u5")
        self.assertEqual([p["version"] for p in d.seen(up + "/delta")], [1, 3])
        # delete answers with the last version; the shadow is gone; a new one continues from it
        self.assertEqual(untimed(d.request(delete, {"clientToken": "d1"}, "d1")[1]),
                         {"version": 4, "timestamp": "T", "clientToken": "d1"})
        self.assertEqual(d.request(get, {"clientToken": "g2"}, "g2")[1]["code"], 404)
        self.assertEqual(d.request(delete, {"clientToken": "d2"}, "d2"),
                         ("rejected", {"code": 404, "message": f"No shadow exists with name: "
                                                               f"'{name}'", "clientToken": "d2"}))
        d.publish(up, {"state": {"reported": {"on": True}}, "clientToken": "u6"})
        self.assertEqual(d.on(up + "/accepted", token="u6")[0]["version"], 5)
        self.assertIsNone(d.on(up + "/documents", token="u6")[0]["previous"])
        # an empty get payload is a get without a token
        d.publish(get, "")
        self.assertEqual(d.on(get + "/accepted", n=2)[1]["state"], {"reported": {"on": True}})

    def test_classic_shadow_over_mqtt(self):
        self.lifecycle("lamp-1", None)

    def test_named_shadow_over_mqtt(self):
        self.lifecycle("lamp-2", "cfg:1")

    def test_named_shadows_are_independent_of_the_classic_one(self):
        d = self.device("$aws/things/pump/shadow/#")
        d.publish(topic("pump", "update"), {"state": {"reported": {"a": 1}}, "clientToken": "c"})
        d.publish(topic("pump", "update", "x"), {"state": {"reported": {"a": 2}},
                                                  "clientToken": "n"})
        self.assertEqual(d.on(topic("pump", "update", None, "accepted"), token="c")[0]["version"],
                         1)
        self.assertEqual(d.on(topic("pump", "update", "x", "accepted"), token="n")[0]["version"],
                         1)
        self.assertEqual(d.seen(topic("pump", "update", None, "delta")), [])

    def test_malformed_updates_are_rejected_and_store_nothing(self):
        thing = "bad-1"
        up = topic(thing, "update")
        d = self.device(up + "/rejected", up + "/accepted")
        deep = {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}
        cases = [
            (b"{\"state\":", 400, "Invalid JSON"),
            (b"[1,2]", 400, "Invalid JSON"),
            (b"{}", 400, "Missing required node: state"),
            (b"{\"state\":1}", 400, "State node must be an object"),
            (b"{\"state\":{\"delta\":{\"a\":1}}}", 400, "State contains an invalid node: 'delta'"),
            (b"{\"state\":{\"desired\":[1]}}", 400, "Desired node must be an object"),
            (b"{\"state\":{\"reported\":\"x\"}}", 400, "Reported node must be an object"),
            (b"{\"state\":{\"reported\":{\"a\":1}},\"version\":\"1\"}", 400, "Invalid version"),
            (b"{\"state\":{\"reported\":{\"a\":1}},\"clientToken\":\"" + b"t" * 65 + b"\"}", 400,
             "Invalid clientToken"),
            (json.dumps({"state": {"reported": deep}}).encode(), 400,
             "JSON contains too many levels of nesting; maximum is 6"),
            (b"{\"state\":{\"reported\":{\"a\":[1,null]}}}", 400,
             "Invalid JSON: arrays may not contain null"),
            (b"{\"state\":{\"reported\":{\"a\":1,\"a\":2}}}", 400,
             "Invalid JSON: duplicate key 'a'"),
            (b"{\"state\":{\"reported\":{\"a\":\"\xff\"}}}", 415,
             "Unsupported documented encoding; supported encoding is UTF-8"),
            (json.dumps({"state": {"reported": {"big": "x" * 9000}}}).encode(), 413,
             "The payload exceeds the maximum size allowed"),
            (b"", 400, "Invalid JSON"),
        ]
        for i, (payload, code, message) in enumerate(cases):
            d.publish(up, payload)
            got = d.on(up + "/rejected", n=i + 1)[i]
            self.assertEqual(got, {"code": code, "message": message}, payload[:80])
        # a token that was valid is echoed in a later rejection
        self.assertEqual(d.request(up, {"state": 5, "clientToken": "k"}, "k"),
                         ("rejected", {"code": 400, "message": "State node must be an object",
                                       "clientToken": "k"}))
        # a bad thing name in the topic is answered, not dropped
        bad = topic("no$such", "update")
        d.subscribe(bad + "/rejected")
        d.publish(bad, {"state": {}})
        self.assertEqual(d.on(bad + "/rejected")[0],
                         {"code": 400, "message": "Invalid thing name: expected 1 to 128 "
                                                  "characters of [a-zA-Z0-9:_-]"})
        self.assertEqual(d.seen(up + "/accepted"), [])
        st, _, body = http("GET", f"{self.s.url}/things/{thing}/shadow")
        self.assertEqual((st, json.loads(body)["message"]),
                         (404, f"No shadow exists with name: '{thing}'"))
        # sluice is alive and the shadow still works
        self.assertEqual(d.request(up, {"state": {"reported": {"ok": 1}}, "clientToken": "ok"},
                                   "ok")[1]["version"], 1)

    def test_rest_update_publishes_the_mqtt_messages(self):
        d = self.device("$aws/things/rest-1/shadow/#")
        c = boto3_client(self.s.url)
        r = c.update_thing_shadow(thingName="rest-1", shadowName="s",
                                  payload=b'{"state":{"desired":{"x":1}},"clientToken":"r1"}')
        body = json.loads(r["payload"].read())
        t = topic("rest-1", "update", "s")
        acc = d.on(t + "/accepted", token="r1")[0]
        self.assertEqual(acc, body)
        self.assertEqual(d.on(t + "/delta", token="r1")[0]["state"], {"x": 1})
        self.assertIsNone(d.on(t + "/documents", token="r1")[0]["previous"])
        # a REST get publishes nothing; a REST delete publishes /delete/accepted
        c.get_thing_shadow(thingName="rest-1", shadowName="s")
        c.delete_thing_shadow(thingName="rest-1", shadowName="s")
        self.assertEqual(untimed(d.on(topic("rest-1", "delete", "s", "accepted"))[0]),
                         {"version": 1, "timestamp": "T"})
        # REST errors publish nothing
        with self.assertRaises(c.exceptions.ConflictException):
            c.update_thing_shadow(thingName="rest-1", shadowName="s",
                                  payload=b'{"state":{},"version":7}')
        d.publish(topic("rest-1", "update", "s"), {"state": {}, "clientToken": "end"})
        d.on(t + "/documents", token="end")
        self.assertEqual([tt for tt, _ in d.msgs if tt.endswith("/rejected")],
                         [])
        self.assertEqual([tt for tt, _ in d.msgs if "/get/" in tt], [])


class RestAnswers(unittest.TestCase):
    def test_a_rest_update_answers_once_the_broker_has_its_messages(self):
        """A REST update's 200 comes once the broker has acknowledged its /accepted, /delta and
        /documents: with the broker stopped (SIGSTOP) the 200 is held back, and it comes as
        soon as the broker acknowledges them, not at the 5 s limit. A caller that has its 200
        therefore knows the update was announced; a crash before that leaves it without an
        answer, and it retries."""
        broker, data = Broker(), tempfile.mkdtemp()
        s = Sluice(broker.port, data)
        d = Device(broker.port, "dev-rest-answers", ("$aws/things/held/shadow/#",))
        try:
            c = boto3_client(s.url)
            c.update_thing_shadow(thingName="held", payload=b'{"state":{"reported":{"v":0}}}')
            done = {}

            def call():
                c.update_thing_shadow(thingName="held", payload=b'{"state":{"desired":{"v":1}},'
                                                                b'"clientToken":"held"}')
                done["at"] = time.time()

            os.kill(broker.p.pid, signal.SIGSTOP)
            t0 = time.time()
            th = threading.Thread(target=call)
            th.start()
            time.sleep(1.5)
            held = "at" not in done
            os.kill(broker.p.pid, signal.SIGCONT)
            th.join(15)
            self.assertTrue(held, "the 200 came before the broker could acknowledge anything")
            self.assertIn("at", done, "no answer")
            self.assertLess(done["at"] - t0, 4.0, "answered at the time limit, not at the "
                            "broker's acknowledgement")
            t = topic("held", "update")
            self.assertEqual(d.on(t + "/delta", token="held")[0]["state"], {"v": 1})
            d.on(t + "/documents", token="held")
        finally:
            os.kill(broker.p.pid, signal.SIGCONT)
            d.close()
            rc = s.stop()
            broker.stop()
            shutil.rmtree(data, ignore_errors=True)
            self.assertEqual(rc, 0, s.logs())


class Rest(Shared):
    def test_aws_cli_flow_and_errors(self):
        for i, (exe, v2) in enumerate(clis()):
            with self.subTest(cli=exe):
                thing = f"cli:thing-{i}"
                rc, body, err = cli(exe, v2, self.s.url, "get-thing-shadow", "--thing-name",
                                    thing)
                self.assertNotEqual(rc, 0)
                self.assertIn("(ResourceNotFoundException) when calling the GetThingShadow "
                              f"operation: No shadow exists with name: '{thing}'", err)
                rc, body, err = cli(exe, v2, self.s.url, "update-thing-shadow", "--thing-name",
                                    thing, payload='{"state":{"desired":{"on":true}},'
                                                   '"clientToken":"cli"}')
                self.assertEqual(rc, 0, err)
                self.assertEqual(untimed(body), {
                    "state": {"desired": {"on": True}},
                    "metadata": {"desired": {"on": {"timestamp": "T"}}},
                    "version": 1, "timestamp": "T", "clientToken": "cli"})
                for shadow in ("sh$1:a", "b-2", "c_3"):
                    rc, body, err = cli(exe, v2, self.s.url, "update-thing-shadow",
                                        "--thing-name", thing, "--shadow-name", shadow,
                                        payload='{"state":{"reported":{"v":1}}}')
                    self.assertEqual((rc, body["version"]), (0, 1), err)
                rc, body, err = cli(exe, v2, self.s.url, "get-thing-shadow", "--thing-name",
                                    thing)
                self.assertEqual(untimed(body), {
                    "state": {"desired": {"on": True}, "delta": {"on": True}},
                    "metadata": {"desired": {"on": {"timestamp": "T"}}},
                    "version": 1, "timestamp": "T"})
                rc, body, err = cli(exe, v2, self.s.url, "get-thing-shadow", "--thing-name",
                                    thing, "--shadow-name", "sh$1:a")
                self.assertEqual(body["state"], {"reported": {"v": 1}})
                rc, body, err = cli(exe, v2, self.s.url, "list-named-shadows-for-thing",
                                    "--thing-name", thing, "--page-size", "2")
                self.assertEqual((rc, body["results"]), (0, ["b-2", "c_3"]), err)
                rc, body2, err = cli(exe, v2, self.s.url, "list-named-shadows-for-thing",
                                     "--thing-name", thing, "--next-token", body["nextToken"])
                self.assertEqual((rc, body2["results"]), (0, ["sh$1:a"]), err)
                self.assertNotIn("nextToken", body2)
                rc, body, err = cli(exe, v2, self.s.url, "update-thing-shadow", "--thing-name",
                                    thing, payload='{"state":{"desired":{"on":false}},'
                                                   '"version":9}')
                self.assertIn("(ConflictException) when calling the UpdateThingShadow "
                              "operation: Version conflict", err)
                rc, body, err = cli(exe, v2, self.s.url, "update-thing-shadow", "--thing-name",
                                    thing, payload='{"state":')
                self.assertIn("(InvalidRequestException) when calling the UpdateThingShadow "
                              "operation: Invalid JSON", err)
                rc, body, err = cli(exe, v2, self.s.url, "delete-thing-shadow", "--thing-name",
                                    thing, "--shadow-name", "b-2")
                self.assertEqual((rc, untimed(body)), (0, {"version": 1, "timestamp": "T"}), err)
                rc, body, err = cli(exe, v2, self.s.url, "delete-thing-shadow", "--thing-name",
                                    thing, "--shadow-name", "b-2")
                self.assertIn("(ResourceNotFoundException) when calling the DeleteThingShadow "
                              "operation: No shadow exists with name: 'b-2'", err)
                rc, body, err = cli(exe, v2, self.s.url, "list-named-shadows-for-thing",
                                    "--thing-name", thing)
                self.assertEqual(body["results"], ["c_3", "sh$1:a"])

    def test_boto3_flow_and_every_modeled_error(self):
        c = boto3_client(self.s.url)
        ex = c.exceptions

        def raises(cls, message, fn, **kw):
            with self.assertRaises(cls) as cm:
                fn(**kw)
            e = cm.exception.response
            self.assertEqual((e["Error"]["Code"], e["Error"]["Message"]),
                             (cls.__name__, message))
            return e

        raises(ex.ResourceNotFoundException, "No shadow exists with name: 'boto'",
               c.get_thing_shadow, thingName="boto")
        r = c.update_thing_shadow(thingName="boto", payload=b'{"state":{"reported":{"t":21}}}')
        self.assertEqual(json.loads(r["payload"].read())["version"], 1)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        r = c.update_thing_shadow(thingName="boto", payload=json.dumps(
            {"state": {"desired": {"t": 19}}, "version": 1}).encode())
        self.assertEqual(json.loads(r["payload"].read())["version"], 2)
        doc = json.loads(c.get_thing_shadow(thingName="boto")["payload"].read())
        self.assertEqual((doc["state"]["delta"], doc["version"]), ({"t": 19}, 2))
        self.assertNotIn("clientToken", doc)
        raises(ex.ConflictException, "Version conflict", c.update_thing_shadow,
               thingName="boto", payload=b'{"state":{"desired":{"t":18}},"version":1}')
        raises(ex.InvalidRequestException, "Missing required node: state",
               c.update_thing_shadow, thingName="boto", payload=b'{"desired":{}}')
        raises(ex.InvalidRequestException, "Invalid JSON", c.update_thing_shadow,
               thingName="boto", payload=b"")
        raises(ex.RequestEntityTooLargeException,
               "The payload exceeds the maximum size allowed", c.update_thing_shadow,
               thingName="boto", payload=json.dumps({"state": {"reported": {
                   "big": "x" * 9000}}}).encode())
        e = raises(ex.RequestEntityTooLargeException,
                   "the request body is larger than 131072 bytes, the limit of this call",
                   c.update_thing_shadow, thingName="boto",
                   payload=b'{"state":{"reported":{"a":"' + b"y" * 140000 + b'"}}}')
        self.assertEqual(e["ResponseMetadata"]["HTTPStatusCode"], 413)
        raises(ex.UnsupportedDocumentEncodingException,
               "Unsupported documented encoding; supported encoding is UTF-8",
               c.update_thing_shadow, thingName="boto",
               payload=b'{"state":{"reported":{"a":"\xc3\x28"}}}')
        # names the model lets through are checked by sluice (botocore checks min lengths only)
        thing_rule = "Invalid thing name: expected 1 to 128 characters of [a-zA-Z0-9:_-]"
        raises(ex.InvalidRequestException, thing_rule, c.get_thing_shadow, thingName="a b")
        raises(ex.InvalidRequestException, thing_rule, c.get_thing_shadow, thingName="t" * 129)
        raises(ex.InvalidRequestException,
               "Invalid shadow name: expected 1 to 64 characters of [$a-zA-Z0-9:_-]",
               c.get_thing_shadow, thingName="boto", shadowName="a/b")
        raises(ex.InvalidRequestException,
               "Invalid shadow name: expected 1 to 64 characters of [$a-zA-Z0-9:_-]",
               c.delete_thing_shadow, thingName="boto", shadowName="s" * 65)
        raises(ex.InvalidRequestException, "Invalid pageSize: expected an integer from 1 to 100",
               c.list_named_shadows_for_thing, thingName="boto", pageSize=500)
        raises(ex.InvalidRequestException, "Invalid nextToken",
               c.list_named_shadows_for_thing, thingName="boto", nextToken="zz")
        raises(ex.ResourceNotFoundException, "No shadow exists with name: 'nope'",
               c.delete_thing_shadow, thingName="boto", shadowName="nope")
        # the classic shadow is not listed; an unknown thing has an empty list
        self.assertEqual(c.list_named_shadows_for_thing(thingName="boto")["results"], [])
        self.assertEqual(c.list_named_shadows_for_thing(thingName="nobody")["results"], [])
        deleted = json.loads(c.delete_thing_shadow(thingName="boto")["payload"].read())
        self.assertEqual(deleted["version"], 2)
        raises(ex.ResourceNotFoundException, "No shadow exists with name: 'boto'",
               c.get_thing_shadow, thingName="boto")
        # a shadow re-created after a delete continues from the deleted one's version
        r = c.update_thing_shadow(thingName="boto", payload=b'{"state":{"reported":{"t":1}}}')
        self.assertEqual(json.loads(r["payload"].read())["version"], 3)

    def test_raw_http_shapes(self):
        """What botocore reads: the header, not a numeric code; percent-decoded names."""
        st, h, body = http("POST", f"{self.s.url}/things/my%3AThing/shadow?name=sh%241",
                           b'{"state":{"reported":{"a":1}}}')
        self.assertEqual(st, 200, body)
        self.assertEqual(h["Content-Type"], "application/json")
        st, h, body = http("GET", f"{self.s.url}/things/my:Thing/shadow?name=sh$1")
        self.assertEqual((st, json.loads(body)["state"]), (200, {"reported": {"a": 1}}))
        st, h, body = http("GET", f"{self.s.url}/things/my%3AThing/shadow?name=sh%00")
        self.assertEqual((st, h["x-amzn-ErrorType"]), (400, "InvalidRequestException"))
        st, h, body = http("GET", f"{self.s.url}/things/my%3AThing/shadow?name=")
        self.assertEqual((st, h["x-amzn-ErrorType"]), (400, "InvalidRequestException"))
        st, h, body = http("GET", f"{self.s.url}/things/nope/shadow")
        self.assertEqual((st, h["x-amzn-ErrorType"], json.loads(body)),
                         (404, "ResourceNotFoundException",
                          {"message": "No shadow exists with name: 'nope'"}))
        st, h, body = http("GET", f"{self.s.url}/api/things/shadow/ListNamedShadowsForThing/"
                           f"my%3AThing?pageSize=1%00")
        self.assertEqual((st, h["x-amzn-ErrorType"]), (400, "InvalidRequestException"))
        st, h, body = http("PUT", f"{self.s.url}/things/x/shadow", b"{}")
        self.assertEqual(st, 405)

    def test_two_clients_racing_lose_no_update(self):
        """Two REST clients increment one counter with optimistic locking (get, then update with
        the version read, again on a 409), 500 increments each; and two MQTT devices update one
        shadow without versions, 500 each. Every increment and every update must count once."""
        n = int(os.environ.get("SHADOW_RACE_N", "500"))
        port = self.s.http
        base = '{"state":{"reported":{"count":0}}}'
        self.assertEqual(http("POST", f"{self.s.url}/things/race/shadow", base)[0], 200)
        conflicts, errors = [0, 0], []

        def incrementer(k):
            conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                done = 0
                while done < n:
                    conn.request("GET", "/things/race/shadow")
                    r = conn.getresponse()
                    doc = json.loads(r.read())
                    body = json.dumps({"state": {"reported": {
                        "count": doc["state"]["reported"]["count"] + 1}},
                        "version": doc["version"]})
                    conn.request("POST", "/things/race/shadow", body)
                    r = conn.getresponse()
                    r.read()
                    if r.status == 200:
                        done += 1
                    elif r.status == 409:
                        conflicts[k] += 1
                    else:
                        raise AssertionError(f"status {r.status}")
            except Exception as e:  # reported by the main thread
                errors.append(e)
            finally:
                conn.close()

        ts = [threading.Thread(target=incrementer, args=(k,)) for k in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(300)
        self.assertEqual(errors, [])
        doc = json.loads(http("GET", f"{self.s.url}/things/race/shadow")[2])
        self.assertEqual((doc["state"]["reported"]["count"], doc["version"]), (2 * n, 2 * n + 1))

        up = topic("race", "update", "blind")
        watcher = self.device(up + "/accepted")
        devs = [self.device() for _ in range(2)]
        pubs = [threading.Thread(target=lambda d=d, k=k: [
            d.c.publish(up, json.dumps({"state": {"reported": {f"d{k}": i}}}), qos=1)
            for i in range(n)]) for k, d in enumerate(devs)]
        for t in pubs:
            t.start()
        for t in pubs:
            t.join(60)
        versions = sorted(p["version"] for p in watcher.on(up + "/accepted", n=2 * n, timeout=120))
        self.assertEqual(versions, list(range(1, 2 * n + 1)))
        doc = json.loads(http("GET", f"{self.s.url}/things/race/shadow?name=blind")[2])
        # each device's updates keep their order (one topic, one connection each)
        self.assertEqual((doc["version"], doc["state"]["reported"]),
                         (2 * n, {"d0": n - 1, "d1": n - 1}))


class SeedRule(unittest.TestCase):
    """The rules see the shadow service's messages through the broker, once each."""

    def setUp(self):
        self.broker = Broker()
        self.data = tempfile.mkdtemp()
        self.s = Sluice(self.broker.port, self.data)
        self.devices = []

    def tearDown(self):
        for d in self.devices:
            d.close()
        rc = self.s.stop()
        self.broker.stop()
        shutil.rmtree(self.data, ignore_errors=True)
        self.assertEqual(rc, 0, self.s.logs())

    def rule(self, name, sql, actions):
        st, _, body = http("POST", f"{self.s.url}/rules/{name}", json.dumps(
            {"sql": sql, "actions": actions, "awsIotSqlVersion": "2016-03-23"}))
        self.assertEqual(st, 200, body)

    def lines(self, name):
        try:
            with open(os.path.join(self.data, "out", name)) as f:
                return [json.loads(l) for l in f]
        except FileNotFoundError:
            return []

    def wait_lines(self, name, n, timeout=20):
        end = time.time() + timeout
        while len(self.lines(name)) < n and time.time() < end:
            time.sleep(0.05)
        return self.lines(name)

    def until(self, probe, ready, timeout=20):
        """A new rule's subscription is made after the REST call returns: probes (each a
        message the rule matches) until the rule has answered one."""
        end, i = time.time() + timeout, 0
        while time.time() < end:
            probe(i)
            i += 1
            stop = time.time() + 0.3
            while time.time() < stop:
                if ready():
                    return
                time.sleep(0.02)
        self.fail("the rule never saw a probe: " + self.s.logs())

    def test_seed_rule_fires_once_per_change_of_the_reported_value(self):
        self.rule("seed", SEED, [{"file": {"path": "seed.jsonl"}}])
        self.rule("every", "SELECT current.version AS v, topic(6) AS shadow FROM "
                  "'$aws/things/+/shadow/name/+/update/documents'",
                  [{"file": {"path": "every.jsonl"}}])
        d = Device(self.broker.port, "seed-dev")
        self.devices.append(d)
        # probes go to another shadow and carry reported.probe: left out below
        self.until(lambda i: d.publish(topic("meter", "update", "probe"),
                                       {"state": {"reported": {"probe": i, "value": i}}}),
                   lambda: self.lines("seed.jsonl") and self.lines("every.jsonl"))
        up = topic("meter", "update", "power")
        steps = [  # (request, fires)
            ({"state": {"reported": {"value": 1}}}, True),        # creation: previous is null
            ({"state": {"reported": {"value": 1}}}, False),       # same value
            ({"state": {"desired": {"value": 5}}}, False),        # desired only
            ({"state": {"reported": {"value": 2, "x": 1}}}, True),
            ({"state": {"reported": {"x": 2}}}, False),           # another field
            ({"state": {"reported": {"value": None}}}, False),    # removed: Undefined, no fire
            ({"state": {"reported": {"value": 3}}}, False),       # reappears: previous Undefined
            ({"state": {"reported": {"value": 4}}}, True),
        ]
        for req, _ in steps:
            d.publish(up, req)
        # the classic shadow's documents topic has other levels: not the seed rule's
        d.publish(topic("meter", "update"), {"state": {"reported": {"value": 9}}})

        def every():
            return [l["v"] for l in self.lines("every.jsonl") if l["shadow"] == "power"]

        def seed():
            return [l for l in self.lines("seed.jsonl")
                    if "probe" not in l["current"]["state"].get("reported", {})]

        fired = [i + 1 for i, (_, f) in enumerate(steps) if f]
        end = time.time() + 20
        while (len(every()) < len(steps) or len(seed()) < len(fired)) and time.time() < end:
            time.sleep(0.05)
        self.assertEqual(every(), list(range(1, len(steps) + 1)))
        time.sleep(0.5)  # a wrong extra firing would have been written by now
        self.assertEqual([l["current"]["version"] for l in seed()], fired)
        self.assertIsNone(seed()[0]["previous"])
        self.assertEqual(seed()[1]["previous"]["state"]["reported"]["value"], 1)
        self.assertEqual(len(every()), len(steps))

    def test_seed_rule_sees_rest_updates_and_get_thing_shadow_enriches(self):
        self.rule("seed", SEED, [{"republish": {"topic": "changed/${topic(3)}/${topic(6)}",
                                                "qos": 1}}])
        self.rule("enrich", "SELECT v, get_thing_shadow('plant', 'cfg', '" + ROLE + "')"
                  ".state.reported.mode AS mode, get_thing_shadow(thing, '" + ROLE + "')"
                  ".state.desired AS desired FROM 'enrich/in'",
                  [{"republish": {"topic": "enrich/out", "qos": 1}}])
        d = Device(self.broker.port, "enrich-dev", ["changed/#", "enrich/out"])
        self.devices.append(d)
        c = boto3_client(self.s.url)
        self.until(lambda i: c.update_thing_shadow(
            thingName="plant", shadowName="probe",
            payload=json.dumps({"state": {"reported": {"value": i}}}).encode()),
            lambda: d.seen("changed/plant/probe"))
        self.until(lambda i: d.publish("enrich/in", {"v": 0}), lambda: d.seen("enrich/out"))
        c.update_thing_shadow(thingName="plant", shadowName="cfg",
                              payload=b'{"state":{"reported":{"mode":"eco","value":1}}}')
        c.update_thing_shadow(thingName="plant", shadowName="cfg",
                              payload=b'{"state":{"reported":{"value":1}}}')
        c.update_thing_shadow(thingName="plant", shadowName="cfg",
                              payload=b'{"state":{"reported":{"value":4}}}')
        got = d.wait(lambda t, p: t == "changed/plant/cfg", 2)
        self.assertEqual([p["current"]["version"] for _, p in got], [1, 3])
        c.update_thing_shadow(thingName="pump-7", payload=b'{"state":{"desired":{"rpm":900}}}')
        d.publish("enrich/in", {"v": 1, "thing": "pump-7"})
        d.publish("enrich/in", {"v": 2, "thing": "no-such-thing"})
        out = [p for _, p in d.wait(lambda t, p: t == "enrich/out" and p["v"], 2)]
        self.assertEqual(out, [{"v": 1, "mode": "eco", "desired": {"rpm": 900}},
                               {"v": 2, "mode": "eco"}])
        time.sleep(0.3)
        self.assertEqual(len(d.seen("changed/plant/cfg")), 2)


class Lifecycle(unittest.TestCase):
    """Restarts, roles and a service that is off: each with a sluice of its own."""

    def setUp(self):
        self.broker = Broker()
        self.data = tempfile.mkdtemp()

    def tearDown(self):
        self.broker.stop()
        shutil.rmtree(self.data, ignore_errors=True)

    def test_state_and_versions_survive_restarts(self):
        s = Sluice(self.broker.port, self.data)
        d = Device(self.broker.port, "persist-dev", ["$aws/things/+/shadow/#"])
        try:
            for i in range(3):
                d.publish(topic("keep", "update", "n"), {"state": {"reported": {"i": i}}})
            d.publish(topic("keep", "update"), {"state": {"desired": {"on": True}}})
            d.publish(topic("gone", "update"), {"state": {"desired": {"on": True}}})
            d.publish(topic("gone", "update"), {"state": {"desired": {"on": False}}})
            d.on(topic("gone", "update", None, "documents"), n=2)
            d.on(topic("keep", "update", "n", "documents"), n=3)
            d.on(topic("keep", "update", None, "documents"))
            d.publish(topic("gone", "delete"), "")
            d.on(topic("gone", "delete", None, "accepted"))
        finally:
            d.close()
        self.assertEqual(s.stop(), 0, s.logs())
        for round in range(2):
            s = Sluice(self.broker.port, self.data)
            try:
                doc = json.loads(http("GET", f"{s.url}/things/keep/shadow?name=n")[2])
                self.assertEqual((doc["state"], doc["version"]),
                                 ({"reported": {"i": 2}}, 3 + round))
                doc = json.loads(http("GET", f"{s.url}/things/keep/shadow")[2])
                self.assertEqual((doc["state"]["delta"], doc["version"]), ({"on": True}, 1))
                st, _, body = http("GET", f"{s.url}/things/gone/shadow")
                self.assertEqual(st, 404 if round == 0 else 200, body)
                st, _, body = http("POST", f"{s.url}/things/keep/shadow?name=n",
                                   '{"state":{"reported":{"i":2}}}')
                self.assertEqual(json.loads(body)["version"], 4 + round)
                if round == 0:  # the tombstone's version survived too
                    st, _, body = http("POST", f"{s.url}/things/gone/shadow",
                                       '{"state":{"reported":{"x":1}},"version":2}')
                    self.assertEqual((st, json.loads(body)["version"]), (200, 3), body)
            finally:
                self.assertEqual(s.stop(), 0, s.logs())

    def test_roles_with_sigv4(self):
        config = {"auth": {"credentials": [
            {"accessKeyId": k, "secretAccessKey": sk, "role": r}
            for (k, sk), r in ((ADMIN, "admin"), (PUBLISHER, "publisher"), (READER, "reader"))]}}
        s = Sluice(self.broker.port, self.data, config=config)
        try:
            pub_c, read_c = boto3_client(s.url, PUBLISHER), boto3_client(s.url, READER)
            admin_c = boto3_client(s.url, ADMIN)
            pub_c.update_thing_shadow(thingName="sec", payload=b'{"state":{"reported":{"a":1}}}')
            doc = json.loads(read_c.get_thing_shadow(thingName="sec")["payload"].read())
            self.assertEqual(doc["state"], {"reported": {"a": 1}})
            self.assertEqual(read_c.list_named_shadows_for_thing(thingName="sec")["results"], [])
            # a reader may not change a shadow: 403 AccessDeniedException (iot-data models no
            # 403; AWS answers an IAM denial with an unmodeled 403 too), and nothing changes
            for call in (lambda: read_c.update_thing_shadow(
                             thingName="sec", payload=b'{"state":{"reported":{"a":2}}}'),
                         lambda: read_c.delete_thing_shadow(thingName="sec")):
                with self.assertRaises(read_c.exceptions.ClientError) as cm:
                    call()
                e = cm.exception.response
                self.assertEqual((e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"]),
                                 ("AccessDeniedException", 403))
            doc = json.loads(admin_c.get_thing_shadow(thingName="sec")["payload"].read())
            self.assertEqual((doc["state"], doc["version"]), ({"reported": {"a": 1}}, 1))
            # the publisher changes shadows but reads nothing (DESIGN.md's roles)
            with self.assertRaises(pub_c.exceptions.ClientError) as cm:
                pub_c.get_thing_shadow(thingName="sec")
            self.assertEqual(cm.exception.response["Error"]["Code"], "AccessDeniedException")
            # an unknown key and no credentials at all
            with self.assertRaises(read_c.exceptions.ClientError) as cm:
                boto3_client(s.url, ("AKIDNOBODY", "x")).get_thing_shadow(thingName="sec")
            self.assertEqual(cm.exception.response["Error"]["Code"],
                             "UnrecognizedClientException")
            self.assertEqual(http("GET", f"{s.url}/things/sec/shadow")[0], 403)
            # the CLI with the reader's credentials
            env = dict(AWS_ENV, AWS_ACCESS_KEY_ID=READER[0], AWS_SECRET_ACCESS_KEY=READER[1])
            exe, v2 = clis()[0]
            rc, body, err = cli(exe, v2, s.url, "get-thing-shadow", "--thing-name", "sec",
                                env=env)
            self.assertEqual((rc, body["version"]), (0, 1), err)
            rc, body, err = cli(exe, v2, s.url, "update-thing-shadow", "--thing-name", "sec",
                                payload='{"state":{}}', env=env)
            self.assertIn("(AccessDeniedException) when calling the UpdateThingShadow", err)
            env = dict(AWS_ENV, AWS_ACCESS_KEY_ID=PUBLISHER[0],
                       AWS_SECRET_ACCESS_KEY=PUBLISHER[1])
            rc, body, err = cli(exe, v2, s.url, "update-thing-shadow", "--thing-name", "sec",
                                payload='{"state":{}}', env=env)
            self.assertEqual((rc, body["version"]), (0, 2), err)
        finally:
            self.assertEqual(s.stop(), 0, s.logs())

    def test_shadows_off(self):
        s = Sluice(self.broker.port, self.data, env_extra={"SLUICE_SHADOWS": "off"})
        try:
            c = boto3_client(s.url, retries=0)
            with self.assertRaises(c.exceptions.ServiceUnavailableException):
                c.get_thing_shadow(thingName="x")
            d = Device(self.broker.port, "off-dev", ["$aws/things/x/shadow/#"])
            d.publish(topic("x", "update"), {"state": {}})
            time.sleep(0.5)
            self.assertEqual([t for t, _ in d.msgs], [topic("x", "update")])
            d.close()
        finally:
            self.assertEqual(s.stop(), 0, s.logs())


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)  # boto3's pooled sockets at exit
    unittest.main(verbosity=2)
