"""Starts the local API with the routes, authorizer and gateway responses of template.yaml.

  local_api.py [--port N] [--example-port N] [--extra-route "METHOD /path=FUNCTION:ROLE,ROLE"]...
               [--print-wiring]

Runs inside scripts/with_dynamodb.py (which provides the DynamoDB endpoint and tables);
`make dev` does both. template.yaml is the one source of truth: every `Api` event of an
`AWS::Serverless::Function` becomes a route served by that function's handler, behind the
REQUEST authorizer when the event names it; the authorizer's `ROUTE_ROLES`, the
parameters' defaults (issuer, audience, TTLs, session lifetime, failed-login throttle,
stage) and the GatewayResponses come from the template too. Variables already set in the
environment win over the defaults.

The binary is `local-api` of `cargo build` in cargo's target directory (CARGO_TARGET_DIR
or `build.target-dir` honoured; see devtools/cargo_target.py).

ADMIN_USERNAME and ADMIN_PASSWORD: when both are set, that user is registered (unless it
exists) once the API listens, and granted the role `admin` (scripts/grant_role.py).

JWT_SECRET: honoured when set; otherwise a random one is made for this run and never
printed (tokens then stop verifying when the local API restarts). With JWT_ALGORITHM
RS256 (the template's default SigningAlgorithm, so `make dev`'s), ES256 or EdDSA,
JWT_PRIVATE_KEY instead (a key document, see signing_keys.py), likewise made for the run
when not given; its public key is served at /.well-known/jwks.json.

MFA_KEY (the key that seals TOTP secrets): likewise honoured when set, else made for the
run.

The API's documentation, which the deployed API does not serve: openapi.yaml at
/openapi.yaml and Swagger UI reading it at /docs, from the files scripts/docs_assets.py
vendors (`make dev` runs it first). OPENAPI_FILE and DOCS_ASSETS_DIR say where they are.

--extra-route adds a route the template does not have, served by one of the functions and
requiring the given roles (the tests use it for a role-protected route).

--example-port (default: EXAMPLE_PORT, else the API's port + 1) serves the browser sample
app, examples/browser/, on http://127.0.0.1:N/, a second origin, so that CORS and cookie
mode are real; its config.js is generated with the API's URL. ALLOWED_ORIGINS defaults to
the API's own origin (for /docs) and that one. 0 serves no sample app: the local API then replaces this process (the
tests start it so).
"""

import argparse
import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

from devtools import ROOT, cargo_target, docs_assets, keys, template
from devtools.example_app import example_server
from devtools.roles import change_role
from devtools.wiring import PARAMETER_ENV, authorizer_route_roles, parameters, wiring

OPENAPI = ROOT / "openapi.yaml"


def parse_extra_route(text):
    try:
        route, target = text.split("=", 1)
        method, path = route.split(" ", 1)
        function, _, roles = target.partition(":")
    except ValueError:
        sys.exit(f"--extra-route {text!r}: want 'METHOD /path=FUNCTION:ROLE,ROLE'")
    return method.upper(), path, function, [r for r in roles.split(",") if r]


def _die_with_parent():
    # The local API ends when this process does, even if it is killed outright.
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def announce_when_listening(api_port, child, text):
    deadline = time.monotonic() + 300
    while child.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", api_port), timeout=0.5).close()
        except OSError:
            time.sleep(0.1)
            continue
        if text:
            print(text, flush=True)
        return


