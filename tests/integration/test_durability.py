"""Nothing acknowledged is lost: kill -9 in the middle of a QoS 1 stream, SIGTERM restarts, a
broker restart, a full disk. Real Mosquitto, real PostgreSQL, paho clients (Debian's
python3-paho-mqtt) for the publisher and the collector, which are never killed and keep
persistent sessions.

The kill -9 harness: N QoS 1 messages over 16 topics, each carrying a global seq and a per-topic
tseq, published at a steady rate while sluice is killed with SIGKILL five times (restarted after
0-3 s; once after 10 s; once within 200 ms of a restart, during replay; once while PostgreSQL is
down). One rule, two actions: a QoS 1 republish to out/<topic> read by the collector, and a
PostgreSQL insert into a table without a unique key (duplicates stay visible). At the end every
seq must be at each sink (or in the dead-letter store), the first occurrences per topic in
order, and the duplicates within a bound computed from the configuration. The same harness with
ingest.journal=off must see loss: proof that it can."""
import base64, json, os, random, re, shutil, signal, subprocess, sys, tempfile, threading, time, unittest

sys.path.insert(0, os.path.dirname(__file__))
import paho.mqtt.client as mqtt  # noqa: E402
from harness import Sluice, free_port, http, wait_port  # noqa: E402
from pgtest import PgCluster  # noqa: E402

TOPICS = 16
RM = 512              # mqtt.receiveMaximum (the default)
WORKER_QUEUE = 1024   # queueDepth
ACTION_QUEUE = 1000   # actions.queueDepth


class Broker:
    """A private Mosquitto whose queues never drop (max_queued_messages 0) and which can be
    restarted on the same port, with persistence when asked."""

    def __init__(self, persistence=False, extra=""):
        self.port = free_port()
        self.dir = tempfile.mkdtemp()
        if os.geteuid() == 0:  # mosquitto drops root for its own user, which must write here
            shutil.chown(self.dir, "mosquitto", "mosquitto")
        conf = os.path.join(self.dir, "m.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    "max_queued_messages 0\nmax_inflight_messages 0\n"
                    f"persistence {'true' if persistence else 'false'}\n"
                    f"persistence_location {self.dir}/\nautosave_interval 1\n" + extra
                    + (f"log_dest file {os.environ['CHAOS_BROKER_LOG']}\nlog_type all\n"
                       if os.environ.get("CHAOS_BROKER_LOG") else ""))
        self.conf = conf
        self.start()

    def start(self):
        self.p = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        assert wait_port(self.port), "mosquitto did not start"

    def stop(self):
        self.p.terminate()
        self.p.wait(10)

    def cleanup(self):
        if self.p.poll() is None:
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Collector:
    """A persistent-session QoS 1 subscriber on out/#: (topic, seq, tseq) per message."""

    def __init__(self, port):
        self.got = []
        self.warm = False
        self.lock = threading.Lock()
        self.c = mqtt.Client(client_id="chaos-collector", clean_session=False)
        self.c.on_message = self._on
        self.c.on_connect = lambda c, u, f, rc: c.subscribe("out/#", qos=1)
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def _on(self, c, u, m):
        d = json.loads(m.payload)
        with self.lock:
            if "seq" in d:
                self.got.append((m.topic, d["seq"], d["tseq"]))
            else:
                self.warm = True

    def count(self):
        with self.lock:
            return len(self.got)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


class Publisher(threading.Thread):
    """Publishes n QoS 1 messages at a steady rate over a persistent session, and waits until
    the broker acknowledged every one (so the broker owns them all)."""

    def __init__(self, port, n, rate):
        super().__init__(daemon=True)
        self.n, self.rate = n, rate
        self.acked = 0
        self.c = mqtt.Client(client_id="chaos-publisher", clean_session=False)
        self.c.max_inflight_messages_set(200)
        self.c.max_queued_messages_set(0)
        self.c.on_publish = self._on_pub
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def _on_pub(self, c, u, mid):
        self.acked += 1

    def run(self):
        tseq = [0] * TOPICS
        t0 = time.time()
        for seq in range(self.n):
            t = seq % TOPICS
            body = json.dumps({"seq": seq, "tseq": tseq[t], "t": t})
            tseq[t] += 1
            self.c.publish(f"load/dev{t:02d}", body, qos=1)
            ahead = t0 + seq / self.rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
        end = time.time() + 120
        while self.acked < self.n and time.time() < end:
            time.sleep(0.05)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def metric(url, name):
    try:
        _, _, b = http("GET", url + "/metrics")
    except Exception:
        return None
    m = re.search(r"^%s (\d+)" % re.escape(name), b.decode(), re.M)
    return int(m.group(1)) if m else None


