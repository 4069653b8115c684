"""End-to-end HTTP tests of the contract (../shared/CONTRACT.md) against the local API.

The local API is started here exactly as `make dev` starts it (scripts/local_api.py, routes
and gateway responses from template.yaml), plus one role-protected route, against the
DynamoDB server scripts/with_dynamodb.py provides. Everything goes over real HTTP.
"""

import base64
import hashlib
import hmac
import json
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from devtools import roles, template
from support import Api, new_name, start_local_api, stop

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = template.load()
# A fixed issuer, as a deployment behind a custom domain configures it (the template's
# default, empty, is the API's own URL: tests/test_keys.py checks that case).
ISSUER = "https://auth.e2e.test"
AUDIENCE = TEMPLATE["Parameters"]["JwtAudience"]["Default"]
SECRET = secrets.token_urlsafe(48)
# Unique per run, so finding it in the logs means it was logged.
PASSWORD = f"e2e pass {secrets.token_urlsafe(12)}"
ADMIN_ROUTE = "/admin/whoami"
# Browser origins the API allows (CORS, cookie mode); the first is the one API Gateway's own
# error answers can name (a gateway response has one fixed value).
APP_ORIGIN = "https://app.example.test:8080"
SECOND_ORIGIN = "https://admin.example.test"
EVIL_ORIGIN = "https://evil.example.test"
CONTRACT_ERROR_KEYS = {"error", "error_description"}


@pytest.fixture(scope="module")
def api_logs():
    return tempfile.TemporaryFile()


@pytest.fixture(scope="module")
def api(api_logs):
    # A one-second base lock keeps the failed-login throttle's back-off testable.
    env = dict(
        os.environ,
        JWT_SECRET=SECRET,
        JWT_ISSUER=ISSUER,
        LOGIN_LOCK_SECONDS="1",
        ALLOWED_ORIGINS=f"{APP_ORIGIN},{SECOND_ORIGIN}",
    )
    port, proc = start_local_api(env, api_logs, "--extra-route", f"GET {ADMIN_ROUTE}=me:admin")
    yield Api(port, PASSWORD)
    assert stop(proc) == 0, "the local API stops cleanly on SIGTERM"
    api_logs.seek(0)
    logs = api_logs.read().decode(errors="replace")
    # A whole run of flows: the secret and the passwords never reach the logs.
    assert "listening on http://127.0.0.1:" in logs
    assert SECRET not in logs
    assert PASSWORD not in logs
    assert "eyJ" not in logs, "no JWT (or any base64 JSON) in the logs"
    assert "$argon2" not in logs, "no password hash in the logs"


@pytest.fixture(scope="module")
def strict_api(api_logs):
    """The local API with the template's throttle timing (30 s locks), for tests whose
    bursts must not outlast a one-second lock on a slow machine."""
    env = dict(os.environ, JWT_SECRET=SECRET, JWT_ISSUER=ISSUER)
    env.pop("LOGIN_LOCK_SECONDS", None)
    port, proc = start_local_api(env, api_logs)
    yield Api(port, PASSWORD)
    assert stop(proc) == 0


@pytest.fixture
def user(api):
    """A registered user and the tokens registration answered with."""
    username = new_name()
    res = api.register(username)
    assert res.status == 201, res
    return {"username": username, **res.json()}


def tokens_of(res):
    assert res.status == 200, res
    body = res.json()
    return body["access_token"], body["refresh_token"]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode(token):
    header, payload, _ = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload))


def sign(claims, secret=SECRET, header=None):
    header = header or {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def resigned(token, **changes):
    """The token's own claims with some changed, validly signed with the real secret."""
    _, claims = decode(token)
    claims.update(changes)
    return sign(claims)


def forgeries_of(token):
    """Variants of a token that must be refused: signed with another key, or validly
    signed with claims that are out of time or meant for someone else."""
    _, claims = decode(token)
    now = int(time.time())
    return {
        "other secret": sign(claims, secret=secrets.token_urlsafe(48)),
        "expired": resigned(token, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "not yet valid": resigned(token, nbf=now + 3600),
        "wrong issuer": resigned(token, iss="someone-else"),
        "wrong audience": resigned(token, aud="another-api"),
    }


def assert_error(res, status, code):
    assert res.status == status, res
    body = res.json()
    assert set(body) == CONTRACT_ERROR_KEYS, body
    assert body["error"] == code, body
    assert body["error_description"]
    return body


def assert_invalid_token(res):
    """The authorizer's 401, as API Gateway answers it (the template's UNAUTHORIZED)."""
    assert_error(res, 401, "invalid_token")
    assert res.header("WWW-Authenticate") == 'Bearer error="invalid_token"'


# --- The template and the local API agree ------------------------------------------


def template_routes():
    routes = {}
    for props in TEMPLATE["Resources"].values():
        if props["Type"] != "AWS::Serverless::Function":
            continue
        for event in (props["Properties"].get("Events") or {}).values():
            if event["Type"] == "Api":
                e = event["Properties"]
                routes[f"{e['Method'].upper()} {e['Path']}"] = bool((e.get("Auth") or {}).get("Authorizer"))
    return routes


def test_every_contract_route_is_in_the_template_and_protected_as_the_contract_says():
    routes = template_routes()
    assert {r: protected for r, protected in routes.items() if not r.startswith("ANY ")} == {
        "POST /auth/register": False,
        "POST /auth/login": False,
        "POST /auth/refresh": False,
        "POST /auth/email/verify": False,
        "POST /auth/email/resend": False,
        "POST /auth/password/forgot": False,
        "POST /auth/password/reset": False,
        "POST /auth/login/mfa": False,
        "GET /.well-known/jwks.json": False,
        "GET /.well-known/openid-configuration": False,
        "POST /auth/logout": True,
        "GET /auth/me": True,
        "POST /auth/password": True,
        "POST /auth/email": True,
        "DELETE /auth/account": True,
        "GET /auth/sessions": True,
        "DELETE /auth/sessions/{id}": True,
        "POST /auth/mfa/totp/setup": True,
        "POST /auth/mfa/totp/confirm": True,
        "POST /auth/mfa/recovery-codes": True,
        "DELETE /auth/mfa/totp": True,
        "GET /admin/users/{username}": True,
        "POST /admin/users/{username}/roles": True,
        "POST /admin/users/{username}/disable": True,
        "POST /admin/users/{username}/enable": True,
        "POST /admin/users/import": True,
        "POST /admin/users/{username}/mfa/reset": True,
    }
    # Every path answers the CORS preflight and 405 for the other methods (one ANY route),
    # never behind the authorizer.
    assert {r: protected for r, protected in routes.items() if r.startswith("ANY ")} == {
        f"ANY {path}": False for path in template_paths()
    }


def test_the_authorizer_knows_exactly_the_protected_routes_of_the_template():
    # Its policy covers every protected route; a route it did not know would be denied.
    variables = TEMPLATE["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    route_roles = json.loads(variables["ROUTE_ROLES"])
    assert set(route_roles) == {r for r, protected in template_routes().items() if protected}


def test_the_local_api_serves_the_template_wiring():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "local_api.py"), "--print-wiring"],
        check=True,
        capture_output=True,
        text=True,
    )
    wired = json.loads(out.stdout)["wiring"]
    served = {f"{r['method']} {r['path']}": r["authorizer"] for r in wired["routes"]}
    assert served == template_routes()
    assert wired["stage"] == TEMPLATE["Parameters"]["StageName"]["Default"]


def test_gateway_answers_carry_the_template_bodies(api):
    responses = TEMPLATE["Resources"]["AuthApi"]["Properties"]["GatewayResponses"]
    res = api.call("GET", "/auth/me")
    assert json.loads(res.body) == json.loads(responses["UNAUTHORIZED"]["ResponseTemplates"]["application/json"])
    res = api.call("GET", "/no/such/route")
    assert_error(res, 404, "not_found")
    assert json.loads(res.body) == json.loads(
        responses["MISSING_AUTHENTICATION_TOKEN"]["ResponseTemplates"]["application/json"]
    )


