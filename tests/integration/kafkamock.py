"""librdkafka's mock cluster for the integration tests: kafka_mock (kafka_mock.c) in its own
process, driven over its stdin, one JSON reply per command. It outlives the sluice processes a
test starts and kills, as a Kafka cluster would."""
import json, os, subprocess

BIN = os.environ.get("SLUICE_TEST_BIN_DIR", "build/tests/integration")


class KafkaMock:
    """kafka_mock: a mock cluster of `brokers` brokers on 127.0.0.1."""

    def __init__(self, brokers=3):
        self.p = subprocess.Popen([os.path.join(BIN, "kafka_mock"), str(brokers)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  bufsize=1)
        self.bootstrap = self.p.stdout.readline().strip()
        assert self.bootstrap, "kafka_mock did not start"
        self.brokers = brokers

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        r = self.p.stdout.readline()
        assert r, f"kafka_mock exited on: {line[:200]}"
        return json.loads(r)

    def cmd(self, line):
        r = self.ask(line)
        assert r.get("ok"), f"{line[:200]}: {r}"
        return r

    def produce(self, topic, records):
        """records: dicts with partition (optional), key, value, headers [{key, value}]."""
        r = self.cmd("produce " + json.dumps({"topic": topic, "records": records}))
        assert r["produced"] == len(records), r
        return r

    def errors(self, api, codes):
        """The next len(codes) requests of api fail with these Kafka error codes."""
        return self.cmd(f"errors {api} {','.join(str(c) for c in codes)}")

    def committed(self, group, topic):
        """{partition: committed offset} of group on topic (-1001: none)."""
        r = self.ask(f"committed {group} {topic}")
        assert "committed" in r, r
        return {int(p): o for p, o in r["committed"].items()}

    def offsets(self, topic):
        """{partition: high watermark} (the next offset to be written)."""
        r = self.ask(f"offsets {topic}")
        assert "high" in r, r
        return {int(p): o for p, o in r["high"].items()}

    def consume(self, topic, count, timeout_ms):
        """Records from the beginning: until count of them (0: the end of every partition)."""
        self.p.stdin.write(f"consume {topic} {count} {timeout_ms}\n")
        self.p.stdin.flush()
        out = []
        for line in self.p.stdout:
            r = json.loads(line)
            if "done" in r:
                assert r["done"] == len(out), r
                return out
            out.append(r)
        raise AssertionError("kafka_mock exited")

    def stop(self):
        if self.p.poll() is None:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
            rc = self.p.wait(30)
        else:
            rc = self.p.returncode
        self.p.stdout.close()
        return rc
