"""A private PostgreSQL 15 cluster for the integration tests: initdb into a temp dir, a server
on 127.0.0.1 and a free port (socket dir inside the temp dir), trust auth, one database, psql
helpers, stop/start/restart on the same dir and port, and a cleanup that also works after a
failure. initdb and the server refuse to run as root, so as root they run as the `postgres`
user (runuser); the temp dir is then owned by that user.

    with PgCluster() as pg:
        pg.psql("CREATE TABLE t(seq int PRIMARY KEY)")
        ... pg.conninfo ...
        pg.restart()
        n = int(pg.query("SELECT count(*) FROM t"))
"""
import os, shutil, signal, subprocess, tempfile, time

from harness import free_port, wait_port

PG_BIN = os.environ.get("SLUICE_PG_BIN", "/usr/lib/postgresql/15/bin")
PG_USER = "postgres"


def _as_pg(argv):
    """argv run as the postgres user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--"] + argv
    return argv


class PgCluster:
    def __init__(self, db="sluice", port=None, settings=None):
        self.db = db
        self.port = port or free_port()
        self.base = tempfile.mkdtemp(prefix="sluice-pg-")
        self.data = os.path.join(self.base, "data")
        self.sock = os.path.join(self.base, "sock")
        self.logfile = os.path.join(self.base, "server.log")
        os.mkdir(self.sock)
        if os.geteuid() == 0:
            for d in (self.base, self.sock):
                shutil.chown(d, PG_USER, PG_USER)
        # fsync off: the tests stop the server cleanly (fast shutdown checkpoints), never the OS
        self.settings = dict({"fsync": "off", "listen_addresses": "127.0.0.1",
                              "max_connections": "50"}, **(settings or {}))
        try:
            self._run([f"{PG_BIN}/initdb", "-D", self.data, "-A", "trust", "-U", PG_USER,
                       "-E", "UTF8", "--no-sync", "--locale=C.UTF-8"])
            self.start()
            self._run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER,
                       "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc",
                       f'CREATE DATABASE "{db}"'], as_pg=False)
        except BaseException:
            self.cleanup()
            raise

    @property
    def conninfo(self):
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{self.db}"

    def _run(self, argv, as_pg=True, check=True, timeout=60):
        r = subprocess.run(_as_pg(argv) if as_pg else argv, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}): "
                                 f"{r.stdout}{r.stderr}{self.log_tail()}")
        return r

    def log_tail(self, n=3000):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def running(self):
        return self._run([f"{PG_BIN}/pg_ctl", "-D", self.data, "status"],
                         check=False).returncode == 0

    def start(self):
        opts = f"-p {self.port} -k {self.sock} " + " ".join(
            f"-c {k}={v}" for k, v in self.settings.items())
        self._run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.logfile, "-w", "-t", "30",
                   "-o", opts, "start"])
        assert wait_port(self.port, 10), "postgres did not listen: " + self.log_tail()

    def stop(self, mode="fast"):
        """pg_ctl stop -m fast|smart|immediate; falls back to SIGKILL of our postmaster."""
        if not os.path.exists(os.path.join(self.data, "postmaster.pid")):
            return
        r = self._run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30",
                       "stop"], check=False)
        if r.returncode != 0 and self.running():
            self._kill_postmaster()

    def restart(self, down_seconds=0):
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def signal_all(self, sig):
        """Sends sig to the cluster's postmaster and every process it started (SIGSTOP: the
        server stalls without refusing anything, as an overloaded one does; SIGCONT resumes)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                pm = int(f.readline())
        except (OSError, ValueError):
            return
        pids = [pm]
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pm:
                            pids.append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def _kill_postmaster(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                pid = int(f.readline())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def psql(self, sql, db=None):
        """Runs sql (one or more statements) and returns psql's unaligned, tuples-only output."""
        r = self._run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER,
                       "-d", db or self.db, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t",
                       "-c", sql], as_pg=False)
        return r.stdout.strip()

    def query(self, sql):
        """One value, as text."""
        return self.psql(sql)

    def rows(self, sql, sep="|"):
        out = self.psql(sql)
        return [line.split(sep) for line in out.splitlines()] if out else []

    def cleanup(self):
        try:
            self.signal_all(signal.SIGCONT)  # a test that failed while the server was stalled
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
