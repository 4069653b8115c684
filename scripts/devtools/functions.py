"""shared/functions.json, the one table of the Lambda functions, read: each function's
binary, logical id in template.yaml, the event it is invoked with, the keys it holds,
whether it hashes passwords, its routes and the variables it reads. The Rust side writes the file (and its test
fails when the file is stale); the template, the tests and the benchmarks read it here.
"""

import dataclasses
import functools
import json

from devtools import ROOT

TABLE = ROOT / "shared" / "functions.json"

EVENTS = ("http", "authorizer", "rotation", "mailer")
# sign: signs tokens (the private key, or the HMAC secret); verify: verifies them (public
# keys, or the HMAC secret); publish: serves the public keys; rotate: rotates the private
# key; none: no key material at all.
KEYS = ("sign", "verify", "publish", "rotate", "none")
CALLERS = ("public", "authenticated")


@dataclasses.dataclass(frozen=True)
class Route:
    method: str  # upper case; OPTIONS with path "*" is preflight's: every path
    path: str
    caller: str  # public, or authenticated (behind the authorizer)
    roles: tuple = ()  # the roles the authorizer requires (authenticated routes)

    @property
    def authenticated(self):
        return self.caller == "authenticated"


@dataclasses.dataclass(frozen=True)
class Function:
    name: str  # the binary (functions/<name>)
    logical_id: str  # its AWS::Serverless::Function in template.yaml
    event: str
    keys: str
    hashes_passwords: bool
    # Holds the key that opens TOTP secrets (MfaKeySecret): verifies second-factor codes.
    factor_key: bool
    routes: tuple
    # Every variable it reads that a deployment sets (shared::spec::variables_read_by);
    # Lambda's own (AWS_REGION, credentials, AWS_LAMBDA_LOG_*) are read too, not listed.
    variables: frozenset

    @property
    def signs(self):
        return self.keys == "sign"

    @property
    def reads_keys(self):
        """Reads signing key material at all: what the signing algorithm changes (RS256
        keys come from Secrets Manager; HS256's secret from the environment)."""
        return self.keys in ("sign", "verify", "publish")

    @property
    def on_request_path(self):
        """Invoked for an API request (an HTTP function or the authorizer), not on a
        schedule."""
        return self.event in ("http", "authorizer")


def _function(entry):
    def one_of(field, allowed, value):
        if value not in allowed:
            raise ValueError(f"{TABLE}: {entry.get('name')!r}: {field} {value!r} is not one of {', '.join(allowed)}")
        return value

    routes = tuple(
        Route(route["method"], route["path"], one_of("caller", CALLERS, route["caller"]), tuple(route["roles"]))
        for route in entry["routes"]
    )
    for flag in ("hashes_passwords", "factor_key"):
        if not isinstance(entry[flag], bool):
            raise ValueError(f"{TABLE}: {entry['name']!r}: {flag} must be true or false")
    return Function(
        name=entry["name"],
        logical_id=entry["logical_id"],
        event=one_of("event", EVENTS, entry["event"]),
        keys=one_of("keys", KEYS, entry["keys"]),
        hashes_passwords=entry["hashes_passwords"],
        factor_key=entry["factor_key"],
        routes=routes,
        variables=frozenset(entry["variables"]),
    )


@functools.lru_cache(maxsize=None)
def load():
    """Every function, in the table's order (a tuple of Function)."""
    functions = tuple(_function(entry) for entry in json.loads(TABLE.read_text()))
    for field in ("name", "logical_id"):
        values = [getattr(f, field) for f in functions]
        if len(set(values)) != len(values):
            raise ValueError(f"{TABLE}: a {field} appears twice")
    return functions


def by_name():
    """Binary name -> Function."""
    return {f.name: f for f in load()}


def by_logical_id():
    """Logical id in template.yaml -> Function."""
    return {f.logical_id: f for f in load()}


def route_roles():
    """The authorizer's ROUTE_ROLES as the table has them: "METHOD /path" -> [roles], for
    every authenticated route."""
    return {f"{r.method} {r.path}": list(r.roles) for f in load() for r in f.routes if r.authenticated}
