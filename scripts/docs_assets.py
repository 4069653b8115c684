"""Vendors the JavaScript the local pages load: Swagger UI for the local API's documentation
page (http://127.0.0.1:3000/docs) and a QR code generator for the sample app's two-factor
set-up.

  docs_assets.py [--package NAME] [--dest DIR] [--tarball FILE]

For each package (swagger-ui-dist, qrcode-generator; --package picks one), downloads the npm
registry's tarball of the version pinned in devtools/docs_assets.py, checks it against the
pinned sha512 integrity (the one in the registry's metadata and in any package-lock.json),
and extracts only the files a page loads, with the package's licence, into its directory
of .local/ (docs-assets/, sample-assets/). The pages then load nothing from anywhere else
at view time. Nothing else is needed: Python's standard library, no node or npm.

Idempotent: a stamp file names the version and integrity extracted; when it matches and
the files are there, nothing is downloaded. The registry is npm's, or the one in
NPM_CONFIG_REGISTRY (a mirror; the integrity check is the same). HTTPS_PROXY is honoured.
Offline: download a tarball elsewhere and pass it with --package and --tarball.
"""

import argparse
import pathlib
import sys
import tarfile

from devtools.docs_assets import PACKAGES, AssetsError, ensure, up_to_date


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", choices=[p.name for p in PACKAGES], help="only this package")
    parser.add_argument("--dest", type=pathlib.Path, help="where to extract it (with --package)")
    parser.add_argument("--tarball", type=pathlib.Path, help="a downloaded NAME-VERSION.tgz to use (with --package)")
    args = parser.parse_args()
    if (args.dest or args.tarball) and not args.package:
        parser.error("--dest and --tarball go with --package")
    for package in PACKAGES:
        if args.package and package.name != args.package:
            continue
        dest = args.dest or package.dest
        fresh = not up_to_date(dest, package) or args.tarball
        try:
            ensure(dest, args.tarball, package)
        except (AssetsError, OSError, tarfile.TarError) as e:
            print(f"docs_assets: {e}", file=sys.stderr)
            return 1
        if fresh:
            print(f"{package.name} {package.version} (integrity checked) in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
