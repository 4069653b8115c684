"""The pages' vendored JavaScript: Swagger UI for the local API's documentation page (/docs),
and a QR code generator for the sample app's two-factor set-up. Each is the npm registry's
tarball of a package (the version pinned below), checked against its pinned sha512
integrity, the files a page loads extracted with the package's licence into a directory
of .local/: swagger-ui-dist into .local/docs-assets/, qrcode-generator into
.local/sample-assets/. scripts/docs_assets.py is the command (`make docs-assets`); the local
API, the sample app's server and the tests find the files there. Python's standard library
only: the Makefile runs it on the system's Python.
"""

import base64
import dataclasses
import hashlib
import os
import pathlib
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request

from devtools import ROOT

STAMP = ".stamp"
DEFAULT_REGISTRY = "https://registry.npmjs.org"


@dataclasses.dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str
    # What the page loads, and the licence that goes with it.
    files: tuple
    dest: pathlib.Path


SWAGGER = Package(
    name="swagger-ui-dist",
    version="5.35.0",
    integrity="sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
    # What local-api/src/docs.rs serves.
    files=(
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "favicon-32x32.png",
        "favicon-16x16.png",
        "LICENSE",
        "NOTICE",
        "swagger-ui-bundle.js.LICENSE.txt",
    ),
    dest=ROOT / ".local" / "docs-assets",
)
# The sample app draws the otpauth:// URI as a QR code in the page: nothing leaves it.
# (MIT; the licence is in qrcode.js's header and the README.)
QRCODE = Package(
    name="qrcode-generator",
    version="1.4.4",
    integrity="sha512-HM7yY8O2ilqhmULxGMpcHSF1EhJJ9yBj8gvDEuZ6M+KGJ0YY2hKpnXvRD+hZPLrDVck3ExIGhmPtSdcjC+guuw==",
    files=("qrcode.js", "README.md"),
    dest=ROOT / ".local" / "sample-assets",
)
PACKAGES = (SWAGGER, QRCODE)

# Swagger UI's, as the command and the local API name them.
DEST = SWAGGER.dest
PACKAGE = SWAGGER.name
VERSION = SWAGGER.version


class AssetsError(Exception):
    pass


def tarball_url(package=SWAGGER):
    registry = os.environ.get("NPM_CONFIG_REGISTRY") or os.environ.get("npm_config_registry") or DEFAULT_REGISTRY
    return f"{registry.rstrip('/')}/{package.name}/-/{package.name}-{package.version}.tgz"


def stamp_text(package=SWAGGER):
    return f"{package.name}@{package.version} {package.integrity}\n"


def up_to_date(dest=DEST, package=SWAGGER):
    try:
        return (dest / STAMP).read_text() == stamp_text(package) and all((dest / n).is_file() for n in package.files)
    except OSError:
        return False


def check_integrity(data, package=SWAGGER):
    algorithm, _, expected = package.integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise AssetsError(
            f"{package.name}-{package.version}.tgz does not match its pinned integrity {package.integrity} "
            f"(got {algorithm}-{actual}): not extracted. A mirror serving another file, or a truncated download; "
            "try again or use --tarball."
        )


def download(url, package=SWAGGER):
    try:
        with urllib.request.urlopen(url, timeout=60) as res:
            return res.read()
    except (urllib.error.URLError, OSError) as e:
        raise AssetsError(
            f"cannot download {url}: {e}\n"
            f"The pages need {package.name} from the npm registry, once. Check the network "
            "(HTTPS_PROXY is honoured; NPM_CONFIG_REGISTRY names a mirror), or download that file another "
            f"way and run: python3 scripts/docs_assets.py --tarball {package.name}-{package.version}.tgz"
        ) from None


def extract(data, dest, package=SWAGGER):
    """Writes the package's files from the tarball `data` into `dest`, replacing it whole.
    Only regular files of exactly those names are read (no path from the archive is ever
    used)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".docs-assets-", dir=dest.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would outlive the rename
    try:
        with tempfile.TemporaryFile() as raw:
            raw.write(data)
            raw.seek(0)
            with tarfile.open(fileobj=raw, mode="r:gz") as tar:
                tgz = f"{package.name}-{package.version}.tgz"
                for name in package.files:
                    try:
                        member = tar.getmember(f"package/{name}")
                    except KeyError:
                        raise AssetsError(f"{tgz} has no package/{name}") from None
                    if not member.isfile():
                        raise AssetsError(f"package/{name} in {tgz} is not a regular file")
                    (staging / name).write_bytes(tar.extractfile(member).read())
        (staging / STAMP).write_text(stamp_text(package))
        if dest.exists():
            # Only ever replace a directory of ours (or nothing at all): a mistyped --dest
            # must not delete someone's directory.
            if not (dest / STAMP).is_file() and any(dest.iterdir()):
                raise AssetsError(f"{dest} exists and holds other files; choose an empty or new --dest")
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure(dest=DEST, tarball=None, package=SWAGGER):
    """The package's files in `dest`, fetched (or read from `tarball`) and extracted unless
    they are there already. Returns `dest`."""
    dest = pathlib.Path(dest)
    if up_to_date(dest, package) and tarball is None:
        return dest
    data = pathlib.Path(tarball).read_bytes() if tarball else download(tarball_url(package), package)
    check_integrity(data, package)
    extract(data, dest, package)
    return dest


def ensure_all():
    """Every package, each in its own directory."""
    return [ensure(p.dest, package=p) for p in PACKAGES]
