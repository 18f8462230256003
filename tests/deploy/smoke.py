#!/usr/bin/env python3
"""tests/deploy/smoke.py -- runs the sluice container image and sees a rule fire.

`podman run` cannot start containers in this sandbox (setrlimit fails), so the image runs the
way a container runtime would, by hand: its filesystem comes out of `podman create` + `podman
export`; its entrypoint and command start as its user (uid:gid from the image config, never
root), in its working directory, with its environment, chrooted into that filesystem, in a new
mount and PID namespace where it is PID 1 (as in a container, SIGTERM reaches it only through
its own handler). The network is the host's: sluice listens on a free port of 127.0.0.1 and
reaches a Mosquitto started on another, configured by deploy/mosquitto.conf (the compose file's
broker), with the listener and the persistence directory moved.

Checked, each failing loudly: the image config (non-root numeric user, entrypoint, HEALTHCHECK,
the data volume, the exposed port, no credentials baked in), the filesystem (every library
resolves, no compiler or -dev package, nothing writable by the user outside its volume),
the broker config (persistence on, a restart's worth of queued messages kept across a broker
restart), then sluice itself: healthy and ready, the HEALTHCHECK command passes, a request
without the Bearer token is refused, a rule created with it fires and a non-matching message
does not, the rule lands in the volume, SIGTERM stops it with exit 0 (and the HEALTHCHECK then
fails), and after a restart from the same volume the rule is still there and fires again.

Cleans up after itself: the container it created, its temporary directory, the broker, the
processes it started (mounts live in the namespace and die with it; that none is left is
checked). Needs root (chroot, namespaces).

    tests/deploy/smoke.py --image localhost/sluice:test [--podman 'podman --root DIR ...']
"""
import argparse, json, os, pwd, secrets, shlex, shutil, signal, stat, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--image", required=True)
ap.add_argument("--podman", default="podman", help="the podman command, with its options")
ARGS = ap.parse_args()
sys.argv = sys.argv[:1]  # harness reads a sluice binary from argv; it is not used here
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from harness import Sub, free_port, pub, wait_port  # noqa: E402

PODMAN = shlex.split(ARGS.podman)
# The runtime libraries the issue names (libsqlite3-0 is required once the binary links it).
RUNTIME_PKGS = ["libmosquitto1", "libmicrohttpd12", "librdkafka1", "libpq5", "libcurl4", "libcjson1",
                "libpcre2-8-0", "libssl3", "tzdata", "ca-certificates"]
CREDENTIALS = ["SLUICE_ADMIN_TOKEN", "SLUICE_ACCESS_KEY_ID", "SLUICE_SECRET_ACCESS_KEY",
               "SLUICE_INSECURE_NO_AUTH", "SLUICE_MQTT_PASSWORD"]
passed = 0


class Failure(Exception):
    pass


def check(cond, what, detail=""):
    global passed
    if not cond:
        raise Failure(what + (": " + detail if detail else ""))
    passed += 1
    print(f"ok - {what}", flush=True)


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


def curl(method, url, token=None, body=None):
    argv = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method, url]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", body]
    r = run(argv, timeout=20)
    text, _, code = r.stdout.rpartition("\n")
    return int(code or 0), text


class Image:
    """The image's config, and its filesystem exported into a directory."""

    def __init__(self, ref, root):
        r = run(PODMAN + ["image", "inspect", ref])
        check(r.returncode == 0, f"image {ref} exists", r.stderr)
        self.ref = ref
        self.info = json.loads(r.stdout)[0]
        self.config = self.info["Config"]
        self.env = dict(e.split("=", 1) for e in self.config.get("Env") or [])
        self.root = root
        self.cid = None

    def export(self):
        # Never started: no healthcheck timer (podman would ask systemd for one).
        r = run(PODMAN + ["create", "--no-healthcheck", "--name", f"sluice-smoke-{os.getpid()}", self.ref])
        check(r.returncode == 0, "podman create", r.stderr)
        self.cid = r.stdout.strip()
        os.makedirs(self.root)
        exp = subprocess.Popen(PODMAN + ["export", self.cid], stdout=subprocess.PIPE)
        tar = run(["tar", "-x", "-p", "--numeric-owner", "-C", self.root], stdin=exp.stdout)
        exp.stdout.close()
        check(exp.wait() == 0 and tar.returncode == 0, "podman export, unpacked", tar.stderr)
        self.remove_container()

    def remove_container(self, checked=True):
        if self.cid:
            r = run(PODMAN + ["rm", "-f", self.cid])
            self.cid = None
            if checked:
                check(r.returncode == 0, "the container is removed", r.stderr)

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))


