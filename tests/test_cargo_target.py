"""Built binaries are found where cargo puts them, not in a hard-coded ./target.

CARGO_TARGET_DIR (often set globally) or `build.target-dir` moves cargo's output;
scripts/cargo_target.py asks cargo where it is, and the local API launcher, the RIE tests
and the benchmark run the binaries from there. Cheap: no second build. The local API test
points CARGO_TARGET_DIR at a temporary directory whose `debug` is a symlink to the real
build, and runs inside scripts/with_dynamodb.py like tests/test_api.py.
"""

import os
import pathlib
import re
import secrets
import subprocess
import sys
import tempfile

import pytest

from devtools import cargo_target
from devtools.net import free_port
from support import Api, new_name, start_local_api, stop

ROOT = pathlib.Path(__file__).resolve().parent.parent

LOCAL_API = ROOT / "scripts" / "local_api.py"


@pytest.fixture
def uncached():
    """target_dir() asked afresh, in this test's environment, and forgotten afterwards."""
    cargo_target.target_dir.cache_clear()
    yield
    cargo_target.target_dir.cache_clear()


def test_target_dir_follows_cargo_target_dir(tmp_path, monkeypatch, uncached):
    monkeypatch.setenv("CARGO_TARGET_DIR", str(tmp_path))
    assert cargo_target.target_dir() == tmp_path
    assert cargo_target.binary("local-api") == tmp_path / "debug" / "local-api"
    assert cargo_target.binary("login", "release") == tmp_path / "release" / "login"


def test_a_relative_target_dir_is_relative_to_the_repository(tmp_path, monkeypatch, uncached):
    # As `cargo build` in the repository root reads it, wherever the caller runs from.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARGO_TARGET_DIR", "elsewhere/target")
    assert cargo_target.target_dir() == ROOT / "elsewhere" / "target"


def test_target_dir_follows_build_target_dir_config(tmp_path, monkeypatch, uncached):
    # CARGO_BUILD_TARGET_DIR is `build.target-dir` of .cargo/config.toml, set from the
    # environment: what cargo reads from its configuration is honoured too.
    monkeypatch.delenv("CARGO_TARGET_DIR", raising=False)
    monkeypatch.setenv("CARGO_BUILD_TARGET_DIR", str(tmp_path))
    assert cargo_target.target_dir() == tmp_path


def test_local_api_runs_the_binary_from_cargo_target_dir():
    real = cargo_target.target_dir() / "debug"
    assert (real / "local-api").exists(), f"{real / 'local-api'} is missing: run `cargo build --workspace`"
    secret = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory() as other, tempfile.TemporaryFile() as logs:
        other = pathlib.Path(other)
        (other / "debug").symlink_to(real, target_is_directory=True)
        env = dict(os.environ, CARGO_TARGET_DIR=str(other), JWT_SECRET=secret)
        port, proc = start_local_api(env, logs)
        try:
            # local_api.py exec'd the binary under the path it built: argv[0] shows it
            # (/proc/PID/exe would show the symlink's target, the same file either way).
            argv0 = pathlib.Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            assert argv0 == str(other / "debug" / "local-api")
            res = Api(port, "correct horse battery").register(new_name())
            assert res.status == 201, res
        finally:
            assert stop(proc) == 0, "the local API stops cleanly on SIGTERM"


def test_local_api_names_the_missing_binary_where_cargo_would_put_it(tmp_path):
    empty = tmp_path / "empty-target"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, str(LOCAL_API), "--port", str(free_port())],
        env=dict(os.environ, CARGO_TARGET_DIR=str(empty), JWT_SECRET=secrets.token_urlsafe(48)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert f"{empty / 'debug' / 'local-api'} is missing" in done.stderr, done.stderr


def test_no_script_or_test_hard_codes_the_target_directory():
    # Every binary path goes through scripts/devtools/cargo_target.py.
    hard_coded = re.compile(r"""["']target["']\s*/|\btarget/(?:debug|release)\b""")
    files = [ROOT / "Makefile", *ROOT.glob("scripts/*.py"), *ROOT.glob("scripts/devtools/*.py"), *ROOT.glob("tests/*.py")]
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        if path != pathlib.Path(__file__).resolve()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if hard_coded.search(line)
    ]
    assert not offenders, offenders
