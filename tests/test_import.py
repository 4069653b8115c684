"""Importing users with the password hashes they bring, over HTTP through the local API
(CONTRACT.md Part 3, "Importing users (migration) and hash upgrade"): every recognised
format imports and signs in with the old password, is argon2id after that first sign-in,
refuses a wrong password; unsupported and over-cost hashes are skipped with the reason; a
retried import imports nothing twice; an imported id is the token's `sub`.

The hashes are the vectors the origin libraries made (shared/tests/vectors/imported_hashes.json,
scripts/make_hash_vectors.py).
"""

import json
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import uuid

import pytest
from support import Api, new_name, start_local_api, stop
from test_api import assert_error, decode, grant_role, tokens_of

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = json.loads((ROOT / "shared" / "tests" / "vectors" / "imported_hashes.json").read_text())
PASSWORD = f"import pass {secrets.token_urlsafe(12)}"


@pytest.fixture(scope="module")
def api():
    logs = tempfile.TemporaryFile()
    port, proc = start_local_api(dict(os.environ, JWT_SECRET=secrets.token_hex(32)), logs)
    yield Api(port, PASSWORD)
    assert stop(proc) == 0
    logs.seek(0)
    text = logs.read().decode(errors="replace")
    # No imported hash, nor the passwords they hold, reaches the logs.
    for v in VECTORS:
        # (Not the refused "hash" that is the word "password": the start banner's curl has it.)
        assert len(v["hash"]) < 20 or v["hash"] not in text, v["library"]
    assert "correct horse battery staple" not in text


@pytest.fixture(scope="module")
def admin(api):
    name = new_name()
    assert api.register(name).status == 201
    grant_role(name, "admin")
    access, _ = tokens_of(api.login(name))
    return access


def import_users(api, admin, users):
    return api.call("POST", "/admin/users/import", token=admin, json_body={"users": users})


def view(api, admin, name):
    res = api.call("GET", f"/admin/users/{name}", token=admin)
    assert res.status == 200, res
    return res.json()


def matching(scheme):
    """One vector of each origin library for `scheme` whose password matches."""
    by_library = {}
    for v in VECTORS:
        if v["scheme"] == scheme and v["matches"] and "note" not in v:
            by_library.setdefault(v["library"].split(" ")[0], v)
    return list(by_library.values())


@pytest.mark.parametrize("scheme", ["bcrypt", "pbkdf2_sha256", "scrypt", "argon2i", "argon2id"])
def test_every_recognised_format_imports_signs_in_with_the_old_password_and_becomes_argon2id(api, admin, scheme):
    for v in matching(scheme):
        name, user_id = new_name(), f"legacy-{uuid.uuid4().hex[:8]}"
        res = import_users(api, admin, [{"username": name, "password_hash": v["hash"], "id": user_id}])
        assert res.status == 200, res
        assert res.json() == {"imported": [name], "skipped": []}, v["library"]
        assert view(api, admin, name)["password_scheme"] == scheme
        assert_error(api.login(name, v["password"] + " wrong"), 401, "invalid_grant")
        res = api.login(name, v["password"])
        assert res.status == 200, (v["library"], res)
        access, _ = tokens_of(res)
        # The id it brought is the token's sub.
        assert decode(access)[1]["sub"] == user_id
        assert api.me(access).json()["id"] == user_id
        # Upgraded at that sign-in (argon2id at the configured cost), and still the same password.
        assert view(api, admin, name)["password_scheme"] == "argon2id", v["library"]
        assert api.login(name, v["password"]).status == 200
        assert_error(api.login(name, v["password"] + " wrong"), 401, "invalid_grant")


def test_unsupported_and_over_cost_hashes_are_skipped_with_the_reason_and_nothing_else_is(api, admin):
    refused = [v for v in VECTORS if v["scheme"] is None]
    users = [{"username": new_name(), "password_hash": v["hash"]} for v in refused]
    good = {"username": new_name(), "password_hash": matching("bcrypt")[0]["hash"]}
    res = import_users(api, admin, [*users, good])
    assert res.status == 200, res
    body = res.json()
    assert body["imported"] == [good["username"]]
    assert [s["username"] for s in body["skipped"]] == [u["username"] for u in users]
    for skipped, v in zip(body["skipped"], refused, strict=True):
        assert skipped["error"] == "unsupported_hash", (v["library"], skipped)
        assert len(skipped["error_description"]) > 20, skipped
        assert v["hash"] not in skipped["error_description"], "the hash is never echoed"
        # Nobody was created under that name.
        assert api.call("GET", f"/admin/users/{skipped['username']}", token=admin).status == 404
    over = {s["error_description"] for s in body["skipped"]}
    assert any("bcrypt cost 15" in d for d in over) and any("2000001" in d for d in over), over


