"""Swagger UI for the local API's documentation page (/docs), vendored: the npm registry's
tarball of swagger-ui-dist (the version pinned below), checked against its pinned sha512
integrity, the files the page loads extracted with the package's licences into
.local/docs-assets/. scripts/docs_assets.py is the command (`make docs-assets`); the local
API and tests/test_openapi.py find the files here. Python's standard library only: the
Makefile runs it on the system's Python.
"""

import base64
import hashlib
import os
import pathlib
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request

from devtools import ROOT

DEST = ROOT / ".local" / "docs-assets"

PACKAGE = "swagger-ui-dist"
VERSION = "5.35.0"
INTEGRITY = "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
# What local-api/src/docs.rs serves, and the licences that go with it.
FILES = (
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "favicon-32x32.png",
    "favicon-16x16.png",
    "LICENSE",
    "NOTICE",
    "swagger-ui-bundle.js.LICENSE.txt",
)
STAMP = ".stamp"
DEFAULT_REGISTRY = "https://registry.npmjs.org"


class AssetsError(Exception):
    pass


def tarball_url():
    registry = os.environ.get("NPM_CONFIG_REGISTRY") or os.environ.get("npm_config_registry") or DEFAULT_REGISTRY
    return f"{registry.rstrip('/')}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"


def stamp_text():
    return f"{PACKAGE}@{VERSION} {INTEGRITY}\n"


def up_to_date(dest=DEST):
    try:
        return (dest / STAMP).read_text() == stamp_text() and all((dest / name).is_file() for name in FILES)
    except OSError:
        return False


def check_integrity(data):
    algorithm, _, expected = INTEGRITY.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise AssetsError(
            f"{PACKAGE}-{VERSION}.tgz does not match its pinned integrity {INTEGRITY} (got {algorithm}-{actual}): "
            "not extracted. A mirror serving another file, or a truncated download; try again or use --tarball."
        )


def download(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as res:
            return res.read()
    except (urllib.error.URLError, OSError) as e:
        raise AssetsError(
            f"cannot download {url}: {e}\n"
            "The local API's /docs page needs Swagger UI from the npm registry, once. Check the network "
            "(HTTPS_PROXY is honoured; NPM_CONFIG_REGISTRY names a mirror), or download that file another "
            f"way and run: python3 scripts/docs_assets.py --tarball {PACKAGE}-{VERSION}.tgz"
        ) from None


def extract(data, dest):
    """Writes FILES from the tarball `data` into `dest`, replacing it whole. Only regular
    files of exactly those names are read (no path from the archive is ever used)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".docs-assets-", dir=dest.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would outlive the rename
    try:
        with tempfile.TemporaryFile() as raw:
            raw.write(data)
            raw.seek(0)
            with tarfile.open(fileobj=raw, mode="r:gz") as tar:
                for name in FILES:
                    try:
                        member = tar.getmember(f"package/{name}")
                    except KeyError:
                        raise AssetsError(f"{PACKAGE}-{VERSION}.tgz has no package/{name}") from None
                    if not member.isfile():
                        raise AssetsError(f"package/{name} in {PACKAGE}-{VERSION}.tgz is not a regular file")
                    (staging / name).write_bytes(tar.extractfile(member).read())
        (staging / STAMP).write_text(stamp_text())
        if dest.exists():
            # Only ever replace a directory of ours (or nothing at all): a mistyped --dest
            # must not delete someone's directory.
            if not (dest / STAMP).is_file() and any(dest.iterdir()):
                raise AssetsError(f"{dest} exists and holds other files; choose an empty or new --dest")
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure(dest=DEST, tarball=None):
    """The assets in `dest`, fetched (or read from `tarball`) and extracted unless they are
    there already. Returns `dest`."""
    dest = pathlib.Path(dest)
    if up_to_date(dest) and tarball is None:
        return dest
    data = pathlib.Path(tarball).read_bytes() if tarball else download(tarball_url())
    check_integrity(data)
    extract(data, dest)
    return dest
