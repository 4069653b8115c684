"""`make bench-forgot`: does the forgot-password answer's time tell whether an account matched?

Runs inside scripts/with_dynamodb.py, after `cargo build -p local-api`:

  .venv/bin/python scripts/with_dynamodb.py -- .venv/bin/python scripts/bench_forgot.py

Starts the local API as `make dev` does (mail to its local mailbox), makes a user whose
address is verified, then sends BENCH_FORGOT_RUNS (default 40) requests of each kind,
interleaved: an address that matches (a reset mail is queued, within the account's
allowance of three an hour, so most of them stop at the allowance) and one that matches
nothing. Prints the median and the 90th percentile of each, and their difference. Every
answer is the same 202 `{}`; the service holds each for at least 250 ms (FORGOT_FLOOR in
shared/src/auth/reset.rs) so that the work behind it (a lookup, an allowance, a token and a
mail written) stays under the floor. Figures only, no verdict: the machine is shared.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from devtools import ROOT
from devtools.net import free_port

RUNS = int(os.environ.get("BENCH_FORGOT_RUNS", "40"))


def call(base, method, path, body=None):
    req = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main():
    port = free_port()
    env = dict(os.environ, JWT_SECRET=uuid.uuid4().hex * 2, JWT_ALGORITHM="HS256")
    with tempfile.TemporaryFile() as logs:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "local_api.py"), "--port", str(port), "--example-port", "0"],
            env=env,
            stdout=logs,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    call(base, "GET", "/local/mail")
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        sys.exit("the local API did not start")
                    time.sleep(0.1)
            name = f"bench-{uuid.uuid4().hex[:10]}"
            email = f"{name}@example.com"
            status, _ = call(base, "POST", "/auth/register", {"username": name, "password": "bench passphrase", "email": email})
            assert status == 201, status
            token = None
            while token is None:
                _, body = call(base, "GET", "/local/mail")
                texts = [m["text"] for m in json.loads(body)["messages"] if email in m["to"]]
                found = [re.search(r"verify-email\?token=([A-Za-z0-9_-]+)", t) for t in texts]
                token = next((f.group(1) for f in found if f), None)
                time.sleep(0.05)
            assert call(base, "POST", "/auth/email/verify", {"token": token})[0] == 200

            times = {"matches": [], "matches nothing": []}
            for i in range(RUNS):
                for kind, address in (("matches", email), ("matches nothing", f"nobody-{i}@example.com")):
                    started = time.perf_counter()
                    status, body = call(base, "POST", "/auth/password/forgot", {"email": address})
                    elapsed = (time.perf_counter() - started) * 1000
                    assert (status, body) == (202, b"{}"), (status, body)
                    times[kind].append(elapsed)
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    print(f"POST /auth/password/forgot, {RUNS} requests each (ms; the local API's debug or release build as built)")
    print(f"{'':18} {'median':>8} {'p90':>8} {'min':>8} {'max':>8}")
    for kind, values in times.items():
        values.sort()
        p90 = values[int(len(values) * 0.9) - 1]
        print(f"{kind:18} {statistics.median(values):8.1f} {p90:8.1f} {values[0]:8.1f} {values[-1]:8.1f}")
    diff = statistics.median(times["matches"]) - statistics.median(times["matches nothing"])
    print(f"median difference (matches - matches nothing): {diff:+.1f} ms")


if __name__ == "__main__":
    main()
