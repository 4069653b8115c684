"""Load and soak: a mixed workload against the local API for a while, the store failing in
the middle, and then proof that nothing was lost.

  soak.py [--seconds N] [--users N] [--out DIR]      (make soak; SOAK_SECONDS, SOAK_USERS)

Runs inside scripts/with_dynamodb.py (which provides the DynamoDB API and tables). Starts
the local API as `make dev` does, with a fault proxy (devtools.faultproxy) between it and
the store, and Locust, headless, with scripts/soak_locustfile.py: members who register, log
in (some with a wrong password, each from a loopback address of its own), refresh (some
twice at once with one token), call /auth/me, list and end sessions, change their
password, log out and log out everywhere. In the middle the store goes away for a few
seconds (every connection refused), and later every write is held half a second.

Then it checks, from what the run wrote down and over HTTP:
- every 201 registration signs in (with its latest password);
- every 204 logout's tokens are dead (access and refresh);
- no refresh token was spent twice (each one presented was exchanged for one successor,
  however often it was presented);
- no session that started before a 204 "log out everywhere" works after it;
- no 5xx but 503, and 503 only while the store failed (and a few seconds after);
- the failed-login throttle never let more than 5 wrong passwords in a row of one member be
  checked (the API runs with LOGIN_LOCK_SECONDS=900, so a locked pair stays locked).

Prints the report (requests per second per route, p50/p95/p99, errors by code, the
invariants with their counts), writes it to DIR/report.json and a plot (latency and
throughput over time, the fault windows shaded) to DIR/soak.png; exits 1 if an invariant
fails.
"""

import argparse
import base64
import json
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from devtools import ROOT
from devtools.faultproxy import FaultyProxy
from devtools.localapi import Api, start_local_api, stop

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
# After the store is back: how long a 503 may still be answered (a request that started
# during the outage, retried by the SDK: 3 attempts of 2 s).
SETTLE_SECONDS = 8
MAX_EVALUATED_FAILURES = 5


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def session_started(sid):
    """A session id is a UUIDv7: its first 48 bits are its start, in epoch milliseconds."""
    return uuid.UUID(sid).int >> 80


class Faults:
    """The fault schedule, run beside the load: the store refused for a while, then writes
    slowed for a while. Each window is noted (epoch seconds)."""

    def __init__(self, proxy, seconds):
        self.proxy, self.seconds = proxy, seconds
        self.windows = []
        self.outage = max(3.0, min(10.0, seconds * 0.12))
        self.slow = max(3.0, min(20.0, seconds * 0.15))

    def run(self, started):
        self._at(started + self.seconds * 0.35)
        begin = time.time()
        self.proxy.set_mode("refuse")
        time.sleep(self.outage)
        self.proxy.set_mode("pass")
        self.windows.append({"what": "store down", "from": begin, "to": time.time()})
        self._at(started + self.seconds * 0.65)
        begin = time.time()
        self.proxy.set_mode("scripted", lambda operation, request: 0.5 if operation in WRITES else "pass")
        time.sleep(self.slow)
        self.proxy.set_mode("pass")
        self.windows.append({"what": "writes slowed", "from": begin, "to": time.time()})

    @staticmethod
    def _at(when):
        time.sleep(max(0.0, when - time.time()))


def run_load(url, users, seconds, events_file):
    env = dict(os.environ, SOAK_EVENTS=str(events_file), PYTHONPATH=str(ROOT / "scripts"))
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "scripts" / "soak_locustfile.py"),
        "--headless", "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds}s",
        "--host", url, "--only-summary", "--stop-timeout", "10", "--exit-code-on-error", "0",
        "--loglevel", "WARNING",
    ]
    return subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=seconds + 120)


