"""openapi.yaml, checked by tools that did not write it: the OpenAPI validator; the routes of
template.yaml and the error codes of the contract and of the code; and schemathesis, whose
requests, generated from the document, go to the local API (started as `make dev` starts
it) and whose checks hold every answer to the document: no 5xx, a documented status, the
documented content type, headers and body. Also: the local API serves the document, and a
Swagger UI page that loads nothing from anywhere else.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import struct
import time
import tempfile
import urllib.parse

import pytest
import requests
import schemathesis
import yaml
from hypothesis.configuration import set_hypothesis_home_dir
from openapi_spec_validator import validate as validate_openapi
from requests.structures import CaseInsensitiveDict
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devtools import docs_assets, roles, template, wiring
from support import ROOT, Api, new_name, start_local_api, stop

# Hypothesis's caches under .local/ (gitignored, `make clean`), not a new top-level directory.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(ROOT / ".local" / "hypothesis")

DOCUMENT = ROOT / "openapi.yaml"
ERROR_RS = ROOT / "shared" / "src" / "error.rs"
AUTHORIZER_RS = ROOT / "shared" / "src" / "authorizer.rs"
# The contract lives beside the checkout for the teams working on it (see the README).
CONTRACT = ROOT.parent / "shared" / "CONTRACT.md"
# The error codes CONTRACT.md names, kept here so that the check holds without it too.
CONTRACT_CODES = {
    "invalid_request",
    "invalid_username",
    "invalid_password",
    "username_taken",
    "invalid_grant",
    "too_many_attempts",
    "invalid_token",
    "insufficient_scope",
    "not_found",
    "method_not_allowed",
    "invalid_email",
    "email_taken",
    "not_configured",
    "email_not_verified",
    "mfa_required",
    "mfa_already_enabled",
    "insufficient_user_authentication",
}
# Codes ../shared/CONTRACT.md names for what is not built yet, each with its part. A code
# moves to CONTRACT_CODES (and openapi.yaml) when the code answers it; the test below fails
# if the service answers one of these, or the contract names a code in none of the lists.
UNBUILT_CONTRACT_CODES = {}
# Backticked words the contract writes where it names codes (after a status, on one line)
# that are no error codes: fields of an error answer.
CONTRACT_FIELDS = {
    "mfa_token": "the field of the mfa_required answer, named beside its 403",
}
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# The one browser origin the local API allows here, so that answers carry CORS headers.
APP_ORIGIN = "https://app.openapi.test:8080"
PASSWORD = f"openapi pass {secrets.token_urlsafe(12)}"
# schemathesis's checks that every answer must pass.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# RFC 6238's time step: the authenticator's codes change every 30 seconds.
TOTP_STEP = 30
# Generated requests per operation and phase. Bounded: the whole run stays within a couple
# of minutes on two cores, argon2 (every login, registration and password check) included.
MAX_EXAMPLES = int(os.environ.get("OPENAPI_MAX_EXAMPLES", "100"))


def document():
    return yaml.safe_load(DOCUMENT.read_text())


def operations(doc):
    """(METHOD, path) -> operation object."""
    return {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def deref(doc, node):
    """`node`, its local `$ref` followed."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local references: {ref}"
        node = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def schema_codes(doc, schema):
    """The `error` codes a body of `schema` can carry, or None where it says nothing of
    `error`: its own enum of `error`, intersected with those of the parts of its `allOf`
    (every part holds) and with the union of its `oneOf` alternatives' (one of them holds),
    each alternative read as a schema in its own right."""
    schema = deref(doc, schema)
    codes = None

    def holds(more):
        nonlocal codes
        if more is not None:
            codes = set(more) if codes is None else codes & set(more)

    holds(deref(doc, (schema.get("properties") or {}).get("error", {})).get("enum"))
    for part in schema.get("allOf", []):
        holds(schema_codes(doc, part))
    alternatives = [schema_codes(doc, alternative) for alternative in schema.get("oneOf", [])]
    if any(alternative is not None for alternative in alternatives):
        holds(set().union(*(alternative for alternative in alternatives if alternative is not None)))
    return codes


def error_codes(doc, response):
    """The `error` codes a documented response can carry (its JSON body's schema_codes)."""
    response = deref(doc, response)
    schema = (response.get("content") or {}).get("application/json", {}).get("schema", {})
    return schema_codes(doc, schema) or set()