class Durability(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.data = os.path.join(self.tmp, "data")
        self.broker = Broker()
        self.s = None
        self.pg = None

    def tearDown(self):
        if self.s and self.s.p.poll() is None:
            self.s.p.kill()
            self.s.p.wait()
        self.broker.cleanup()
        if self.pg:
            self.pg.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def config(self, journal, pg=True):
        self.cfg_journal = journal
        actions = [{"republish": {"topic": "out/${topic(2)}", "qos": 1}}]
        if pg:
            actions.append({"postgres": {
                "conninfo": self.pg.conninfo,
                "statement": "INSERT INTO t(seq, tseq, topic) VALUES (${seq}, ${tseq}, "
                             "${topic()})"}})
        self.rule = {"sql": "SELECT * FROM 'load/#'", "actions": actions,
                     "awsIotSqlVersion": "2016-03-23"}
        return {"ingest": {"journal": journal}, "queueDepth": WORKER_QUEUE,
                "actions": {"queueDepth": ACTION_QUEUE,
                            "retry": {"attempts": 1000, "baseMs": 20, "maxMs": 500,
                                      "totalMs": 3600000}}}

    def create_rule(self, col):
        """Creates the rule and waits until its subscription works end to end (a warm-up
        message comes out), so the stream starts on a live subscription."""
        st, _, b = http("POST", self.s.url + "/rules/chaos", json.dumps(self.rule))
        self.assertEqual(st, 200, b)
        end = time.time() + 20
        while not col.warm and time.time() < end:
            subprocess.run(["mosquitto_pub", "-p", str(self.broker.port), "-t", "load/warmup",
                            "-m", "{}", "-q", "1"], check=True)
            time.sleep(0.3)
        self.assertTrue(col.warm, "the rule never fired")

    def start(self, cfg, wait=True):
        self.s = Sluice(self.broker.port, self.data, config=cfg, wait=wait, workers=2,
                        ready_timeout=120)
        return self.s

    def kill(self):
        self.s.p.send_signal(signal.SIGKILL)
        self.s.p.wait()

    def wait_drained(self, collector, expect, timeout=300):
        """Until every journaled message is finished (or, without a journal, nothing has
        changed for 8 s) and the sinks have been stable for 3 s."""
        journal = self.cfg_journal != "off"
        end = time.time() + timeout
        last, stable = None, time.time()
        while time.time() < end:
            unfinished = metric(self.s.url, "sluice_journal_unfinished")
            now = (collector.count(), self.pg_count() if self.pg else 0, unfinished)
            if now != last:
                last, stable = now, time.time()
            quiet = time.time() - stable
            if journal and unfinished == 0 and quiet > 3:
                return
            if not journal and quiet > 8:
                return
            time.sleep(0.2)
        self.fail(f"not drained after {timeout} s: unfinished {last}")

    def pg_count(self):
        try:
            return int(self.pg.query("SELECT count(*) FROM t WHERE seq IS NOT NULL"))
        except Exception:
            return 0

    def dead_letters(self):
        out, token = [], ""
        while True:
            st, _, b = http("GET", self.s.url + "/deadletter?limit=1000" +
                            (f"&nextToken={token}" if token else ""))
            self.assertEqual(st, 200, b)
            page = json.loads(b)
            for r in page.get("records", []):
                if os.environ.get("CHAOS_DEBUG") and len(out) < 2:
                    print("dead letter:", r.get("errors"), flush=True)
                d = json.loads(base64.b64decode(r["payload"]))
                if "seq" in d:
                    out.append((r.get("actionIndex"), d["seq"]))
            token = page.get("nextToken")
            if not token:
                return out

    def run_chaos(self, journal, n, rate, seed, schedule=("normal", "late", "replay", "pg_down")):
        rnd = random.Random(seed)
        self.pg = PgCluster()
        self.pg.psql("CREATE TABLE t(id bigserial, seq int, tseq int, topic text)")
        cfg = self.config(journal)
        col = Collector(self.broker.port)
        self.start(cfg)
        self.create_rule(col)
        pub = Publisher(self.broker.port, n, rate)
        pub.start()
        kills = 0
        # "replay" is two kills; "pg_stall" stops the database's processes (SIGSTOP) a second
        # before the kill, so its action holds a full lane of messages when the process dies
        if os.environ.get("CHAOS_SCHEDULE"):
            schedule = os.environ["CHAOS_SCHEDULE"].split(",")
        for kind in schedule:
            time.sleep(rnd.uniform(0.8, 2.5))
            if kind == "pg_down":
                self.pg.stop()
                time.sleep(0.5)
            if kind == "pg_stall":
                self.pg.signal_all(signal.SIGSTOP)
                time.sleep(1)
            self.kill()
            kills += 1
            if kind == "pg_stall":
                self.pg.signal_all(signal.SIGCONT)
            time.sleep(10 if kind == "late" else rnd.uniform(0, 3))
            self.start(cfg, wait=kind != "replay")
            if kind == "replay":
                time.sleep(rnd.uniform(0.05, 0.2))
                self.kill()
                kills += 1
                time.sleep(rnd.uniform(0, 1))
                self.start(cfg)
            if kind == "pg_down":
                time.sleep(2)
                self.pg.start()
        pub.join()
        self.assertEqual(pub.acked, n, "the broker did not acknowledge every publish")
        self.wait_drained(col, n)
        col.stop()
        pub.stop()
        rows = [tuple(int(x) if x.isdigit() else x for x in line.split("|"))
                for line in self.pg.query("SELECT seq, tseq, topic FROM t WHERE seq IS NOT NULL ORDER BY id")
                .splitlines() if line]
        dl = self.dead_letters()
        logs = self.s.logs()
        self.assertEqual(self.s.stop(), 0)
        return kills, col.got, rows, dl, logs

    def account(self, n, kills, got, rows, dl):
        seen_rp = {seq for _, seq, _ in got} | {s for a, s in dl if a == 0}
        seen_pg = {r[0] for r in rows} | {s for a, s in dl if a == 1}
        lost_rp = n - len(seen_rp & set(range(n)))
        lost_pg = n - len(seen_pg & set(range(n)))
        dup_rp = len(got) - len({seq for _, seq, _ in got})
        dup_pg = len(rows) - len({r[0] for r in rows})
        return lost_rp, lost_pg, dup_rp, dup_pg

    def order_violations(self, got):
        first, bad = {}, 0
        last = {}
        for i, (topic, seq, tseq) in enumerate(got):
            if seq in first:
                continue
            first[seq] = True
            if tseq < last.get(topic, -1):
                bad += 1
                if os.environ.get("CHAOS_DEBUG") and bad == 1:
                    print(f"order: #{i} {topic} tseq {tseq} after {last[topic]}", flush=True)
                    for k in range(max(0, i - 40), i + 3):
                        print("   ", k, got[k], flush=True)
            last[topic] = max(tseq, last.get(topic, -1))
        return bad

    def test_kill9_five_times_loses_nothing(self):
        n = int(os.environ.get("SLUICE_CHAOS_MESSAGES", "100000"))
        kills, got, rows, dl, logs = self.run_chaos("batch", n, rate=4000, seed=20261206)
        lost_rp, lost_pg, dup_rp, dup_pg = self.account(n, kills, got, rows, dl)
        # duplicates: per kill, the broker re-sends up to Receive Maximum messages whose PUBACK
        # died with the process, and a replay re-delivers what the actions had delivered but
        # the journal had not yet recorded: at most what was queued in the workers and lanes
        bound = kills * (RM + 2 * WORKER_QUEUE + 2 * ACTION_QUEUE)
        print(f"\nkill -9 x{kills}, {n} messages: republish lost {lost_rp} dup {dup_rp}; "
              f"postgres lost {lost_pg} dup {dup_pg}; dead letters {len(dl)}; "
              f"duplicate bound {bound}", flush=True)
        if os.environ.get("CHAOS_DEBUG"):
            miss = sorted(set(range(n)) - {seq for _, seq, _ in got} - {q for a, q in dl if a == 0})
            print("republish missing", miss[:40], flush=True)
            miss = sorted(set(range(n)) - {r[0] for r in rows} - {q for a, q in dl if a == 1})
            print("postgres missing", miss[:40], flush=True)
            keep = os.path.join("/tmp", "chaos-keep")
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(self.tmp, keep)
            print("data kept in", keep, flush=True)
            with open(os.path.join(keep, "collected.json"), "w") as f:
                json.dump(got, f)
        self.assertEqual(lost_rp, 0, "republish lost messages\n" + logs)
        self.assertEqual(lost_pg, 0, "postgres lost messages\n" + logs)
        self.assertEqual(self.order_violations(got), 0, "per-topic order broken")
        self.assertLessEqual(dup_rp, bound)
        self.assertLessEqual(dup_pg, bound)

    def test_without_the_journal_the_same_harness_sees_loss(self):
        n = int(os.environ.get("SLUICE_CHAOS_CONTROL_MESSAGES", "40000"))
        # whether a kill finds acknowledged messages in memory depends on timing, except while
        # the database stalls: then the PostgreSQL action holds a full lane (the harness saw
        # from 0 to 2 000 lost without the stalls, so it could not always prove itself)
        kills, got, rows, dl, logs = self.run_chaos(
            "off", n, rate=4000, seed=7, schedule=("normal", "pg_stall", "replay", "pg_stall"))
        lost_rp, lost_pg, dup_rp, dup_pg = self.account(n, kills, got, rows, dl)
        print(f"\ncontrol, journal off, kill -9 x{kills}, {n} messages: republish lost "
              f"{lost_rp}, postgres lost {lost_pg}", flush=True)
        self.assertGreater(lost_rp + lost_pg, 0,
                           "the harness saw no loss without the journal: it cannot see loss")

    def test_sigterm_restart_loses_and_duplicates_nothing(self):
        n = 20000
        self.pg = PgCluster()
        self.pg.psql("CREATE TABLE t(id bigserial, seq int, tseq int, topic text)")
        cfg = self.config("batch")
        col = Collector(self.broker.port)
        self.start(cfg)
        self.create_rule(col)
        pub = Publisher(self.broker.port, n, rate=4000)
        pub.start()
        for _ in range(2):
            time.sleep(1.5)
            self.assertEqual(self.s.stop(), 0)
            time.sleep(0.5)
            self.start(cfg)
        pub.join()
        self.wait_drained(col, n)
        col.stop()
        pub.stop()
        rows = [int(x) for x in self.pg.query("SELECT seq FROM t WHERE seq IS NOT NULL").split()]
        dl = self.dead_letters()
        self.assertEqual(dl, [], "dead letters after a clean restart")
        lost_rp, lost_pg, dup_rp, dup_pg = self.account(n, 2, col.got, [(r,) for r in rows], [])
        print(f"\nSIGTERM x2, {n} messages: lost {lost_rp}/{lost_pg}, duplicates "
              f"{dup_rp}/{dup_pg}", flush=True)
        if os.environ.get("CHAOS_DEBUG"):
            miss = sorted(set(range(n)) - {seq for _, seq, _ in col.got})
            print("missing", miss[:20], miss[-5:], flush=True)
            import collections
            cnt = collections.Counter(seq for _, seq, _ in col.got)
            print("dups", sorted(k for k, v in cnt.items() if v > 1)[:30], flush=True)
        self.assertEqual((lost_rp, lost_pg), (0, 0))
        self.assertEqual((dup_rp, dup_pg), (0, 0), self.s.logs())
        self.assertEqual(self.s.stop(), 0)

    def test_broker_restart_with_persistence_loses_nothing(self):
        self.broker.cleanup()
        self.broker = Broker(persistence=True)
        n = 20000
        cfg = self.config("batch", pg=False)
        col = Collector(self.broker.port)
        self.start(cfg)
        self.create_rule(col)
        pub = Publisher(self.broker.port, n, rate=4000)
        pub.start()
        time.sleep(2)
        self.broker.stop()
        time.sleep(1)
        self.broker.start()
        pub.join()
        self.assertEqual(pub.acked, n, "the broker did not acknowledge every publish")
        self.wait_drained(col, n)
        if os.environ.get("CHAOS_DEBUG"):
            print("appended", metric(self.s.url, "sluice_journal_appended_total"),
                  "collected", col.count(), flush=True)
        col.stop()
        pub.stop()
        dl = {q for a, q in self.dead_letters() if a == 0}
        lost = n - len(({seq for _, seq, _ in col.got} | dl) & set(range(n)))
        print(f"\nbroker restart, {n} messages: lost {lost}, dead letters {len(dl)}", flush=True)
        self.assertEqual(lost, 0, self.s.logs())
        self.assertEqual(self.s.stop(), 0)

    def test_a_full_disk_stops_acknowledging_and_recovers(self):
        """The data dir on a small tmpfs (or, where mounting is not allowed, a file-size limit
        on the process), filled up while the sink is down (so nothing finishes and frees
        journal space): sluice says so, stops acknowledging and reading; once there is room
        again and the sink is back, nothing is lost."""
        mnt = os.path.join(self.tmp, "small")
        os.makedirs(mnt)
        mounted = not os.environ.get("CHAOS_NO_MOUNT") and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt],
                                 capture_output=True).returncode == 0
        sink = os.path.join(self.tmp, "sink")  # missing: the file action retries
        out = os.path.join(sink, "out.jsonl")
        try:
            self.data = os.path.join(mnt, "data")
            cfg = self.config("batch", pg=False)
            cfg["actions"]["file"] = {"baseDir": self.tmp}
            self.rule = {"sql": "SELECT * FROM 'load/#'", "awsIotSqlVersion": "2016-03-23",
                         "actions": [{"file": {"path": "sink/out.jsonl"}}]}
            self.start(cfg)
            st, _, b = http("POST", self.s.url + "/rules/chaos", json.dumps(self.rule))
            self.assertEqual(st, 200, b)
            time.sleep(1)
            filler = os.path.join(mnt, "filler")
            if mounted:  # leave ~64 KiB free
                st = os.statvfs(mnt)
                with open(filler, "wb") as f:
                    f.write(b"\0" * (st.f_bavail * st.f_frsize - 64 * 1024))
            else:
                subprocess.run(["prlimit", f"--pid={self.s.p.pid}", "--fsize=1:unlimited"],
                               check=True)
            # more than the journal's segments made ready before the disk filled can hold
            # (they are zero-filled ahead: that space was already reserved)
            n = 20000
            pub = Publisher(self.broker.port, n, rate=4000)
            pub.start()
            end = time.time() + 60
            while metric(self.s.url, "sluice_journal_failed") != 1 and time.time() < end:
                time.sleep(0.1)
            self.assertEqual(metric(self.s.url, "sluice_journal_failed"), 1,
                             "the journal never reported the full disk")
            if mounted:  # (a file-size limit also stops the log file growing)
                with open(self.s.log.name, "rb") as f:
                    self.assertIn(b"journal.write_failed", f.read())
            time.sleep(1)
            taken = metric(self.s.url, 'sluice_messages_in_total{source="mqtt"}')
            time.sleep(3)
            self.assertEqual(metric(self.s.url, 'sluice_messages_in_total{source="mqtt"}'),
                             taken, "sluice kept taking messages it could not journal")
            self.assertLess(taken, n)
            if mounted:
                os.unlink(filler)
            else:
                subprocess.run(["prlimit", f"--pid={self.s.p.pid}", "--fsize=unlimited:unlimited"],
                               check=True)
            os.makedirs(sink)
            pub.join()
            self.assertEqual(pub.acked, n)
            end = time.time() + 120
            seqs = set()
            while time.time() < end and len(seqs) < n:
                time.sleep(0.5)
                if os.path.exists(out):
                    with open(out) as f:
                        seqs = {json.loads(l)["seq"] for l in f if l.strip()}
            dl = {q for a, q in self.dead_letters() if a == 0}
            lost = n - len((seqs | dl) & set(range(n)))
            print(f"\nfull disk ({'tmpfs' if mounted else 'file size limit'}): {n} messages, "
                  f"{taken} taken before the stall, lost {lost}", flush=True)
            self.assertEqual(lost, 0, self.s.logs())
            self.assertEqual(metric(self.s.url, "sluice_journal_failed"), 0)
            pub.stop()
            self.assertEqual(self.s.stop(), 0)
        finally:
            if self.s and self.s.p.poll() is None:
                self.s.p.kill()
                self.s.p.wait()
            if mounted:
                subprocess.run(["umount", "-l", mnt])

if __name__ == "__main__":
    unittest.main(verbosity=2)