def check_config(img):
    """What the image's config says, before anything is exported."""
    c = img.config
    user = c.get("User") or ""
    uid, _, gid = user.partition(":")
    check(uid.isdigit() and gid.isdigit(), "the image's USER is a numeric uid:gid", repr(user))
    check(int(uid) != 0 and int(gid) != 0, "the image's user is not root", user)
    img.uid, img.gid = int(uid), int(gid)
    ep = c.get("Entrypoint") or []
    check(len(ep) == 1 and ep[0].startswith("/"), "the entrypoint is one absolute path", repr(ep))
    check((c.get("Cmd") or []) == ["serve"], "the command is `serve`", repr(c.get("Cmd")))
    hc = img.info.get("Healthcheck") or c.get("Healthcheck") or {}
    test = hc.get("Test") or []
    check(test[:1] == ["CMD-SHELL"] and "/healthz" in " ".join(test), "a HEALTHCHECK against /healthz",
          repr(hc))
    data = img.env.get("SLUICE_DATA_DIR", "")
    check(data in (c.get("Volumes") or {}), f"the data dir {data} is a VOLUME", repr(c.get("Volumes")))
    port = img.env.get("SLUICE_HTTP_ADDR", "").rpartition(":")[2]
    check(img.env.get("SLUICE_HTTP_ADDR", "").startswith("0.0.0.0:") and f"{port}/tcp" in (c.get("ExposedPorts") or {}),
          f"listens on 0.0.0.0:{port}, which is EXPOSEd", repr(c.get("ExposedPorts")))
    check(c.get("StopSignal") in ("SIGTERM", "15", None), "the stop signal is SIGTERM")
    check(bool(c.get("WorkingDir")), "a working directory is set")
    baked = [k for k in img.env if k in CREDENTIALS]
    check(not baked, "no credential is baked into the image", repr(baked))


def dpkg_packages(img):
    pkgs, name = set(), None
    with open(img.path("/var/lib/dpkg/status")) as f:
        for line in f:
            if line.startswith("Package: "):
                name = line.split()[1]
            elif line.startswith("Status: ") and line.split()[-1] == "installed":
                pkgs.add(name)
    return pkgs


def check_filesystem(img):
    exe = img.config["Entrypoint"][0]
    st = os.lstat(img.path(exe)) if os.path.lexists(img.path(exe)) else None
    check(st is not None and stat.S_ISREG(st.st_mode) and st.st_mode & 0o111,
          f"the entrypoint {exe} is an executable file")
    check(st.st_uid == 0 and not st.st_mode & 0o022, "the entrypoint belongs to root, not writable by others")
    data = img.env["SLUICE_DATA_DIR"]
    dst = os.stat(img.path(data))
    check(dst.st_uid == img.uid and dst.st_gid == img.gid, f"{data} belongs to the image's user")
    check(os.path.isdir(img.path(img.config["WorkingDir"])), "the working directory exists")
    r = run(["chroot", img.root, "/usr/bin/ldd", exe])
    check(r.returncode == 0 and "not found" not in r.stdout, "every library the binary links resolves in the image",
          r.stdout + r.stderr)
    pkgs = dpkg_packages(img)
    need = RUNTIME_PKGS + (["libsqlite3-0"] if "libsqlite3.so" in r.stdout else [])
    check(all(p in pkgs for p in need), "the runtime packages are installed",
          repr([p for p in need if p not in pkgs]))
    dev = sorted(p for p in pkgs if p.endswith("-dev") or p in ("gcc", "cpp", "cmake", "ninja-build", "binutils", "make"))
    check(not dev, "no compiler and no -dev package in the runtime image", repr(dev))
    check(not os.path.exists(img.path("/usr/include/mosquitto.h")), "no headers in the runtime image")
    data = img.env["SLUICE_DATA_DIR"].rstrip("/")
    writable = []
    for d, dirs, files in os.walk(img.root):
        rel = "/" + os.path.relpath(d, img.root).lstrip(".")
        if rel.rstrip("/") in ("/proc", "/sys", "/dev") or rel == data or rel.startswith(data + "/"):
            dirs[:] = []
            continue
        for n in dirs + files:
            st = os.lstat(os.path.join(d, n))
            if stat.S_ISLNK(st.st_mode) or os.path.join(rel, n) == data:
                continue
            if (st.st_uid == img.uid or st.st_gid == img.gid and st.st_mode & 0o020 or
                    st.st_mode & 0o002 and not st.st_mode & stat.S_ISVTX):
                writable.append(os.path.join(rel, n))
    check(not writable, "nothing outside the volume is writable by the user", repr(writable[:10]))


