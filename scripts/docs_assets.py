"""Vendors Swagger UI for the local API's documentation page (http://127.0.0.1:3000/docs).

  docs_assets.py [--dest DIR] [--tarball FILE]

Downloads the npm registry's tarball of swagger-ui-dist (the version pinned below), checks
it against the pinned sha512 integrity (the one in the registry's metadata and in any
package-lock.json), and extracts only the files the page loads, with the package's
licences, into .local/docs-assets/. The page then loads nothing from anywhere else at view
time. Nothing else is needed: Python's standard library, no node or npm.

Idempotent: a stamp file names the version and integrity extracted; when it matches and
the files are there, nothing is downloaded. The registry is npm's, or the one in
NPM_CONFIG_REGISTRY (a mirror; the integrity check is the same). HTTPS_PROXY is honoured.
Offline: download the tarball elsewhere and pass it with --tarball.
"""

import argparse
import pathlib
import sys
import tarfile

from devtools.docs_assets import DEST, PACKAGE, VERSION, AssetsError, ensure, up_to_date


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=pathlib.Path, default=DEST)
    parser.add_argument("--tarball", type=pathlib.Path, help=f"a downloaded {PACKAGE}-{VERSION}.tgz to use")
    args = parser.parse_args()
    fresh = not up_to_date(args.dest) or args.tarball
    try:
        dest = ensure(args.dest, args.tarball)
    except (AssetsError, OSError, tarfile.TarError) as e:
        print(f"docs_assets: {e}", file=sys.stderr)
        return 1
    if fresh:
        print(f"Swagger UI ({PACKAGE} {VERSION}, integrity checked) in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
