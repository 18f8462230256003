#!/usr/bin/env python3
"""`sluice serve` against a real Mosquitto, driven by the real AWS CLI, boto3, curl-like HTTP
and the mosquitto clients. Every server listens on 127.0.0.1 on a free port and is stopped by
the test. usage: test_service.py /path/to/sluice"""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time, unittest
import urllib.error, urllib.request

from harness import *  # noqa: F401,F403 (the shared servers and clients)
from harness import SLUICE, AWS_ENV


SEED = ("SELECT temperature, humidity, deviceId FROM 'sensors/+/telemetry' "
        "WHERE temperature > 50.0")


class Service(unittest.TestCase):
    def setUp(self):
        self.broker = Broker()
        self.data = tempfile.mkdtemp()
        self.s = Sluice(self.broker.port, self.data)

    def tearDown(self):
        rc = self.s.stop()
        self.broker.stop()
        shutil.rmtree(self.data, ignore_errors=True)
        self.assertEqual(rc, 0, self.s.logs())

    def rule(self, name, sql, actions, version="2016-03-23", **extra):
        payload = dict(sql=sql, actions=actions, awsIotSqlVersion=version, **extra)
        return http("POST", f"{self.s.url}/rules/{name}", json.dumps(payload))

    def test_tour_with_the_aws_cli(self):
        payload = json.dumps({"sql": SEED, "awsIotSqlVersion": "2016-03-23",
                              "actions": [{"republish": {
                                  "topic": "alerts/${deviceId}", "qos": 1,
                                  "roleArn": "arn:aws:iam::123456789012:role/unused"}}]})
        r = aws(self.s.url, "iot", "create-topic-rule", "--rule-name", "hot",
                "--topic-rule-payload", payload)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = aws(self.s.url, "iot", "get-topic-rule", "--rule-name", "hot")
        self.assertEqual(json.loads(r.stdout)["rule"]["sql"], SEED)
        sub = Sub(self.broker.port, "alerts/#")
        pub(self.broker.port, "sensors/dev-7/telemetry",
            '{"deviceId":"dev-7","temperature":72.5,"humidity":40}')
        pub(self.broker.port, "sensors/dev-8/telemetry", '{"deviceId":"dev-8","temperature":20}')
        r = aws(self.s.url, "iot-data", "publish", "--topic", "sensors/dev-9/telemetry",
                "--payload", '{"deviceId":"dev-9","temperature":99}')
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = sorted(sub.wait(2))
        sub.stop()
        self.assertEqual(lines, ['alerts/dev-7 {"temperature":72.5,"humidity":40,"deviceId":"dev-7"}',
                                 'alerts/dev-9 {"temperature":99,"deviceId":"dev-9"}'])
        r = aws(self.s.url, "iot", "create-topic-rule", "--rule-name", "bad",
                "--topic-rule-payload", json.dumps({"sql": "SELECT a FORM 'x'", "actions": []}))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("SqlParseException", r.stderr)
        self.assertIn("line 1, column 10", r.stderr)

    def test_boto3_rule_lifecycle_and_error_types(self):
        import boto3
        iot = boto3.client("iot", endpoint_url=self.s.url, region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="x")
        p = {"sql": "SELECT * FROM 'a/b'", "actions": [], "awsIotSqlVersion": "2016-03-23"}
        iot.create_topic_rule(ruleName="r1", topicRulePayload=p)
        with self.assertRaises(iot.exceptions.ResourceAlreadyExistsException):
            iot.create_topic_rule(ruleName="r1", topicRulePayload=p)
        with self.assertRaises(iot.exceptions.ResourceNotFoundException):
            iot.get_topic_rule(ruleName="nope")
        with self.assertRaises(iot.exceptions.SqlParseException):
            iot.create_topic_rule(ruleName="r2", topicRulePayload=dict(p, sql="SELECT"))
        with self.assertRaises(iot.exceptions.InvalidRequestException):
            iot.create_topic_rule(ruleName="r3", topicRulePayload=dict(
                p, actions=[{"lambda": {"functionArn": "arn:x"}}]))
        iot.replace_topic_rule(ruleName="r1", topicRulePayload=dict(p, sql="SELECT a FROM 'c/#'"))
        self.assertEqual(iot.get_topic_rule(ruleName="r1")["rule"]["sql"], "SELECT a FROM 'c/#'")
        iot.disable_topic_rule(ruleName="r1")
        self.assertTrue(iot.get_topic_rule(ruleName="r1")["rule"]["ruleDisabled"])
        iot.enable_topic_rule(ruleName="r1")
        rules = iot.list_topic_rules()["rules"]
        self.assertEqual([(r["ruleName"], r["topicPattern"], r["ruleDisabled"]) for r in rules],
                         [("r1", "c/#", False)])
        iot.delete_topic_rule(ruleName="r1")
        self.assertEqual(iot.list_topic_rules()["rules"], [])
        with self.assertRaises(iot.exceptions.ResourceNotFoundException):
            iot.delete_topic_rule(ruleName="r1")

    def test_rest_validation_and_shapes(self):
        st, h, b = self.rule("x", "SELECT a\nFROM 't' WHERE (", [])
        self.assertEqual(st, 400)
        self.assertEqual(h.get("x-amzn-ErrorType"), "SqlParseException")
        err = json.loads(b)
        self.assertEqual((err["line"], err["column"]), (2, 17))
        st, h, b = self.rule("bad-name", "SELECT * FROM 't'", [])
        self.assertEqual((st, h.get("x-amzn-ErrorType")), (400, "InvalidRequestException"))
        st, h, b = self.rule("many", "SELECT * FROM 't'", [{"republish": {"topic": "o"}}] * 11)
        self.assertEqual(st, 400)
        self.assertIn("at most 10", json.loads(b)["message"])
        st, _, b = self.rule("loop", "SELECT * FROM 'a/#'", [{"republish": {"topic": "a/out"}}])
        self.assertEqual(st, 400)
        self.assertIn("trigger itself", json.loads(b)["message"])
        st, _, _ = self.rule("aws", "SELECT get_dynamodb('t','k',1,'r') AS x FROM 't'", [])
        self.assertEqual(st, 400)
        st, h, _ = http("POST", f"{self.s.url}/rules/huge", "x" * (300 * 1024))
        self.assertEqual(st, 413)
        st, _, b = http("POST", f"{self.s.url}/topics/t", "x" * (129 * 1024))
        self.assertEqual(st, 413)
        st, _, b = http("GET", f"{self.s.url}/metrics")
        self.assertEqual(st, 200)
        self.assertIn(b"sluice_messages_in_total", b)
        self.assertEqual(http("GET", f"{self.s.url}/healthz")[0], 200)
        self.assertEqual(http("GET", f"{self.s.url}/readyz")[0], 200)
        # a rule with no awsIotSqlVersion runs as 2015-10-08, as AWS's API does
        st, _, _ = http("POST", f"{self.s.url}/rules/v1", json.dumps(
            {"sql": "SELECT 10.0 AS n FROM 'v/t'", "actions": []}))
        self.assertEqual(st, 200)
        rule = json.loads(http("GET", f"{self.s.url}/rules/v1")[2])["rule"]
        self.assertEqual(rule["awsIotSqlVersion"], "2015-10-08")

    def test_republish_templates_and_percent_encoded_publish(self):
        st, _, b = self.rule("tpl", "SELECT *, topic(2) AS dev FROM 'sensors/+/data'", [
            {"republish": {"topic": "out/${topic(2)}/${upper(kind)}", "qos": 1}}])
        self.assertEqual(st, 200, b)
        sub = Sub(self.broker.port, "out/#")
        st, _, _ = http("POST", f"{self.s.url}/topics/sensors%2Fd1%2Fdata?qos=1",
                        '{"kind":"temp","v":1}')
        self.assertEqual(st, 200)
        lines = sub.wait(1)
        sub.stop()
        self.assertEqual(lines, ['out/d1/TEMP {"kind":"temp","v":1,"dev":"d1"}'])

    def test_many_rules_on_one_topic_share_one_scan_and_each_gets_its_own_output(self):
        """Five rules match one topic (one payload scan serves them all): each projects,
        filters and names its output on its own, as if it ran alone."""
        rules = [("a", "SELECT v FROM 'm/+'", "out/a"),
                 ("b", "SELECT v * 2 AS w, x.y FROM 'm/+' WHERE v > 1", "out/b"),
                 ("c", "SELECT VALUE x FROM 'm/#'", "out/c"),
                 ("d", "SELECT topic(2) AS t, newuuid() = newuuid() AS same FROM 'm/+'", "out/d"),
                 ("e", "SELECT v FROM 'm/+' WHERE v > 100", "out/e")]
        for name, sql, out in rules:
            st, _, b = self.rule(name, sql, [{"republish": {"topic": out, "qos": 1}}])
            self.assertEqual(st, 200, b)
        sub = Sub(self.broker.port, "out/#")
        st, _, _ = http("POST", f"{self.s.url}/topics/m%2Fk?qos=1", '{"v":2,"x":{"y":[1,2]}}')
        self.assertEqual(st, 200)
        got = sorted(sub.wait(4))
        sub.stop()
        self.assertEqual(got, ['out/a {"v":2}', 'out/b {"w":4,"y":[1,2]}', 'out/c {"y":[1,2]}',
                               'out/d {"t":"k","same":false}'])

    def test_republish_headers_become_mqtt5_properties(self):
        st, _, b = self.rule("hdr", "SELECT v FROM 'h/+'", [{"republish": {
            "topic": "h-out/${topic(2)}", "qos": 1,
            "headers": {"contentType": "application/json", "responseTopic": "reply/${topic(2)}",
                        "correlationData": "aGVsbG8=", "messageExpiry": "${v * 100}",
                        "payloadFormatIndicator": "UTF8_DATA",
                        "userProperties": [{"key": "src", "value": "${topic(1)}"}]}}}])
        self.assertEqual(st, 200, b)
        p = subprocess.Popen(["mosquitto_sub", "-p", str(self.broker.port), "-t", "h-out/#",
                              "-V", "5", "-C", "1", "-W", "10", "-F", "%t|%C|%R|%D|%E|%F|%P|%p"],
                             stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)
        pub(self.broker.port, "h/dev1", '{"v": 36}')
        out, _ = p.communicate(timeout=15)
        t, ctype, resp, corr, expiry, fmt, props, payload = out.strip().split("|")
        self.assertEqual((t, ctype, resp, corr, fmt, payload),
                         ("h-out/dev1", "application/json", "reply/dev1", "hello", "1",
                          '{"v":36}'))
        self.assertTrue(3590 <= int(expiry) <= 3600, expiry)
        self.assertIn("src:h", props)
        self.assertIn("sluice-hops:1", props)

    def test_a_republish_loop_stops_at_the_hop_limit(self):
        # the topic has a substitution, so the create-time check cannot see the loop
        st, _, b = self.rule("loop", "SELECT n FROM 'loop/#'",
                             [{"republish": {"topic": "loop/${n}", "qos": 1}}])
        self.assertEqual(st, 200, b)
        sub = Sub(self.broker.port, "loop/#")
        pub(self.broker.port, "loop/start", '{"n": 1}')
        time.sleep(2)
        sub.stop()
        self.assertEqual(len(sub.lines), 9, sub.lines)  # the original and 8 hops
        metrics = http("GET", f"{self.s.url}/metrics")[2].decode()
        self.assertIn('sluice_dropped_total{reason="republish_loop"} 1', metrics)

    def test_mqtt5_properties_reach_the_rule(self):
        st, _, b = self.rule("props", "SELECT get_mqtt_property('content_type') AS ct, "
                             "get_user_properties('k') AS k, clientid() AS c FROM 'p/t'",
                             [{"republish": {"topic": "p/out"}}])
        self.assertEqual(st, 200, b)
        sub = Sub(self.broker.port, "p/out")
        subprocess.run(["mosquitto_pub", "-p", str(self.broker.port), "-V", "5", "-t", "p/t",
                        "-m", "{}", "-D", "publish", "content-type", "text/plain",
                        "-D", "publish", "user-property", "k", "v1",
                        "-D", "publish", "user-property", "clientid", "dev-9"], check=True)
        lines = sub.wait(1)
        sub.stop()
        self.assertEqual([json.loads(l.split(" ", 1)[1]) for l in lines],
                         [{"ct": "text/plain", "k": ["v1"], "c": "dev-9"}])

    def test_rules_survive_a_restart_and_a_corrupt_store_stops_startup(self):
        self.assertEqual(self.rule("keep", SEED, [{"republish": {"topic": "k/${deviceId}"}}])[0],
                         200)
        self.assertEqual(self.s.stop(), 0)
        self.s = Sluice(self.broker.port, self.data)
        rule = json.loads(http("GET", f"{self.s.url}/rules/keep")[2])["rule"]
        self.assertEqual(rule["sql"], SEED)
        sub = Sub(self.broker.port, "k/#")
        pub(self.broker.port, "sensors/x/telemetry", '{"deviceId":"x","temperature":51}')
        self.assertEqual(len(sub.wait(1)), 1)
        sub.stop()
        self.assertEqual(self.s.stop(), 0)
        with open(os.path.join(self.data, "rules", "keep.json"), "w") as f:
            f.write("{not json")
        env = dict(AWS_ENV, SLUICE_MQTT_URL=f"mqtt://127.0.0.1:{self.broker.port}",
                   SLUICE_HTTP_ADDR=f"127.0.0.1:{free_port()}", SLUICE_DATA_DIR=self.data)
        r = subprocess.run([SLUICE, "serve"], env=env, capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("corrupt", r.stderr)
        os.unlink(os.path.join(self.data, "rules", "keep.json"))
        self.s = Sluice(self.broker.port, self.data)

    def test_sigterm_drains_every_queued_message(self):
        self.assertEqual(self.rule("drain", "SELECT seq FROM 'in/#'",
                                   [{"republish": {"topic": "drained", "qos": 1}}])[0], 200)
        sub = Sub(self.broker.port, "drained")
        n = 2000
        for i in range(n):
            st, _, _ = http("POST", f"{self.s.url}/topics/in/x?qos=1", json.dumps({"seq": i}))
            self.assertEqual(st, 200)
        self.assertEqual(self.s.stop(), 0, self.s.logs())
        lines = sub.wait(n, timeout=20)
        sub.stop()
        seqs = sorted(json.loads(l.split(" ", 1)[1])["seq"] for l in lines)
        self.assertEqual(seqs, list(range(n)))
        self.s = Sluice(self.broker.port, self.data)

    def test_broker_restart_is_followed_by_reconnect_and_resubscribe(self):
        self.assertEqual(self.rule("re", "SELECT v FROM 'r/t'",
                                   [{"republish": {"topic": "r/out"}}])[0], 200)
        port = self.broker.port
        self.broker.stop()
        time.sleep(1)
        self.broker = Broker(port)
        self.s.wait_ready(timeout=40)
        sub = Sub(port, "r/out")
        end = time.time() + 30
        while not sub.lines and time.time() < end:
            pub(port, "r/t", '{"v":1}')
            sub.wait(1, timeout=1)
        sub.stop()
        self.assertTrue(sub.lines, "no output after the broker came back: " + self.s.logs())

    def test_dropped_filters_are_unsubscribed_until_the_broker_confirms(self):
        """A filter no rule wants any more is unsubscribed, and remembered until the broker's
        UNSUBACK: deleted while connected, it is forgotten once confirmed; deleted while the
        broker is away, it is unsubscribed after the reconnect and then forgotten (the list of
        pending filters does not grow with every filter ever dropped)."""
        def pending():
            m = http("GET", f"{self.s.url}/metrics")[2].decode()
            return int(m.split("\nsluice_unsubscribes_pending ")[1].split()[0])

        def settles(want, timeout=30):
            end = time.time() + timeout
            while pending() != want and time.time() < end:
                time.sleep(0.05)
            return pending()

        for i in range(20):
            self.assertEqual(self.rule(f"u{i}", f"SELECT * FROM 'u/{i}'", [])[0], 200)
        for i in range(20):
            self.assertEqual(http("DELETE", f"{self.s.url}/rules/u{i}")[0], 200)
        self.assertEqual(settles(0), 0, "UNSUBACKs never cleared the pending filters")

        self.assertEqual(self.rule("away", "SELECT * FROM 'u/away'", [])[0], 200)
        port = self.broker.port
        self.broker.stop()
        end = time.time() + 30
        while http("GET", f"{self.s.url}/readyz")[0] == 200 and time.time() < end:
            time.sleep(0.05)
        self.assertEqual(http("DELETE", f"{self.s.url}/rules/away")[0], 200)
        self.assertEqual(pending(), 1, "a filter dropped while disconnected must be remembered")
        self.broker = Broker(port)
        self.s.wait_ready(timeout=40)
        self.assertEqual(settles(0), 0, "the filter was not unsubscribed after the reconnect")

    def test_replacing_a_rule_under_load_gives_exactly_one_output_per_message(self):
        def put(i, replace):
            body = json.dumps({"sql": f"SELECT seq, {i} AS version FROM 'load/t'",
                               "awsIotSqlVersion": "2016-03-23",
                               "actions": [{"republish": {"topic": "load/out", "qos": 1}}]})
            return http("PATCH" if replace else "POST", f"{self.s.url}/rules/load", body)[0]
        self.assertEqual(put(0, False), 200)
        sub = Sub(self.broker.port, "load/out")
        n = 50000
        feeder = subprocess.Popen(["mosquitto_pub", "-p", str(self.broker.port), "-t", "load/t",
                                   "-q", "1", "-l"], stdin=subprocess.PIPE, text=True)

        def feed():
            for i in range(n):
                feeder.stdin.write(json.dumps({"seq": i}) + "\n")
            feeder.stdin.close()
        t = threading.Thread(target=feed)
        t.start()
        for i in range(1, 21):
            self.assertEqual(put(i, True), 200)
            time.sleep(0.05)
        t.join()
        feeder.wait(120)
        lines = sub.wait(n, timeout=120)
        sub.stop()
        seqs = [json.loads(l.split(" ", 1)[1])["seq"] for l in lines]
        self.assertEqual(len(seqs), n, f"{len(seqs)} outputs for {n} messages")
        self.assertEqual(sorted(seqs), list(range(n)))
        versions = {json.loads(l.split(" ", 1)[1])["version"] for l in lines}
        self.assertGreater(len(versions), 1, "the replacements never took effect")


class Subscriptions(unittest.TestCase):
    """A filter the broker refuses, or grants at QoS 0 only, is not silently a rule that never
    fires, or one whose messages are not kept across a restart: the SUBACK is logged, counted
    in /metrics and shown on GetTopicRule."""

    def test_a_refused_filter_is_reported(self):
        # Mosquitto 2.0's ACL file does not check subscriptions, so the broker here is the
        # raw MQTT 5 peer of test_puback_order.py, refusing one filter with 0x87
        from test_puback_order import Peer
        peer = Peer(refuse={"secret/#": 0x87})
        d = tempfile.mkdtemp()
        s = Sluice(peer.port, os.path.join(d, "data"))
        try:
            for name, f in (("fine", "ok/#"), ("denied", "secret/#")):
                st, _, b = http("POST", f"{s.url}/rules/{name}", json.dumps(
                    {"sql": f"SELECT * FROM '{f}'", "actions": []}))
                self.assertEqual(st, 200, b)
            sub = lambda name: json.loads(http("GET", f"{s.url}/rules/{name}")[2]).get(
                "subscription", {})
            end = time.time() + 10
            while time.time() < end and "pending" in (sub("denied").get("status"),
                                                      sub("fine").get("status")):
                time.sleep(0.1)
            self.assertEqual(sub("fine")["status"], "granted")
            self.assertEqual(sub("denied"), {"filter": "secret/#", "status": "refused",
                                             "reasonCode": 0x87})
            m = http("GET", f"{s.url}/metrics")[2].decode()
            self.assertIn("sluice_subscriptions_refused_total 1", m)
            self.assertIn("mqtt.subscription_refused", s.logs())
        finally:
            self.assertEqual(s.stop(), 0)
            peer.close()
            shutil.rmtree(d, ignore_errors=True)

    def test_a_qos0_grant_is_reported(self):
        d = tempfile.mkdtemp()
        port = free_port()
        with open(os.path.join(d, "m.conf"), "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_qos 0\n")
        broker = subprocess.Popen(["mosquitto", "-c", os.path.join(d, "m.conf")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.assertTrue(wait_port(port))
            s = Sluice(port, os.path.join(d, "data"), env_extra={"SLUICE_SHADOWS": "off"})
            try:
                st, _, b = http("POST", f"{s.url}/rules/low", json.dumps(
                    {"sql": "SELECT * FROM 'low/#'", "actions": []}))
                self.assertEqual(st, 200, b)
                end = time.time() + 10
                got = {}
                while time.time() < end and got.get("status") in (None, "pending"):
                    got = json.loads(http("GET", f"{s.url}/rules/low")[2]).get("subscription", {})
                    time.sleep(0.1)
                self.assertEqual(got, {"filter": "low/#", "status": "downgraded", "qos": 0})
                self.assertIn("mqtt.subscription_downgraded", s.logs())
            finally:
                self.assertEqual(s.stop(), 0)
        finally:
            broker.terminate()
            broker.wait(10)
            shutil.rmtree(d, ignore_errors=True)


class MutualTLS(unittest.TestCase):
    def test_mqtts_with_client_certificate(self):
        d = tempfile.mkdtemp()
        try:
            def sh(*a):
                subprocess.run(a, cwd=d, check=True, capture_output=True)
            sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
               "-subj", "/CN=sluice-test-ca", "-keyout", "ca.key", "-out", "ca.crt")
            with open(os.path.join(d, "san.ext"), "w") as f:
                f.write("subjectAltName=IP:127.0.0.1\n")
            for who in ("server", "client"):
                sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}",
                   "-keyout", f"{who}.key", "-out", f"{who}.csr")
                sh("openssl", "x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey",
                   "ca.key", "-CAcreateserial", "-days", "2", "-out", f"{who}.crt",
                   *(["-extfile", "san.ext"] if who == "server" else []))
            # mosquitto started as root drops to its own user, which must read these files
            os.chmod(d, 0o755)
            for fn in os.listdir(d):
                os.chmod(os.path.join(d, fn), 0o644)
            port = free_port()
            conf = os.path.join(d, "m.conf")
            with open(conf, "w") as f:
                f.write(f"listener {port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\n"
                        f"keyfile {d}/server.key\nrequire_certificate true\nallow_anonymous true\n")
            broker = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            self.assertTrue(wait_port(port))
            http_port = free_port()
            env = dict(AWS_ENV, SLUICE_MQTT_URL=f"mqtts://127.0.0.1:{port}",
                       SLUICE_MQTT_CA_FILE=f"{d}/ca.crt", SLUICE_MQTT_CERT_FILE=f"{d}/client.crt",
                       SLUICE_MQTT_KEY_FILE=f"{d}/client.key",
                       SLUICE_HTTP_ADDR=f"127.0.0.1:{http_port}", SLUICE_DATA_DIR=f"{d}/data",
                       LSAN_OPTIONS="suppressions=" + os.path.join(
                           os.path.dirname(os.path.abspath(__file__)), "lsan-openssl.supp"))
            sl = subprocess.Popen([SLUICE, "serve"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
            try:
                url = f"http://127.0.0.1:{http_port}"
                end = time.time() + 20
                while time.time() < end:
                    try:
                        urllib.request.urlopen(url + "/readyz", timeout=1)
                        break
                    except Exception:
                        time.sleep(0.1)
                st, _, _ = http("POST", f"{url}/rules/tls", json.dumps(
                    {"sql": "SELECT v FROM 'tls/in'", "awsIotSqlVersion": "2016-03-23",
                     "actions": [{"republish": {"topic": "tls/out"}}]}))
                self.assertEqual(st, 200)
                tls = ["--cafile", f"{d}/ca.crt", "--cert", f"{d}/client.crt", "--key",
                       f"{d}/client.key"]
                sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port),
                                        "-t", "tls/out", "-C", "1", "-W", "10", *tls],
                                       stdout=subprocess.PIPE, text=True)
                time.sleep(0.5)
                subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t",
                                "tls/in", "-m", '{"v": 7}', *tls], check=True)
                out, _ = sub.communicate(timeout=15)
                self.assertEqual(out.strip(), '{"v":7}')
            finally:
                sl.terminate()
                self.assertEqual(sl.wait(30), 0)
                broker.terminate()
                broker.wait(10)
        finally:
            shutil.rmtree(d, ignore_errors=True)


