"""A local HTTP/1.1 server for tests of actions that call out over HTTP.

    sink = HttpSink()                  # 127.0.0.1, a free port, keep-alive
    sink.url("/hook/a")                # "http://127.0.0.1:<port>/hook/a"
    sink.script([500, 500, 500])       # the next three requests get 500, then the fixed status
    sink.set_status(503)               # the fixed status (default 200), for every path ...
    sink.set_status(404, "/other")     # ... or for one path
    reqs = sink.wait(10)               # blocks until 10 requests arrived (all of them, any path)
    sink.bodies("/hook/a")             # bodies answered 2xx on that path, in arrival order
    sink.stop()

Every request is recorded (Req: n, method, path, headers, body, time, status answered,
connection number), whatever it was answered. Statuses are decided in arrival order under one
lock, so "the 5th to 8th requests fail" is exact even with concurrent connections. Responses
carry a Content-Length, so clients keep their connections open."""
import collections, http.server, json, socket, threading, time

Req = collections.namedtuple("Req", "n method path headers body time status conn")


class HttpSink:
    def __init__(self):
        self.requests = []
        self.connections = 0
        self._cv = threading.Condition()
        self._queue = collections.deque()
        self._fixed = 200
        self._by_path = {}
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def setup(self):
                super().setup()
                # the head and the body are two writes: without this, Nagle holds the body
                # for the client's delayed ACK (40 ms a request)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with sink._cv:
                    sink.connections += 1
                    self.conn_no = sink.connections

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                path = self.path
                with sink._cv:
                    if sink._queue:
                        status = sink._queue.popleft()
                    else:
                        status = sink._by_path.get(path.split("?")[0], sink._fixed)
                    sink.requests.append(Req(len(sink.requests), self.command, path,
                                             {k.lower(): v for k, v in self.headers.items()},
                                             body, time.time(), status, self.conn_no))
                    sink._cv.notify_all()
                out = json.dumps({"status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = _any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path=""):
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, statuses):
        """The next len(statuses) requests get these statuses, in order."""
        with self._cv:
            self._queue.extend(statuses)

    def set_status(self, status, path=None):
        """The status answered once the script is used up: for every path, or for one."""
        with self._cv:
            if path is None:
                self._fixed = status
            else:
                self._by_path[path] = status

    def wait(self, n, timeout=20, path=None, ok=False):
        """The requests (on path, answered 2xx when ok) once there are at least n, or what
        arrived by the timeout."""
        end = time.time() + timeout
        with self._cv:
            while True:
                got = self._select(path, ok)
                left = end - time.time()
                if len(got) >= n or left <= 0:
                    return got
                self._cv.wait(min(left, 0.5))

    def _select(self, path, ok):
        return [r for r in self.requests
                if (path is None or r.path == path) and (not ok or 200 <= r.status < 300)]

    def snapshot(self, path=None, ok=False):
        with self._cv:
            return self._select(path, ok)

    def bodies(self, path=None):
        """Bodies of the requests answered 2xx (on path), in arrival order."""
        return [r.body for r in self.snapshot(path, ok=True)]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