def seed_admin(api_port, env):
    """`make dev` with ADMIN_USERNAME and ADMIN_PASSWORD: registers that user (unless it
    exists) through the API, then grants it the role `admin` (scripts/grant_role.py). The
    password is never printed."""
    import urllib.error
    import urllib.request

    name, password = env["ADMIN_USERNAME"], env["ADMIN_PASSWORD"]
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/auth/register",
        data=json.dumps({"username": name, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=30).close()
    except urllib.error.HTTPError as e:
        if e.code != 409:
            print(f"admin not seeded: registering {name!r} answered {e.code}: {e.read().decode(errors='replace')}", flush=True)
            return
    try:
        change_role(env["USERS_TABLE"], name, "admin", endpoint=env.get("AWS_ENDPOINT_URL_DYNAMODB"))
    except (LookupError, ValueError) as e:
        print(f"admin not seeded: {e}", flush=True)
        return
    print(f"Admin: {name.lower()} (role admin; log in with ADMIN_PASSWORD)", flush=True)


def run_with_example(binary, env, api_port, server):
    """The local API as a child process beside the sample app's server (None: no sample app)
    and the admin seed; signals go to the child, and its exit status is this process's."""
    pending = []
    child = None

    def forward(signum, _frame):
        if child is None:
            pending.append(signum)
        elif child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    child = subprocess.Popen([str(binary)], env=env, preexec_fn=_die_with_parent)
    for signum in pending:
        child.send_signal(signum)
    announcement = ""
    if server is not None:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        announcement = f"Sample app: http://{server.host}/  (a browser page on another origin, calling this API)"

    def when_listening():
        announce_when_listening(api_port, child, announcement)
        if env.get("ADMIN_USERNAME") and env.get("ADMIN_PASSWORD") and child.poll() is None:
            seed_admin(api_port, env)

    threading.Thread(target=when_listening, daemon=True).start()
    status = child.wait()
    if server is not None:
        server.server_close()
    return status if status >= 0 else 128 - status


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument(
        "--example-port",
        type=int,
        default=None,
        help="port of the browser sample app (default: EXAMPLE_PORT, else --port + 1; 0: none)",
    )
    parser.add_argument("--extra-route", action="append", default=[])
    parser.add_argument("--print-wiring", action="store_true", help="print the wiring as JSON and exit")
    args = parser.parse_args()

    doc = template.load()

    def wired_for(env):
        wired = wiring(doc, parameters(doc, env))
        roles = authorizer_route_roles(doc)
        for text in args.extra_route:
            method, path, function, required = parse_extra_route(text)
            wired["routes"].append({"method": method, "path": path, "function": function, "authorizer": True})
            roles[f"{method} {path}"] = required
        return wired, roles

    if args.print_wiring:
        wired, roles = wired_for(os.environ)
        print(json.dumps({"wiring": wired, "route_roles": roles}, indent=2))
        return 0

    example_port = args.example_port
    if example_port is None:
        example_port = int(os.environ.get("EXAMPLE_PORT") or args.port + 1)
    if example_port and example_port == args.port:
        sys.exit(f"the sample app needs a port of its own, not the API's {args.port}")
    example_origin = f"http://127.0.0.1:{example_port}"

    env = dict(os.environ)
    # Mail goes to the local mailbox (GET /local/mail); its links open the sample app (or,
    # without one, the API's own origin).
    env.setdefault("EMAIL_FROM", "no-reply@localhost")
    env.setdefault("APP_URL", example_origin if example_port else f"http://127.0.0.1:{args.port}")
    if example_port:
        if "ALLOWED_ORIGINS" not in env:
            # The API's own origin too: /docs (Swagger UI) calls the API from it, and the
            # sign-in routes refuse an Origin that is not allowed.
            env["ALLOWED_ORIGINS"] = f"{example_origin},http://127.0.0.1:{args.port}"
        elif example_origin not in [o.strip() for o in env["ALLOWED_ORIGINS"].split(",")]:
            print(
                f"note: ALLOWED_ORIGINS does not include {example_origin}: the sample app cannot read the API's answers",
                file=sys.stderr,
            )
    env.setdefault("OPENAPI_FILE", str(OPENAPI))
    env.setdefault("DOCS_ASSETS_DIR", str(docs_assets.DEST))
    if not (pathlib.Path(env["DOCS_ASSETS_DIR"]) / "swagger-ui-bundle.js").is_file():
        print("note: Swagger UI is not vendored yet, so /docs shows no page: run `make docs-assets`", file=sys.stderr)
    for parameter, variable in PARAMETER_ENV.items():
        if parameter not in doc["Parameters"]:
            continue  # a template from before that parameter
        default = doc["Parameters"][parameter].get("Default", "")
        env.setdefault(variable, ",".join(map(str, default)) if isinstance(default, list) else str(default))
    # An empty issuer means "the API's own URL": locally, the local API's.
    if not env.get("JWT_ISSUER", "").strip():
        env["JWT_ISSUER"] = f"http://127.0.0.1:{args.port}"
    if env.get("JWT_ALGORITHM") in keys.ASYMMETRIC:
        # One process signs and verifies: the private key is enough (its public half is
        # published); a key pair per run unless one is given.
        if not env.get("JWT_PRIVATE_KEY"):
            env["JWT_PRIVATE_KEY"] = keys.generate(env["JWT_ALGORITHM"])
    elif not env.get("JWT_SECRET"):
        env["JWT_SECRET"] = secrets.token_urlsafe(48)
    # The key that seals TOTP secrets: one for this run unless given (enrolled factors then
    # stop opening when the local API restarts, as tokens stop verifying).
    if not env.get("MFA_KEY"):
        env["MFA_KEY"] = secrets.token_urlsafe(48)
    for variable in ("JWT_SECRET_ARN", "JWT_PRIVATE_KEY_ARN", "JWT_PUBLIC_KEYS_ARN", "MFA_KEY_ARN"):
        env.pop(variable, None)
    wired, roles = wired_for(env)
    env.update(PORT=str(args.port), ROUTE_ROLES=json.dumps(roles), LOCAL_API_WIRING=json.dumps(wired))
    try:
        binary = cargo_target.binary("local-api")
    except cargo_target.CargoTargetError as e:
        sys.exit(str(e))
    if not binary.exists():
        sys.exit(f"{binary} is missing: run `cargo build -p local-api` (make dev does)")
    seeding = bool(env.get("ADMIN_USERNAME") and env.get("ADMIN_PASSWORD"))
    if not example_port and not seeding:
        os.execve(binary, [str(binary)], env)
    server = example_server(example_port, f"http://127.0.0.1:{args.port}") if example_port else None
    return run_with_example(binary, env, args.port, server)


if __name__ == "__main__":
    sys.exit(main())