class Mqtt311(unittest.TestCase):
    def test_mqtt_3_1_1_connections_carry_the_flow(self):
        broker = Broker()
        data = tempfile.mkdtemp()
        s = Sluice(broker.port, data, mqtt_version="3.1.1")
        try:
            st, _, _ = http("POST", f"{s.url}/rules/v311", json.dumps(
                {"sql": SEED, "awsIotSqlVersion": "2016-03-23",
                 "actions": [{"republish": {"topic": "o311/${deviceId}", "qos": 1}}]}))
            self.assertEqual(st, 200)
            sub = Sub(broker.port, "o311/#")
            pub(broker.port, "sensors/a/telemetry", '{"deviceId":"a","temperature":60}')
            lines = sub.wait(1)
            sub.stop()
            self.assertEqual(lines, ['o311/a {"temperature":60,"deviceId":"a"}'])
        finally:
            self.assertEqual(s.stop(), 0)
            broker.stop()
            shutil.rmtree(data, ignore_errors=True)


class Auth(unittest.TestCase):
    def test_admin_token_is_required_when_set(self):
        broker = Broker()
        data = tempfile.mkdtemp()
        s = Sluice(broker.port, data, token="s3cret")
        try:
            st, h, _ = http("GET", f"{s.url}/rules")
            self.assertEqual((st, h.get("x-amzn-ErrorType")), (401, "UnauthorizedException"))
            st, _, _ = http("GET", f"{s.url}/rules", headers={"Authorization": "Bearer wrong"})
            self.assertEqual(st, 401)
            st, _, _ = http("GET", f"{s.url}/rules", headers={"Authorization": "Bearer s3cret"})
            self.assertEqual(st, 200)
            self.assertEqual(http("GET", f"{s.url}/healthz")[0], 200)
        finally:
            self.assertEqual(s.stop(), 0)
            broker.stop()
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