def status_matches(documented, status):
    return documented == str(status) or (documented.endswith("XX") and documented[0] == str(status)[0])


def template_routes():
    """(METHOD, path) -> behind the authorizer, read as the local API reads the template. A
    path's ANY route (the preflight function's: OPTIONS, and 405 for any other method the
    path does not take) is documented as the path's `options` operation, which lists the 405:
    OpenAPI has no "any other method"."""
    doc = template.load()
    wired = wiring.wiring(doc, wiring.parameters(doc, {}))
    method = lambda r: "OPTIONS" if r["method"] == "ANY" else r["method"]  # noqa: E731
    return {(method(r), r["path"]): r["authorizer"] for r in wired["routes"]}


def code_errors():
    """(status, code) of every error the domain maps to HTTP (shared/src/error.rs)."""
    pairs = set(re.findall(r'=> \((\d{3}), "([a-z_]+)"\)', ERROR_RS.read_text()))
    assert len(pairs) >= 10, f"cannot read the status mapping of {ERROR_RS}"
    return {(int(status), code) for status, code in pairs}


def deny_errors():
    """The codes the authorizer can put in its context under `DENY_ERROR`, which API
    Gateway's 403 (ACCESS_DENIED) renders as its `error`: (context key, codes), read from
    shared/src/authorizer.rs, whose `let (error, description) = if … { (code, text) } else
    { (code, text) };` chooses one."""
    source = AUTHORIZER_RS.read_text()
    key = re.search(r'pub const DENY_ERROR: &str = "([a-z_]+)";', source)
    choice = re.search(r"let \(error, description\) = (.*?);\n", source, re.S)
    assert key and choice, f"cannot read DENY_ERROR and its codes in {AUTHORIZER_RS}"
    codes = set(re.findall(r'\(\s*"([a-z_]+)",\s*"[^"]*"\s*\)', choice.group(1)))
    assert {"insufficient_scope"} < codes, f"cannot read the deny codes of {AUTHORIZER_RS}: {codes}"
    return key.group(1), codes


def gateway_errors():
    """(status, code) of API Gateway's own answers (the template's GatewayResponses); status
    None where the template leaves it to API Gateway (DEFAULT_4XX: 413 among others). A
    code that names the authorizer's context (`$context.authorizer.<key>`, ACCESS_DENIED's)
    stands for every code the authorizer puts there (deny_errors)."""
    responses = template.load()["Resources"]["AuthApi"]["Properties"]["GatewayResponses"]
    answered = set()
    for r in responses.values():
        status = int(r["StatusCode"]) if "StatusCode" in r else None
        code = json.loads(r["ResponseTemplates"]["application/json"])["error"]
        if code.startswith("$context.authorizer."):
            key, codes = deny_errors()
            assert code == f"$context.authorizer.{key}", f"{code}: not the authorizer's DENY_ERROR ({key})"
            answered |= {(status, c) for c in codes}
        else:
            answered.add((status, code))
    return answered


# --- The document -------------------------------------------------------------------------


def test_the_document_is_valid_openapi():
    validate_openapi(document())


def test_the_documented_routes_are_exactly_the_templates():
    documented, wired = set(operations(document())), set(template_routes())
    assert not documented - wired, f"documented but not routes of template.yaml: {sorted(documented - wired)}"
    assert not wired - documented, f"routes of template.yaml missing from openapi.yaml: {sorted(wired - documented)}"


def test_exactly_the_routes_behind_the_authorizer_take_a_bearer_token():
    doc = document()
    ops = operations(doc)
    route_roles = wiring.authorizer_route_roles(template.load())
    for (method, path), protected in template_routes().items():
        op = ops[(method, path)]
        security = op.get("security", doc.get("security", []))
        assert any("bearerAuth" in requirement for requirement in security) == protected, (method, path)
        responses = op["responses"]
        if protected:
            assert "invalid_token" in error_codes(doc, responses["401"]), (method, path)
            assert "temporarily_unavailable" in error_codes(doc, responses["503"]), (method, path)
        # 403 insufficient_scope exactly where the authorizer requires roles.
        needs_roles = bool(route_roles.get(f"{method} {path}"))
        assert ("insufficient_scope" in error_codes(doc, responses.get("403", {}))) == needs_roles, (method, path)
    # The local-only routes are not the deployed API's.
    assert not {"/openapi.yaml", "/docs"} & set(doc["paths"])


