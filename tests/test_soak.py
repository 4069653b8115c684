"""The soak (scripts/soak.py, `make soak`), short: 30 seconds of mixed load with the store
down and then slow in the middle, every invariant holding, the report and the plot written;
and its checks, fed a run that broke them, fail it.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import soak

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_thirty_seconds_of_load_with_faults_keep_every_promise():
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "soak.py"), "--seconds", "30", "--users", "6", "--out", out],
            env=dict(os.environ, PYTHONPATH=str(ROOT / "scripts")),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        report = json.loads((pathlib.Path(out) / "report.json").read_text())
        assert (pathlib.Path(out) / "soak.png").stat().st_size > 10_000
        # The load ran and met the faults: routes answered, and the store's outage showed.
        assert {"register", "login", "refresh", "me", "logout"} <= set(report["routes"])
        assert [w["what"] for w in report["fault_windows"]] == ["store down", "writes slowed"]
        assert any(" 503 " in key for key in report["errors"]), report["errors"]
        for name, result in report["invariants"].items():
            assert result["failed"] == 0, (name, result)
        assert report["invariants"]["every 201 registration signs in"]["checked"] >= 6
        assert report["invariants"]["no refresh token spent twice"]["checked"] > 0
        assert "invariants:" in run.stdout and "FAIL" not in run.stdout


class NoCalls:
    def from_address(self, _):
        return self


def test_a_run_that_broke_a_promise_fails():
    # One refresh token exchanged for two different successors; a 500; a 503 long after
    # the store came back; six wrong passwords of one member checked in a row.
    windows = [{"what": "store down", "from": 100.0, "to": 105.0}]
    events = [
        {"kind": "refreshed", "t": 101.0, "presented": "a", "status": 200, "successor": "b"},
        {"kind": "refreshed", "t": 101.5, "presented": "a", "status": 200, "successor": "c"},
        {"kind": "request", "t": 102.0, "name": "me", "status": 500, "code": "server_error"},
        {"kind": "request", "t": 130.0, "name": "login", "status": 503, "code": "temporarily_unavailable"},
        {"kind": "request", "t": 103.0, "name": "login", "status": 503, "code": "temporarily_unavailable"},
    ] + [{"kind": "login", "t": 110.0 + i, "username": "u", "address": "127.0.0.9", "wrong": True, "status": 401} for i in range(6)]
    results = soak.check(events, windows, NoCalls())
    assert results["no refresh token spent twice"]["failed"] == 1
    assert results["no 5xx but 503 in the fault windows"]["failed"] == 2
    assert results["the throttle checked at most 5 wrong passwords in a row"]["failed"] == 1
    assert results["every 201 registration signs in"] == {"checked": 0, "failed": 0, "examples": []}