def test_a_retried_import_imports_nothing_twice_and_taken_names_ids_and_addresses_are_skipped(api, admin):
    v = matching("pbkdf2_sha256")[0]
    taken_name = new_name()
    assert api.register(taken_name).status == 201
    email = f"{new_name()}@example.com"
    first = {"username": new_name(), "password_hash": v["hash"], "id": f"u-{uuid.uuid4().hex}", "email": email, "email_verified": True, "roles": ["user", "support"]}
    res = import_users(api, admin, [first])
    assert res.json() == {"imported": [first["username"]], "skipped": []}, res
    # The same request again: reported imported (same name and id), nothing written twice.
    assert import_users(api, admin, [first]).json() == {"imported": [first["username"]], "skipped": []}
    shown = view(api, admin, first["username"])
    assert (shown["id"], shown["email"], shown["email_verified"], shown["roles"]) == (first["id"], email, True, ["support", "user"])
    clashes = [
        {"username": taken_name, "password_hash": v["hash"]},
        {"username": new_name(), "password_hash": v["hash"], "id": first["id"]},
        {"username": new_name(), "password_hash": v["hash"], "email": email.upper(), "email_verified": True},
        {"username": "No Such Name!", "password_hash": v["hash"]},
        {"username": new_name(), "password_hash": v["hash"], "id": "has#hash"},
        {"username": new_name(), "password_hash": v["hash"], "email": "not an address"},
        {"username": new_name(), "password_hash": v["hash"], "roles": ["Admin!"]},
    ]
    body = import_users(api, admin, clashes).json()
    assert body["imported"] == []
    assert [s["error"] for s in body["skipped"]] == [
        "username_taken", "id_taken", "email_taken", "invalid_username", "invalid_request", "invalid_email", "invalid_request",
    ], body
    # An integer id (Django's, most SQL tables'): kept as its decimal text.
    number = secrets.randbelow(10**12) + 10**12
    numbered = {"username": new_name(), "password_hash": v["hash"], "id": number}
    assert import_users(api, admin, [numbered]).json()["imported"] == [numbered["username"]]
    res = api.login(numbered["username"], v["password"])
    assert res.status == 200 and decode(res.json()["access_token"])[1]["sub"] == str(number)
    # A verified address imported is that account's: registering it is refused.
    assert_error(api.register(new_name(), email=email), 409, "email_taken")
    # The imported user signs in with the password it had, and holds its roles.
    res = api.login(first["username"], v["password"])
    assert res.status == 200 and sorted(decode(res.json()["access_token"])[1]["roles"]) == ["support", "user"]


def test_a_deleted_account_cannot_be_imported_back_and_its_tokens_stay_dead(api, admin):
    v = matching("bcrypt")[0]
    user = {"username": new_name(), "password_hash": v["hash"], "id": f"gone-{uuid.uuid4().hex}"}
    assert import_users(api, admin, [user]).json()["imported"] == [user["username"]]
    tokens = api.login(user["username"], v["password"]).json()
    res = api.call("DELETE", "/auth/account", token=tokens["access_token"], json_body={"password": v["password"]})
    assert res.status == 204, res
    # The same line imported again (a re-run of the file): its id stays the deleted user's.
    body = import_users(api, admin, [user]).json()
    assert [s["error"] for s in body["skipped"]] == ["id_taken"], body
    assert_error(api.refresh(tokens["refresh_token"]), 401, "invalid_grant")
    # Under another id the name is free again, and the old tokens are still dead.
    assert import_users(api, admin, [{**user, "id": f"new-{uuid.uuid4().hex}"}]).json()["imported"] == [user["username"]]
    assert_error(api.refresh(tokens["refresh_token"]), 401, "invalid_grant")
    assert api.me(tokens["access_token"]).status == 401


def test_only_an_admin_imports_and_at_most_100_users_a_request(api, admin):
    name = new_name()
    user = api.register(name).json()
    bcrypt_hash = matching("bcrypt")[0]["hash"]
    one = [{"username": new_name(), "password_hash": bcrypt_hash}]
    assert_error(import_users(api, user["access_token"], one), 403, "insufficient_scope")
    assert api.call("POST", "/admin/users/import", json_body={"users": one}).status == 401
    many = [{"username": new_name(), "password_hash": bcrypt_hash} for _ in range(101)]
    assert_error(import_users(api, admin, many), 400, "invalid_request")
    assert_error(api.call("POST", "/admin/users/import", token=admin, json_body={"people": one}), 400, "invalid_request")
    # A full batch fits in one request (past the other routes' 8 KiB).
    full = [{"username": new_name(), "password_hash": bcrypt_hash, "id": str(uuid.uuid4()), "email": f"{new_name()}@example.com"} for _ in range(100)]
    res = import_users(api, admin, full)
    assert res.status == 200 and len(res.json()["imported"]) == 100, res


