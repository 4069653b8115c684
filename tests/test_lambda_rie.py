"""Each Lambda binary under AWS's Runtime Interface Emulator, fed the events/ files.

Runs inside scripts/with_dynamodb.py (which provides the DynamoDB endpoint and tables)
after `cargo build`; the binaries are the debug builds in cargo's target directory
(CARGO_TARGET_DIR honoured: scripts/devtools/cargo_target.py). The RIE comes from the aws-sam-cli
package in the project's virtualenv.
"""

import base64
import hashlib
import json
import os
import pathlib
import re
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
import samcli
from devtools import cargo_target, keys, roles
from devtools.invocations import authorizer_event, claims_of, event
from devtools.net import free_port

ROOT = pathlib.Path(__file__).resolve().parent.parent

EVENTS = ROOT / "events"
RIE = pathlib.Path(samcli.__file__).parent / "local" / "rapid" / "aws-lambda-rie-x86_64"
SECRET = secrets.token_urlsafe(48)
ROUTE_ROLES = json.loads(json.loads((EVENTS / "env.json").read_text())["AuthorizerFunction"]["ROUTE_ROLES"])
# The call events/authorizer.json asks about (GET /auth/me), and its API and stage.
METHOD_ARN = json.loads((EVENTS / "authorizer.json").read_text())["methodArn"]
API_STAGE_ARN = "/".join(METHOD_ARN.split("/")[:2])
# What the authorizer answers when the store cannot tell it (shared/src/authorizer.rs):
# not "Unauthorized" (401), a failure API Gateway refuses the call on.
UNAVAILABLE = "authorizer temporarily unavailable"


