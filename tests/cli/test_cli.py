#!/usr/bin/env python3
"""The `sluice` command-line contract of DESIGN.md: flags, exit codes, output lines."""
import json, os, subprocess, sys, tempfile, unittest

BIN = sys.argv.pop(1) if len(sys.argv) > 1 else "build/engine/sluice"


def run(*args, stdin=None):
    p = subprocess.run([BIN, *args], capture_output=True, timeout=30)
    return p.returncode, p.stdout, p.stderr.decode()


def ev(sql, payload="{}", topic="t", *extra):
    return run("eval", "--sql", sql, "--topic", topic, "--payload", payload, *extra)


class Eval(unittest.TestCase):
    def test_fired_prints_compact_json_and_exits_0(self):
        rc, out, _ = ev("SELECT a, b.c AS x FROM 'sensors/+'", '{"a": 1, "b": {"c": [1, 2]}}',
                        "sensors/s1")
        self.assertEqual(rc, 0)
        self.assertEqual(out, b'{"a":1,"x":[1,2]}\n')

    def test_not_fired_prints_nothing_and_exits_1(self):
        rc, out, err = ev("SELECT * FROM 't' WHERE a > 1", '{"a": 1}')
        self.assertEqual((rc, out, err), (1, b"", ""))
        rc, out, _ = ev("SELECT * FROM 'other'", '{"a": 1}')
        self.assertEqual((rc, out), (1, b""))

    def test_compile_error_shows_caret_and_exits_2(self):
        rc, out, err = ev("SELECT a\nFORM 't'")
        self.assertEqual(rc, 2)
        self.assertEqual(out, b"")
        self.assertIn("error: line 2, column 1:", err)
        self.assertIn("FORM 't'\n^~~~", err)

    def test_template_lines_follow_the_output(self):
        rc, out, _ = ev("SET @d = dev SELECT v FROM 'a/#'", '{"v": 1, "dev": "x"}', "a/b/c",
                        "--template", "out/${topic(2)}/${@d}", "--template", "${missing}|")
        self.assertEqual(rc, 0)
        self.assertEqual(out.decode().split("\n"), ['{"v":1}', "out/b/x", "|", ""])

    def test_template_error_names_the_template(self):
        rc, _, err = ev("SELECT v FROM 't'", "{}", "t", "--template", "x/${nosuch(}")
        self.assertEqual(rc, 2)
        self.assertIn("template 1", err)

    def test_binary_payload_file_round_trips_bytes(self):
        data = bytes(range(256))
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(data)
        try:
            p = subprocess.run([BIN, "eval", "--sql", "SELECT * FROM 't'", "--topic", "t",
                                "--payload-file", f.name, "--binary"], capture_output=True)
            self.assertEqual(p.returncode, 0)
            self.assertEqual(p.stdout, data + b"\n")
            p = subprocess.run([BIN, "eval", "--sql", "SELECT encode(*, 'base64') AS b FROM 't'",
                                "--topic", "t", "--payload-file", f.name], capture_output=True)
            self.assertEqual(json.loads(p.stdout)["b"][:8], "AAECAwQF")
        finally:
            os.unlink(f.name)

    def test_context_sets_message_fields(self):
        ctx = json.dumps({"clientid": "c1", "principal": "p1", "accountid": "123",
                          "traceid": "tr", "timestamp": 1481825251155})
        rc, out, _ = ev("SELECT clientid() AS c, principal() AS p, accountid() AS a, "
                        "traceid() AS t, timestamp() AS ts FROM 't'", "{}", "t",
                        "--context", ctx)
        self.assertEqual(rc, 0)
        self.assertEqual(json.loads(out), {"c": "c1", "p": "p1", "a": "123", "t": "tr",
                                           "ts": 1481825251155})
        rc, out, _ = ev("SELECT clientid() AS c FROM 't'", "{}", "t", "--context",
                        '{"protocol": "http"}')
        self.assertEqual(json.loads(out), {"c": "n/a"})

    def test_context_shadows_serve_get_thing_shadow(self):
        ctx = json.dumps({"shadows": [
            {"thingName": "pump1", "document": {"state": {"reported": {"on": True}},
                                                "version": 3}},
            {"thingName": "pump1", "shadowName": "cfg",
             "document": {"state": {"desired": {"rpm": 900}}, "version": 7}}]})
        role = "'arn:aws:iam::123456789012:role/r'"
        rc, out, err = ev("SELECT get_thing_shadow(topic(2), %s).state.reported.on AS on, "
                          "get_thing_shadow(topic(2), 'cfg', %s).version AS v, "
                          "get_thing_shadow('pump2', %s) AS none FROM 'p/+'" % (role, role, role),
                          "{}", "p/pump1", "--context", ctx)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {"on": True, "v": 7})
        # without shadows in the context, there is no shadow
        rc, out, _ = ev("SELECT get_thing_shadow('pump1', %s) AS s, 1 AS k FROM 't'" % role)
        self.assertEqual(json.loads(out), {"k": 1})
        for bad in ('{"shadows": {}}', '{"shadows": [{"thingName": "a"}]}',
                    '{"shadows": [{"thingName": 1, "document": {}}]}',
                    '{"shadows": [{"thingName": "a", "shadowName": 2, "document": {}}]}'):
            rc, _, err = ev("SELECT 1 AS k FROM 't'", "{}", "t", "--context", bad)
            self.assertEqual(rc, 64, bad)
            self.assertIn("shadow", err)

    def test_sql_version_flag(self):
        rc, out, _ = ev("SELECT 10.0 AS n FROM 't'", "{}", "t", "--sql-version", "2015-10-08")
        self.assertEqual(out, b'{"n":10.0}\n')
        rc, out, _ = ev("SELECT 10.0 AS n FROM 't'")
        self.assertEqual(out, b'{"n":10}\n')

    def test_runtime_limit_exits_3(self):
        rc, out, err = ev("SELECT regexp_matches(s, '(a+)+$') AS m FROM 't'",
                          json.dumps({"s": "a" * 40 + "b"}))
        self.assertEqual(rc, 3, err)
        self.assertIn("error:", err)

    def test_bad_usage_exits_64(self):
        for args in (["eval"], ["eval", "--sql", "SELECT * FROM 't'"],
                     ["eval", "--sql", "x", "--topic", "t", "--payload", "{}", "--bogus"],
                     ["eval", "--sql", "SELECT * FROM 't'", "--topic", "t", "--payload", "{}",
                      "--sql-version", "1999-01-01"],
                     ["eval", "--sql", "SELECT * FROM 't'", "--topic", "t", "--payload", "{}",
                      "--context", "[1]"],
                     ["nosuchcommand"], []):
            rc, _, _ = run(*args)
            self.assertEqual(rc, 64, args)


class Other(unittest.TestCase):
    def test_version(self):
        rc, out, _ = run("version")
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith(b"sluice "))

    def test_explain_prints_bytecode(self):
        rc, out, _ = run("explain", "--sql", "SELECT a FROM 't' WHERE b > 1")
        self.assertEqual(rc, 0)
        self.assertIn(b"JMPIFNOT", out)
        self.assertIn(b"slot[", out)
        rc, _, err = run("explain", "--sql", "SELECT FROM")
        self.assertEqual(rc, 2)


if __name__ == "__main__":
    unittest.main(verbosity=1)
