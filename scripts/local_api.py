"""Starts the local API with the routes, authorizer and gateway responses of template.yaml.

  local_api.py [--port N] [--extra-route "METHOD /path=FUNCTION:ROLE,ROLE"]... [--print-wiring]

Runs inside scripts/with_dynamodb.py (which provides the DynamoDB endpoint and tables);
`make dev` does both. template.yaml is the one source of truth: every `Api` event of an
`AWS::Serverless::Function` becomes a route served by that function's handler, behind the
REQUEST authorizer when the event names it; the authorizer's `ROUTE_ROLES`, the
parameters' defaults (issuer, audience, TTLs, session lifetime, failed-login throttle,
stage) and the GatewayResponses come from the template too. Variables already set in the
environment win over the defaults.

The binary is `local-api` of `cargo build` in cargo's target directory (CARGO_TARGET_DIR
or `build.target-dir` honoured; see cargo_target.py).

JWT_SECRET: honoured when set; otherwise a random one is made for this run and never
printed (tokens then stop verifying when the local API restarts).

--extra-route adds a route the template does not have, served by one of the functions and
requiring the given roles (the tests use it for a role-protected route).
"""

import argparse
import json
import os
import pathlib
import secrets
import sys

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import cargo_target  # noqa: E402
from dynamodb_tables import TEMPLATE, CfnLoader  # noqa: E402

# Template parameter -> the variable the functions read.
PARAMETER_ENV = {
    "JwtIssuer": "JWT_ISSUER",
    "JwtAudience": "JWT_AUDIENCE",
    "AccessTokenTtlSeconds": "ACCESS_TOKEN_TTL_SECONDS",
    "RefreshTokenTtlSeconds": "REFRESH_TOKEN_TTL_SECONDS",
    "SessionMaxLifetimeSeconds": "SESSION_MAX_LIFETIME_SECONDS",
    "LoginLockSeconds": "LOGIN_LOCK_SECONDS",
    "LoginNameMaxFailures": "LOGIN_NAME_MAX_FAILURES",
    "LoginNameWindowSeconds": "LOGIN_NAME_WINDOW_SECONDS",
}


def load_template():
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def _unquote(value):
    # Gateway response header values are API Gateway mapping expressions: 'literal'.
    value = str(value)
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value


def wiring(doc):
    """Routes, stage and gateway responses, as the local API reads them."""
    resources = doc["Resources"]
    api = next(props for props in resources.values() if props["Type"] == "AWS::Serverless::Api")["Properties"]
    routes = []
    for props in resources.values():
        if props["Type"] != "AWS::Serverless::Function":
            continue
        binary = props.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        for event in (props["Properties"].get("Events") or {}).values():
            if event["Type"] != "Api":
                continue
            e = event["Properties"]
            authorizer = (e.get("Auth") or {}).get("Authorizer")
            routes.append(
                {
                    "method": e["Method"].upper(),
                    "path": e["Path"],
                    "function": binary,
                    "authorizer": bool(authorizer) and authorizer != "NONE",
                }
            )
    responses = {}
    for kind, r in (api.get("GatewayResponses") or {}).items():
        responses[kind] = {
            "status": int(r["StatusCode"]) if "StatusCode" in r else None,
            "headers": {k: _unquote(v) for k, v in ((r.get("ResponseParameters") or {}).get("Headers") or {}).items()},
            "body": (r.get("ResponseTemplates") or {}).get("application/json"),
        }
    stage = doc["Parameters"]["StageName"]["Default"]
    return {"stage": stage, "routes": routes, "gateway_responses": responses}


def authorizer_route_roles(doc):
    fn = doc["Resources"]["AuthorizerFunction"]["Properties"]
    return json.loads(fn["Environment"]["Variables"]["ROUTE_ROLES"])


def parse_extra_route(text):
    try:
        route, target = text.split("=", 1)
        method, path = route.split(" ", 1)
        function, _, roles = target.partition(":")
    except ValueError:
        sys.exit(f"--extra-route {text!r}: want 'METHOD /path=FUNCTION:ROLE,ROLE'")
    return method.upper(), path, function, [r for r in roles.split(",") if r]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--extra-route", action="append", default=[])
    parser.add_argument("--print-wiring", action="store_true", help="print the wiring as JSON and exit")
    args = parser.parse_args()

    doc = load_template()
    wired = wiring(doc)
    roles = authorizer_route_roles(doc)
    for text in args.extra_route:
        method, path, function, required = parse_extra_route(text)
        wired["routes"].append({"method": method, "path": path, "function": function, "authorizer": True})
        roles[f"{method} {path}"] = required
    if args.print_wiring:
        print(json.dumps({"wiring": wired, "route_roles": roles}, indent=2))
        return 0

    env = dict(os.environ)
    for parameter, variable in PARAMETER_ENV.items():
        env.setdefault(variable, str(doc["Parameters"][parameter]["Default"]))
    if not env.get("JWT_SECRET"):
        env["JWT_SECRET"] = secrets.token_urlsafe(48)
    env.pop("JWT_SECRET_ARN", None)
    env.update(PORT=str(args.port), ROUTE_ROLES=json.dumps(roles), LOCAL_API_WIRING=json.dumps(wired))
    try:
        binary = cargo_target.binary("local-api")
    except cargo_target.CargoTargetError as e:
        sys.exit(str(e))
    if not binary.exists():
        sys.exit(f"{binary} is missing: run `cargo build -p local-api` (make dev does)")
    os.execve(binary, [str(binary)], env)


if __name__ == "__main__":
    sys.exit(main())
