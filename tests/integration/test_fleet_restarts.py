"""A fleet restarted under a stream loses nothing: three instances on one Mosquitto (a $share
group, persistent sessions) and one PostgreSQL, a 50 000-message QoS 1 stream, and meanwhile
each instance in turn stopped with SIGTERM and started again (a rolling upgrade), then one
killed with -9 and started again. Every message must come out of the fleet's republish action
at least once (read by a persistent-session collector); duplicates are counted and bounded.

While an instance is away, Mosquitto keeps giving its session its share of the new messages
(they wait for it: mosquitto's subs.c picks the next member of the group whether it is
connected or not), so each restart delays a third of the traffic by the restart's length and
loses none of it. The killed instance's unfinished messages come back from its journal, the
ones it had not acknowledged from its session."""
import os, sys, time, unittest

sys.path.insert(0, os.path.dirname(__file__))
from fleet import Fleet  # noqa: E402
from test_durability import Collector, Publisher, RM, WORKER_QUEUE, ACTION_QUEUE  # noqa: E402

N = int(os.environ.get("SLUICE_FLEET_MESSAGES", "50000"))


class FleetRestarts(unittest.TestCase):
    def test_rolling_restart_and_kill_9_lose_nothing(self):
        cfg = {"queueDepth": WORKER_QUEUE, "actions": {"queueDepth": ACTION_QUEUE}}
        f = Fleet(3, config=cfg)
        col = Collector(f.broker.port)
        try:
            r = {"sql": "SELECT * FROM 'load/#'", "awsIotSqlVersion": "2016-03-23",
                 "actions": [{"republish": {"topic": "out/${topic(2)}", "qos": 1}}]}
            self.assertEqual(f.post(f.nodes[0], "/rules/stream", r)[0], 200)
            for x in f.nodes[1:]:
                f.wait_rule(x, "stream")
            end = time.time() + 30
            while not col.warm and time.time() < end:
                os.system(f"mosquitto_pub -p {f.broker.port} -t load/warmup -m '{{}}' -q 1")
                time.sleep(0.2)
            self.assertTrue(col.warm, "the rule never fired")
            rate = 2500
            pub = Publisher(f.broker.port, N, rate)
            t0 = time.time()
            pub.start()
            events = []
            for i in range(3):  # a rolling restart, one instance at a time
                time.sleep(2)
                t = time.time()
                f.restart(i)
                events.append(f"restart {i} at {t - t0:.1f} s took {time.time() - t:.1f} s")
            time.sleep(2)
            f.kill(1)
            events.append(f"kill -9 of 1 at {time.time() - t0:.1f} s")
            time.sleep(1)
            f.start(1)
            events.append(f"1 back at {time.time() - t0:.1f} s")
            pub.join()
            self.assertEqual(pub.acked, N, "the broker did not acknowledge every publish")
            pub.stop()
            # drained: every seq out, or nothing new for 10 s
            last, still = -1, time.time()
            while time.time() - still < 10:
                n = len({s for _, s, _ in col.got})
                if n >= N:
                    break
                if n != last:
                    last, still = n, time.time()
                time.sleep(0.2)
            time.sleep(1)
            seqs = [s for _, s, _ in col.got]
            lost = N - len(set(seqs) & set(range(N)))
            dups = len(seqs) - len(set(seqs))
            # the kill: the broker re-sends what was unacknowledged (Receive Maximum), and the
            # journal replays what the actions delivered but had not recorded yet
            bound = RM + 2 * WORKER_QUEUE + 2 * ACTION_QUEUE
            print(f"\n{N} messages at {rate}/s through 3 instances: " + "; ".join(events) +
                  f"; lost {lost}, duplicates {dups} (bound {bound})", flush=True)
            self.assertEqual(lost, 0, "messages lost\n" + "\n".join(x.logs() for x in f.nodes))
            self.assertLessEqual(dups, bound)
            self.assertEqual(f.stop_all(), [0, 0, 0])
        finally:
            col.stop()
            f.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
