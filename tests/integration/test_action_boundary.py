#!/usr/bin/env python3
"""What a rule may make sluice do, through the REST API of a running `sluice serve` with the
shipped defaults: each hole of issue 8 is attacked the way a REST caller would, and is shown
closed (refused with AWS's error shape, nothing loaded, run, written or connected, the service
still up). Also GET /actions and the dead-letter files' mode.
usage: test_action_boundary.py /path/to/sluice"""
import base64, json, os, shutil, stat, subprocess, tempfile, time, unittest

from harness import SLUICE, Broker, Sluice, http
from test_deadletter import dead_letters, publish, wait_for

MARKER_SO = os.environ.get("SLUICE_TEST_MARKER_SO", "")
FAST = {"attempts": 2, "baseMs": 5, "maxMs": 10, "totalMs": 2000}


class Boundary(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.broker = Broker()
        cls.tmp = tempfile.mkdtemp()
        cls.data = os.path.join(cls.tmp, "data")
        cls.certs = os.path.join(cls.tmp, "certs")
        cls.outside = os.path.join(cls.tmp, "outside")
        for d in (cls.certs, cls.outside):
            os.makedirs(d)
        open(os.path.join(cls.certs, "ca.pem"), "w").close()
        cls.secret = os.path.join(cls.tmp, "secret.key")  # a file outside every allowed place
        open(cls.secret, "w").close()
        cls.marker = os.path.join(cls.tmp, "marker")
        cls.s = Sluice(cls.broker.port, cls.data, env_extra={"SLUICE_MARKER_FILE": cls.marker},
                       config={"actions": {"retry": FAST, "kafka": {"certDir": cls.certs},
                                           "http": {"allowedHosts": ["127.0.0.1",
                                                                     "169.254.169.254"],
                                                    "connectTimeoutMs": 1000}}})

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()
        cls.broker.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        self.assertFalse(os.path.exists(self.marker), "a library was loaded or a command ran")
        st, _, _ = http("GET", f"{self.s.url}/healthz")
        self.assertEqual(st, 200, "the service is still up")

    def post(self, name, payload):
        body = payload if isinstance(payload, str) else json.dumps(payload)
        return http("POST", f"{self.s.url}/rules/{name}", body)

    def refused(self, name, payload, needle):
        st, h, body = self.post(name, payload)
        self.assertEqual((st, h.get("x-amzn-ErrorType")), (400, "InvalidRequestException"),
                         body)
        self.assertIn(needle, json.loads(body)["message"])
        st, _, _ = http("GET", f"{self.s.url}/rules/{name}")
        self.assertEqual(st, 404, "a refused rule does not exist")

    def rule(self, action, sql="SELECT * FROM 'b/+/t'"):
        return {"sql": sql, "awsIotSqlVersion": "2016-03-23", "actions": [action]}

    def kafka(self, **props):
        return self.rule({"kafka": {"topic": "t", "clientProperties": dict(
            {"bootstrap.servers": "127.0.0.1:1"}, **props)}})

    # {====== Kafka

    def test_ssl_providers_loads_no_library(self):
        self.assertTrue(os.path.exists(MARKER_SO), MARKER_SO)
        self.refused("providers", self.kafka(**{"security.protocol": "ssl",
                                                "ssl.providers": MARKER_SO}),
                     '"ssl.providers" is not allowed')
        self.refused("engine", self.kafka(**{"security.protocol": "ssl",
                                             "ssl.engine.location": MARKER_SO}),
                     '"ssl.engine.location" is not allowed')
        self.refused("plugins", self.kafka(**{"plugin.library.paths": MARKER_SO}),
                     '"plugin.library.paths" is not allowed')

    def test_the_kinit_command_never_runs(self):
        principal = f"x; : > {self.marker}; :"
        self.refused("kinit1", self.kafka(**{"security.protocol": "sasl_plaintext",
                                             "sasl.kerberos.principal": principal,
                                             "sasl.kerberos.keytab": "/nonexistent"}),
                     '"sasl.kerberos.')
        self.refused("kinit2", self.kafka(**{"security.protocol": "sasl_plaintext"}),
                     'needs "sasl.mechanism"')
        self.refused("kinit3", self.kafka(**{"security.protocol": "sasl_plaintext",
                                             "sasl.mechanism": "GSSAPI"}),
                     "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
        time.sleep(0.3)

    def test_kafka_files_only_beneath_the_certificate_directory(self):
        self.refused("kcert1", self.kafka(**{"ssl.ca.location": "/etc/passwd"}),
                     "is not beneath the certificate directory")
        self.refused("kcert2", self.kafka(**{"ssl.ca.location": "../outside"}),
                     "is not beneath the certificate directory")
        st, _, body = self.post("kcert_ok", self.kafka(**{"ssl.ca.location": "ca.pem"}))
        self.assertEqual(st, 200, body)
        self.assertEqual(http("DELETE", f"{self.s.url}/rules/kcert_ok")[0], 200)

    # }======

    # {====== file

    def test_file_paths_outside_the_base_directory_are_refused(self):
        for i, path in enumerate(["/etc/cron.d/sluice", os.path.join(self.outside, "x.jsonl"),
                                  "../x.jsonl", "a/../../x.jsonl",
                                  os.path.join(self.data, "out", "..", "rules", "r.json")]):
            self.refused(f"fout{i}", self.rule({"file": {"path": path}}), '"path"')
        self.assertNotIn("x.jsonl", os.listdir(self.outside))

    def test_a_symlink_in_the_base_directory_is_never_followed(self):
        base = os.path.join(self.data, "out")
        os.makedirs(base, exist_ok=True)
        victim = os.path.join(self.outside, "victim")
        with open(victim, "w") as f:
            f.write("untouched\n")
        os.symlink(self.outside, os.path.join(base, "dirlink"))
        os.symlink(victim, os.path.join(base, "filelink"))
        for i, path in enumerate(["dirlink/new.jsonl", "filelink", "dirlink/victim"]):
            name = f"sym{i}"
            st, _, body = self.post(name, self.rule({"file": {"path": path}},
                                                    sql=f"SELECT * FROM 'sym/{i}'"))
            self.assertEqual(st, 200, body)
            publish(self.s, f"sym/{i}", {"pwned": True})
            recs = wait_for(lambda: dead_letters(self.s, name))
            self.assertEqual(len(recs), 1, recs)
            self.assertIn("symbolic link", recs[0]["errors"][-1]["message"])
            self.assertEqual(recs[0]["attempts"], 1, "a symlink is not retried")
        with open(victim) as f:
            self.assertEqual(f.read(), "untouched\n")
        self.assertEqual(sorted(os.listdir(self.outside)), ["victim"])

    def test_every_line_is_json_even_for_raw_bytes(self):
        st, _, body = self.post("raw", self.rule({"file": {"path": "raw.jsonl"}},
                                                 sql="SELECT * FROM 'raw/t'"))
        self.assertEqual(st, 200, body)
        crontab = b"* * * * * root touch /tmp/pwned\n"
        elf = b"\x7fELF\x02\x01\x01\x00\xff\xfe"
        for payload in (crontab, elf, b'{"ok": 1}'):
            st, _, body = http("POST", f"{self.s.url}/topics/raw/t?qos=1", payload)
            self.assertEqual(st, 200, body)
        out = os.path.join(self.data, "out", "raw.jsonl")

        def content():
            if not os.path.exists(out):
                return None
            with open(out, "rb") as f:
                data = f.read()
            return data if data.count(b"\n") == 3 else None
        got = wait_for(content)
        self.assertTrue(got, "three lines")
        lines = [json.loads(l) for l in got.decode().splitlines()]
        self.assertEqual(lines, [crontab.decode(), {"base64": base64.b64encode(elf).decode()},
                                 {"ok": 1}])

    # }======

    # {====== payload structure and limits

    def test_forty_duplicate_headers_are_refused_without_a_crash(self):
        headers = ", ".join(['"contentType": "text/plain"'] * 40)
        body = ('{"sql": "SELECT * FROM \'t\'", "actions": [{"republish": {"topic": "o", '
                '"headers": {' + headers + '}}}]}')
        self.refused("dup40", body, 'duplicate key "contentType" in actions[0].republish.headers')

    def test_duplicate_keys_at_every_depth_are_refused(self):
        cases = [
            ('{"sql": "SELECT * FROM \'t\'", "sql": "SELECT 1 FROM \'u\'"}',
             'duplicate key "sql" in the rule payload'),
            ('{"sql": "SELECT * FROM \'t\'", "actions": [{"file": {"path": "a", "path": "b"}}]}',
             'duplicate key "path" in actions[0].file'),
            ('{"sql": "SELECT * FROM \'t\'", "actions": [{"kafka": {"topic": "t", '
             '"clientProperties": {"bootstrap.servers": "h:1", "acks": "all", "acks": "0"}}}]}',
             'duplicate key "acks" in actions[0].kafka.clientProperties'),
            ('{"sql": "SELECT * FROM \'t\'", "errorAction": {"http": {"url": "http://127.0.0.1/", '
             '"headers": [{"key": "a", "value": "b", "value": "c"}]}}}',
             'duplicate key "value" in errorAction.http.headers[0]'),
        ]
        for i, (body, needle) in enumerate(cases):
            self.refused(f"dupd{i}", body, needle)

    def test_collections_are_bounded(self):
        acts = [{"republish": {"topic": f"o{i}"}} for i in range(11)]
        self.refused("many", {"sql": "SELECT * FROM 't'", "actions": acts},
                     "at most 10 actions")
        props = [{"key": f"k{i}", "value": "v"} for i in range(17)]
        self.refused("props", self.rule({"republish": {"topic": "o", "headers": {
            "userProperties": props}}}), '"headers.userProperties" has at most 16 items')
        hdrs = [{"key": f"k{i}", "value": "v"} for i in range(101)]
        self.refused("hdrs", self.rule({"http": {"url": "http://127.0.0.1/", "headers": hdrs}}),
                     '"headers" has at most 100 items')
        self.refused("unknown", {"sql": "SELECT * FROM 't'", "ruleName": "x"},
                     'unknown key "ruleName"')

    def test_deep_and_long_sql_is_a_parse_error_not_a_crash(self):
        """The ~120 KB `SELECT a+a+...` and a deeply nested expression, through the REST API:
        each is a SqlParseException with a line and a column, and the service stays up."""
        cases = {"long": "SELECT " + "+".join(["a"] * 60000) + " FROM 't'",
                 "deep": "SELECT " + "(" * 5000 + "a" + ")" * 5000 + " FROM 't'",
                 "deepcall": "SELECT " + "abs(" * 3000 + "1" + ")" * 3000 + " FROM 't'"}
        for name, sql in cases.items():
            st, h, body = self.post(name, {"sql": sql, "awsIotSqlVersion": "2016-03-23",
                                           "actions": []})
            self.assertEqual((st, h.get("x-amzn-ErrorType")), (400, "SqlParseException"),
                             body[:300])
            self.assertRegex(json.loads(body)["message"], r"^line 1, column \d+: ", name)
            st, _, _ = http("GET", f"{self.s.url}/rules/{name}")
            self.assertEqual(st, 404, name)

    # }======

    # {====== HTTP

    def test_link_local_http_targets_are_refused(self):
        for i, url in enumerate(["http://169.254.169.254/latest/meta-data/",
                                 "http://[fe80::1]/", "http://[::ffff:169.254.169.254]/"]):
            self.refused(f"ll{i}", self.rule({"http": {"url": url}}),
                         "refused unless actions.http.allowLinkLocal is set")

    def test_templated_hosts_are_checked_per_message(self):
        st, _, body = self.post("tpl", self.rule({"http": {"url": "http://${h}/in"}},
                                                 sql="SELECT * FROM 'tpl/+'"))
        self.assertEqual(st, 200, body)
        publish(self.s, "tpl/1", {"h": "169.254.169.254"})   # allowed by name, link-local
        publish(self.s, "tpl/2", {"h": "internal.example"})  # not on the allow-list
        recs = wait_for(lambda: len(dead_letters(self.s, "tpl")) == 2 and
                        dead_letters(self.s, "tpl"))
        errs = sorted(r["errors"][-1]["message"] for r in recs)
        self.assertIn("host 169.254.169.254, which is link-local", errs[0] + errs[1])
        self.assertIn("host 'internal.example' is not in the allowed hosts", errs[0] + errs[1])

    def test_a_templated_host_needs_an_allow_list(self):
        tmp = tempfile.mkdtemp()
        s = Sluice(self.broker.port, os.path.join(tmp, "data"))
        try:
            st, h, body = http("POST", f"{s.url}/rules/open", json.dumps(
                self.rule({"http": {"url": "http://${h}/in"}})))
            self.assertEqual(st, 400, body)
            self.assertIn("must be listed in actions.http.allowedHosts", body.decode())
        finally:
            s.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    # }======

    # {====== PostgreSQL

    def test_postgres_files_only_beneath_the_certificate_directory(self):
        stmt = "INSERT INTO t VALUES (${a})"
        for i, ci in enumerate([f"host=127.0.0.1 sslkey={self.secret}",
                                "host=127.0.0.1 sslrootcert=../secret.key",
                                f"postgresql://u@127.0.0.1/d?passfile={self.secret}",
                                "host=127.0.0.1 sslcrl=/etc/passwd"]):
            self.refused(f"pgf{i}", self.rule({"postgres": {"conninfo": ci, "statement": stmt}}),
                         "is not beneath the certificate directory")
        self.refused("pgsock", self.rule({"postgres": {"conninfo": "host=/var/run/postgresql",
                                                       "statement": stmt}}),
                     "names a Unix socket")
        self.refused("pgsvc", self.rule({"postgres": {"conninfo": "host=127.0.0.1 service=prod",
                                                      "statement": stmt}}),
                     '"service" is not allowed')

    # }======

    # {====== the configuration keys

    def test_base_dir_and_allow_link_local_from_the_config_file(self):
        tmp = tempfile.mkdtemp()
        base = os.path.join(tmp, "files")
        os.makedirs(base)
        s = Sluice(self.broker.port, os.path.join(tmp, "data"),
                   config={"actions": {"file": {"baseDir": base},
                                       "http": {"allowLinkLocal": True}}})
        try:
            st, _, body = http("POST", f"{s.url}/rules/fb", json.dumps(self.rule(
                {"file": {"path": "sub.jsonl"}}, sql="SELECT * FROM 'cfg/t'")))
            self.assertEqual(st, 200, body)
            publish(s, "cfg/t", {"n": 1})
            out = os.path.join(base, "sub.jsonl")
            self.assertTrue(wait_for(lambda: os.path.exists(out) and os.path.getsize(out) > 0))
            st, _, body = http("POST", f"{s.url}/rules/ll", json.dumps(self.rule(
                {"http": {"url": "http://169.254.169.254/latest/meta-data/"}})))
            self.assertEqual(st, 200, "allowLinkLocal lets the operator open it: " + str(body))
        finally:
            s.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_bad_action_settings_stop_the_service_with_a_clear_message(self):
        tmp = tempfile.mkdtemp()
        try:
            for cfg, msg in (({"actions": {"file": {"baseDir": "relative/dir"}}},
                              '"actions.file.baseDir" must be an absolute directory path'),
                             ({"actions": {"kafka": {"certDir": 5}}},
                              '"actions.kafka.certDir" must be a string'),
                             ({"actions": {"kafka": {"certdir": "/x"}}},
                              'unknown key "actions.kafka.certdir"'),
                             ({"actions": {"http": {"allowLinkLocal": "yes"}}},
                              '"actions.http.allowLinkLocal" must be true or false')):
                path = os.path.join(tmp, "c.json")
                with open(path, "w") as f:
                    json.dump(cfg, f)
                r = subprocess.run([SLUICE, "serve", "--config", path], capture_output=True,
                                   text=True, timeout=30,
                                   env=dict(os.environ, SLUICE_DATA_DIR=os.path.join(tmp, "d")))
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assertIn(msg, r.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # }======

    # {====== GET /actions, dead-letter files

    def test_action_types_and_their_schemas(self):
        st, _, body = http("GET", f"{self.s.url}/actions")
        self.assertEqual(st, 200, body)
        types = {a["type"]: a for a in json.loads(body)["actions"]}
        self.assertTrue({"republish", "file", "kafka", "postgres", "http"} <= set(types))
        st, _, body = http("GET", f"{self.s.url}/actions/kafka/schema")
        self.assertEqual(st, 200, body)
        k = json.loads(body)
        self.assertEqual(k, types["kafka"])
        props = [o for o in k["options"] if o["key"] == "clientProperties"][0]
        self.assertEqual((props["type"], props["required"]), ("map", True))
        for url, want in (("/actions/lambda/schema", 404), ("/actions/kafka", 404),
                          ("/actions/kafka/schema/x", 404)):
            st, h, body = http("GET", self.s.url + url)
            self.assertEqual((st, h.get("x-amzn-ErrorType")),
                             (want, "ResourceNotFoundException"), url)
        self.assertEqual(http("POST", f"{self.s.url}/actions", "{}")[0], 405)

    def test_dead_letter_files_are_0600(self):
        st, _, body = self.post("dlmode", self.rule({"file": {"path": "nodir/x.jsonl"}},
                                                    sql="SELECT * FROM 'dl/mode'"))
        self.assertEqual(st, 200, body)
        publish(self.s, "dl/mode", {"secret": 1})
        self.assertTrue(wait_for(lambda: dead_letters(self.s, "dlmode")))
        d = os.path.join(self.data, "deadletter")
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)
        segs = [f for f in os.listdir(d) if f.startswith("seg-")]
        self.assertTrue(segs)
        for f in segs:
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode), 0o600, f)

    # }======


if __name__ == "__main__":
    unittest.main(verbosity=2)