def read_events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def report(events, started, ended, windows):
    requests = [e for e in events if e["kind"] == "request"]
    duration = max(ended - started, 1e-9)
    routes = {}
    for r in requests:
        routes.setdefault(r["name"], []).append(r)
    per_route = {
        name: {
            "requests": len(rs),
            "per_second": round(len(rs) / duration, 2),
            "p50_ms": round(percentile([r["ms"] for r in rs], 50), 1),
            "p95_ms": round(percentile([r["ms"] for r in rs], 95), 1),
            "p99_ms": round(percentile([r["ms"] for r in rs], 99), 1),
        }
        for name, rs in sorted(routes.items())
    }
    errors = {}
    for r in requests:
        if r["status"] >= 400 or r["status"] == 0:
            key = f"{r['name']} {r['status']} {r['code'] or ''}".strip()
            errors[key] = errors.get(key, 0) + 1
    return {
        "seconds": round(duration, 1),
        "requests": len(requests),
        "per_second": round(len(requests) / duration, 1),
        "routes": per_route,
        "errors": dict(sorted(errors.items())),
        "fault_windows": [{**w, "from": round(w["from"] - started, 1), "to": round(w["to"] - started, 1)} for w in windows],
    }


def check(events, windows, api):
    """Each invariant: how many cases it covered, and the ones that failed."""
    results = {}

    def result(name, checked, failures):
        results[name] = {"checked": checked, "failed": len(failures), "examples": failures[:5]}

    # Every 201 registration signs in, with the member's latest password (or one it asked
    # for, should the answer of a change have been lost).
    passwords = {}
    for e in events:
        if e["kind"] == "registered":
            passwords[e["username"]] = [e["password"]]
        elif e["kind"] in ("password_changed", "password_change_asked") and e["username"] in passwords:
            passwords[e["username"]].append(e["password"])
    checker = api.from_address("127.254.254.254")
    failures = []
    for username, candidates in passwords.items():
        if not any(checker.login(username, p).status == 200 for p in reversed(candidates)):
            failures.append(username)
    result("every 201 registration signs in", len(passwords), failures)

    # Every 204 logout's tokens are dead.
    checker = api.from_address("127.254.254.253")
    logouts = [e for e in events if e["kind"] == "logged_out"]
    failures = []
    for e in logouts:
        if checker.me(e["access"]).status != 401 or checker.refresh(e["refresh"]).status != 401:
            failures.append(e["username"])
    result("every 204 logout's tokens are dead", len(logouts), failures)

    # No refresh token was spent twice: however often one was presented, every success
    # handed out the same successor.
    successors = {}
    for e in events:
        if e["kind"] == "refreshed" and e["status"] == 200:
            successors.setdefault(e["presented"], set()).add(e["successor"])
    doubles = [jti for jti, s in successors.items() if len(s) > 1]
    result("no refresh token spent twice", len(successors), doubles)

    # No session that started before a 204 "log out everywhere" works after it.
    checker = api.from_address("127.254.254.252")
    pairs = {}
    for e in events:
        if e["kind"] == "pair":
            pairs.setdefault(e["username"], []).append(e)
    latest = {}
    for e in (e for e in events if e["kind"] == "logged_out_all"):
        latest[e["username"]] = max(latest.get(e["username"], 0), e["asked"])
    failures, checked = [], 0
    for username, asked in latest.items():
        # Each session once: older than the user's latest logout-all is older than one.
        for pair in {p["sid"]: p for p in pairs.get(username, [])}.values():
            if session_started(pair["sid"]) < asked * 1000:
                checked += 1
                if checker.me(pair["access"]).status != 401:
                    failures.append(pair["sid"])
    result("no session survives its logout-all", checked, failures)

    # No 5xx but 503, and 503 only while the store failed (and as it settled).
    requests = [e for e in events if e["kind"] == "request"]
    failures = []
    for r in requests:
        if r["status"] >= 500 or r["status"] == 0:
            during = any(w["from"] <= r["t"] <= w["to"] + SETTLE_SECONDS for w in windows)
            if r["status"] != 503 or not during:
                failures.append(f"{r['name']} {r['status']} {r['code']} at {r['t'] - windows[0]['from']:+.1f} s")
    result("no 5xx but 503 in the fault windows", len(requests), failures)

    # The throttle: at most 5 wrong passwords in a row of one member checked (401); the
    # rest of them locked (429).
    runs, failures = {}, []
    for e in (e for e in events if e["kind"] == "login"):
        key = (e["username"], e["address"])
        if e["status"] == 200:
            runs[key] = 0
        elif e["wrong"] and e["status"] == 401:
            runs[key] = runs.get(key, 0) + 1
            if runs[key] == MAX_EVALUATED_FAILURES + 1:
                failures.append(e["username"])
    result("the throttle checked at most 5 wrong passwords in a row", len(runs), failures)
    return results