class Function:
    """One binary running under the RIE: a fresh execution environment."""

    def __init__(self, name, extra_env=None, binary=None):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k in ("PATH", "USERS_TABLE", "REVOKED_TOKENS_TABLE", "SESSIONS_TABLE")}
        env.update(
            JWT_SECRET=SECRET,
            JWT_ISSUER="https://jwt-auth.rie.test",
            JWT_AUDIENCE="jwt-auth-api",
            ROUTE_ROLES=json.dumps(ROUTE_ROLES),
            AWS_LAMBDA_FUNCTION_NAME=name,
        )
        env.update(extra_env or {})
        binary = binary or cargo_target.binary(name)
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: run `cargo build --workspace` (make test does)")
        self.proc = subprocess.Popen(
            [
                str(RIE),
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{self.port}",
                # Each emulator needs its own Runtime API port (the default is shared).
                "--runtime-api-address",
                f"127.0.0.1:{free_port()}",
                str(binary),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"RIE for {name} exited: {self.proc.stdout.read().decode(errors='replace')[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"RIE for {name} did not start")

    def invoke(self, event):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/2015-03-31/functions/function/invocations",
            data=json.dumps(event).encode(),
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as res:
            return json.loads(res.read())

    def stop(self):
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.decode(errors="replace")


@pytest.fixture(scope="module")
def functions():
    started = {}

    def get(name):
        if name not in started:
            started[name] = Function(name)
        return started[name]

    yield get
    logs = "".join(f.stop() for f in started.values())
    # Nothing secret in what the functions logged during the whole flow.
    assert SECRET not in logs
    assert "correct horse battery" not in logs
    # Metrics are off unless METRICS_NAMESPACE is set (test_metrics_* set it).
    assert '"_aws"' not in logs


@pytest.fixture(scope="module")
def user(functions):
    username = f"rie-{uuid.uuid4().hex[:12]}"
    body = {"username": username, "password": "correct horse battery", "email": "rie@example.com"}
    res = functions("register").invoke(event("register", body=json.dumps(body)))
    assert res["statusCode"] == 201, res
    data = json.loads(res["body"])
    return {"username": username, **data}


def test_register_answers_201_with_tokens(user):
    assert user["token_type"] == "Bearer"
    assert user["user"]["username"] == user["username"]
    assert user["user"]["roles"] == ["user"]
    assert user["expires_in"] == 900


def test_register_refuses_a_taken_name(functions, user):
    body = {"username": user["username"].upper(), "password": "another password"}
    res = functions("register").invoke(event("register", body=json.dumps(body)))
    assert res["statusCode"] == 409
    assert json.loads(res["body"])["error"] == "username_taken"


def test_login_answers_200_and_401_identically_for_unknown_users(functions, user):
    login = functions("login")
    ok = login.invoke(event("login", body=json.dumps({"username": user["username"], "password": "correct horse battery"})))
    assert ok["statusCode"] == 200, ok
    assert set(json.loads(ok["body"])) == {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in", "device_token"}
    # API Gateway sends every Set-Cookie of multiValueHeaders: here the known-device one.
    set_cookies = {k.lower(): v for k, v in ok["multiValueHeaders"].items()}["set-cookie"]
    assert [c.split("=", 1)[0] for c in set_cookies] == ["__Host-device"], set_cookies
    wrong = login.invoke(event("login", body=json.dumps({"username": user["username"], "password": "wrong password"})))
    unknown = login.invoke(event("login", body=json.dumps({"username": "nobody-" + user["username"], "password": "x" * 10})))
    assert wrong["statusCode"] == unknown["statusCode"] == 401
    assert wrong["body"] == unknown["body"]


def test_the_sample_events_register_the_demo_user_and_sign_it_in(functions):
    # events/register.json and events/login.json as shipped: one demo user and password.
    # The user exists already only if an earlier run against the same tables made it.
    import boto3

    users = boto3.resource("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"]).Table(os.environ["USERS_TABLE"])
    name = json.loads(event("login")["body"])["username"]
    existed = "Item" in users.get_item(Key={"username": name}, ConsistentRead=True)
    res = functions("register").invoke(event("register"))
    assert res["statusCode"] == (409 if existed else 201), res
    res = functions("login").invoke(event("login"))
    assert res["statusCode"] == 200, res
    assert claims_of(json.loads(res["body"])["access_token"])["username"] == name


def route_arn(route):
    """A route's method ARN pattern in the API and stage of METHOD_ARN, path parameters as
    wildcards (API Gateway's method ARN carries the actual path)."""
    method, path = route.split(" ", 1)
    path = "/".join("*" if s.startswith("{") else s for s in path.split("/"))
    return f"{API_STAGE_ARN}/{method}{path}"


def expected_policy(held):
    """The policy the authorizer builds for a principal holding the roles `held`, whatever
    route is called (API Gateway may cache it for any): one Allow of every protected route
    whose roles it holds, one Deny of the rest; a statement with no route is left out."""
    allowed = sorted(route_arn(r) for r, need in ROUTE_ROLES.items() if set(need) <= set(held))
    denied = sorted(route_arn(r) for r, need in ROUTE_ROLES.items() if not set(need) <= set(held))
    statements = [
        {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resources}
        for effect, resources in (("Allow", allowed), ("Deny", denied))
        if resources
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def assert_allows(res, held=("user",), principal=None):
    """The authorizer's answer is a policy that lets the call through: statement by
    statement the one expected for the roles `held` (a policy that is merely present, or
    that denies everything, is no allow), with the event's own method ARN among the Allow's."""
    assert "policyDocument" in res and "errorMessage" not in res, res
    policy = res["policyDocument"]
    got = {**policy, "Statement": [{**s, "Resource": sorted(s["Resource"])} for s in policy["Statement"]]}
    assert got == expected_policy(held), policy
    assert METHOD_ARN in policy["Statement"][0]["Resource"], policy
    if principal is not None:
        assert res["principalId"] == principal, res


def test_authorizer_allows_a_valid_token_with_the_contract_context(functions, user):
    res = functions("authorizer").invoke(authorizer_event(user["access_token"]))
    # Every route whose roles the user holds, path parameters as wildcards; the others
    # (the administration routes) denied.
    assert_allows(res, ("user",), principal=user["user"]["id"])
    assert [s["Effect"] for s in res["policyDocument"]["Statement"]] == ["Allow", "Deny"]
    assert route_arn("GET /admin/users/{username}") in res["policyDocument"]["Statement"][1]["Resource"]
    ctx = res["context"]
    assert set(ctx) == {
        "sub", "username", "roles", "sid", "jti", "exp", "email", "email_verified", "amr", "deny_error", "deny_description",
    }
    assert (ctx["email"], ctx["email_verified"], ctx["amr"]) == (user["user"]["email"], "false", "pwd")
    # What API Gateway's 403 (the template's ACCESS_DENIED) says for the routes denied: a
    # role missing.
    assert (ctx["deny_error"], ctx["deny_description"]) == (
        "insufficient_scope", "the access token does not grant the roles this route requires",
    )
    assert (ctx["username"], ctx["roles"]) == (user["username"], "user")


def test_authorizer_policy_follows_the_roles_the_user_holds_now(functions):
    username = f"rie-{uuid.uuid4().hex[:12]}"
    body = json.dumps({"username": username, "password": "correct horse battery"})
    assert functions("register").invoke(event("register", body=body))["statusCode"] == 201
    grant = lambda remove=False: roles.change_role(  # noqa: E731
        os.environ["USERS_TABLE"], username, "admin", remove=remove, endpoint=os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    )
    grant()
    res = functions("login").invoke(event("login", body=body))
    assert res["statusCode"] == 200, res
    access = json.loads(res["body"])["access_token"]
    # An admin may call every protected route: one Allow, no Deny.
    allowed = functions("authorizer").invoke(authorizer_event(access))
    assert_allows(allowed, ("admin", "user"))
    assert [s["Effect"] for s in allowed["policyDocument"]["Statement"]] == ["Allow"]
    # The role taken away: the same token's policy denies the administration routes again.
    grant(remove=True)
    assert_allows(functions("authorizer").invoke(authorizer_event(access)), ("user",))


def test_authorizer_answers_unauthorized_for_bad_tokens(functions, user):
    for token in ["garbage", user["refresh_token"], user["access_token"][:-2]]:
        res = functions("authorizer").invoke(authorizer_event(token))
        assert res.get("errorMessage") == "Unauthorized", res
    ev = event("authorizer")
    del ev["headers"]["Authorization"]
    assert functions("authorizer").invoke(ev).get("errorMessage") == "Unauthorized"


def test_me_returns_the_authorizer_context(functions, user):
    ctx = functions("authorizer").invoke(authorizer_event(user["access_token"]))["context"]
    res = functions("me").invoke(event("me", requestContext={**event("me")["requestContext"], "authorizer": ctx}))
    assert res["statusCode"] == 200, res
    body = json.loads(res["body"])
    assert body == {
        "id": user["user"]["id"],
        "username": user["username"],
        "roles": ["user"],
        "session_id": ctx["sid"],
        "expires_at": int(ctx["exp"]),
        "email": user["user"]["email"],
        "email_verified": False,
        "amr": ["pwd"],
    }


def from_address(ev, source_ip):
    """`ev` as API Gateway gives it for a request from `source_ip`."""
    context = ev["requestContext"]
    return {**ev, "requestContext": {**context, "identity": {**context["identity"], "sourceIp": source_ip}}}


def test_refresh_rotates_answers_its_clients_retry_again_and_refuses_reuse_from_elsewhere(functions, user):
    refresh = functions("refresh")
    login = functions("login").invoke(event("login", body=json.dumps({"username": user["username"], "password": "correct horse battery"})))
    token = json.loads(login["body"])["refresh_token"]
    first = refresh.invoke(event("refresh", body=json.dumps({"refresh_token": token})))
    assert first["statusCode"] == 200, first
    # The same client again, within the grace window (REFRESH_REUSE_GRACE_SECONDS, 10 in
    # events/env.json): the same pair.
    retried = refresh.invoke(event("refresh", body=json.dumps({"refresh_token": token})))
    assert retried["statusCode"] == 200, retried
    pair = json.loads(first["body"])
    again = json.loads(retried["body"])
    for kind in ("access_token", "refresh_token"):
        assert claims_of(again[kind]) == claims_of(pair[kind])
    # Another address: reuse, the session is revoked.
    stolen = refresh.invoke(from_address(event("refresh", body=json.dumps({"refresh_token": token})), "198.51.100.7"))
    assert stolen["statusCode"] == 401
    assert json.loads(stolen["body"])["error"] == "invalid_grant"
    assert refresh.invoke(event("refresh", body=json.dumps({"refresh_token": pair["refresh_token"]})))["statusCode"] == 401


def test_logout_revokes_the_session_at_once(functions, user):
    login = functions("login").invoke(event("login", body=json.dumps({"username": user["username"], "password": "correct horse battery"})))
    access = json.loads(login["body"])["access_token"]
    ctx = functions("authorizer").invoke(authorizer_event(access))["context"]
    res = functions("logout").invoke(event("logout", requestContext={**event("logout")["requestContext"], "authorizer": ctx}))
    assert res["statusCode"] == 204, res
    assert functions("authorizer").invoke(authorizer_event(access)).get("errorMessage") == "Unauthorized"


def test_the_signing_secret_can_come_from_secrets_manager():
    """JWT_SECRET_ARN instead of JWT_SECRET: read once at cold start through the SDK's
    Secrets Manager client (moto serves every AWS API on the one endpoint)."""
    import boto3

    endpoint = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    value = secrets.token_urlsafe(48)
    arn = boto3.client("secretsmanager", endpoint_url=endpoint).create_secret(
        Name=f"jwt-{uuid.uuid4().hex[:12]}", SecretString=value
    )["ARN"]
    env = {"JWT_SECRET": "", "JWT_SECRET_ARN": arn, "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint}
    register, authorizer = Function("register", env), Function("authorizer", env)
    plain = Function("authorizer")  # signs and verifies with JWT_SECRET, not the stored secret
    try:
        body = {"username": f"sm-{uuid.uuid4().hex[:12]}", "password": "correct horse battery"}
        res = register.invoke(event("register", body=json.dumps(body)))
        assert res["statusCode"] == 201, res
        token = json.loads(res["body"])["access_token"]
        assert_allows(authorizer.invoke(authorizer_event(token)))
        assert plain.invoke(authorizer_event(token)).get("errorMessage") == "Unauthorized"
    finally:
        logs = register.stop() + authorizer.stop() + plain.stop()
    assert value not in logs and SECRET not in logs


def failed_cold_start(fn, ev=None):
    """Invokes `fn` (with `ev`, else an authorizer event), whose initialisation must fail,
    and returns what it logged. The emulator answers 502 when the function's init fails
    (Lambda: Runtime.ExitError)."""
    try:
        with pytest.raises(urllib.error.HTTPError) as failed:
            fn.invoke(ev if ev is not None else authorizer_event("anything"))
    finally:
        logs = fn.stop()
    assert failed.value.code == 502
    return logs


def test_a_missing_secret_fails_the_cold_start_without_leaking():
    endpoint = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    arn = f"arn:aws:secretsmanager:{os.environ.get('AWS_REGION', 'us-east-1')}:123456789012:secret:absent-{uuid.uuid4().hex[:8]}"
    fn = Function("authorizer", {"JWT_SECRET": "", "JWT_SECRET_ARN": arn, "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint})
    logs = failed_cold_start(fn)
    assert "could not read the signing secret from Secrets Manager (ResourceNotFoundException)" in logs, logs[-2000:]


def test_a_plain_http_origin_off_loopback_fails_the_cold_start_naming_the_variable():
    # A network attacker can speak for a plain-HTTP origin: it never gets credentialed CORS.
    fn = Function("me", {"ALLOWED_ORIGINS": "https://app.example.com,http://app.example.com"})
    logs = failed_cold_start(fn, event("me"))
    assert "ALLOWED_ORIGINS" in logs and "http://app.example.com" in logs, logs[-2000:]
    ok = Function("me", {"ALLOWED_ORIGINS": "https://app.example.com,http://127.0.0.1:3001"})
    try:
        assert ok.invoke(event("me"))["statusCode"] == 200
    finally:
        ok.stop()


def test_an_issuer_that_is_not_an_https_url_fails_the_cold_start_naming_the_variable():
    # Discovery answers under the issuer: with a bare name it used to build the URLs from
    # the request's Host, in an answer cached publicly.
    logs = failed_cold_start(Function("discovery", {"JWT_ISSUER": "jwt-auth"}), event("discovery"))
    assert "JWT_ISSUER" in logs and "https://" in logs, logs[-2000:]


def test_logout_never_reads_the_signing_key(functions, user):
    """Least privilege: logout trusts the authorizer's context and neither signs nor
    verifies, so it starts and works with a secret it could not read (the template gives
    it no Secrets Manager permission)."""
    endpoint = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    arn = f"arn:aws:secretsmanager:{os.environ.get('AWS_REGION', 'us-east-1')}:123456789012:secret:absent-{uuid.uuid4().hex[:8]}"
    logout = Function("logout", {"JWT_SECRET": "", "JWT_SECRET_ARN": arn, "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint})
    try:
        login = functions("login").invoke(event("login", body=json.dumps({"username": user["username"], "password": "correct horse battery"})))
        access = json.loads(login["body"])["access_token"]
        ctx = functions("authorizer").invoke(authorizer_event(access))["context"]
        res = logout.invoke(event("logout", requestContext={**event("logout")["requestContext"], "authorizer": ctx}))
        assert res["statusCode"] == 204, res
        assert functions("authorizer").invoke(authorizer_event(access)).get("errorMessage") == "Unauthorized"
    finally:
        logs = logout.stop()
    assert "Secrets Manager" not in logs, logs[-2000:]


def test_preflight_answers_allowed_origins_only():
    fn = Function("preflight", {"ALLOWED_ORIGINS": "http://127.0.0.1:3001"})
    try:
        res = fn.invoke(event("preflight"))
        assert res["statusCode"] == 204, res
        # lambda_http answers REST API events with multiValueHeaders.
        headers = {k.lower(): v for k, v in res["multiValueHeaders"].items()}
        assert headers["access-control-allow-origin"] == ["http://127.0.0.1:3001"]
        assert "X-Requested-With" in headers["access-control-allow-headers"][0]
        other = event("preflight")
        other["headers"]["Origin"] = other["multiValueHeaders"]["Origin"][0] = "https://evil.example"
        other["multiValueHeaders"]["Origin"] = ["https://evil.example"]
        res = fn.invoke(other)
        assert res["statusCode"] == 204
        assert not any(k.lower().startswith("access-control-") for k in res["multiValueHeaders"]), res
    finally:
        fn.stop()


def test_admin_reads_a_user_for_an_admin_principal(functions, user):
    ev = event("admin")
    ev["pathParameters"] = {"username": user["username"]}
    res = functions("admin").invoke(ev)
    assert res["statusCode"] == 200, res
    body = json.loads(res["body"])
    assert (body["username"], body["roles"], body["disabled"]) == (user["username"], ["user"], False)
    ev["pathParameters"] = {"username": "nobody-" + user["username"]}
    assert functions("admin").invoke(ev)["statusCode"] == 404
    ev["requestContext"]["authorizer"]["roles"] = "user"
    assert functions("admin").invoke(ev)["statusCode"] == 403


def test_admin_imports_a_user_whose_old_hash_signs_in_and_becomes_argon2id(functions):
    # events/admin-import.json: a bcrypt hash (cost 4, of "correct horse battery staple",
    # from shared/tests/vectors/imported_hashes.json), under a name and id of this run.
    ev = event("admin-import")
    (brought,) = json.loads(ev["body"])["users"]
    name, user_id = f"rie-{uuid.uuid4().hex[:12]}", f"legacy-{uuid.uuid4().hex}"
    ev["body"] = json.dumps({"users": [{**brought, "username": name, "id": user_id, "email": f"{name}@example.com"}]})
    for _ in range(2):  # a retried request imports nothing twice and answers the same
        res = functions("admin").invoke(ev)
        assert (res["statusCode"], json.loads(res["body"])) == (200, {"imported": [name], "skipped": []}), res
    view = event("admin")
    view["pathParameters"] = {"username": name}
    assert json.loads(functions("admin").invoke(view)["body"])["password_scheme"] == "bcrypt"
    login = {"username": name, "password": "correct horse battery staple"}
    res = functions("login").invoke(event("login", body=json.dumps(login)))
    assert res["statusCode"] == 200, res
    assert claims_of(json.loads(res["body"])["access_token"])["sub"] == user_id
    assert json.loads(functions("admin").invoke(view)["body"])["password_scheme"] == "argon2id"
    ev["requestContext"]["authorizer"]["roles"] = "user"
    assert functions("admin").invoke(ev)["statusCode"] == 403


def account_event(name, user, access_token):
    """An account route's event with the authorizer context of `access_token`'s caller."""
    claims = claims_of(access_token)
    ev = event(name)
    ev["requestContext"]["authorizer"].update(
        principalId=claims["sub"],
        sub=claims["sub"],
        username=user["username"],
        roles=",".join(claims["roles"]),
        sid=claims["sid"],
        jti=claims["jti"],
        exp=str(claims["exp"]),
    )
    return ev, claims


def test_account_lists_sessions_and_changes_the_password(functions):
    username = f"rie-{uuid.uuid4().hex[:12]}"
    body = {"username": username, "password": "correct horse battery"}
    res = functions("register").invoke(event("register", body=json.dumps(body)))
    assert res["statusCode"] == 201, res
    user = {"username": username, **json.loads(res["body"])}
    ev, claims = account_event("account", user, user["access_token"])
    res = functions("account").invoke(ev)
    assert res["statusCode"] == 200, res
    assert [(s["id"], s["current"]) for s in json.loads(res["body"])["sessions"]] == [(claims["sid"], True)]

    ev, _ = account_event("account-password", user, user["access_token"])
    res = functions("account").invoke(ev)
    assert res["statusCode"] == 200, res
    fresh = json.loads(res["body"])
    # The old session is over; the new pair works at the authorizer.
    assert functions("authorizer").invoke(authorizer_event(user["access_token"])).get("errorMessage") == "Unauthorized"
    assert_allows(functions("authorizer").invoke(authorizer_event(fresh["access_token"])))


def queued_mail(to, kind):
    """The outbox item queued for `to` of `kind` (what the mailer would send)."""
    import boto3

    outbox = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    items = outbox.scan(TableName=os.environ["OUTBOX_TABLE"], ConsistentRead=True)["Items"]
    (item,) = [i for i in items if i["to"]["S"] == to and i["kind"]["S"] == kind]
    return item


def test_the_email_function_verifies_a_change_of_address_and_resets_a_password_from_the_queued_mail():
    mail = {
        "EMAIL_FROM": "no-reply@example.com",
        "APP_URL": "https://app.rie.test",
        "TOKENS_TABLE": os.environ["TOKENS_TABLE"],
        "OUTBOX_TABLE": os.environ["OUTBOX_TABLE"],
        "METRICS_NAMESPACE": "JwtAuthMailTest",
        "METRICS_SERVICE": "rie-stack",
    }
    started = {name: Function(name, mail) for name in ("register", "account", "email", "login")}
    try:
        username = f"rie-{uuid.uuid4().hex[:12]}"
        old, new = (f"{uuid.uuid4().hex}@example.com" for _ in range(2))
        body = {"username": username, "password": "correct horse battery", "email": old}
        res = started["register"].invoke(event("register", body=json.dumps(body)))
        assert res["statusCode"] == 201, res
        user = {"username": username, **json.loads(res["body"])}

        def verify(token):
            return started["email"].invoke(event("email", body=json.dumps({"token": token})))

        res = verify(queued_mail(old, "verify_email")["token"]["S"])
        assert (res["statusCode"], json.loads(res["body"])) == (200, {"email": old, "email_verified": True}), res
        # A change of address (events/account-email.json): 202, the new address's link and
        # the old address's notice queued; the link makes the change.
        ev, _ = account_event("account-email", user, user["access_token"])
        ev["body"] = json.dumps({"email": new, "password": "correct horse battery"})
        res = started["account"].invoke(ev)
        assert (res["statusCode"], res["body"]) == (202, "{}"), res
        assert "token" not in queued_mail(old, "email_change_requested")
        change = queued_mail(new, "verify_email")
        assert change["link_ttl_seconds"]["N"] == "86400"
        res = verify(change["token"]["S"])
        assert (res["statusCode"], json.loads(res["body"])) == (200, {"email": new, "email_verified": True}), res
        assert verify(change["token"]["S"])["statusCode"] == 400, "once"
        # A forgotten password, to the new address; the link sets a new one.
        forgot = event("email", resource="/auth/password/forgot", body=json.dumps({"email": new}))
        forgot["requestContext"] = {**forgot["requestContext"], "resourcePath": "/auth/password/forgot"}
        assert started["email"].invoke(forgot)["statusCode"] == 202
        token = queued_mail(new, "reset_password")["token"]["S"]
        reset = event("email", resource="/auth/password/reset", body=json.dumps({"token": token, "new_password": "a new passphrase"}))
        reset["requestContext"] = {**reset["requestContext"], "resourcePath": "/auth/password/reset"}
        res = started["email"].invoke(reset)
        assert res["statusCode"] == 204, res
        login = {"username": username, "password": "a new passphrase"}
        assert started["login"].invoke(event("login", body=json.dumps(login)))["statusCode"] == 200
    finally:
        logs = {name: f.stop() for name, f in started.items()}
    assert all("correct horse battery" not in text and "token=" not in text for text in logs.values())
    # MailQueued counts what requests queued: the registration's verification; the change's
    # link and notice; the reset's link, then its password-changed notice.
    def queued(name):
        lines = [json.loads(line) for line in logs[name].splitlines() if line.startswith("{") and '"_aws"' in line]
        return sum(m.get("MailQueued", 0) for m in lines)

    assert (queued("register"), queued("account"), queued("email")) == (1, 2, 2)


def routed(name, resource, method, body, base=None):
    """`events/<name>.json` as API Gateway sends it for another route of that function."""
    ev = base or event(name)
    ev.update(resource=resource, path=resource, httpMethod=method, body=json.dumps(body))
    ev["headers"] = {**(ev.get("headers") or {}), "Content-Type": "application/json"}
    ev["multiValueHeaders"] = {**(ev.get("multiValueHeaders") or {}), "Content-Type": ["application/json"]}
    ev["requestContext"] = {**ev["requestContext"], "resourcePath": resource, "httpMethod": method}
    return ev


def test_the_login_and_account_binaries_open_factors_with_the_key_and_a_login_without_it_fails_closed():
    from test_mfa import Authenticator

    mfa = {"MFA_KEY": secrets.token_urlsafe(48), "TOKENS_TABLE": os.environ["TOKENS_TABLE"]}
    started = {name: Function(name, mfa) for name in ("register", "account", "login")}
    keyless = Function("login", {"TOKENS_TABLE": os.environ["TOKENS_TABLE"]})
    try:
        username = f"rie-{uuid.uuid4().hex[:12]}"
        credentials = {"username": username, "password": "correct horse battery"}
        res = started["register"].invoke(event("register", body=json.dumps(credentials)))
        assert res["statusCode"] == 201, res
        user = {"username": username, **json.loads(res["body"])}
        # events/account-mfa-setup.json as it is (its password is the one registered here).
        setup, _ = account_event("account-mfa-setup", user, user["access_token"])
        res = started["account"].invoke(setup)
        assert res["statusCode"] == 200, res
        app = Authenticator(json.loads(res["body"])["secret"])
        ev, _ = account_event("account", user, user["access_token"])
        res = started["account"].invoke(routed("account", "/auth/mfa/totp/confirm", "POST", {"code": app.next_code()}, ev))
        assert res["statusCode"] == 200 and len(json.loads(res["body"])["recovery_codes"]) == 10, res
        # The right password: the second step's token, no tokens.
        res = started["login"].invoke(event("login", body=json.dumps(credentials)))
        answer = json.loads(res["body"])
        assert (res["statusCode"], answer["error"]) == (403, "mfa_required"), res
        second = event("login-mfa", body=json.dumps({"mfa_token": answer["mfa_token"], "code": app.next_code()}))
        res = started["login"].invoke(second)
        assert res["statusCode"] == 200, res
        assert claims_of(json.loads(res["body"])["access_token"])["amr"] == ["pwd", "otp", "mfa"]
        # A login function without the key never lets the password alone in.
        res = keyless.invoke(event("login", body=json.dumps(credentials)))
        assert (res["statusCode"], json.loads(res["body"])["error"]) == (501, "not_configured"), res
    finally:
        logs = "".join(f.stop() for f in [*started.values(), keyless])
    assert mfa["MFA_KEY"] not in logs and app.secret not in logs


def test_asymmetric_keys_the_signer_holds_the_private_key_and_the_rest_only_public_ones():
    private = keys.generate("ES256", "es-rie")
    register = Function("register", {"JWT_ALGORITHM": "ES256", "JWT_PRIVATE_KEY": private})
    try:
        body = {"username": f"rie-{uuid.uuid4().hex[:12]}", "password": "correct horse battery"}
        res = register.invoke(event("register", body=json.dumps(body)))
        assert res["statusCode"] == 201, res
        access = json.loads(res["body"])["access_token"]
    finally:
        register.stop()
    # The published set, as the rotation writes it: public keys only.
    jwks = json.dumps({"keys": [public_jwk_of(private)]})
    authorizer = Function("authorizer", {"JWT_ALGORITHM": "ES256", "JWT_PUBLIC_KEYS": jwks})
    discovery = Function("discovery", {"JWT_ALGORITHM": "ES256", "JWT_PUBLIC_KEYS": jwks})
    try:
        assert_allows(authorizer.invoke(authorizer_event(access)))
        res = discovery.invoke(event("discovery"))
        assert res["statusCode"] == 200, res
        assert json.loads(res["body"]) == json.loads(jwks)
    finally:
        logs = authorizer.stop() + discovery.stop()
    assert "pkcs8" not in logs
    # A function that signs will not start without the private key, and says why.
    fn = Function("register", {"JWT_ALGORITHM": "ES256", "JWT_PUBLIC_KEYS": jwks})
    try:
        with pytest.raises(urllib.error.HTTPError) as failed:
            fn.invoke(event("register", body=json.dumps(body)))
    finally:
        logs = fn.stop()
    assert failed.value.code == 502
    assert "JWT_PRIVATE_KEY (or its _ARN form): is required for a function that signs tokens" in logs, logs[-2000:]


def public_jwk_of(private_document):
    """The public JWK of a key document, computed here independently of the service."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    doc = json.loads(private_document)
    key = serialization.load_der_private_key(base64.b64decode(doc["pkcs8"]), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    numbers = key.public_key().public_numbers()
    b64 = lambda n: base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()  # noqa: E731
    return {"kid": doc["kid"], "kty": "EC", "alg": "ES256", "use": "sig", "crv": "P-256", "x": b64(numbers.x), "y": b64(numbers.y)}


def thumbprint(jwk):
    """RFC 7638: SHA-256 of the required members, sorted, no whitespace; base64url."""
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


ROTATION_STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]


def test_a_rotation_publishes_the_new_key_first_and_running_verifiers_learn_it_once():
    import boto3

    endpoint = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    sm = boto3.client("secretsmanager", endpoint_url=endpoint)
    suffix = uuid.uuid4().hex[:8]
    # As the template creates them: a placeholder until the first rotation, an empty set.
    private_arn = sm.create_secret(Name=f"jwt-private-{suffix}", SecretString="{}")["ARN"]
    public_arn = sm.create_secret(Name=f"jwt-public-{suffix}", SecretString='{"keys": []}')["ARN"]
    env = {"JWT_ALGORITHM": "ES256", "JWT_PUBLIC_KEYS_ARN": public_arn, "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint}
    signer_env = {**env, "JWT_PRIVATE_KEY_ARN": private_arn}
    read = lambda arn: json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])  # noqa: E731
    published = lambda: read(public_arn)["keys"]  # noqa: E731
    current = lambda: read(private_arn)  # noqa: E731

    rotation = Function("rotation", {**env, "JWT_PRIVATE_KEY_ARN": private_arn})
    started = []
    try:

        def rotate(token):
            for step in ROTATION_STEPS:
                res = rotation.invoke({"Step": step, "SecretId": private_arn, "ClientRequestToken": token})
                assert res is None or "errorType" not in res, (step, res)
                if step == "setSecret":
                    # Published before it signs anything: the pending key is in the set,
                    # under its RFC 7638 thumbprint (never a name taken from the request).
                    pending = sm.get_secret_value(SecretId=private_arn, VersionStage="AWSPENDING")["SecretString"]
                    jwk = public_jwk_of(pending)
                    assert jwk["kid"] == thumbprint(jwk) and token.replace("-", "")[:8] not in jwk["kid"]
                    assert jwk in published()

        # Pointed at another secret, it refuses (it would publish that secret's key).
        stranger = sm.create_secret(Name=f"other-{suffix}", SecretString="{}")["ARN"]
        res = rotation.invoke({"Step": "createSecret", "SecretId": stranger, "ClientRequestToken": str(uuid.uuid4())})
        assert res.get("errorType"), res
        rotate(str(uuid.uuid4()))
        first = current()
        assert first["alg"] == "ES256" and [k["kid"] for k in published()] == [first["kid"]]
        for key in published():
            assert "d" not in key and "pkcs8" not in key

        def sign_up():
            register = Function("register", signer_env)
            started.append(register)
            body = {"username": f"rie-{uuid.uuid4().hex[:12]}", "password": "correct horse battery"}
            res = register.invoke(event("register", body=json.dumps(body)))
            assert res["statusCode"] == 201, res
            return json.loads(res["body"])["access_token"]

        before = sign_up()
        authorizer = Function("authorizer", env)
        started.append(authorizer)
        decide = lambda token: authorizer.invoke(authorizer_event(token))  # noqa: E731
        assert_allows(decide(before))

        rotate(str(uuid.uuid4()))
        second = current()
        assert second["kid"] != first["kid"]
        assert [k["kid"] for k in published()] == [second["kid"], first["kid"]], "current and previous"
        after = sign_up()  # a new signer: the new key
        assert json.loads(base64.urlsafe_b64decode(after.split(".")[0] + "=="))["kid"] == second["kid"]
        # The authorizer started before the rotation: the new kid makes it read the set once.
        assert_allows(decide(after))
        assert_allows(decide(before))  # the previous key still verifies
        header, claims, signature = after.split(".")
        for i in range(20):
            forged = base64.urlsafe_b64encode(json.dumps({"alg": "ES256", "typ": "JWT", "kid": f"forged-{i}"}).encode()).rstrip(b"=").decode()
            assert authorizer.invoke(authorizer_event(f"{forged}.{claims}.{signature}")).get("errorMessage") == "Unauthorized"
    finally:
        logs = rotation.stop() + "".join(f.stop() for f in started)
    assert logs.count("signing keys read again") == 1, "one read for the new key, none for 20 forged kids"
    assert "pkcs8" not in logs and "correct horse battery" not in logs


def test_without_a_configured_issuer_the_tokens_name_the_apis_own_url():
    """JwtIssuer empty (the template's default): the functions learn the API's URL from the
    requests they serve, and tokens of another API (or stage) are refused."""
    region = os.environ.get("AWS_REGION", "us-east-1")
    register = Function("register", {"JWT_ISSUER": "", "API_STAGE": "v1"})
    authorizer = Function("authorizer", {"JWT_ISSUER": "", "API_STAGE": "v1"})
    try:
        body = {"username": f"rie-{uuid.uuid4().hex[:12]}", "password": "correct horse battery"}
        # A console test invocation first: its stage teaches nothing, and nothing is signed.
        console = event("register", body=json.dumps(body))
        console["requestContext"]["stage"] = "test-invoke-stage"
        assert register.invoke(console)["statusCode"] == 500
        res = register.invoke(event("register", body=json.dumps(body)))
        assert res["statusCode"] == 201, res
        access = json.loads(res["body"])["access_token"]
        claims = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))
        assert claims["iss"] == f"https://abc123.execute-api.{region}.amazonaws.com/v1"
        assert_allows(authorizer.invoke(authorizer_event(access)))
    finally:
        register.stop()
        authorizer.stop()
    other_api = Function("authorizer", {"JWT_ISSUER": ""})
    try:
        ev = authorizer_event(access)
        ev["methodArn"] = ev["methodArn"].replace(":abc123/", ":xyz789/")
        assert other_api.invoke(ev).get("errorMessage") == "Unauthorized"
    finally:
        other_api.stop()


METRICS_ENV = {"METRICS_NAMESPACE": "JwtAuthTest", "METRICS_SERVICE": "rie-stack"}


def emf_lines(logs):
    """The Embedded Metric Format documents among a function's output lines, each checked
    the way CloudWatch reads them: every dimension and metric a directive names is a
    member of the document, counts are numbers, latencies lists of numbers."""
    docs = []
    for line in logs.splitlines():
        if '"_aws"' not in line:
            continue
        doc = json.loads(line)
        assert isinstance(doc["_aws"]["Timestamp"], int)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "JwtAuthTest"
            for dimensions in directive["Dimensions"]:
                for d in dimensions:
                    assert isinstance(doc[d], str), (d, doc)
            for metric in directive["Metrics"]:
                value = doc[metric["Name"]]
                assert metric["Unit"] in ("Count", "Milliseconds"), metric
                values = value if isinstance(value, list) else [value]
                assert values and all(isinstance(v, (int, float)) and v >= 0 for v in values), (metric, doc)
        docs.append(doc)
    return docs


def test_metrics_count_logins_refreshes_and_store_calls_one_line_per_invocation(user):
    login = Function("login", METRICS_ENV)
    refresh = Function("refresh", METRICS_ENV)
    try:
        good = {"username": user["username"], "password": "correct horse battery"}
        ok = login.invoke(event("login", body=json.dumps(good)))
        assert ok["statusCode"] == 200, ok
        bad = login.invoke(event("login", body=json.dumps({**good, "password": "wrong horse battery"})))
        assert bad["statusCode"] == 401, bad
        token = json.loads(ok["body"])["refresh_token"]
        assert refresh.invoke(event("refresh", body=json.dumps({"refresh_token": token})))["statusCode"] == 200
        stolen = from_address(event("refresh", body=json.dumps({"refresh_token": token})), "198.51.100.7")
        assert refresh.invoke(stolen)["statusCode"] == 401
    finally:
        login_logs, refresh_logs = login.stop(), refresh.stop()
    first, second = emf_lines(login_logs)
    assert (first["Service"], first["Function"]) == ("rie-stack", "login")
    assert first["ColdStart"] == 1 and first["LoginSucceeded"] == 1 and "LoginFailed" not in first
    assert second["LoginFailed"] == 1 and "ColdStart" not in second and "LoginSucceeded" not in second
    cold = [d for d in first["_aws"]["CloudWatchMetrics"] if d["Metrics"] == [{"Name": "ColdStart", "Unit": "Count"}]]
    assert cold and cold[0]["Dimensions"] == [["Service"], ["Service", "Function"]]
    # A login reads and writes the store several times: one latency value per call.
    assert len(first["StoreLatency"]) >= 3, first
    spent, reused = emf_lines(refresh_logs)
    assert spent["RefreshSucceeded"] == 1 and "RefreshReuseDetected" not in spent
    assert reused["RefreshReuseDetected"] == 1 and "RefreshSucceeded" not in reused
    assert user["refresh_token"] not in login_logs + refresh_logs


def test_metrics_tell_authorizer_allowed_denied_and_unavailable(user):
    authorizer = Function("authorizer", METRICS_ENV)
    # A store that refuses connections: the authorizer cannot decide.
    unreachable = Function("authorizer", {**METRICS_ENV, "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{free_port()}"})
    try:
        assert_allows(authorizer.invoke(authorizer_event(user["access_token"])))
        assert authorizer.invoke(authorizer_event("garbage")).get("errorMessage") == "Unauthorized"
        down = unreachable.invoke(authorizer_event(user["access_token"]))
        assert down.get("errorMessage") == UNAVAILABLE and "policyDocument" not in down, down
    finally:
        logs, down_logs = authorizer.stop(), unreachable.stop()
    allowed, denied = emf_lines(logs)
    assert allowed["AuthorizerAllowed"] == 1 and "AuthorizerDenied" not in allowed
    assert denied["AuthorizerDenied"] == 1 and "StoreLatency" not in denied, "a bad token costs no store call"
    (unavailable,) = emf_lines(down_logs)
    assert unavailable["AuthorizerUnavailable"] == 1 and unavailable["StoreFaults"] == 1, unavailable


class KeepAliveRecorder:
    """An HTTP/1.1 front for the DynamoDB server that keeps client connections open, as
    DynamoDB does (moto's server closes each one after its answer), and records the
    requests each client connection carried: (method, path, headers)."""

    def __init__(self, endpoint, tls=None):
        import threading
        host, port = endpoint.rsplit("/", 1)[-1].split(":")
        self.upstream = (host, int(port))
        self.connections = []
        self.lock = threading.Lock()
        self.tls = tls
        self.server = socket.create_server(("127.0.0.1", 0))
        port = self.server.getsockname()[1]
        self.endpoint = f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def requests(self):
        with self.lock:
            return [list(c) for c in self.connections]

    def _accept(self):
        import threading
        while True:
            client, _ = self.server.accept()
            seen = []
            with self.lock:
                self.connections.append(seen)
            threading.Thread(target=self._serve, args=(client, seen), daemon=True).start()

    def _serve(self, client, seen):
        import http.client
        if self.tls:
            try:
                client = self.tls.wrap_socket(client, server_side=True)
            except OSError:  # the client refused our certificate
                client.close()
                return
        reader = client.makefile("rb")
        try:
            while line := reader.readline():
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while (h := reader.readline()) not in (b"\r\n", b""):
                    name, value = h.decode().split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                body = reader.read(int(headers.get("content-length", 0)))
                with self.lock:
                    seen.append((method, path, headers))
                upstream = http.client.HTTPConnection(*self.upstream, timeout=10)
                upstream.request(method, path, body=body, headers={k: v for k, v in headers.items() if k != "connection"})
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                head = f"HTTP/1.1 {answer.status} {answer.reason}\r\n"
                for k, v in answer.getheaders():
                    if k.lower() not in ("connection", "content-length", "transfer-encoding"):
                        head += f"{k}: {v}\r\n"
                client.sendall(f"{head}content-length: {len(data)}\r\n\r\n".encode() + data)
        except OSError:
            pass
        finally:
            client.close()


def test_the_cold_start_opens_the_stores_connection_for_the_first_request(user):
    """The connection (and, over HTTPS, its TLS handshake) is made at init, by DynamoDB's
    unsigned health check (no API call, no credentials sent); the first request reuses it."""
    recorder = KeepAliveRecorder(os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    authorizer = Function("authorizer", {**METRICS_ENV, "AWS_ENDPOINT_URL_DYNAMODB": recorder.endpoint})
    try:
        assert_allows(authorizer.invoke(authorizer_event(user["access_token"])))
        assert_allows(authorizer.invoke(authorizer_event(user["access_token"])))
    finally:
        logs = authorizer.stop()
    (only,) = recorder.requests()
    assert [(method, path) for method, path, _ in only] == [("GET", "/"), ("POST", "/"), ("POST", "/")], only
    warm_up = only[0][2]
    assert "authorization" not in warm_up and "x-amz-target" not in warm_up, warm_up
    # The warm-up is no store call: the first invocation's latencies are its one BatchGetItem.
    first = emf_lines(logs)[0]
    assert len(first["StoreLatency"]) == 1, first


def test_a_store_that_never_answers_does_not_hold_the_cold_start(user):
    """The warm-up gives the store its budget (shared::aws::WARM_UP_BUDGET, 150 ms) and no
    more: against a store that accepts connections and never answers, the cold start goes
    on to serve the invocation, which then fails closed on the store's own timeouts (2 s an
    attempt, three attempts), never allowing."""
    silent = socket.create_server(("127.0.0.1", 0))  # never accepts: connections wait in its backlog
    authorizer = Function("authorizer", {"AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{silent.getsockname()[1]}"})
    try:
        down = authorizer.invoke(authorizer_event(user["access_token"]))
    finally:
        logs = authorizer.stop()
        silent.close()
    assert down.get("errorMessage") == UNAVAILABLE and "policyDocument" not in down, down
    # The cold start finished and served the invocation (one init, then the invocation's
    # own failure). How long the warm-up waits is shared::aws's unit test, on tokio's paused
    # clock: a wall-clock bound here would measure the machine's load as much as the code.
    assert len(re.findall(r"INIT REPORT", logs)) <= 1 and "START RequestId" in logs, logs[-2000:]


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory):
    """A CA of our own and a certificate it issued for localhost: an HTTPS front for the
    DynamoDB server that no public root vouches for."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("ca")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwt-auth test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (d / "leaf.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(d / "leaf.pem", d / "leaf.key")
    return {"ca": str(d / "ca.pem"), "context": context, "dir": d}


def test_over_https_the_functions_trust_amazons_roots_and_aws_ca_bundle_only(user, private_ca):
    """The system's roots are never loaded (their parsing is most of a first connection's
    CPU): a CA the system trusts (SSL_CERT_FILE) is not trusted; AWS_CA_BUNDLE is. The one
    TLS connection is opened at the cold start and serves the requests."""
    front = KeepAliveRecorder(os.environ["AWS_ENDPOINT_URL_DYNAMODB"], tls=private_ca["context"])
    https = {"AWS_ENDPOINT_URL_DYNAMODB": front.endpoint}
    system_only = Function("authorizer", {**https, "SSL_CERT_FILE": private_ca["ca"]})
    try:
        refused = system_only.invoke(authorizer_event(user["access_token"]))
    finally:
        system_only.stop()
    assert refused.get("errorMessage") == UNAVAILABLE and "policyDocument" not in refused, refused
    assert all(not c for c in front.requests()), "no request crossed an untrusted connection"

    before = len(front.requests())
    trusted = Function("authorizer", {**https, "AWS_CA_BUNDLE": private_ca["ca"]})
    try:
        assert_allows(trusted.invoke(authorizer_event(user["access_token"])))
        assert_allows(trusted.invoke(authorizer_event(user["access_token"])))
    finally:
        trusted.stop()
    (only,) = front.requests()[before:]
    assert [(method, path) for method, path, _ in only] == [("GET", "/"), ("POST", "/"), ("POST", "/")], only


def test_an_unusable_aws_ca_bundle_fails_the_cold_start_naming_it(private_ca):
    garbage = private_ca["dir"] / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    logs = failed_cold_start(Function("authorizer", {"AWS_CA_BUNDLE": str(garbage)}))
    assert f"AWS_CA_BUNDLE: {garbage} holds a certificate that cannot be a root" in logs, logs[-2000:]
