"""Runs a command against a DynamoDB API with the project's tables, then cleans up.

  with_dynamodb.py -- COMMAND [ARGS...]

If AWS_ENDPOINT_URL_DYNAMODB is already set (DynamoDB Local in Docker, say), that
endpoint is used as it is. Otherwise a moto server is started on a free loopback port and
stopped when the command ends, whether it passed, failed or was interrupted.

The command sees the SDK's standard variables (AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION,
credentials) and USERS_TABLE / REVOKED_TOKENS_TABLE / SESSIONS_TABLE. Exit status: the command's.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".local"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def interrupt(*_):
    raise KeyboardInterrupt


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit(__doc__)

    env = dict(os.environ)
    env.setdefault("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1"))
    env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])  # boto3 reads this one
    moto = None
    # Make SIGTERM behave like Ctrl-C so the `finally` below always runs.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        endpoint = env.get("AWS_ENDPOINT_URL_DYNAMODB")
        if endpoint:
            env.setdefault("AWS_ACCESS_KEY_ID", "local")
            env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        else:
            LOG_DIR.mkdir(exist_ok=True)
            # Emulator credentials: moto accepts any; these never reach AWS.
            env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
            env.pop("AWS_PROFILE", None)
            env.pop("AWS_SESSION_TOKEN", None)
            with open(LOG_DIR / "moto.log", "wb") as log:
                moto, endpoint = start_moto(env, log)
            env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
            print(f"moto DynamoDB server on {endpoint} (log: .local/moto.log)", file=sys.stderr)

        env.update(create_tables(endpoint, env))
        child = subprocess.Popen(argv, env=env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
            return 130
    except subprocess.CalledProcessError as e:
        sys.stderr.write(e.stderr or "")
        print("creating the tables failed", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        stop(moto)


if __name__ == "__main__":
    sys.exit(main())
