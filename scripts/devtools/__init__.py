"""The project's development tools, as one package: the pieces the entry points in
scripts/ (what the Makefile and the docs run), the benchmarks and the tests share.
One module, one job:

  template       template.yaml: the CloudFormation YAML loader and intrinsics evaluator
  functions      shared/functions.json: the one table of Lambda functions
  wiring         routes, parameters and gateway responses the local API reads from the template
  cargo_target   where cargo puts the binaries
  net            free loopback ports
  moto           the local DynamoDB / Secrets Manager server (moto) and the template's tables in it
  keys           signing key documents (JWT_PRIVATE_KEY) and their published JWKS
  roles          granting a user a role, straight in the users table
  docs_assets    Swagger UI vendored for the local API's /docs page
  example_app    the browser sample app's server (examples/browser/)
  rie            AWS's Runtime Interface Emulator running one function
  invocations    events/ files as invocations, and a user with sessions to invoke with
  pki            a test CA and server certificate
  tlsproxy       a TLS-terminating, counting proxy in front of moto
  cgroup         a CFS quota (Lambda's CPU share) and CPU accounting for a function process

`python scripts/x.py` puts scripts/ first on sys.path, and pytest.ini's `pythonpath`
does the same for the tests, so `import devtools` needs nothing else. This file imports
nothing but the standard library: scripts/docs_assets.py runs on the system's Python.
"""

import pathlib

# The repository's root (scripts/devtools/ is two levels below it).
ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