class Broker:
    """Mosquitto with deploy/mosquitto.conf, its listener on 127.0.0.1:<free>, its data in dir."""

    def __init__(self, dir):
        self.port = free_port()
        self.dir = dir
        os.makedirs(os.path.join(dir, "data"), exist_ok=True)
        lines = []
        with open(os.path.join(REPO, "deploy", "mosquitto.conf")) as f:
            for line in f:
                key = line.split()[0] if line.split() else ""
                if key == "listener":
                    line = f"listener {self.port} 127.0.0.1\n"
                elif key == "persistence_location":
                    line = f"persistence_location {dir}/data/\n"
                elif key == "log_dest":
                    line = f"log_dest file {dir}/mosquitto.log\n"
                lines.append(line)
        self.conf = os.path.join(dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.writelines(lines)
        # Started as root, mosquitto drops to its own user: which must be able to write there.
        try:
            pw = pwd.getpwnam("mosquitto")
        except KeyError:
            pw = None
        if os.geteuid() == 0 and pw:
            for p in (dir, os.path.join(dir, "data")):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self.p = None
        self.start()

    def opt(self, key):
        with open(self.conf) as f:
            for line in f:
                if line.split()[:1] == [key]:
                    return line.split()[1]
        return None

    def start(self):
        self.p = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        if not wait_port(self.port):
            self.p.kill()
            raise Failure("mosquitto did not start with deploy/mosquitto.conf: " + self.p.communicate()[1])

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.terminate()
            self.p.wait(10)
        self.p = None


def check_broker(broker):
    """deploy/mosquitto.conf keeps a persistent session's backlog through a broker restart, and
    more of it than Mosquitto's default limit (1000 messages) would."""
    n = 1500
    check(broker.opt("persistence") == "true", "deploy/mosquitto.conf: persistence on")
    check(int(broker.opt("max_queued_messages") or 0) >= n, "deploy/mosquitto.conf: max_queued_messages set")
    base = ["-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-V", "mqttv311"]
    cid = f"smoke-queue-{os.getpid()}"
    r = run(["mosquitto_sub", *base, "-c", "-i", cid, "-t", "smoke/queue", "-E"], timeout=20)
    check(r.returncode == 0, "a persistent session subscribes, then goes away", r.stderr)
    lines = "".join(f"m{i}\n" for i in range(n))
    r = run(["mosquitto_pub", *base, "-t", "smoke/queue", "-l"], input=lines, timeout=60)
    check(r.returncode == 0, f"{n} QoS 1 messages published while it is away", r.stderr)
    broker.stop()
    broker.start()
    r = run(["mosquitto_sub", *base, "-c", "-i", cid, "-t", "smoke/queue", "-C", str(n), "-W", "30"], timeout=40)
    got = r.stdout.split()
    check(got == [f"m{i}" for i in range(n)], f"after a broker restart the session gets all {n}, in order",
          f"got {len(got)}")
    run(["mosquitto_sub", *base, "-i", cid, "-t", "smoke/queue", "-E"], timeout=20)  # clean session: drop it


class Sluice:
    """The image's entrypoint, run as the image runs it (see the top of this file)."""

    def __init__(self, img, env, log):
        self.img = img
        mount = ("root=$1; shift; mount -t proc proc \"$root/proc\"; "
                 "for d in null zero full random urandom tty; do "
                 "[ -e \"$root/dev/$d\" ] || : > \"$root/dev/$d\"; mount --bind \"/dev/$d\" \"$root/dev/$d\"; done; "
                 f"exec chroot --userspec={img.uid}:{img.gid} --groups={img.gid} \"$root\" \"$@\"")
        argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child=SIGKILL", "--propagation", "private",
                "/bin/sh", "-ec", mount, "sh", img.root,
                "/bin/sh", "-c", 'cd "$0" && exec "$@"', img.config["WorkingDir"],
                *img.config["Entrypoint"], *img.config["Cmd"]]
        self.log = open(log, "ab")
        self.p = subprocess.Popen([shutil.which(argv[0]), *argv[1:]], env=env, stdout=self.log,
                                  stderr=subprocess.STDOUT)
        self.logfile = log

    def pid(self, tries=100):
        """The entrypoint's pid on the host: unshare's child (sh and chroot exec into it)."""
        for _ in range(tries):
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        with open(f"/proc/{d}/stat") as f:
                            if int(f.read().rsplit(")", 1)[1].split()[1]) == self.p.pid:
                                return int(d)
                    except (OSError, IndexError, ValueError):
                        pass
            time.sleep(0.05)
        raise Failure("the entrypoint's process was not found")

    def logs(self):
        with open(self.logfile, "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    def stop(self, timeout=30):
        """SIGTERM to the entrypoint (PID 1 of its namespace), as `docker stop` sends it."""
        if self.p.poll() is None:
            os.kill(self.pid(), signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
                raise Failure(f"sluice did not stop within {timeout}s of SIGTERM: " + self.logs())
        self.log.close()
        return self.p.returncode

    def kill(self):
        """SIGKILL to the entrypoint, which takes its PID namespace down with it. (unshare's
        --kill-child does not reach it: changing the uid clears the parent-death signal.)"""
        if self.p.poll() is None:
            try:
                os.kill(self.pid(tries=1), signal.SIGKILL)
            except (Failure, ProcessLookupError):
                pass
            self.p.kill()
            self.p.wait(10)
        self.log.close()


def wait_http(url, want=200, timeout=20, sluice=None):
    end = time.time() + timeout
    code = 0
    while time.time() < end:
        if sluice and sluice.p.poll() is not None:
            raise Failure(f"sluice exited with {sluice.p.returncode}: " + sluice.logs())
        code, _ = curl("GET", url)
        if code == want:
            return True
        time.sleep(0.1)
    return False


def healthcheck(img, env):
    """The image's HEALTHCHECK command, run inside the image as its user."""
    test = (img.info.get("Healthcheck") or img.config.get("Healthcheck"))["Test"]
    r = run(["chroot", f"--userspec={img.uid}:{img.gid}", f"--groups={img.gid}", img.root,
             "/bin/sh", "-c", test[1]], env=env, timeout=20)
    return r.returncode


def check_sluice(img, broker, work):
    token = secrets.token_hex(16)
    http_port = free_port()
    env = dict(img.env, HOME=img.config["WorkingDir"], HOSTNAME="sluice-smoke",
               SLUICE_HTTP_ADDR=f"127.0.0.1:{http_port}", SLUICE_MQTT_URL=f"mqtt://127.0.0.1:{broker.port}",
               SLUICE_MQTT_CLIENT_ID=f"sluice-smoke-{os.getpid()}", SLUICE_ADMIN_TOKEN=token)
    url = f"http://127.0.0.1:{http_port}"
    rule = json.dumps({"sql": "SELECT deviceId, temperature FROM 'smoke/+/telemetry' WHERE temperature > 50",
                       "actions": [{"republish": {"topic": "smoke/alerts/${topic(2)}", "qos": 1}}]})
    log = os.path.join(work, "sluice.log")
    for life in (1, 2):
        s = Sluice(img, env, log)
        sub = None
        try:
            check(wait_http(url + "/healthz", sluice=s), f"[{life}] /healthz answers", s.logs())
            check(wait_http(url + "/readyz", sluice=s), f"[{life}] /readyz: connected to the broker", s.logs())
            pid = s.pid()
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
            exe = os.path.basename(img.config["Entrypoint"][0])
            check(status["Name"] == exe[:15], f"[{life}] the entrypoint is what runs", status["Name"])
            ids = status["Uid"].split() + status["Gid"].split()
            check(ids == [str(img.uid)] * 4 + [str(img.gid)] * 4, f"[{life}] runs as {img.uid}:{img.gid}, not root",
                  status["Uid"] + " / " + status["Gid"])
            check(status.get("NSpid", "").split()[-1:] == ["1"], f"[{life}] is PID 1 of its namespace",
                  status.get("NSpid", ""))
            check(healthcheck(img, env) == 0, f"[{life}] the HEALTHCHECK command passes")
            if life == 1:
                code, body = curl("POST", url + "/rules/smoke_hot", body=rule)
                check(code == 401, "a rule without the Bearer token is refused (401)", f"{code} {body}")
                code, body = curl("POST", url + "/rules/smoke_hot", token=token, body=rule)
                check(code == 200, "CreateTopicRule with the Bearer token", f"{code} {body}")
                f = img.path(img.env["SLUICE_DATA_DIR"] + "/rules/smoke_hot.json")
                check(os.path.exists(f) and os.stat(f).st_uid == img.uid, "the rule is stored in the volume, by the user")
            else:
                code, body = curl("GET", url + "/rules/smoke_hot", token=token)
                check(code == 200 and "smoke/+/telemetry" in body, "[2] the rule survived the restart", f"{code} {body}")
            sub = Sub(broker.port, "smoke/alerts/#")
            dev = f"dev-{life}"
            pub(broker.port, f"smoke/{dev}/telemetry", json.dumps({"deviceId": dev, "temperature": 20}))
            pub(broker.port, f"smoke/{dev}/telemetry", json.dumps({"deviceId": dev, "temperature": 72.5}))
            lines = sub.wait(1, timeout=15)
            time.sleep(0.3)
            want = f'smoke/alerts/{dev} {{"deviceId":"{dev}","temperature":72.5}}'
            check(lines == [want], f"[{life}] the rule fires on the hot reading only", f"{lines} (want {want})")
            rc = s.stop()
            check(rc == 0, f"[{life}] SIGTERM stops it, exit 0", f"exit {rc}: " + s.logs())
            check(healthcheck(img, env) != 0, f"[{life}] the HEALTHCHECK command fails once it is down")
        finally:
            if sub:
                sub.stop()
            s.kill()


def leftover_mounts(dir):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(dir)]


def main():
    if os.geteuid() != 0:
        print("smoke.py needs root (chroot, mount and PID namespaces)", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="sluice-smoke-")
    os.chmod(work, 0o711)  # the broker, under its own user, reaches its directory in there
    img = broker = None
    started = time.time()
    failed = 0
    try:
        img = Image(ARGS.image, os.path.join(work, "rootfs"))
        check_config(img)
        img.export()
        check_filesystem(img)
        broker = Broker(os.path.join(work, "mosquitto"))
        check_broker(broker)
        check_sluice(img, broker, work)
    except Failure as e:
        print(f"not ok - {e}", flush=True)
        failed = 1
    finally:
        if broker:
            broker.stop()
        if img:
            img.remove_container(checked=False)
        left = leftover_mounts(work)
        if left:  # never delete through a mount
            print(f"not ok - mounts left behind under {work}: {left}")
            failed = 1
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"smoke: {passed} passed, {failed} failed ({time.time() - started:.1f}s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
