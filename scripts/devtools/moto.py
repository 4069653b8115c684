"""The local DynamoDB API: a moto server (scripts/moto_dynamodb.py, which also speaks
Secrets Manager) on a free loopback port, and the template's tables in it
(scripts/dynamodb_tables.py). scripts/with_dynamodb.py runs a command beside them;
tests that need a server of their own start one here.
"""

import json
import subprocess
import sys
import time
import urllib.request

from devtools import ROOT
from devtools.net import free_port

LOG_DIR = ROOT / ".local"


def wait_until_up(url, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"moto server exited early (status {proc.returncode}); see {LOG_DIR / 'moto.log'}")
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"moto server did not answer on {url} within {timeout:.0f}s; see {LOG_DIR / 'moto.log'}")


def start_moto(env, log):
    """A moto server on a free loopback port, answering; returns (process, endpoint)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "moto_dynamodb.py"), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    wait_until_up(endpoint, proc)
    return proc, endpoint


def create_tables(endpoint, env):
    """Creates the template's tables at `endpoint`; returns the variables naming them."""
    created = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dynamodb_tables.py"), "create", "--endpoint", endpoint],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(created.stdout)


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