def test_every_error_the_service_answers_is_documented_with_its_status():
    doc = document()
    documented = [
        (status, error_codes(doc, response))
        for op in operations(doc).values()
        for status, response in op["responses"].items()
    ]
    answered = code_errors() | gateway_errors()
    for status, code in answered:
        assert any(
            code in codes and (status is None or status_matches(documented_status, status))
            for documented_status, codes in documented
        ), f"{status} {code} is answered but documented nowhere"
    # And no code that nothing answers.
    enum = set(doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
    assert enum == {code for _, code in answered}
    assert set().union(*(codes for _, codes in documented)) == enum


def test_every_error_code_of_the_contract_is_documented():
    enum = set(document()["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
    answered = {code for _, code in code_errors() | gateway_errors()}
    assert CONTRACT_CODES <= answered, "CONTRACT_CODES against shared/src/error.rs and the gateway's answers"
    assert CONTRACT_CODES <= enum
    if not CONTRACT.exists():
        pytest.skip(f"{CONTRACT} is not beside this checkout: checked against the list kept here only")
    # The backticked codes after a 4xx/5xx status on a line, and {"error": "..."} bodies.
    named = set()
    for line in CONTRACT.read_text().splitlines():
        found = re.search(r"\b[45]\d\d\b", line)
        if found:
            named |= set(re.findall(r"`([a-z]+(?:_[a-z]+)+)`", line[found.start() :]))
        named |= set(re.findall(r'"error": "([a-z_]+)"', line))
    assert named == CONTRACT_CODES | set(UNBUILT_CONTRACT_CODES) | set(CONTRACT_FIELDS), (
        "CONTRACT.md's error codes changed: update CONTRACT_CODES (and openapi.yaml), UNBUILT_CONTRACT_CODES"
        " or CONTRACT_FIELDS"
    )
    assert not answered & set(UNBUILT_CONTRACT_CODES), "built now: move these to CONTRACT_CODES"
    assert not answered & set(CONTRACT_FIELDS), "an error code now: move it to CONTRACT_CODES"


# --- The local API against the document ------------------------------------------------------


@pytest.fixture(scope="module")
def api():
    docs_assets.ensure()
    logs = tempfile.TemporaryFile()
    # `make dev`'s signing (RS256, a key pair for the run), so the JWKS has a key to check.
    env = {k: v for k, v in os.environ.items() if k not in {"JWT_SECRET", "JWT_ALGORITHM", "JWT_PRIVATE_KEY"}}
    env.update(ALLOWED_ORIGINS=APP_ORIGIN, LOGIN_LOCK_SECONDS="1")
    port, proc = start_local_api(env, logs)
    api = Api(port, PASSWORD)
    api.base_url = f"http://127.0.0.1:{port}"
    yield api
    assert stop(proc) == 0
    logs.seek(0)
    assert PASSWORD not in logs.read().decode(errors="replace")


def hotp(secret, counter):
    """The 6 digits an authenticator app shows for the base32 `secret` at `counter` (RFC 4226:
    HMAC-SHA-1 of the counter as 8 bytes big-endian, dynamic truncation); with the 30 s step
    as the counter, RFC 6238's TOTP."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    (value,) = struct.unpack(">I", mac[offset : offset + 4])
    return f"{(value & 0x7FFFFFFF) % 1_000_000:06d}"


def totp_step():
    """The current 30 s step, read at least 2 s before it ends (the rest of the step is
    waited out otherwise): the codes of this step and of those either side, sent at once,
    land while the service still takes them."""
    left = TOTP_STEP - time.time() % TOTP_STEP
    if left < 2:
        time.sleep(left + 0.05)
    return int(time.time()) // TOTP_STEP


def wrong_code(secret, step):
    """Six digits that are the code of no step near `step`."""
    near = {hotp(secret, s) for s in range(step - 2, step + 3)}
    return next(code for code in ("000000", "111111", "222222", "333333", "444444", "555555") if code not in near)


def registered(api, username=None):
    username = username or new_name()
    res = api.register(username)
    assert res.status == 201, res
    return username, res.json()


def admin_token(api):
    name, _ = registered(api)
    roles.change_role(os.environ["USERS_TABLE"], name, "admin", endpoint=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    res = api.login(name)
    assert res.status == 200, res
    return res.json()["access_token"]


def test_the_local_api_serves_the_document_and_a_docs_page_of_local_files(api):
    res = api.call("GET", "/openapi.yaml")
    assert res.status == 200, res
    assert res.body == DOCUMENT.read_bytes()
    assert res.header("content-type").startswith("application/yaml")

    page = api.call("GET", "/docs")
    assert page.status == 200, page
    assert page.header("content-type").startswith("text/html")
    assert "script-src 'self'" in page.header("content-security-policy")
    html = page.body.decode()
    assert not re.findall(r"https?://", html, re.I), "the page names no other host"
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html)
    assert {"/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/swagger-initializer.js"} <= set(assets)
    for asset in assets:
        parts = urllib.parse.urlsplit(asset)
        assert not parts.scheme and not parts.netloc and asset.startswith("/"), asset
        res = api.call("GET", asset)
        assert res.status == 200 and res.body, (asset, res)
    initializer = api.call("GET", "/docs/swagger-initializer.js").body.decode()
    assert '"/openapi.yaml"' in initializer and not re.findall(r"https?://", initializer)
    assert api.call("GET", "/docs/swagger-ui.css").header("content-type").startswith("text/css")
    assert api.call("GET", "/docs/swagger-ui-bundle.js").header("content-type").startswith("text/javascript")

    # Only those files, and only GET: anything else is the gateway's 404.
    for path in ["/docs/../openapi.yaml", "/docs/%2e%2e/openapi.yaml", "/docs/LICENSE", "/docs/.stamp", "/docs/x"]:
        res = api.call("GET", path)
        assert res.status == 404 and res.json()["error"] == "not_found", (path, res)
    assert api.call("POST", "/openapi.yaml").status == 404
    assert api.call("DELETE", "/docs").status == 404


def test_every_operation_answers_as_documented_when_it_succeeds_and_when_it_refuses(api):
    """Chosen requests, so that every operation's success is among the answers checked
    (generated data rarely holds a valid refresh token or the right password): each answer
    passes schemathesis's checks and has the status the flow expects."""
    answered = set()

    def call(method, path, status, *, token=None, headers=None, **case):
        headers = {"Origin": APP_ORIGIN, **(headers or {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if "body" in case:
            case.setdefault("media_type", "application/json")
        case = SCHEMA[path][method].Case(headers=headers, **case)
        response = case.call(base_url=api.base_url)
        case.validate_response(response, checks=CHECKS)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        answered.add((method, path, status))
        return response

    csrf = {"X-Requested-With": "fetch"}
    cookie_mode = {"cookie": "true"}
    form = "application/x-www-form-urlencoded"

    def header(response, name):
        (value,) = next(v for k, v in response.headers.items() if k.lower() == name)
        return value

    def cookie_of(response, name="__Host-refresh_token"):
        values = next(v for k, v in response.headers.items() if k.lower() == "set-cookie")
        found = dict(value.split(";")[0].split("=", 1) for value in values)
        assert found.get(name), values
        return found[name]

    # Registration: JSON and cookie mode; refusals.
    name, other = new_name(), new_name()
    call("POST", "/auth/register", 201, body={"username": name, "password": PASSWORD, "email": f"{name}@example.com"})
    call("POST", "/auth/register", 409, body={"username": name.upper(), "password": PASSWORD})
    call("POST", "/auth/register", 400, body={"username": "x!", "password": PASSWORD})
    refused = call("POST", "/auth/register", 400, body={"username": new_name(), "password": PASSWORD, "email": "no-at-sign"})
    assert refused.json()["error"] == "invalid_email"
    cookie_registration = {"username": other, "password": PASSWORD}
    call("POST", "/auth/register", 403, query=cookie_mode, body=cookie_registration)
    res = call("POST", "/auth/register", 201, query=cookie_mode, headers=csrf, body=cookie_registration)
    assert "refresh_token" not in res.json() and cookie_of(res)

    # Login: JSON, the OAuth form, cookie mode; refusals; the failed-login throttle.
    tokens = call("POST", "/auth/login", 200, body={"username": name, "password": PASSWORD}).json()
    device = {"username": name, "password": PASSWORD, "device_token": tokens["device_token"]}
    assert cookie_of(call("POST", "/auth/login", 200, body=device), "__Host-device")
    login = {"grant_type": "password", "username": name, "password": PASSWORD}
    second = call("POST", "/auth/login", 200, body=login, media_type=form).json()
    cookie = cookie_of(call("POST", "/auth/login", 200, query=cookie_mode, headers=csrf, body=login, media_type=form))
    call("POST", "/auth/login", 401, body={"username": name, "password": "not the password"})
    call("POST", "/auth/login", 400, body={"username": name})
    call("POST", "/auth/login", 413, body={"username": name, "password": "x" * 9000})
    locked = new_name()
    for _ in range(5):
        call("POST", "/auth/login", 401, body={"username": locked, "password": "not the password"})
    assert int(header(call("POST", "/auth/login", 429, body={"username": locked, "password": "x"}), "retry-after")) >= 1

    # Refresh: JSON, form, the cookie; refusals (a refused cookie is cleared).
    pair = call("POST", "/auth/refresh", 200, body={"refresh_token": second["refresh_token"]}).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    call("POST", "/auth/refresh", 200, body=refresh, media_type=form)
    call("POST", "/auth/refresh", 401, body={"refresh_token": tokens["access_token"]})
    call("POST", "/auth/refresh", 400, body={"refresh_token": 42})
    res = call("POST", "/auth/refresh", 200, query=cookie_mode, headers=csrf, cookies={"__Host-refresh_token": cookie})
    assert cookie_of(res) != cookie
    res = call("POST", "/auth/refresh", 401, query=cookie_mode, headers=csrf, cookies={"__Host-refresh_token": "not-a-token"})
    assert "Max-Age=0" in header(res, "set-cookie")

    # Email: a registration's verification mail (the local mailbox); its token proves the
    # address once, and the address then belongs to that account.
    def mailed_token(to):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            messages = [m for m in api.call("GET", "/local/mail").json()["messages"] if to in m["to"]]
            if messages:
                return re.search(r"/verify-email\?token=([A-Za-z0-9_-]+)", messages[-1]["text"]).group(1)
            time.sleep(0.1)
        raise AssertionError(f"no mail to {to}")

    owner, taker = new_name(), new_name()
    address = f"{owner}@example.com"
    call("POST", "/auth/register", 201, body={"username": owner, "password": PASSWORD, "email": address})
    owners = mailed_token(address)
    call("POST", "/auth/register", 201, body={"username": taker, "password": PASSWORD, "email": address.upper()})
    deadline = time.monotonic() + 10
    while mailed_token(address) == owners and time.monotonic() < deadline:
        time.sleep(0.1)
    takers = mailed_token(address)
    call("POST", "/auth/email/verify", 200, body={"token": owners})
    call("POST", "/auth/email/verify", 400, body={"token": owners})
    call("POST", "/auth/email/verify", 409, body={"token": takers})
    call("POST", "/auth/register", 409, body={"username": new_name(), "password": PASSWORD, "email": address})
    call("POST", "/auth/email/resend", 202, body={"email": f"{new_name()}@example.com"})
    call("POST", "/auth/email/resend", 400, body={"email": "not an address"})
    # A forgotten password: the owner's verified address gets the link; it sets a new one.
    call("POST", "/auth/password/forgot", 202, body={"email": address})
    call("POST", "/auth/password/forgot", 400, body={})
    deadline = time.monotonic() + 10
    reset_token = None
    while reset_token is None and time.monotonic() < deadline:
        messages = [m for m in api.call("GET", "/local/mail").json()["messages"] if address in m["to"]]
        links = [re.search(r"/reset-password\?token=([A-Za-z0-9_-]+)", m["text"]) for m in messages]
        reset_token = next((link.group(1) for link in links if link), None)
        time.sleep(0.1)
    call("POST", "/auth/password/reset", 400, body={"token": reset_token, "new_password": "short"})
    call("POST", "/auth/password/reset", 204, body={"token": reset_token, "new_password": PASSWORD + " reset"})
    call("POST", "/auth/password/reset", 400, body={"token": reset_token, "new_password": PASSWORD + " again"})

    # The caller, its sessions.
    access = tokens["access_token"]
    call("GET", "/auth/me", 200, token=access)
    call("GET", "/auth/me", 401)
    call("GET", "/auth/me", 401, token="not.a.token")
    sessions = call("GET", "/auth/sessions", 200, token=access).json()["sessions"]
    other_session = next(s["id"] for s in sessions if not s["current"])
    call("DELETE", "/auth/sessions/{id}", 204, token=access, path_parameters={"id": other_session})
    call("DELETE", "/auth/sessions/{id}", 404, token=access, path_parameters={"id": other_session})
    call("GET", "/auth/sessions", 401)

    # Password change and account deletion, each on a user of its own.
    changer, body = registered(api)
    change = {"current_password": PASSWORD, "new_password": f"{PASSWORD} new"}
    call("POST", "/auth/password", 400, token=body["access_token"], body={**change, "new_password": "short"})
    call("POST", "/auth/password", 401, token=body["access_token"], body={**change, "current_password": "wrong one"})
    call("POST", "/auth/password", 200, token=body["access_token"], body=change)
    call("POST", "/auth/password", 401, token=body["access_token"], body=change)
    mover, body = registered(api)
    moving = {"email": f"{new_name()}@example.com", "password": PASSWORD}
    call("POST", "/auth/email", 400, token=body["access_token"], body={**moving, "email": "not an address"})
    call("POST", "/auth/email", 401, token=body["access_token"], body={**moving, "password": "wrong one"})
    call("POST", "/auth/email", 409, token=body["access_token"], body={**moving, "email": address})
    call("POST", "/auth/email", 202, token=body["access_token"], body=moving)
    call("POST", "/auth/email", 401, body=moving)
    leaver, body = registered(api)
    call("DELETE", "/auth/account", 401, token=body["access_token"], body={"password": "wrong one"})
    call("DELETE", "/auth/account", 403, token=body["access_token"], query=cookie_mode, body={"password": PASSWORD})
    call("DELETE", "/auth/account", 204, token=body["access_token"], body={"password": PASSWORD})
    call("GET", "/auth/me", 401, token=body["access_token"])

    # Logout: CSRF and flag refusals, this session, everywhere.
    call("POST", "/auth/logout", 403, token=access, query=cookie_mode)
    call("POST", "/auth/logout", 400, token=access, query={"all": "maybe"})
    call("POST", "/auth/logout", 204, token=access, query=cookie_mode, headers=csrf)
    call("POST", "/auth/logout", 401, token=access)
    everywhere = api.login(name).json()["access_token"]
    call("POST", "/auth/logout", 204, token=everywhere, query={"all": "true"})

    # Administration.
    admin = admin_token(api)
    target, body = registered(api)
    user = {"username": target}
    call("GET", "/admin/users/{username}", 200, token=admin, path_parameters={"username": target.upper()})
    call("GET", "/admin/users/{username}", 403, token=body["access_token"], path_parameters=user)
    call("GET", "/admin/users/{username}", 404, token=admin, path_parameters={"username": new_name()})
    roles = "/admin/users/{username}/roles"
    call("POST", roles, 200, token=admin, path_parameters=user, body={"add": ["support"], "remove": ["nothing"]})
    call("POST", roles, 400, token=admin, path_parameters=user, body={"add": ["Support!"]})
    call("POST", roles, 400, token=admin, path_parameters=user, body=["support"])
    call("POST", roles, 401, path_parameters=user, body={})
    call("POST", "/admin/users/{username}/enable", 403, token=body["access_token"], path_parameters=user)
    call("POST", "/admin/users/{username}/disable", 204, token=admin, path_parameters=user)
    call("POST", "/admin/users/{username}/disable", 404, token=admin, path_parameters={"username": new_name()})
    call("POST", "/admin/users/{username}/enable", 204, token=admin, path_parameters=user)
    bcrypt_hash = "$2b$04$FwGxZhUVWy7bd3/.PUu4j.2L1Al4pmhK45psy918E3WhTQZrv5VK."
    imported = {"users": [{"username": new_name(), "password_hash": bcrypt_hash}, {"username": new_name(), "password_hash": "5f4dcc3b5aa765d61d8327deb882cf99"}]}
    call("POST", "/admin/users/import", 200, token=admin, body=imported)
    call("POST", "/admin/users/import", 400, token=admin, body={"users": "nobody"})
    _, plain = registered(api)
    call("POST", "/admin/users/import", 403, token=plain["access_token"], body=imported)

    # Multi-factor: the set-up and its confirmation by a code computed here (RFC 6238); the
    # two-step login; new recovery codes; turning it off with a recovery code; an
    # administrator's reset. No waiting for the clock: the confirmation takes the previous
    # step's code, the login the current step's, the new recovery codes the next step's (the
    # service takes a code of its step or one either side, each step once, in order).
    setup, confirm, login_mfa = "/auth/mfa/totp/setup", "/auth/mfa/totp/confirm", "/auth/login/mfa"
    recovery, totp, reset_mfa = "/auth/mfa/recovery-codes", "/auth/mfa/totp", "/admin/users/{username}/mfa/reset"
    mfa_user, body = registered(api)
    mfa_access = body["access_token"]
    call("POST", setup, 401, token=mfa_access, body={"password": "wrong one"})
    call("POST", setup, 400, token=mfa_access, body={"password": 42})
    call("POST", setup, 401, body={"password": PASSWORD})
    refused = call("POST", confirm, 400, token=mfa_access, body={"code": "123456"})
    assert refused.json()["error"] == "invalid_request", "no set-up to confirm"
    secret = call("POST", setup, 200, token=mfa_access, body={"password": PASSWORD}).json()["secret"]
    step = totp_step()
    refused = call("POST", confirm, 400, token=mfa_access, body={"code": wrong_code(secret, step)})
    assert refused.json()["error"] == "invalid_grant"
    old_codes = call("POST", confirm, 200, token=mfa_access, body={"code": hotp(secret, step - 1)}).json()["recovery_codes"]
    call("POST", confirm, 409, token=mfa_access, body={"code": hotp(secret, step)})
    call("POST", setup, 409, token=mfa_access, body={"password": PASSWORD})
    call("POST", recovery, 400, token=mfa_access, body={"code": hotp(secret, step - 1)})  # used
    call("POST", recovery, 401, body={"code": hotp(secret, step)})
    # The password is step one: 403 mfa_required and its token, no tokens; then the code.
    second = call("POST", "/auth/login", 403, body={"username": mfa_user, "password": PASSWORD}).json()
    assert second["error"] == "mfa_required" and "access_token" not in second
    call("POST", login_mfa, 400, body={"mfa_token": second["mfa_token"]})
    both = {"mfa_token": second["mfa_token"], "code": hotp(secret, step), "recovery_code": old_codes[0]}
    call("POST", login_mfa, 400, body=both)
    call("POST", login_mfa, 403, query=cookie_mode, body={"mfa_token": second["mfa_token"], "code": hotp(secret, step)})
    call("POST", login_mfa, 401, body={"mfa_token": second["mfa_token"], "code": hotp(secret, step - 1)})  # used
    call("POST", login_mfa, 401, body={"mfa_token": "not-a-token", "code": hotp(secret, step)})
    signed_in = call("POST", login_mfa, 200, body={"mfa_token": second["mfa_token"], "code": hotp(secret, step)})
    assert cookie_of(signed_in, "__Host-device")
    assert call("GET", "/auth/me", 200, token=signed_in.json()["access_token"]).json()["amr"] == ["pwd", "otp", "mfa"]
    assert call("GET", "/auth/me", 200, token=mfa_access).json()["amr"] == ["pwd"]
    call("POST", login_mfa, 401, body={"mfa_token": second["mfa_token"], "code": hotp(secret, step + 1)})  # spent
    # Ten new recovery codes for the next step's code; the old ones stop working.
    new_codes = call("POST", recovery, 200, token=mfa_access, body={"code": hotp(secret, step + 1)}).json()["recovery_codes"]
    assert len(set(new_codes)) == 10 and not set(new_codes) & set(old_codes)
    # A recovery code signs in (cookie mode here), once.
    mfa_form = {"grant_type": "password", "username": mfa_user, "password": PASSWORD}
    second = call("POST", "/auth/login", 403, body=mfa_form, media_type=form).json()
    call("POST", login_mfa, 401, body={"mfa_token": second["mfa_token"], "recovery_code": old_codes[1]})
    res = call("POST", login_mfa, 200, query=cookie_mode, headers=csrf, body={"mfa_token": second["mfa_token"], "recovery_code": new_codes[0]})
    assert "refresh_token" not in res.json() and cookie_of(res)
    # Off: the password and a code (here a recovery code).
    off = {"password": PASSWORD, "code": new_codes[1]}
    call("DELETE", totp, 401, token=mfa_access, body={**off, "password": "wrong one"})
    call("DELETE", totp, 400, token=mfa_access, body={**off, "code": new_codes[0]})  # used
    call("DELETE", totp, 400, token=mfa_access, body={"password": PASSWORD})
    call("DELETE", totp, 204, token=mfa_access, body=off)
    refused = call("DELETE", totp, 400, token=mfa_access, body={**off, "code": new_codes[2]})
    assert refused.json()["error"] == "invalid_request", "not on any more"
    refused = call("POST", recovery, 400, token=mfa_access, body={"code": hotp(secret, step + 1)})
    assert refused.json()["error"] == "invalid_request", "not on any more"
    # An administrator's reset (a lost phone): the factor gone, every session revoked.
    lost, body = registered(api)
    lost_access = body["access_token"]
    lost_secret = call("POST", setup, 200, token=lost_access, body={"password": PASSWORD}).json()["secret"]
    call("POST", confirm, 200, token=lost_access, body={"code": hotp(lost_secret, totp_step())})
    call("POST", reset_mfa, 403, token=lost_access, path_parameters={"username": lost})
    call("POST", reset_mfa, 401, path_parameters={"username": lost})
    call("POST", reset_mfa, 404, token=admin, path_parameters={"username": new_name()})
    call("POST", reset_mfa, 204, token=admin, path_parameters={"username": lost.upper()})
    call("GET", "/auth/me", 401, token=lost_access)
    call("POST", "/auth/login", 200, body={"username": lost, "password": PASSWORD})

    # Keys: a key with RS256, and the discovery document.
    assert call("GET", "/.well-known/jwks.json", 200).json()["keys"]
    call("GET", "/.well-known/openid-configuration", 200)

    # The preflight on every path.
    for path in document()["paths"]:
        parameters = {name: "x" for name in re.findall(r"\{(\w+)\}", path)}
        res = call("OPTIONS", path, 204, path_parameters=parameters, headers={"Access-Control-Request-Method": "POST"})
        assert header(res, "access-control-allow-origin") == APP_ORIGIN

    succeeded = {(method, path) for method, path, status in answered if status < 300}
    assert succeeded == set(operations(document())), "an operation whose success was not checked"


SCHEMA = schemathesis.openapi.from_path(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            # Stateful sequences would log in, out and in again at argon2's pace.
            "phases": {"stateful": {"enabled": False}},
        }
    ),
)


class Callers:
    """Bearer tokens that get generated requests past the authorizer, so that protected
    routes answer more than 401: a user's; an administrator's on the admin routes (the
    usernames are generated, so they change nobody that matters); and for logout, a user
    logged in again after each logout that worked."""

    def __init__(self, api):
        self.api = api
        self.protected = {route for route, behind in template_routes().items() if behind}
        _, body = registered(api)
        self.user = body["access_token"]
        self.admin = admin_token(api)
        self.leaver, body = registered(api)
        self.leaver_token = body["access_token"]

    def token(self, case):
        route = (case.method.upper(), case.operation.path)
        if route not in self.protected:
            return None
        if case.operation.path.startswith("/admin/"):
            return self.admin
        if case.operation.path == "/auth/logout":
            if self.leaver_token is None:
                res = self.api.login(self.leaver)
                assert res.status == 200, res
                self.leaver_token = res.json()["access_token"]
            return self.leaver_token
        return self.user

    def answered(self, case, response):
        if case.operation.path == "/auth/logout" and response.status_code == 204:
            self.leaver_token = None


@pytest.fixture(scope="module")
def callers(api):
    return Callers(api)


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


@SCHEMA.parametrize()
def test_generated_requests_are_answered_as_documented(case, api, callers, session):
    token = callers.token(case)
    if token:
        case.headers = CaseInsensitiveDict(case.headers or {})
        case.headers["Authorization"] = f"Bearer {token}"
    response = case.call(base_url=api.base_url, session=session)
    callers.answered(case, response)
    case.validate_response(response, checks=CHECKS)