def plot(events, started, windows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    requests = [e for e in events if e["kind"] == "request"]
    seconds = {}
    for r in requests:
        seconds.setdefault(int(r["t"] - started), []).append(r)
    xs = sorted(seconds)
    fig, (latency, throughput) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    latency.plot(xs, [percentile([r["ms"] for r in seconds[x]], 50) for x in xs], label="p50")
    latency.plot(xs, [percentile([r["ms"] for r in seconds[x]], 95) for x in xs], label="p95")
    latency.set_ylabel("latency (ms)")
    latency.set_yscale("log")
    latency.legend(loc="upper right")
    ok = [sum(1 for r in seconds[x] if r["status"] < 400) for x in xs]
    refused = [sum(1 for r in seconds[x] if 400 <= r["status"] < 500) for x in xs]
    failed = [sum(1 for r in seconds[x] if r["status"] >= 500 or r["status"] == 0) for x in xs]
    throughput.stackplot(xs, ok, refused, failed, labels=["2xx", "4xx", "5xx"], colors=["#4c9", "#fb3", "#e44"])
    throughput.set_ylabel("requests per second")
    throughput.set_xlabel("seconds since the start")
    throughput.legend(loc="upper right")
    for axis in (latency, throughput):
        for w in windows:
            axis.axvspan(w["from"] - started, w["to"] - started, color="grey", alpha=0.25)
    latency.set_title("Soak: " + ", ".join(f"{w['what']} (shaded)" for w in windows))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_report(summary, invariants):
    print(f"Soak: {summary['seconds']} s, {summary['requests']} requests, {summary['per_second']} per second")
    for w in summary["fault_windows"]:
        print(f"  fault: {w['what']} from {w['from']} s to {w['to']} s")
    print(f"  {'route':<26}{'requests':>9}{'per s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for name, r in summary["routes"].items():
        print(f"  {name:<26}{r['requests']:>9}{r['per_second']:>8}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['p99_ms']:>9}")
    print("  errors (route, status, code): count")
    for key, count in summary["errors"].items():
        print(f"    {key}: {count}")
    print("  invariants:")
    for name, r in invariants.items():
        verdict = "ok  " if r["failed"] == 0 else "FAIL"
        print(f"    {verdict} {name}: {r['checked']} checked, {r['failed']} failed {r['examples'] or ''}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", "180")))
    parser.add_argument("--users", type=int, default=int(os.environ.get("SOAK_USERS", "12")))
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / ".local" / "soak")
    args = parser.parse_args()
    if args.seconds < 20 or args.users < 1:
        parser.error("at least 20 seconds (the faults need room) and one user")
    args.out.mkdir(parents=True, exist_ok=True)
    events_file = args.out / "events.jsonl"
    events_file.write_text("")

    host, port = os.environ["AWS_ENDPOINT_URL_DYNAMODB"].rsplit("/", 1)[-1].rsplit(":", 1)
    proxy = FaultyProxy((host, int(port)))
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{proxy.port}",
        JWT_SECRET=secrets.token_urlsafe(48),
        LOGIN_LOCK_SECONDS="900",
    )
    logs = tempfile.TemporaryFile()
    api_port, api_proc = start_local_api(env, logs)
    url = f"http://127.0.0.1:{api_port}"
    try:
        faults = Faults(proxy, args.seconds)
        started = time.time()
        schedule = threading.Thread(target=faults.run, args=(started,), daemon=True)
        schedule.start()
        load = run_load(url, args.users, args.seconds, events_file)
        ended = time.time()
        schedule.join(timeout=60)
        proxy.set_mode("pass")
        if load.returncode != 0:
            print(load.stderr[-3000:], file=sys.stderr)
            print(f"soak: Locust stopped with status {load.returncode}", file=sys.stderr)
            return 1
        events = read_events(events_file)
        summary = report(events, started, ended, faults.windows)
        invariants = check(events, faults.windows, Api(api_port, ""))
    finally:
        stop(api_proc)
        proxy.close()
    plot(events, started, faults.windows, args.out / "soak.png")
    (args.out / "report.json").write_text(json.dumps({**summary, "invariants": invariants}, indent=2) + "\n")
    print_report(summary, invariants)
    print(f"  report: {args.out / 'report.json'}, plot: {args.out / 'soak.png'}")
    return 0 if all(r["failed"] == 0 for r in invariants.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
