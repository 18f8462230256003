"""Shared by the integration tests: free loopback ports, a private Mosquitto, a `sluice serve`
process, small HTTP and MQTT clients and the AWS CLI. Every server listens on 127.0.0.1 on a
free port and is stopped by the test that started it."""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

SLUICE = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else "build/engine/sluice"
AWS_ENV = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               ASAN_OPTIONS="detect_leaks=1:halt_on_error=1")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10, host="127.0.0.1"):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((host, port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Broker:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp()
        conf = os.path.join(self.dir, "m.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    "max_queued_messages 100000\n")
        self.p = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        assert wait_port(self.port), "mosquitto did not start"

    def stop(self):
        self.p.terminate()
        self.p.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Sluice:
    def __init__(self, broker_port, data_dir, token=None, workers=2, mqtt_version=None,
                 config=None, env_extra=None, wait=True, ready_timeout=10, host="127.0.0.1"):
        self.http = free_port()
        self.url = f"http://{host}:{self.http}"  # host: "127.0.0.1", or "[::1]"
        env = dict(AWS_ENV, SLUICE_MQTT_URL=f"mqtt://127.0.0.1:{broker_port}",
                   SLUICE_HTTP_ADDR=f"{host}:{self.http}", SLUICE_DATA_DIR=data_dir,
                   SLUICE_WORKERS=str(workers),
                   SLUICE_LOG_LEVEL=os.environ.get("SLUICE_TEST_LOG_LEVEL", "warn"))
        if token:
            env["SLUICE_ADMIN_TOKEN"] = token
        if mqtt_version:
            env["SLUICE_MQTT_VERSION"] = mqtt_version
        env.update(env_extra or {})
        argv = [SLUICE, "serve"]
        if config is not None:
            self.config_file = os.path.join(data_dir, "sluice-test-config.json")
            os.makedirs(data_dir, exist_ok=True)
            with open(self.config_file, "w") as f:
                json.dump(config, f)
            argv += ["--config", self.config_file]
        self.log = tempfile.NamedTemporaryFile(delete=False)
        self.p = subprocess.Popen(argv, env=env, stdout=self.log,
                                  stderr=subprocess.STDOUT)
        if not wait:
            return
        if not wait_port(self.http, host=host.strip("[]")):
            raise AssertionError("sluice did not start: " + self.logs())
        self.wait_ready(ready_timeout)

    def wait_ready(self, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1):
                    return
            except urllib.error.HTTPError as e:
                # a 503 before the broker answers: close its connection now, not whenever
                # the garbage collector gets to it (tests with a per-client connection limit)
                e.close()
                time.sleep(0.05)
            except Exception:
                time.sleep(0.05)
        raise AssertionError("sluice not ready: " + self.logs())

    def logs(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            rc = self.p.wait(30)
        else:
            rc = self.p.returncode
        return rc


def http(method, url, body=None, headers=None):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Sub:
    """mosquitto_sub collecting 'topic payload' lines in a thread."""

    def __init__(self, port, topic, qos=1):
        self.lines = []
        self.p = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-t", topic, "-v", "-q",
                                   str(qos)], stdout=subprocess.PIPE, text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        time.sleep(0.3)

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait(self, n, timeout=15):
        end = time.time() + timeout
        while len(self.lines) < n and time.time() < end:
            time.sleep(0.02)
        return self.lines

    def stop(self):
        self.p.terminate()
        self.p.wait(5)
        self.t.join(5)
        self.p.stdout.close()


def pub(port, topic, payload, qos=1):
    subprocess.run(["mosquitto_pub", "-p", str(port), "-t", topic, "-m", payload, "-q", str(qos)],
                   check=True)


def aws(url, *args, env=None):
    """The AWS CLI; env replaces AWS_ENV (for other credentials)."""
    return subprocess.run(["aws", "--endpoint-url", url, *args], env=env or AWS_ENV,
                          capture_output=True, text=True, timeout=60)
