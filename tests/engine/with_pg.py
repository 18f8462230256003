"""Runs a command with a private PostgreSQL cluster (tests/integration/pgtest.py) and its URL
in SLUICE_TEST_STORE_URL; the cluster is removed afterwards, whatever the command did.

    python3 with_pg.py <command> [args...]
"""
import os, subprocess, sys

cmd = sys.argv[1:]
sys.argv = sys.argv[:1]  # harness.py (imported by pgtest) reads argv[1] as the sluice binary
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from pgtest import PgCluster  # noqa: E402

with PgCluster(db="postgres_test") as pg:
    # the tests create a database each through this one
    env = dict(os.environ, SLUICE_TEST_STORE_URL=pg.conninfo)
    sys.exit(subprocess.run(cmd, env=env).returncode)