def test_users_py_exports_straight_from_the_table_and_imports_into_an_empty_one_resumably(api, admin, tmp_path):
    # Users of every kind: registered (argon2id), imported (bcrypt, scrypt), one with a
    # verified address and roles.
    registered = new_name()
    assert api.register(registered).status == 201
    brought = [
        {"username": new_name(), "password_hash": matching("bcrypt")[0]["hash"], "id": f"b-{uuid.uuid4().hex}"},
        {
            "username": new_name(),
            "password_hash": matching("scrypt")[0]["hash"],
            "id": f"s-{uuid.uuid4().hex}",
            "email": f"{new_name()}@example.com",
            "email_verified": True,
            "roles": ["support", "user"],
        },
    ]
    assert import_users(api, admin, brought).json()["skipped"] == []
    ours = {registered, *(u["username"] for u in brought)}

    def script(name, *args):
        return subprocess.run(
            [sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True, check=True
        )

    def run(*args):
        return script("users.py", *args)

    exported = run("export", "--table", os.environ["USERS_TABLE"]).stdout.splitlines()
    mine = [json.loads(line) for line in exported if json.loads(line)["username"] in ours]
    assert {u["username"] for u in mine} == ours
    by_name = {u["username"]: u for u in mine}
    assert by_name[registered]["password_hash"].startswith("$argon2id$")
    for u in brought:
        assert by_name[u["username"]]["password_hash"] == u["password_hash"], "as stored, not yet upgraded"
        assert by_name[u["username"]]["id"] == u["id"]
    assert by_name[brought[1]["username"]]["email_verified"] is True
    assert by_name[brought[1]["username"]]["roles"] == ["support", "user"]
    # No line holds anything but a user (no id, address, throttle or mail items).
    assert all("#" not in json.loads(line)["username"] for line in exported)

    # Into an empty set of tables, through another local API on them.
    prefix = f"roundtrip-{uuid.uuid4().hex[:8]}"
    endpoint = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    tables = json.loads(script("dynamodb_tables.py", "create", "--endpoint", endpoint, "--prefix", prefix).stdout)
    logs = tempfile.TemporaryFile()
    port, proc = start_local_api(dict(os.environ, JWT_SECRET=secrets.token_hex(32), **tables), logs)
    try:
        other = Api(port, PASSWORD)
        boss = new_name()
        assert other.register(boss).status == 201
        script("grant_role.py", "--table", tables["USERS_TABLE"], boss, "admin")
        token, _ = tokens_of(other.login(boss))
        source = tmp_path / "users.jsonl"
        source.write_text("".join(json.dumps(u) + "\n" for u in mine))
        api_url = f"http://127.0.0.1:{port}"
        first = run("import", str(source), "--api", api_url, "--token", token)
        assert json.loads(first.stdout) == {"imported": 3, "skipped": 0, "done": 3, "total": 3}
        assert "3/3" in first.stderr, "a progress bar"
        # A re-run finds the work done and sends nothing; with the progress gone, every
        # user is reported imported again and nothing is written twice.
        assert json.loads(run("import", str(source), "--api", api_url, "--token", token).stdout)["imported"] == 0
        (tmp_path / "users.jsonl.progress").unlink()
        assert json.loads(run("import", str(source), "--api", api_url, "--token", token).stdout)["imported"] == 3
        for u in brought:
            v = next(x for x in VECTORS if x["hash"] == u["password_hash"] and x["matches"])
            res = other.login(u["username"], v["password"])
            assert res.status == 200, res
            assert decode(res.json()["access_token"])[1]["sub"] == u["id"]
        # The registered user's argon2id hash came along: its password works there too.
        assert other.login(registered).status == 200
    finally:
        assert stop(proc) == 0


# --- Lazy migration from a Cognito user pool (moto's Cognito) ---------------------------


@pytest.fixture(scope="module")
def cognito():
    """A user pool with an app client allowing USER_PASSWORD_AUTH, on moto's Cognito."""
    import boto3

    endpoint = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    idp = boto3.client("cognito-idp", endpoint_url=endpoint)
    pool = idp.create_user_pool(PoolName=f"legacy-{uuid.uuid4().hex[:8]}")["UserPool"]["Id"]
    client = idp.create_user_pool_client(
        UserPoolId=pool, ClientName="app", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    )["UserPoolClient"]["ClientId"]

    def add(username, password, email=None, verified=False):
        attributes = [{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": str(verified).lower()}] if email else []
        idp.admin_create_user(UserPoolId=pool, Username=username, TemporaryPassword="Temp-pass-123!", UserAttributes=attributes, MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool, Username=username, Password=password, Permanent=True)
        attrs = idp.admin_get_user(UserPoolId=pool, Username=username)["UserAttributes"]
        return next(a["Value"] for a in attrs if a["Name"] == "sub")

    env = dict(
        os.environ,
        JWT_SECRET=secrets.token_hex(32),
        LEGACY_COGNITO_USER_POOL_ID=pool,
        LEGACY_COGNITO_CLIENT_ID=client,
        AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=endpoint,
        LOGIN_LOCK_SECONDS="1",
    )
    logs = tempfile.TemporaryFile()
    port, proc = start_local_api(env, logs)
    yield Api(port, PASSWORD), idp, pool, add
    assert stop(proc) == 0
    logs.seek(0)
    assert "Cognito-pass" not in logs.read().decode(errors="replace"), "no password in the logs"


def test_a_cognito_user_signs_in_with_its_cognito_password_and_is_migrated_once(cognito):
    api, idp, pool, add = cognito
    name, email = new_name(), f"{new_name()}@example.com"
    sub = add(name, "Cognito-pass-1!", email=email, verified=True)
    # A wrong password: the usual 401, nothing created.
    res = api.login(name, "Cognito-pass-WRONG")
    assert_error(res, 401, "invalid_grant")
    unknown = api.login(new_name(), "Cognito-pass-1!")
    assert (unknown.status, unknown.body) == (res.status, res.body), "the same answer as a name nobody has"
    # The right one: created here with Cognito's sub, address and flag, and signed in.
    res = api.login(name, "Cognito-pass-1!")
    assert res.status == 200, res
    access = res.json()["access_token"]
    assert decode(access)[1]["sub"] == sub
    me = api.me(access).json()
    assert (me["id"], me["email"], me["email_verified"]) == (sub, email, True)
    # From now on the pool is not asked: gone there, the user still signs in here, with
    # the password it had; a new password set there does not work here.
    idp.admin_set_user_password(UserPoolId=pool, Username=name, Password="Cognito-pass-2!", Permanent=True)
    idp.admin_delete_user(UserPoolId=pool, Username=name)
    assert api.login(name, "Cognito-pass-1!").status == 200
    assert_error(api.login(name, "Cognito-pass-2!"), 401, "invalid_grant")
    # Its verified address is this account's here.
    assert_error(api.register(new_name(), email=email), 409, "email_taken")


def test_wrong_cognito_passwords_count_in_the_throttle_and_a_name_taken_here_is_never_migrated(cognito):
    api, _, _, add = cognito
    name = new_name()
    add(name, "Cognito-pass-3!")
    guesser = api.from_address("127.0.7.1")
    for _ in range(5):
        assert_error(guesser.login(name, "not it"), 401, "invalid_grant")
    assert_error(guesser.login(name, "Cognito-pass-3!"), 429, "too_many_attempts")
    # A name registered here first belongs to that account: the pool is never asked.
    taken = new_name()
    add(taken, "Cognito-pass-4!")
    assert api.register(taken).status == 201
    assert_error(api.login(taken, "Cognito-pass-4!"), 401, "invalid_grant")
    assert api.login(taken).status == 200


def test_a_cognito_pool_that_does_not_answer_fails_the_migration_closed_and_nobody_else(cognito):
    _, _, pool, add = cognito
    from devtools.net import free_port

    name = new_name()
    add(name, "Cognito-pass-5!")
    env = dict(
        os.environ,
        JWT_SECRET=secrets.token_hex(32),
        LEGACY_COGNITO_USER_POOL_ID=pool,
        LEGACY_COGNITO_CLIENT_ID="client-of-a-pool-that-is-down",
        AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=f"http://127.0.0.1:{free_port()}",
    )
    logs = tempfile.TemporaryFile()
    port, proc = start_local_api(env, logs)
    try:
        api = Api(port, PASSWORD)
        res = api.login(name, "Cognito-pass-5!")
        assert_error(res, 503, "temporarily_unavailable")
        # Users of this service are not affected.
        local = new_name()
        assert api.register(local).status == 201
        assert api.login(local).status == 200
    finally:
        assert stop(proc) == 0
    logs.seek(0)
    assert "Cognito-pass-5!" not in logs.read().decode(errors="replace")