def test_a_method_a_path_does_not_take_is_405_with_allow_and_an_unknown_path_stays_404(api, user):
    for method, path, allow in [
        ("GET", "/auth/login", "OPTIONS, POST"),
        ("PUT", "/auth/refresh", "OPTIONS, POST"),
        ("DELETE", "/auth/me", "GET, OPTIONS"),
        ("POST", "/auth/sessions", "GET, OPTIONS"),
        ("PATCH", f"/auth/sessions/{uuid.uuid4()}", "DELETE, OPTIONS"),
        ("DELETE", "/.well-known/jwks.json", "GET, OPTIONS"),
        ("PUT", f"/admin/users/{user['username']}", "GET, OPTIONS"),
    ]:
        # No credentials needed to learn the methods (as an OPTIONS), and none are checked.
        res = api.call(method, path, headers={"Origin": APP_ORIGIN})
        assert_error(res, 405, "method_not_allowed")
        assert res.header("Allow") == allow, (method, path, res.headers)
        assert_cors_for(res, APP_ORIGIN)
    # A path that is no route is 404 whatever the method.
    for method in ["GET", "POST", "DELETE"]:
        assert_error(api.call(method, "/auth/nothing"), 404, "not_found")
    # The routes themselves still answer as before.
    assert api.call("OPTIONS", "/auth/login", headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"}).status == 204
    assert api.me(user["access_token"]).status == 200


# --- The happy path -------------------------------------------------------------------


def test_register_login_me_refresh_logout(api):
    username = new_name()
    res = api.register(username.upper(), email="someone@example.com")
    assert res.status == 201, res
    assert res.header("Content-Type") == "application/json; charset=utf-8"
    assert res.header("Cache-Control") == "no-store"
    reg = res.json()
    assert set(reg) == {"user", "access_token", "refresh_token", "token_type", "expires_in"}
    assert reg["user"]["username"] == username  # normalized to lowercase
    assert reg["user"]["roles"] == ["user"]
    uuid.UUID(reg["user"]["id"])
    assert (reg["token_type"], reg["expires_in"]) == ("Bearer", 900)
    assert PASSWORD.encode() not in res.body and b"argon2" not in res.body

    res = api.login(username)
    login = res.json()
    assert set(login) == {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in", "device_token"}
    assert (login["token_type"], login["expires_in"], login["refresh_expires_in"]) == ("Bearer", 900, 2592000)
    assert res.header("Cache-Control") == "no-store"
    access, refresh = tokens_of(res)

    header, claims = decode(access)
    assert header == {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    assert (claims["iss"], claims["aud"], claims["sub"]) == (ISSUER, AUDIENCE, reg["user"]["id"])
    assert (claims["username"], claims["roles"], claims["token_use"]) == (username, ["user"], "access")
    assert claims["exp"] - claims["iat"] == 900 and claims["nbf"] <= claims["iat"] + 1
    _, rclaims = decode(refresh)
    assert rclaims["token_use"] == "refresh" and rclaims["sid"] == claims["sid"]
    assert rclaims["exp"] - rclaims["iat"] == 2592000
    assert "username" not in rclaims and "roles" not in rclaims
    assert len({claims["jti"], rclaims["jti"], decode(reg["access_token"])[1]["jti"]}) == 3

    res = api.me(access)
    assert res.status == 200, res
    assert res.json() == {
        "id": reg["user"]["id"],
        "username": username,
        "roles": ["user"],
        "session_id": claims["sid"],
        "expires_at": claims["exp"],
        "email": "someone@example.com",
        "email_verified": False,
        "amr": ["pwd"],
    }
    assert claims["amr"] == rclaims["amr"] == ["pwd"]

    access2, refresh2 = tokens_of(api.refresh(refresh))
    _, claims2 = decode(access2)
    assert claims2["sid"] == claims["sid"], "a refresh keeps the session"
    assert api.me(access2).status == 200

    res = api.logout(access2)
    assert res.status == 204, res
    assert res.body == b""
    assert_invalid_token(api.me(access2))
    assert_invalid_token(api.me(access))
    assert_error(api.refresh(refresh2), 401, "invalid_grant")


def test_form_encoded_login_and_refresh(api, user):
    res = api.call(
        "POST", "/auth/login", form={"grant_type": "password", "username": user["username"], "password": PASSWORD}
    )
    access, refresh = tokens_of(res)
    assert api.me(access).status == 200
    res = api.call("POST", "/auth/refresh", form={"grant_type": "refresh_token", "refresh_token": refresh})
    access2, _ = tokens_of(res)
    assert api.me(access2).status == 200


def test_unknown_json_fields_are_ignored(api):
    res = api.register(new_name(), favourite_colour="green", roles=["admin"])
    assert res.status == 201, res
    assert res.json()["user"]["roles"] == ["user"], "a client cannot pick its own roles"


# --- Register errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, content_type",
    [
        ('{"username": "alice-x", "password": ', "application/json"),  # malformed JSON
        ('{"username": "alice-x", "password": "correct horse battery"}', "text/plain"),  # wrong content type
        ('{"username": "alice-x"}', "application/json"),  # missing field
        ('{"username": 5, "password": "correct horse battery"}', "application/json"),  # wrong type
        ('["alice-x", "correct horse battery"]', "application/json"),  # not an object
        ("", "application/json"),  # no body
    ],
)
def test_register_refuses_malformed_requests(api, body, content_type):
    res = api.call("POST", "/auth/register", body=body, headers={"Content-Type": content_type})
    assert_error(res, 400, "invalid_request")


@pytest.mark.parametrize("username", ["ab", "-alice", "alice smith", "al!ce", "a" * 33, "ａlice", "alicé"])
def test_register_refuses_invalid_usernames(api, username):
    assert_error(api.register(username), 400, "invalid_username")


def test_register_refuses_invalid_passwords_and_changes_nothing(api):
    username = new_name()
    for password in ["short7!", "x" * 129, username, username.upper()]:
        assert_error(api.register(username, password=password), 400, "invalid_password")
    # Nothing was created: the name is still free.
    assert api.register(username, password="é" * 128).status == 201


def test_register_refuses_a_taken_name_in_any_case(api, user):
    assert_error(api.register(user["username"].upper(), password="another password"), 409, "username_taken")
    # The original account is untouched.
    assert api.login(user["username"]).status == 200
    assert_error(api.login(user["username"], "another password"), 401, "invalid_grant")


def test_bodies_over_8_kib_are_refused_with_413(api):
    big = {"username": new_name(), "password": PASSWORD, "padding": "x" * (8 * 1024)}
    for path in ["/auth/register", "/auth/login", "/auth/refresh"]:
        assert_error(api.call("POST", path, json_body=big), 413, "invalid_request")


def test_every_route_refuses_a_body_over_8_kib_and_takes_one_at_8_kib(api, admin, user):
    # Except a batch import of users: 128 KiB (100 users with their hashes).
    limits = {"POST /admin/users/import": 128 * 1024}
    administered = new_name()  # the admin routes act on another user (disable ignores a body)
    assert api.register(administered).status == 201
    for route, behind_authorizer in template_routes().items():
        method, path = route.split(" ", 1)
        if method == "OPTIONS":
            continue
        path = path.replace("{username}", administered).replace("{id}", "019a9c4e-0000-7000-8000-000000000000")
        token = (admin if path.startswith("/admin/") else user["access_token"]) if behind_authorizer else None
        headers = {"Content-Type": "application/json"}
        limit = limits.get(route, 8 * 1024)
        over, at = "x" * (limit + 1), "x" * limit
        assert_error(api.call(method, path, body=over, token=token, headers=headers), 413, "invalid_request")
        # At the limit the body is read (or ignored): whatever the answer, not 413.
        if route not in ("POST /auth/logout", "DELETE /auth/account"):
            assert api.call(method, path, body=at, token=token, headers=headers).status != 413, route
    # The refused logout changed nothing: the session is alive.
    assert api.me(user["access_token"]).status == 200


def test_a_form_may_repeat_parameters_the_service_does_not_read_but_not_those_it_does(api, user):
    body = f"x=1&x=2&client_id=a&client_id=b&grant_type=password&username={user['username']}&password={PASSWORD.replace(' ', '+')}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert api.call("POST", "/auth/login", body=body, headers=headers).status == 200
    body = f"grant_type=password&username={user['username']}&username=other&password=x"
    res = assert_error(api.call("POST", "/auth/login", body=body, headers=headers), 400, "invalid_request")
    assert "repeated" in res["error_description"]


# --- Login errors ---------------------------------------------------------------------


def test_login_answers_unknown_user_and_wrong_password_byte_for_byte_alike(api, user):
    wrong = api.login(user["username"], "not the password")
    unknown = api.login(new_name(), "not the password")
    assert_error(wrong, 401, "invalid_grant")
    assert (wrong.status, wrong.body) == (unknown.status, unknown.body)


def test_repeated_failures_lock_a_name_with_429_and_unknown_names_alike(api, user):
    unknown = new_name()
    answers = {}
    for name in (user["username"], unknown):
        for _ in range(5):
            assert_error(api.login(name, "not the password"), 401, "invalid_grant")
        # Locked: even the right password is refused, without a word about why it failed.
        answers[name] = api.login(name, PASSWORD)
    locked = answers[user["username"]]
    assert_error(locked, 429, "too_many_attempts")
    assert locked.header("Retry-After") == "1"
    other = answers[unknown]
    assert (other.status, other.body, other.header("Retry-After")) == (locked.status, locked.body, "1")
    # The lock ends; the right password works and resets the count.
    time.sleep(1.1)
    assert api.login(user["username"]).status == 200
    for _ in range(4):
        assert_error(api.login(user["username"], "not the password"), 401, "invalid_grant")
    assert api.login(user["username"]).status == 200


def test_simultaneous_wrong_passwords_from_one_client_get_at_most_five_verified(strict_api, user):
    # Counted before the password is checked: the burst cannot outrun the lock.
    client = strict_api.from_address("127.0.0.4")
    results = concurrently([lambda: client.login(user["username"], "not the password")] * 20)
    statuses = sorted(r.status for r in results)
    # Exactly five: each of the first five takes its count by compare-and-set and is
    # verified (a wrong password, 401); the fifth sets the lock, so the other fifteen are
    # refused unverified (429), however they interleave.
    assert statuses == [401] * 5 + [429] * 15, statuses
    for r in results:
        assert_error(r, r.status, "invalid_grant" if r.status == 401 else "too_many_attempts")
    assert_error(client.login(user["username"]), 429, "too_many_attempts")


def test_a_guesser_locked_on_one_address_does_not_lock_out_the_owner_on_another(strict_api, user):
    attacker, owner = strict_api.from_address("127.0.0.2"), strict_api.from_address("127.0.0.3")
    for _ in range(5):
        assert_error(attacker.login(user["username"], "not the password"), 401, "invalid_grant")
    locked = attacker.login(user["username"])
    assert_error(locked, 429, "too_many_attempts")
    assert 25 <= int(locked.header("Retry-After")) <= 30, locked.headers
    # The client's address is the connection's, never a header the client sets.
    spoofed = attacker.call(
        "POST",
        "/auth/login",
        json_body={"username": user["username"], "password": PASSWORD},
        headers={"X-Forwarded-For": "127.0.0.3", "X-Real-IP": "127.0.0.3"},
    )
    assert_error(spoofed, 429, "too_many_attempts")
    assert owner.login(user["username"]).status == 200
    assert owner.login(user["username"]).status == 200
    assert_error(attacker.login(user["username"]), 429, "too_many_attempts")


def test_a_login_hands_out_a_known_device_credential_as_a_strict_host_only_cookie_and_in_the_body(api, user):
    for query, headers in [("", {}), ("?cookie=true", XRW)]:
        res = api.call("POST", "/auth/login" + query, json_body={"username": user["username"], "password": PASSWORD}, headers=headers)
        assert res.status == 200, res
        value, attrs = res.set_cookies()["__Host-device"]
        assert value == res.json()["device_token"]
        assert {"httponly", "secure"} <= set(attrs) and "domain" not in attrs, attrs
        assert attrs["path"] == "/" and attrs["samesite"] == "Strict" and int(attrs["max-age"]) >= 30 * 86400, attrs
        # It is no token for anything else.
        assert_invalid_token(api.me(value))
        assert_error(api.refresh(value), 401, "invalid_grant")
    # Registration and refresh hand out none.
    assert "__Host-device" not in api.register().set_cookies()
    assert "device_token" not in api.refresh(user["refresh_token"]).json()


def test_a_known_device_signs_in_while_guessing_from_many_addresses_locks_the_name(api):
    name, _ = new_name(), None
    assert api.register(name).status == 201
    device = api.login(name).json()["device_token"]
    other = api.register().json()
    other_device = api.login(other["user"]["username"]).json()["device_token"]
    # Ten addresses, five guesses each: the name's ceiling (50) is full, no pair is the owner's.
    for i in range(10):
        guesser = api.from_address(f"127.0.3.{i + 1}")
        for _ in range(5):
            assert_error(guesser.login(name, "not the password"), 401, "invalid_grant")
    owner = api.from_address("127.0.3.100")
    assert_error(owner.login(name), 429, "too_many_attempts")
    login = {"username": name, "password": PASSWORD}
    # Another user's device credential, a forged one: counted for nothing.
    for presented in [other_device, device[:-2] + "xx"]:
        assert_error(owner.call("POST", "/auth/login", json_body={**login, "device_token": presented}), 429, "too_many_attempts")
    # The owner's device, in the JSON body, the form, or the cookie: in.
    res = owner.call("POST", "/auth/login", json_body={**login, "device_token": device})
    assert res.status == 200, res
    assert api.me(res.json()["access_token"]).status == 200
    form = {"grant_type": "password", **login, "device_token": res.json()["device_token"]}
    res = owner.call("POST", "/auth/login", form=form)
    assert res.status == 200, res
    res = owner.call("POST", "/auth/login", json_body=login, headers={"Cookie": f"__Host-device={res.json()['device_token']}"})
    assert res.status == 200, res
    # Everyone else is still refused.
    assert_error(api.from_address("127.0.3.101").login(name), 429, "too_many_attempts")


def test_login_is_case_insensitive_on_the_username(api, user):
    assert api.login(user["username"].upper()).status == 200


@pytest.mark.parametrize(
    "body, content_type",
    [
        ('{"username": "alice-x"}', "application/json"),
        ("{not json", "application/json"),
        ("username=alice-x&password=whatever1", "application/x-www-form-urlencoded"),  # form needs grant_type
        ("grant_type=refresh_token&username=alice-x&password=whatever1", "application/x-www-form-urlencoded"),
        ("grant_type=password&username=alice-x&username=bob-x&password=whatever1", "application/x-www-form-urlencoded"),
        ("username=alice-x", "text/plain"),
    ],
)
def test_login_refuses_malformed_requests(api, body, content_type):
    res = api.call("POST", "/auth/login", body=body, headers={"Content-Type": content_type})
    assert_error(res, 400, "invalid_request")


# --- Refresh --------------------------------------------------------------------------


def test_refresh_refuses_what_is_not_a_live_refresh_token(api, user):
    access, refresh = user["access_token"], user["refresh_token"]
    refused = {"malformed": "not.a.token", "access token": access, **forgeries_of(refresh)}
    for what, token in refused.items():
        res = api.refresh(token)
        assert res.status == 401, (what, res)
        assert_error(res, 401, "invalid_grant")
    # None of that spent or revoked anything.
    assert api.refresh(refresh).status == 200


def test_refresh_rotates_and_reuse_of_a_spent_token_kills_the_newest_pair(api, user):
    first = user["refresh_token"]
    access2, refresh2 = tokens_of(api.refresh(first))
    access3, refresh3 = tokens_of(api.refresh(refresh2))
    assert api.me(access3).status == 200
    # A thief presents a spent token from elsewhere: the whole session dies.
    assert_error(api.from_address("127.0.0.9").refresh(first), 401, "invalid_grant")
    assert_invalid_token(api.me(access3))
    assert_invalid_token(api.me(access2))
    assert_error(api.refresh(refresh3), 401, "invalid_grant")
    # Another login starts a fresh session that works.
    assert api.me(tokens_of(api.login(user["username"]))[0]).status == 200


def test_refresh_refuses_malformed_requests(api):
    for body, ct in [
        ("{}", "application/json"),
        ('{"refresh_token": 42}', "application/json"),
        ("grant_type=password&refresh_token=abc", "application/x-www-form-urlencoded"),
        ("refresh_token=abc", "application/x-www-form-urlencoded"),
    ]:
        assert_error(api.call("POST", "/auth/refresh", body=body, headers={"Content-Type": ct}), 400, "invalid_request")


# --- Logout ---------------------------------------------------------------------------


def test_logout_of_one_session_leaves_another_alone(api, user):
    a_access, a_refresh = tokens_of(api.login(user["username"]))
    b_access, b_refresh = tokens_of(api.login(user["username"]))
    assert api.logout(a_access).status == 204
    assert_invalid_token(api.me(a_access))
    assert_error(api.refresh(a_refresh), 401, "invalid_grant")
    assert api.me(b_access).status == 200
    b_access2, _ = tokens_of(api.refresh(b_refresh))
    assert api.me(b_access2).status == 200
    # Logging out an already logged-out session is refused at the authorizer.
    assert_invalid_token(api.logout(a_access))


def test_logout_all_ends_every_session_of_the_user_and_no_one_elses(api, user):
    other = api.register(new_name()).json()
    sessions = [tokens_of(api.login(user["username"])) for _ in range(2)] + [
        (user["access_token"], user["refresh_token"])
    ]
    assert api.logout(sessions[0][0], "?all=true").status == 204
    for access, refresh in sessions:
        assert_invalid_token(api.me(access))
        assert_error(api.refresh(refresh), 401, "invalid_grant")
    assert api.me(other["access_token"]).status == 200
    # Logging in again afterwards works.
    assert api.me(tokens_of(api.login(user["username"]))[0]).status == 200


def test_logout_refuses_a_nonsense_all_parameter_and_changes_nothing(api, user):
    assert_error(api.logout(user["access_token"], "?all=maybe"), 400, "invalid_request")
    assert api.me(user["access_token"]).status == 200


def test_logout_requires_a_token(api):
    assert_invalid_token(api.call("POST", "/auth/logout"))


# --- The authorizer -------------------------------------------------------------------


def test_authorizer_refuses_every_kind_of_bad_token_with_401(api, user):
    access, refresh = user["access_token"], user["refresh_token"]
    refused = {
        "garbage": "garbage",
        "refresh token": refresh,
        "bad signature": access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB"),
        "unknown session user": resigned(access, sub=str(uuid.uuid4())),
        **forgeries_of(access),
    }
    for what, token in refused.items():
        res = api.me(token)
        assert res.status == 401, (what, res)
        assert_invalid_token(res)
    for header in [None, "", "Bearer", "Basic dXNlcjpwYXNz", f"Token {access}"]:
        res = api.call("GET", "/auth/me", headers={} if header is None else {"Authorization": header})
        assert_invalid_token(res)
    # The scheme is case-insensitive (RFC 6750).
    assert api.call("GET", "/auth/me", headers={"Authorization": f"bearer {access}"}).status == 200


def grant_role(username, role, remove=False):
    """What an operator does to make someone an admin: scripts/grant_role.py's change of
    the user item (or, with `remove`, its reverse)."""
    roles.change_role(
        os.environ["USERS_TABLE"], username, role, remove=remove, endpoint=os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    )


def test_a_role_protected_route_answers_403_to_users_and_lets_the_role_through(api, user):
    res = api.call("GET", ADMIN_ROUTE, token=user["access_token"])
    assert_error(res, 403, "insufficient_scope")
    assert res.header("WWW-Authenticate") == 'Bearer error="insufficient_scope"'
    # The same token still works on the routes it may use.
    assert api.me(user["access_token"]).status == 200

    grant_role(user["username"], "admin")
    admin_access, _ = tokens_of(api.login(user["username"]))
    assert sorted(decode(admin_access)[1]["roles"]) == ["admin", "user"]
    res = api.call("GET", ADMIN_ROUTE, token=admin_access)
    assert res.status == 200, res
    assert sorted(res.json()["roles"]) == ["admin", "user"]
    assert api.me(admin_access).status == 200
    # A token with the role is still a bearer token: bad ones are 401, not 403.
    assert_invalid_token(api.call("GET", ADMIN_ROUTE, token="garbage"))


def test_a_role_taken_away_stops_working_at_once_though_the_token_still_carries_it(api, user):
    grant_role(user["username"], "admin")
    admin_access, _ = tokens_of(api.login(user["username"]))
    assert api.call("GET", ADMIN_ROUTE, token=admin_access).status == 200
    grant_role(user["username"], "admin", remove=True)
    assert "admin" in decode(admin_access)[1]["roles"]
    assert_error(api.call("GET", ADMIN_ROUTE, token=admin_access), 403, "insufficient_scope")
    # The token itself is still good for what the user still holds, and routes see only that.
    me = api.me(admin_access)
    assert me.status == 200 and me.json()["roles"] == ["user"], me


@pytest.mark.parametrize("by", ["another admin", "the operator"])
def test_a_removed_admin_role_stops_working_on_the_real_admin_routes_at_once(api, admin, user, by):
    # The test above uses a route of the tests' own (ADMIN_ROUTE); these are the template's
    # administration routes, behind the same authorizer with the role the template requires.
    name = new_name()
    assert api.register(name).status == 201
    grant_role(name, "admin")
    demoted, _ = tokens_of(api.login(name))
    target = f"/admin/users/{user['username']}"
    res = api.call("GET", target, token=demoted)
    assert res.status == 200 and res.json()["username"] == user["username"], res
    if by == "another admin":
        res = api.call("POST", f"/admin/users/{name}/roles", token=admin, json_body={"remove": ["admin"]})
        assert res.status == 200 and res.json()["roles"] == ["user"], res
    else:  # scripts/grant_role.py --remove: the user item changed in the table
        grant_role(name, "admin", remove=True)
    # The very same token, unexpired, still says admin...
    _, claims = decode(demoted)
    assert "admin" in claims["roles"] and claims["exp"] > time.time() + 60, claims
    # ...and is refused on every administration route at once, itself included.
    assert_error(api.call("GET", target, token=demoted), 403, "insufficient_scope")
    for path, body in [
        (f"{target}/roles", {"add": ["admin"]}),
        (f"{target}/disable", None),
        (f"{target}/enable", None),
        (f"/admin/users/{name}/roles", {"add": ["admin"]}),
    ]:
        assert_error(api.call("POST", path, token=demoted, json_body=body), 403, "insufficient_scope")
    # Nothing was done: the target is a plain enabled user, the demoted one no admin again.
    view = api.call("GET", target, token=admin).json()
    assert (view["roles"], view["disabled"]) == (["user"], False), view
    assert api.call("GET", f"/admin/users/{name}", token=admin).json()["roles"] == ["user"]
    # The token still works where no role is needed, and says only what the user holds.
    me = api.me(demoted)
    assert me.status == 200 and me.json()["roles"] == ["user"], me


# --- Attacks on the token: every one is a 401 at the authorizer -----------------------


def raw_token(header, claims, signature=b""):
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.{b64url(signature)}"


def test_attack_suite_every_forged_or_misused_token_is_refused(api, user):
    access, refresh = user["access_token"], user["refresh_token"]
    header, claims = decode(access)
    head, body, sig = access.split(".")
    admin_claims = {**claims, "roles": ["user", "admin"]}
    hs512_input = f"{b64url(json.dumps({**header, 'alg': 'HS512'}).encode())}.{b64url(json.dumps(claims).encode())}"
    hs512 = f"{hs512_input}.{b64url(hmac.new(SECRET.encode(), hs512_input.encode(), hashlib.sha512).digest())}"
    attacks = {
        "alg none": raw_token({"alg": "none", "typ": "JWT"}, claims),
        "alg none, kid kept": raw_token({**header, "alg": "none"}, claims),
        "signature stripped": f"{head}.{body}.",
        "signature missing": f"{head}.{body}",
        "payload tampered (roles)": f"{head}.{b64url(json.dumps(admin_claims).encode())}.{sig}",
        "algorithm switched to HS512 with the right secret": hs512,
        "kid path traversal": sign(claims, header={**header, "kid": "../../../../etc/passwd"}),
        "kid unknown": sign(claims, header={**header, "kid": "k2"}),
        "kid missing": sign(claims, header={"alg": "HS256", "typ": "JWT"}),
        "refresh token as access token": refresh,
        "access claims marked refresh": resigned(access, token_use="refresh"),
        **forgeries_of(access),
    }
    for what, token in attacks.items():
        res = api.me(token)
        assert res.status == 401, (what, res)
        assert_invalid_token(res)
    # And the reverse: an access token is no refresh token.
    assert_error(api.refresh(access), 401, "invalid_grant")
    assert_error(api.refresh(resigned(refresh, token_use="access")), 401, "invalid_grant")
    # None of that hurt the real token.
    assert api.me(access).status == 200


def test_revoked_and_replayed_tokens_are_refused(api, user):
    access, refresh = tokens_of(api.login(user["username"]))
    assert api.logout(access).status == 204
    # Replayed after logout, at every protected route and at refresh.
    assert_invalid_token(api.me(access))
    assert_invalid_token(api.logout(access))
    assert_error(api.refresh(refresh), 401, "invalid_grant")


def test_authorization_header_variants_are_handled_deliberately(api, user):
    access = user["access_token"]
    accepted = [f"Bearer {access}", f"bearer {access}", f"BEARER {access}", f"Bearer   {access}", f"Bearer {access}  "]
    for value in accepted:
        assert api.call("GET", "/auth/me", headers={"Authorization": value}).status == 200, value
    refused = [access, f"Bearer{access}", f"Bearer {access} {access}", f"Bearer {access},{access}", "Bearer ", f"Basic {access}"]
    for value in refused:
        assert_invalid_token(api.call("GET", "/auth/me", headers={"Authorization": value}))


def test_oversized_tokens_are_refused_not_crashed_on(api):
    huge = "eyJ" + "A" * 10_000
    assert_invalid_token(api.me(huge))
    assert_invalid_token(api.me(f"{huge}.{huge}.{huge}"[:10_240]))
    assert_error(api.refresh("x" * 10_000), 413, "invalid_request")  # the body is over 8 KiB
    assert_error(api.refresh("x" * 7_000), 401, "invalid_grant")


# --- Hostile input: 4xx in the contract's shape, never a 5xx ---------------------------


@pytest.mark.parametrize(
    "path, body, content_type, status, code",
    [
        ("/auth/register", b'{"username": ' + b"[" * 3000 + b"]" * 3000 + b"}", "application/json", 400, "invalid_request"),
        ("/auth/login", b'{"username": "a", "x": ' + b'{"a":' * 500 + b"1" + b"}" * 500 + b"}", "application/json", 400, "invalid_request"),
        ("/auth/register", b'{"username": "\xff\xfeal", "password": "correct horse battery"}', "application/json", 400, "invalid_request"),
        ("/auth/login", b"grant_type=password&username=%ff%fe&password=x", "application/x-www-form-urlencoded", 400, "invalid_request"),
        ("/auth/login", b"grant_type=password&username=al\xffce&password=x", "application/x-www-form-urlencoded", 400, "invalid_request"),
        ("/auth/register", b'{"username": "ali\\u0000ce", "password": "correct horse battery"}', "application/json", 400, "invalid_username"),
        ("/auth/login", b'{"username": "ali\\u0000ce", "password": "correct horse battery"}', "application/json", 401, "invalid_grant"),
        ("/auth/login", b"grant_type=client_credentials&client_id=x", "application/x-www-form-urlencoded", 400, "invalid_request"),
        ("/auth/refresh", b'{"grant_type": "password", "refresh_token": "x"}', "application/json", 400, "invalid_request"),
        ("/auth/register", b'{"username": "alice-x", "password": "correct horse battery"}', "application/xml", 400, "invalid_request"),
        ("/auth/register", b'{"username": "alice-x", "password": "correct horse battery"}', "", 400, "invalid_request"),
        ("/auth/register", b"\x00\x00\x00", "application/json", 400, "invalid_request"),
    ],
)
def test_hostile_bodies_get_a_4xx_in_the_contract_shape(api, path, body, content_type, status, code):
    headers = {"Content-Type": content_type} if content_type else {}
    assert_error(api.call("POST", path, body=body, headers=headers), status, code)


def test_a_password_of_128_multibyte_characters_works_end_to_end(api):
    username = new_name()
    for password in ["密" * 128, "🔑" * 128, "é" * 128]:
        name = new_name()
        assert api.register(name, password=password).status == 201
        assert api.login(name, password).status == 200
        assert_error(api.login(name, password[:-1]), 401, "invalid_grant")
    assert_error(api.register(username, password="🔑" * 129), 400, "invalid_password")


# --- Races, with real concurrency over HTTP --------------------------------------------


def concurrently(calls):
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_ten_simultaneous_refreshes_of_one_token_from_ten_addresses_have_exactly_one_winner(api, user):
    clients = [api.from_address(f"127.0.0.{20 + i}") for i in range(10)]
    results = concurrently([lambda c=c: c.refresh(user["refresh_token"]) for c in clients])
    winners = [r for r in results if r.status == 200]
    assert len(winners) == 1, [r.status for r in results]
    for res in results:
        if res is not winners[0]:
            assert_error(res, 401, "invalid_grant")
    # The losers presented a spent token from other addresses: theft detection killed the
    # session, winner included.
    assert_invalid_token(api.me(winners[0].json()["access_token"]))
    assert_error(api.refresh(winners[0].json()["refresh_token"]), 401, "invalid_grant")


def same_pair(a, b):
    """Two answers carry the same pair: the same claims, ids and times (re-signed)."""
    return all(decode(a.json()[k])[1] == decode(b.json()[k])[1] for k in ("access_token", "refresh_token"))


def assert_refreshes_lost_or_minted_a_dead_pair(api, results):
    """Refreshes of one token by one client that raced something ending its session (a
    logout, a disable, a password change): each is exactly one of the two documented
    outcomes. Lost (it read the session once it was over): 401 invalid_grant. Won (it read
    the session before): 200, every winner with the one pair the spend recorded (the
    others are the spender's own retries, within the grace), and that pair died with the
    session. Returns the winners."""
    winners = [r for r in results if r.status == 200]
    for res in results:
        if res.status != 200:
            assert_error(res, 401, "invalid_grant")
    if winners:
        assert all(same_pair(r, winners[0]) for r in winners), winners
        new_access, new_refresh = tokens_of(winners[0])
        assert_invalid_token(api.me(new_access))
        assert_error(api.refresh(new_refresh), 401, "invalid_grant")
    return winners


def test_tabs_refreshing_one_token_together_all_get_the_same_pair_and_stay_signed_in(api, user):
    # A browser restoring three tabs: one client, one token, three refreshes at once.
    results = concurrently([lambda: api.refresh(user["refresh_token"])] * 3)
    assert [r.status for r in results] == [200] * 3, results
    assert all(same_pair(r, results[0]) for r in results)
    access, refresh = tokens_of(results[0])
    assert decode(refresh)[1]["jti"] != decode(user["refresh_token"])[1]["jti"]
    assert api.me(access).status == 200
    # And the session goes on from that pair.
    assert api.me(tokens_of(api.refresh(refresh))[0]).status == 200


def test_ten_simultaneous_registrations_of_one_name_have_exactly_one_winner(api):
    name = new_name()
    results = concurrently([lambda: api.register(name)] * 10)
    assert sorted(r.status for r in results) == [201] + [409] * 9
    winner = next(r for r in results if r.status == 201).json()
    assert api.me(winner["access_token"]).status == 200


@pytest.mark.parametrize("everywhere", [False, True])
def test_logout_racing_refreshes_leaves_no_usable_token_of_the_session(api, user, everywhere):
    # Real concurrency, a smoke test: whether a refresh reads the session before the logout
    # lands is the scheduler's choice. test_faults.py's
    # test_a_refresh_that_found_its_session_live_while_a_logout_lands_mints_a_dead_pair
    # forces that interleaving (a refresh that won minted a pair in the session that died
    # with it).
    access, refresh = tokens_of(api.login(user["username"]))
    query = "?all=true" if everywhere else ""
    results = concurrently([lambda: api.logout(access, query)] + [lambda: api.refresh(refresh)] * 3)
    assert results[0].status == 204, results[0]
    assert_refreshes_lost_or_minted_a_dead_pair(api, results[1:])
    assert_invalid_token(api.me(access))
    assert_error(api.from_address("127.0.0.60").refresh(refresh), 401, "invalid_grant")


# --- Browsers: CORS, cookie mode, CSRF -------------------------------------------------

CORS_HEADERS = {"access-control-allow-origin", "access-control-allow-credentials"}


def assert_cors_for(res, origin):
    assert res.header("Access-Control-Allow-Origin") == origin, (res, res.headers)
    assert res.header("Access-Control-Allow-Credentials") == "true", res.headers
    assert "Origin" in (res.header("Vary") or ""), res.headers


def assert_no_cors(res):
    assert not CORS_HEADERS & set(res.headers), (res, res.headers)


def template_paths():
    return sorted({route.split(" ", 1)[1] for route in template_routes()})


def test_allowed_origins_get_cors_headers_on_every_function_answer_and_others_never(api, user):
    for origin in (APP_ORIGIN, SECOND_ORIGIN):
        ok = api.call("POST", "/auth/login", json_body={"username": user["username"], "password": PASSWORD}, headers={"Origin": origin})
        assert ok.status == 200
        assert_cors_for(ok, origin)
        bad = api.call("POST", "/auth/login", json_body={"username": user["username"]}, headers={"Origin": origin})
        assert bad.status == 400
        assert_cors_for(bad, origin)
        me = api.call("GET", "/auth/me", token=user["access_token"], headers={"Origin": origin})
        assert me.status == 200
        assert_cors_for(me, origin)
    for origin in (EVIL_ORIGIN, APP_ORIGIN + ".evil.test", "null", APP_ORIGIN.upper()):
        for res in (
            api.call("POST", "/auth/login", json_body={"username": user["username"], "password": PASSWORD}, headers={"Origin": origin}),
            api.call("GET", "/auth/me", token=user["access_token"], headers={"Origin": origin}),
            api.call("OPTIONS", "/auth/login", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}),
        ):
            assert_no_cors(res)


def test_the_sign_in_routes_refuse_a_page_of_another_origin_before_doing_anything(api, user):
    name = new_name()
    for origin in (EVIL_ORIGIN, "null", APP_ORIGIN + ".evil.test"):
        headers = {"Origin": origin}
        # Register: refused, and the name is still free.
        res = api.call("POST", "/auth/register", json_body={"username": name, "password": PASSWORD}, headers=headers)
        assert_error(res, 403, "invalid_request")
        assert_no_cors(res)
        # Login, as a forged form post would send it: refused whether the password is right
        # or wrong, and no failed attempt is counted.
        for password in ("not the password",) * 6 + (PASSWORD,):
            form = {"grant_type": "password", "username": user["username"], "password": password}
            assert_error(api.call("POST", "/auth/login", form=form, headers=headers), 403, "invalid_request")
        assert_error(api.call("POST", "/auth/refresh", json_body={"refresh_token": user["refresh_token"]}, headers=headers), 403, "invalid_request")
    assert api.register(name).status == 201, "nothing was written for the refused registration"
    assert api.login(user["username"]).status == 200, "the refused logins counted no failure"
    assert api.refresh(user["refresh_token"]).status == 200, "the refused refresh spent nothing"
    # An allowed origin, and a client that sends no Origin, are served as before.
    res = api.call("POST", "/auth/login", json_body={"username": name, "password": PASSWORD}, headers={"Origin": APP_ORIGIN})
    assert res.status == 200, res


def test_preflight_on_every_route_answers_204_without_the_authorizer(api):
    paths = template_paths()
    assert {"/auth/login", "/auth/me", "/auth/logout"} <= set(paths)
    for path in paths:
        res = api.call(
            "OPTIONS",
            path,
            headers={
                "Origin": APP_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-requested-with",
            },
        )
        assert res.status == 204, (path, res)
        assert_cors_for(res, APP_ORIGIN)
        allowed = {h.strip().lower() for h in res.header("Access-Control-Allow-Headers").split(",")}
        assert {"authorization", "content-type", "x-requested-with"} <= allowed, res.headers
        assert "POST" in res.header("Access-Control-Allow-Methods")
        assert 0 < int(res.header("Access-Control-Max-Age")) <= 7200


def test_the_gateways_own_answers_carry_cors_for_the_first_allowed_origin(api, user):
    # API Gateway's 401/403/404 are fixed per type: they can name one origin, the first.
    answers = {
        401: api.call("GET", "/auth/me", headers={"Origin": APP_ORIGIN}),
        404: api.call("GET", "/no/such", headers={"Origin": APP_ORIGIN}),
        # The authorizer's deny for a role the token lacks: the gateway's ACCESS_DENIED.
        403: api.call("GET", ADMIN_ROUTE, token=user["access_token"], headers={"Origin": APP_ORIGIN}),
    }
    for status, res in answers.items():
        assert res.status == status, res
        assert_cors_for(res, APP_ORIGIN)
    # Another origin never gets its own name back from the gateway (the header is fixed:
    # the first allowed origin, whoever asks), so its browser cannot read the answer.
    res = api.call("GET", "/auth/me", headers={"Origin": EVIL_ORIGIN})
    assert res.status == 401, res
    assert res.header("Access-Control-Allow-Origin") == APP_ORIGIN, res.headers


XRW = {"X-Requested-With": "fetch"}


def refresh_cookie_of(res):
    cookies = res.set_cookies()
    assert "__Host-refresh_token" in cookies, res.raw_headers
    return cookies["__Host-refresh_token"]


def cookie_refresh(api, cookie, headers=None):
    headers = {"Cookie": f"__Host-refresh_token={cookie}", "X-Requested-With": "fetch", **(headers or {})}
    return api.call("POST", "/auth/refresh?cookie=true", headers=headers)


def test_cookie_mode_keeps_the_refresh_token_out_of_the_body(api, user):
    res = api.call("POST", "/auth/login?cookie=true", json_body={"username": user["username"], "password": PASSWORD}, headers=XRW)
    assert res.status == 200, res
    body = res.json()
    assert "refresh_token" not in body and body["access_token"] and body["token_type"] == "Bearer"
    value, attrs = refresh_cookie_of(res)
    assert value.count(".") == 2, "a JWT"
    assert {"httponly", "secure"} <= set(attrs), attrs
    assert attrs["path"] == "/" and "domain" not in attrs and attrs["samesite"] == "Strict", attrs
    assert 0 < int(attrs["max-age"]) <= body["refresh_expires_in"]
    # Registration too.
    reg = api.call("POST", "/auth/register?cookie=true", json_body={"username": new_name(), "password": PASSWORD}, headers=XRW)
    assert reg.status == 201 and "refresh_token" not in reg.json() and reg.json()["user"]["roles"] == ["user"]
    refresh_cookie_of(reg)
    assert_error(api.call("POST", "/auth/login?cookie=yes", json_body={"username": user["username"], "password": PASSWORD}), 400, "invalid_request")


def test_a_cookie_refresh_rotates_the_cookie_and_reuse_of_an_old_one_is_theft(api, user):
    res = api.call("POST", "/auth/login?cookie=true", json_body={"username": user["username"], "password": PASSWORD}, headers=XRW)
    first, _ = refresh_cookie_of(res)
    again = cookie_refresh(api, first, {"Origin": APP_ORIGIN})
    assert again.status == 200, again
    assert_cors_for(again, APP_ORIGIN)
    second, _ = refresh_cookie_of(again)
    assert second != first and "refresh_token" not in again.json()
    assert api.me(again.json()["access_token"]).status == 200
    # The spent cookie presented again by the same client, within the grace window: the
    # same cookie again (a retry after a lost answer), the session kept.
    retried = cookie_refresh(api, first)
    assert retried.status == 200, retried
    assert decode(refresh_cookie_of(retried)[0])[1] == decode(second)[1]
    assert decode(retried.json()["access_token"])[1] == decode(again.json()["access_token"])[1]
    # From another address: theft; the session dies, and the answer clears the cookie.
    stolen = cookie_refresh(api.from_address("127.0.0.9"), first)
    assert_error(stolen, 401, "invalid_grant")
    assert refresh_cookie_of(stolen)[1]["max-age"] == "0"
    assert_error(cookie_refresh(api, second), 401, "invalid_grant")
    # No cookie at all: refused the same way.
    assert_error(api.call("POST", "/auth/refresh?cookie=true", headers={"X-Requested-With": "fetch"}), 401, "invalid_grant")


def test_a_refresh_carrying_the_cookie_twice_is_refused_and_cleared_and_spends_nothing(api, user):
    # A sibling subdomain cannot set a __Host- cookie, but a request that carries two (one
    # planted by any means beside ours) trusts neither: which comes first says nothing.
    res = api.call("POST", "/auth/login?cookie=true", json_body={"username": user["username"], "password": PASSWORD}, headers=XRW)
    mine, _ = refresh_cookie_of(res)
    planted, _ = refresh_cookie_of(
        api.call("POST", "/auth/register?cookie=true", json_body={"username": new_name(), "password": PASSWORD}, headers=XRW)
    )
    for cookie in [f"__Host-refresh_token={planted}; __Host-refresh_token={mine}", f"__Host-refresh_token={mine}; __Host-refresh_token="]:
        res = api.call("POST", "/auth/refresh?cookie=true", headers={"Cookie": cookie, **XRW})
        assert_error(res, 401, "invalid_grant")
        value, attrs = refresh_cookie_of(res)
        assert value == "" and attrs["max-age"] == "0" and attrs["path"] == "/"
    # Neither was spent: each still refreshes on its own.
    assert cookie_refresh(api, mine).status == 200
    assert cookie_refresh(api, planted).status == 200
    # A cookie of the old name (or any other) is not ours and is not read.
    assert_error(api.call("POST", "/auth/refresh?cookie=true", headers={"Cookie": f"refresh_token={mine}", **XRW}), 401, "invalid_grant")


def test_a_cookie_authenticated_request_without_the_csrf_header_or_from_another_origin_changes_nothing(api, user):
    res = api.call("POST", "/auth/login?cookie=true", json_body={"username": user["username"], "password": PASSWORD}, headers=XRW)
    cookie, _ = refresh_cookie_of(res)
    forged = [
        api.call("POST", "/auth/refresh?cookie=true", headers={"Cookie": f"__Host-refresh_token={cookie}"}),
        api.call(
            "POST",
            "/auth/refresh?cookie=true",
            headers={"Cookie": f"__Host-refresh_token={cookie}", "Origin": APP_ORIGIN, "Content-Type": "application/x-www-form-urlencoded"},
        ),
        cookie_refresh(api, cookie, {"Origin": EVIL_ORIGIN}),
    ]
    for res in forged:
        body = assert_error(res, 403, "invalid_request")
        assert "csrf" in body["error_description"]
    # Nothing was spent: the cookie still works, once.
    assert cookie_refresh(api, cookie).status == 200


def test_every_cookie_mode_request_passes_the_csrf_check_so_a_forged_form_cannot_sign_anyone_in(api, user):
    # Login CSRF: a form on another site signing the victim's browser into the attacker's
    # account (its cookie) is refused before any password is checked.
    body = {"username": user["username"], "password": PASSWORD}
    for headers in ({}, {"Origin": EVIL_ORIGIN, **XRW}):
        for path in ("/auth/login?cookie=true", "/auth/register?cookie=true"):
            res = api.call("POST", path, form=body if path.startswith("/auth/login") else None,
                           json_body=None if path.startswith("/auth/login") else {"username": new_name(), "password": PASSWORD},
                           headers=headers)
            body_ = assert_error(res, 403, "invalid_request")
            assert "csrf" in body_["error_description"] and "set-cookie" not in res.headers


def test_logout_clears_the_cookie(api, user):
    access, _ = tokens_of(api.login(user["username"]))
    res = api.call("POST", "/auth/logout?cookie=true", token=access, headers={"Origin": APP_ORIGIN, **XRW})
    assert res.status == 204, res
    assert_cors_for(res, APP_ORIGIN)
    value, attrs = refresh_cookie_of(res)
    assert value == "" and attrs["max-age"] == "0" and attrs["path"] == "/"


# --- Security events ------------------------------------------------------------------

SECURITY_EVENT_FIELDS = {"event", "outcome", "user_id", "username", "client_ip", "session_id", "reason"}


@pytest.fixture(scope="module")
def audited_api():
    """The local API logging JSON lines, as Lambda's advanced logging (LogFormat: JSON)."""
    logs = tempfile.TemporaryFile()
    env = dict(os.environ, JWT_SECRET=SECRET, JWT_ISSUER=ISSUER, AWS_LAMBDA_LOG_FORMAT="JSON")
    env.pop("LOGIN_LOCK_SECONDS", None)
    port, proc = start_local_api(env, logs)
    yield Api(port, PASSWORD, source="127.0.0.7"), logs
    assert stop(proc) == 0


def security_events(logs):
    logs.seek(0)
    found = []
    for line in logs.read().decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("fields", {}).get("message") == "security event":
            found.append(record["fields"])
    return found


def test_security_events_are_json_lines_of_one_schema_without_secrets(audited_api):
    api, logs = audited_api
    name = new_name()
    reg = api.register(name)
    assert reg.status == 201
    user_id = reg.json()["user"]["id"]
    access, refresh = tokens_of(api.login(name))
    assert api.login(name, "not the password").status == 401
    assert api.login("ｎｏ", "whatever password").status == 401
    assert api.refresh(refresh).status == 200
    assert api.refresh(refresh).status == 200  # the same client's retry, within the grace
    assert api.from_address("127.0.0.9").refresh(refresh).status == 401  # reuse
    again_access, _ = tokens_of(api.login(name))
    assert api.logout(again_access).status == 204
    for _ in range(5):
        assert api.login(name, "not the password").status == 401
    assert api.login(name).status == 429
    last_access, _ = tokens_of(api.from_address("127.0.0.8").login(name))
    assert api.logout(last_access, "?all=true").status == 204

    events = security_events(logs)
    for e in events:
        assert set(e) == SECURITY_EVENT_FIELDS | {"message"}, e
        assert e["message"] == "security event"
        text = json.dumps(e)
        assert PASSWORD not in text and "not the password" not in text and "eyJ" not in text and "$argon2" not in text
    mine = [e for e in events if e["username"] == name or e["user_id"] == user_id]
    kinds = [e["event"] for e in mine]
    assert kinds.count("login_succeeded") == 3, kinds
    assert "refresh_reuse_detected" in kinds and "session_ended" in kinds and "all_sessions_ended" in kinds
    failed = [e for e in mine if e["event"] == "login_failed"]
    assert len(failed) == 6 and {e["outcome"] for e in failed} == {"failure"}
    assert all(e["client_ip"] == "127.0.0.7" and e["reason"] == "invalid_credentials" for e in failed), failed
    locked = [e for e in mine if e["event"] == "login_locked"]
    assert locked and locked[0]["reason"] == "client", locked
    succeeded = next(e for e in mine if e["event"] == "login_succeeded")
    assert succeeded["user_id"] == user_id and succeeded["session_id"] and succeeded["outcome"] == "success"
    reuse = next(e for e in mine if e["event"] == "refresh_reuse_detected")
    assert reuse["session_id"] == decode(refresh)[1]["sid"]
    assert reuse["client_ip"] == "127.0.0.9", "who presented the spent token"
    retry = next(e for e in mine if e["event"] == "refresh_retry")
    assert retry["outcome"] == "success" and retry["client_ip"] == "127.0.0.7"
    assert retry["session_id"] == reuse["session_id"]
    assert any(e["event"] == "login_failed" and e["reason"] == "malformed_username" for e in events)


# --- Administration ---------------------------------------------------------------------


@pytest.fixture
def admin(api):
    name = new_name()
    assert api.register(name).status == 201
    grant_role(name, "admin")
    access, _ = tokens_of(api.login(name))
    return access


def test_administration_requires_the_admin_role(api, user):
    for method, path in [
        ("GET", f"/admin/users/{user['username']}"),
        ("POST", f"/admin/users/{user['username']}/roles"),
        ("POST", f"/admin/users/{user['username']}/disable"),
        ("POST", f"/admin/users/{user['username']}/enable"),
    ]:
        assert_error(api.call(method, path, token=user["access_token"], json_body={}), 403, "insufficient_scope")
        assert_invalid_token(api.call(method, path, json_body={}))


def test_an_admin_reads_a_user_without_its_secrets_and_404s_for_nobody(api, admin, user):
    res = api.call("GET", f"/admin/users/{user['username'].upper()}", token=admin)
    assert res.status == 200, res
    body = res.json()
    assert body == {
        "id": user["user"]["id"],
        "username": user["username"],
        "roles": ["user"],
        "email": None,
        "email_verified": False,
        "disabled": False,
        "created_at": body["created_at"],
        "password_scheme": "argon2id",
    }
    assert abs(body["created_at"] - time.time()) < 600
    assert_error(api.call("GET", f"/admin/users/{new_name()}", token=admin), 404, "not_found")
    assert_error(api.call("GET", "/admin/users/no%20such", token=admin), 404, "not_found")


def test_roles_added_and_removed_by_an_admin_take_effect_at_once(api, admin, user):
    roles = f"/admin/users/{user['username']}/roles"
    res = api.call("POST", roles, token=admin, json_body={"add": ["admin"]})
    assert res.status == 200 and res.json()["roles"] == ["admin", "user"], res
    promoted, _ = tokens_of(api.login(user["username"]))
    assert api.call("GET", ADMIN_ROUTE, token=promoted).status == 200
    res = api.call("POST", roles, token=admin, json_body={"remove": ["admin"]})
    assert res.status == 200 and res.json()["roles"] == ["user"], res
    assert_error(api.call("GET", ADMIN_ROUTE, token=promoted), 403, "insufficient_scope")
    for bad in [{"add": ["Admin"]}, {"add": "admin"}, {"add": ["x"], "remove": ["x"]}]:
        assert_error(api.call("POST", roles, token=admin, json_body=bad), 400, "invalid_request")
    assert api.call("GET", f"/admin/users/{user['username']}", token=admin).json()["roles"] == ["user"]


def test_an_admin_cannot_lock_itself_out_of_administration(api, admin):
    name = new_name()
    assert api.register(name).status == 201
    grant_role(name, "admin")
    own, _ = tokens_of(api.login(name))
    assert_error(api.call("POST", f"/admin/users/{name}/disable", token=own), 409, "invalid_request")
    assert_error(api.call("POST", f"/admin/users/{name}/roles", token=own, json_body={"remove": ["admin"]}), 409, "invalid_request")
    view = api.call("GET", f"/admin/users/{name}", token=own).json()
    assert (view["disabled"], "admin" in view["roles"]) == (False, True), view
    # Another administrator may; and an administrator may still change its other roles.
    res = api.call("POST", f"/admin/users/{name}/roles", token=own, json_body={"add": ["support"]})
    assert res.status == 200 and res.json()["roles"] == ["admin", "support", "user"], res
    res = api.call("POST", f"/admin/users/{name}/roles", token=admin, json_body={"remove": ["admin"]})
    assert res.status == 200 and res.json()["roles"] == ["support", "user"], res
    assert api.call("POST", f"/admin/users/{name}/disable", token=admin).status == 204


def test_a_user_holds_at_most_20_roles(api, admin, user):
    roles = f"/admin/users/{user['username']}/roles"
    res = api.call("POST", roles, token=admin, json_body={"add": [f"role-{i:02}" for i in range(19)]})
    assert res.status == 200 and len(res.json()["roles"]) == 20, res
    assert_error(api.call("POST", roles, token=admin, json_body={"add": ["one-more"]}), 400, "invalid_request")
    assert len(api.call("GET", f"/admin/users/{user['username']}", token=admin).json()["roles"]) == 20
    # Tokens of a user with the most roles still verify.
    access, _ = tokens_of(api.login(user["username"]))
    assert api.me(access).status == 200


def test_a_disabled_user_is_out_at_once_and_back_in_only_with_a_new_login(api, admin, user):
    access, refresh = tokens_of(api.login(user["username"]))
    assert api.call("POST", f"/admin/users/{user['username']}/disable", token=admin).status == 204
    assert api.call("GET", f"/admin/users/{user['username']}", token=admin).json()["disabled"] is True
    assert_invalid_token(api.me(access))
    assert_invalid_token(api.me(user["access_token"]))
    assert_error(api.refresh(refresh), 401, "invalid_grant")
    refused, wrong = api.login(user["username"]), api.login(user["username"], "not the password")
    assert_error(refused, 401, "invalid_grant")
    assert refused.body == wrong.body, "the same body as a wrong password"
    assert api.call("POST", f"/admin/users/{user['username']}/enable", token=admin).status == 204
    back, _ = tokens_of(api.login(user["username"]))
    assert api.me(back).status == 200
    assert_invalid_token(api.me(access))
    assert_error(api.call("POST", f"/admin/users/{new_name()}/disable", token=admin), 404, "not_found")


def test_disable_racing_refreshes_leaves_no_usable_token(api, admin, user):
    # Real concurrency, a smoke test: whether a refresh reads the user before the disable
    # lands is the scheduler's choice. test_faults.py's
    # test_a_refresh_that_found_the_user_enabled_while_a_disable_lands_mints_a_dead_pair
    # forces that interleaving.
    access, refresh = tokens_of(api.login(user["username"]))
    disable = lambda: api.call("POST", f"/admin/users/{user['username']}/disable", token=admin)  # noqa: E731
    results = concurrently([disable] + [lambda: api.refresh(refresh)] * 3)
    assert results[0].status == 204, results[0]
    assert_refreshes_lost_or_minted_a_dead_pair(api, results[1:])
    assert_invalid_token(api.me(access))


def test_the_grant_script_enables_a_disabled_user(api, admin, user):
    assert api.call("POST", f"/admin/users/{user['username']}/disable", token=admin).status == 204
    assert_error(api.login(user["username"]), 401, "invalid_grant")
    grant = [sys.executable, str(ROOT / "scripts" / "grant_role.py"), "--table", os.environ["USERS_TABLE"]]
    wrong = subprocess.run(grant + ["--enable", user["username"], "admin"], capture_output=True, text=True)
    assert wrong.returncode == 2, wrong
    missing = subprocess.run(grant + ["--enable", new_name()], capture_output=True, text=True)
    assert missing.returncode == 1 and "no user" in missing.stderr, missing
    enabled = subprocess.run(grant + ["--enable", user["username"].upper()], capture_output=True, text=True)
    assert enabled.returncode == 0 and enabled.stdout.strip() == f"{user['username']}: enabled", enabled
    assert api.login(user["username"]).status == 200
    assert_invalid_token(api.me(user["access_token"]))  # its old sessions stay dead


def test_make_dev_seeds_the_first_admin_and_the_grant_script_makes_more():
    name, password = new_name(), f"seed {secrets.token_urlsafe(12)}"
    logs = tempfile.TemporaryFile()
    env = dict(os.environ, JWT_SECRET=SECRET, ADMIN_USERNAME=name.upper(), ADMIN_PASSWORD=password)
    port, proc = start_local_api(env, logs)
    try:
        deadline = time.monotonic() + 30
        while b"Admin: " not in (logs.seek(0) or logs.read()) and time.monotonic() < deadline:
            time.sleep(0.1)
        seeded = Api(port, password)
        access, _ = tokens_of(seeded.login(name))
        res = seeded.call("GET", f"/admin/users/{name}", token=access)
        assert res.status == 200 and res.json()["roles"] == ["admin", "user"], res
    finally:
        assert stop(proc) == 0
    logs.seek(0)
    assert password not in logs.read().decode(errors="replace")

    # The deployed way: scripts/grant_role.py on the users table.
    other = new_name()
    grant = [sys.executable, str(ROOT / "scripts" / "grant_role.py"), "--table", os.environ["USERS_TABLE"]]
    missing = subprocess.run(grant + [other, "admin"], capture_output=True, text=True)
    assert missing.returncode == 1 and "no user" in missing.stderr, missing
    bad = subprocess.run(grant + [name, "Admin!"], capture_output=True, text=True)
    assert bad.returncode == 2, bad
    taken = subprocess.run(grant + ["--remove", name, "admin"], capture_output=True, text=True)
    assert taken.returncode == 0 and taken.stdout.strip() == f"{name}: roles user", taken
