"""The PUBACK of a QoS 1 message leaves sluice only after the message is committed to the ingest
journal. A minimal MQTT 5 broker written here (it speaks just enough of the protocol: CONNECT,
SUBSCRIBE, PUBLISH, PUBACK, PINGREQ) sends QoS 1 PUBLISHes to sluice's input connection while
the journal's commits are held back (SLUICE_TEST_COMMIT_GATE), and watches the socket for PUBACK
bytes. libmosquitto queues each PUBACK before it calls on_message; sluice relies on it writing
them only when the application calls mosquitto_loop_write(). A libmosquitto upgrade that writes
them earlier fails this test instead of silently losing messages. The same peer against
ingest.journal=off (acknowledged on receipt) shows the test can see an early PUBACK."""
import os, socket, struct, sys, tempfile, threading, time, unittest

sys.path.insert(0, os.path.dirname(__file__))
import json  # noqa: E402
from harness import Sluice, http  # noqa: E402


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_packet(sock):
    """(first byte, body) of the next packet, or None when the connection closed."""
    h = sock.recv(1)
    if not h:
        return None
    mult, length = 1, 0
    while True:
        b = sock.recv(1)
        if not b:
            return None
        length += (b[0] & 0x7F) * mult
        mult *= 128
        if not b[0] & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return h[0], body


def publish_packet(topic, pid, payload):
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + struct.pack("!H", pid) + varint(0) + payload
    return bytes([0x32]) + varint(len(body)) + body


class Peer:
    """The broker side: accepts sluice's two connections and records what the input sends."""

    def __init__(self, refuse=None):
        self.refuse = refuse or {}   # filter -> SUBACK reason code
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.input = None            # the input connection (the one that subscribes)
        self.subscribed = threading.Event()
        self.pubacks = []            # (packet id, time) in arrival order
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        while True:
            p = read_packet(c)
            if p is None:
                return
            kind, body = p[0] >> 4, p[1]
            if kind == 1:                       # CONNECT -> CONNACK (no session)
                c.sendall(bytes([0x20, 3, 0, 0, 0]))
            elif kind == 8:                     # SUBSCRIBE -> SUBACK granting QoS 1
                pid = body[:2]
                plen = body[2]                  # properties (short here)
                rest = body[3 + plen:]
                codes = []
                while rest:
                    ln = struct.unpack("!H", rest[:2])[0]
                    codes.append(self.refuse.get(rest[2:2 + ln].decode(), 1))
                    rest = rest[2 + ln + 1:]
                sub = pid + varint(0) + bytes(codes)
                c.sendall(bytes([0x90]) + varint(len(sub)) + sub)
                self.input = c
                self.subscribed.set()
            elif kind == 4:                     # PUBACK
                with self.lock:
                    self.pubacks.append((struct.unpack("!H", body[:2])[0], time.time()))
            elif kind == 12:                    # PINGREQ
                c.sendall(bytes([0xD0, 0]))

    def close(self):
        self.srv.close()


RULE = {"sql": "SELECT * FROM 'in/#'", "actions": []}


class PubackOrder(unittest.TestCase):
    def setUp(self):
        self.data = tempfile.mkdtemp()
        self.gate = os.path.join(self.data, "gate")
        self.peer = Peer()

    def tearDown(self):
        self.peer.close()

    def start(self, journal):
        s = Sluice(self.peer.port, self.data,
                   env_extra={"SLUICE_JOURNAL": journal, "SLUICE_TEST_COMMIT_GATE": self.gate})
        st, _, body = http("POST", s.url + "/rules/order", json.dumps(RULE))
        self.assertEqual(st, 200, body)
        self.assertTrue(self.peer.subscribed.wait(10), "sluice never subscribed")
        return s

    def send(self, n):
        for pid in range(1, n + 1):
            self.peer.input.sendall(publish_packet("in/x", pid, b'{"n":%d}' % pid))

    def test_no_puback_leaves_before_the_commit(self):
        s = self.start("batch")
        try:
            open(self.gate, "w").close()        # hold every commit back
            time.sleep(0.3)
            self.send(10)
            time.sleep(1.5)
            with self.peer.lock:
                early = list(self.peer.pubacks)
            self.assertEqual(early, [], "PUBACKs left before the journal commit: %r" % early)
            self.assertIsNone(s.p.poll(), "sluice died while its commit was held back")
            released = time.time()
            os.unlink(self.gate)
            end = time.time() + 10
            while len(self.peer.pubacks) < 10 and time.time() < end:
                time.sleep(0.02)
            with self.peer.lock:
                acks = list(self.peer.pubacks)
            self.assertEqual([pid for pid, _ in acks], list(range(1, 11)),
                             "PUBACKs missing or out of PUBLISH order")
            self.assertTrue(all(t >= released for _, t in acks))
        finally:
            if os.path.exists(self.gate):
                os.unlink(self.gate)
            self.assertEqual(s.stop(), 0)

    def test_control_without_a_journal_the_puback_is_immediate(self):
        s = self.start("off")
        try:
            open(self.gate, "w").close()        # has no effect: there is no journal
            self.send(10)
            end = time.time() + 5
            while len(self.peer.pubacks) < 10 and time.time() < end:
                time.sleep(0.02)
            self.assertEqual(len(self.peer.pubacks), 10,
                             "the harness did not see the PUBACKs of an unjournaled input")
        finally:
            os.unlink(self.gate)
            self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
