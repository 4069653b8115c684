"""Multi-factor authentication over HTTP through the local API, as `make dev` runs it
(CONTRACT.md Part 3, "Multi-factor authentication (TOTP, RFC 6238)"): enrolment with a
password and a code, the two-step login, recovery codes once, their regeneration, turning
it off, an administrator's reset, AdminRequiresMfa, and a password reset that leaves it
on. The codes are computed here from the secret the set-up answers, with the clock read
here (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps).
"""

import base64
import hashlib
import hmac
import os
import secrets
import struct
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from support import Api, new_name, start_local_api, stop
from test_api import assert_error, decode, grant_role
from test_email import address, forgot, mails_to, reset, reset_mails, reset_token_of, token_of, verify

PASSWORD = f"mfa pass {secrets.token_urlsafe(12)}"
APP_ORIGIN = "https://app.email.test"
STEP = 30


def hotp(secret_b32, counter):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    return f"{(struct.unpack('>I', mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


class Authenticator:
    """An authenticator app holding one secret, which remembers the last step whose code
    the service accepted (a step is never accepted twice)."""

    def __init__(self, secret):
        self.secret = secret
        self.used = None

    def step(self):
        return int(time.time()) // STEP

    def code_for(self, step):
        return hotp(self.secret, step)

    def next_code(self):
        """A code of a step the service still accepts (now or the next one), later than the
        last one used; waits for the next step if both are used. Marks it used."""
        while True:
            now = self.step()
            # Not in the step's last second: the request must land in the window.
            if (time.time() % STEP) > STEP - 1.5:
                time.sleep(STEP - time.time() % STEP + 0.05)
                continue
            for step in (now, now + 1):
                if self.used is None or step > self.used:
                    self.used = step
                    return self.code_for(step)
            time.sleep(STEP - time.time() % STEP + 0.05)


@pytest.fixture(scope="module")
def api():
    logs = tempfile.TemporaryFile()
    env = dict(os.environ, JWT_SECRET=secrets.token_hex(32), APP_URL=APP_ORIGIN, ALLOWED_ORIGINS=APP_ORIGIN)
    port, proc = start_local_api(env, logs)
    yield Api(port, PASSWORD), logs
    assert stop(proc) == 0


def user(api, **extra):
    name = new_name()
    res = api.register(name, **extra)
    assert res.status == 201, res
    return name, res.json()["access_token"]


def setup(api, access, password=PASSWORD):
    return api.call("POST", "/auth/mfa/totp/setup", token=access, json_body={"password": password})


def confirm(api, access, code):
    return api.call("POST", "/auth/mfa/totp/confirm", token=access, json_body={"code": code})


def enrolled(api):
    """A user with multi-factor on: (name, its app, its recovery codes, its access token)."""
    name, access = user(api)
    res = setup(api, access)
    assert res.status == 200, res
    app = Authenticator(res.json()["secret"])
    res = confirm(api, access, app.next_code())
    assert res.status == 200, res
    return name, app, res.json()["recovery_codes"], access


def first_step(api, name, password=PASSWORD):
    res = api.login(name, password)
    body = assert_mfa_required(res)
    return body["mfa_token"]


def assert_mfa_required(res):
    assert res.status == 403, res
    body = res.json()
    assert set(body) == {"error", "error_description", "mfa_token"}, body
    assert body["error"] == "mfa_required" and body["error_description"]
    assert len(body["mfa_token"]) >= 22, "at least 128 random bits"
    return body


def second_step(api, mfa_token, code=None, recovery_code=None, path="/auth/login/mfa"):
    body = {"mfa_token": mfa_token}
    if code is not None:
        body["code"] = code
    if recovery_code is not None:
        body["recovery_code"] = recovery_code
    return api.call("POST", path, json_body=body)


def amr(access):
    return decode(access)[1]["amr"]


# --- Enrolment -------------------------------------------------------------------------------


def test_set_up_answers_a_secret_and_its_uri_and_stays_pending_until_a_code_confirms_it(api):
    api, _ = api
    name, access = user(api)
    assert_error(setup(api, access, PASSWORD + " wrong"), 401, "invalid_grant")
    res = setup(api, access)
    assert res.status == 200, res
    body = res.json()
    assert set(body) == {"secret", "otpauth_uri"}
    secret = body["secret"]
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20
    uri = urllib.parse.urlsplit(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    label = urllib.parse.unquote(uri.path.lstrip("/"))
    assert label.endswith(f":{name}"), label
    query = urllib.parse.parse_qs(uri.query)
    assert query["secret"] == [secret]
    assert query.get("digits", ["6"]) == ["6"] and query.get("period", ["30"]) == ["30"]
    assert query.get("algorithm", ["SHA1"]) == ["SHA1"]
    assert query["issuer"][0] == label.split(":")[0]
    # Pending: the password alone still signs in.
    assert api.login(name).status == 200
    app = Authenticator(secret)
    # A wrong code: 400 invalid_grant, and still pending.
    wrong = f"{(int(app.code_for(app.step())) + 1) % 1_000_000:06d}"
    assert_error(confirm(api, access, wrong), 400, "invalid_grant")
    assert_error(confirm(api, access, "12345"), 400, "invalid_grant")
    assert api.login(name).status == 200
    res = confirm(api, access, app.next_code())
    assert res.status == 200, res
    codes = res.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    # On: the password is step one, and a second set-up is refused while it is.
    assert_mfa_required(api.login(name))
    assert_error(setup(api, access), 409, "mfa_already_enabled")
    assert_error(confirm(api, access, app.next_code()), 409, "mfa_already_enabled")


def test_a_confirmation_without_a_set_up_is_refused(api):
    api, _ = api
    _, access = user(api)
    assert_error(confirm(api, access, "123456"), 400, "invalid_request")


def test_the_routes_need_a_signed_in_caller(api):
    api, _ = api
    for method, path in [
        ("POST", "/auth/mfa/totp/setup"),
        ("POST", "/auth/mfa/totp/confirm"),
        ("POST", "/auth/mfa/recovery-codes"),
        ("DELETE", "/auth/mfa/totp"),
    ]:
        assert_error(api.call(method, path, json_body={}), 401, "invalid_token")


# --- The two-step login --------------------------------------------------------------------


def test_a_right_password_asks_for_the_code_and_a_wrong_one_says_nothing_more(api):
    api, _ = api
    name, app, _, _ = enrolled(api)
    body = assert_mfa_required(api.login(name))
    assert "access_token" not in body and "refresh_token" not in body
    wrong = assert_error(api.login(name, PASSWORD + " wrong"), 401, "invalid_grant")
    assert "mfa_token" not in wrong
    # The OAuth form too.
    form = {"grant_type": "password", "username": name, "password": PASSWORD}
    assert_mfa_required(api.call("POST", "/auth/login", form=form))
    # The code signs in, with the pair login answers, and amr says how.
    res = second_step(api, body["mfa_token"], code=app.next_code())
    assert res.status == 200, res
    tokens = res.json()
    assert {"access_token", "refresh_token", "token_type", "expires_in", "device_token"} <= set(tokens)
    assert amr(tokens["access_token"]) == ["pwd", "otp", "mfa"]
    me = api.me(tokens["access_token"])
    assert me.status == 200 and me.json()["amr"] == ["pwd", "otp", "mfa"]
    # A refresh keeps it.
    refreshed = api.refresh(tokens["refresh_token"])
    assert refreshed.status == 200, refreshed
    assert amr(refreshed.json()["access_token"]) == ["pwd", "otp", "mfa"]


def test_a_password_alone_is_amr_pwd(api):
    api, _ = api
    name, access = user(api)
    assert amr(access) == ["pwd"]
    res = api.login(name)
    assert res.status == 200 and amr(res.json()["access_token"]) == ["pwd"]
    assert api.me(res.json()["access_token"]).json()["amr"] == ["pwd"]


def test_the_second_step_in_cookie_mode_sets_the_refresh_cookie(api):
    api, _ = api
    name, app, _, _ = enrolled(api)
    mfa_token = first_step(api, name)
    res = api.call(
        "POST",
        "/auth/login/mfa?cookie=true",
        json_body={"mfa_token": mfa_token, "code": app.next_code()},
        headers={"Origin": APP_ORIGIN, "X-Requested-With": "XMLHttpRequest"},
    )
    assert res.status == 200, res
    assert "refresh_token" not in res.json()
    cookies = res.set_cookies()
    assert "__Host-refresh_token" in cookies and "__Host-device" in cookies


def test_a_code_works_once(api):
    api, _ = api
    name, app, _, _ = enrolled(api)
    code = app.next_code()
    assert second_step(api, first_step(api, name), code=code).status == 200
    # The same code again, with a new mfa_token: refused (a replay).
    assert_error(second_step(api, first_step(api, name), code=code), 401, "invalid_grant")


def test_a_code_of_the_step_either_side_is_accepted_and_older_ones_are_not(api):
    api, _ = api
    name, app, _, _ = enrolled(api)
    # Clear of a step's edge, so "now" is the same here and there.
    if time.time() % STEP > STEP - 3:
        time.sleep(STEP - time.time() % STEP + 0.1)
    now = app.step()
    assert app.used is not None and app.used <= now + 1
    # Two steps back: never (and an enrolled user's last step is at least "now").
    assert_error(second_step(api, first_step(api, name), code=app.code_for(now - 2)), 401, "invalid_grant")
    # The next step's code (a phone a little ahead), if not used by the confirmation.
    if app.used < now + 1:
        res = second_step(api, first_step(api, name), code=app.code_for(now + 1))
        assert res.status == 200, res
        app.used = now + 1
    # The previous step's code: it is now at or before the last step used.
    assert_error(second_step(api, first_step(api, name), code=app.code_for(now - 1)), 401, "invalid_grant")


def test_two_uses_of_one_code_at_once_sign_in_once(api):
    api, _ = api
    name, app, _, _ = enrolled(api)
    tokens = [first_step(api, name) for _ in range(4)]
    code = app.next_code()
    with ThreadPoolExecutor(len(tokens)) as pool:
        answers = list(pool.map(lambda t: second_step(api, t, code=code), tokens))
    assert sorted(r.status for r in answers) == [200, 401, 401, 401], answers


def test_an_mfa_token_ends_at_its_first_success(api):
    api, _ = api
    name, app, codes, _ = enrolled(api)
    mfa_token = first_step(api, name)
    assert second_step(api, mfa_token, code=app.next_code()).status == 200
    # Spent: even a recovery code that works elsewhere is refused with it.
    assert_error(second_step(api, mfa_token, recovery_code=codes[0]), 401, "invalid_grant")
    assert second_step(api, first_step(api, name), recovery_code=codes[0]).status == 200


def test_an_mfa_token_dies_at_its_fifth_wrong_code_and_wrong_codes_count_in_the_throttle(api):
    api, _ = api
    name, app, _, _ = enrolled(api)
    mfa_token = first_step(api, name)
    for _ in range(4):
        assert_error(second_step(api, mfa_token, code="000000"), 401, "invalid_grant")
    # From another address (the throttle's pair is per address): the fifth wrong code ends
    # the token, and then the right code is refused too.
    other = api.from_address("127.0.0.23")
    assert_error(second_step(other, mfa_token, code="000001"), 401, "invalid_grant")
    assert_error(second_step(other, mfa_token, code=app.next_code()), 401, "invalid_grant")
    # The first address's pair took four wrong codes: one more attempt and it is locked,
    # password and codes alike.
    assert_error(api.login(name, PASSWORD + " wrong"), 401, "invalid_grant")
    locked = api.login(name)
    assert_error(locked, 429, "too_many_attempts")
    assert int(locked.header("Retry-After")) >= 1


def test_knowing_the_password_buys_no_more_guesses_at_the_code(api):
    api, _ = api
    name, app, codes, _ = enrolled(api)
    # Each guess with a fresh mfa_token, from a fresh address (a right password clears its
    # address's pair): five wrong codes in all...
    for i in range(5):
        source = api.from_address(f"127.0.1.{i + 1}")
        assert_error(second_step(source, first_step(source, name), code="000000"), 401, "invalid_grant")
    # ...and the user's codes are locked, from anywhere, the right ones too.
    source = api.from_address("127.0.1.9")
    mfa_token = first_step(source, name)
    for proof in ({"code": app.code_for(app.step())}, {"recovery_code": codes[0]}):
        locked = second_step(source, mfa_token, **proof)
        assert_error(locked, 429, "too_many_attempts")
        assert int(locked.header("Retry-After")) >= 1


def test_a_stolen_session_cannot_guess_its_way_to_new_recovery_codes(api):
    api, _ = api
    name, app, _, access = enrolled(api)
    path = "/auth/mfa/recovery-codes"
    for _ in range(5):
        assert_error(api.call("POST", path, token=access, json_body={"code": "000000"}), 400, "invalid_grant")
    locked = api.call("POST", path, token=access, json_body={"code": app.code_for(app.step())})
    assert_error(locked, 429, "too_many_attempts")
    # Turning the factor off with a code is behind the same counter.
    res = api.call("DELETE", "/auth/mfa/totp", token=access, json_body={"password": PASSWORD, "code": "123456"})
    assert_error(res, 429, "too_many_attempts")


def test_an_expired_mfa_token_is_refused(api):
    api, _ = api
    name, app, _, _ = enrolled(api)
    mfa_token = first_step(api, name)
    # Five minutes, fast-forwarded: the stored token's expiry moved into the past.
    table = boto3.resource("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"]).Table(
        os.environ["TOKENS_TABLE"]
    )
    # (Under the prefix only the login function's grant reaches.)
    key = {"token_hash": "mfa#" + hashlib.sha256(mfa_token.encode()).hexdigest()}
    stored = table.get_item(Key=key, ConsistentRead=True)["Item"]
    assert stored["purpose"] == "mfa_login" and int(stored["expires_at"]) - time.time() <= 300
    assert mfa_token not in str(stored), "only its hash is stored"
    table.update_item(Key=key, UpdateExpression="SET expires_at = :past", ExpressionAttributeValues={":past": 1})
    assert_error(second_step(api, mfa_token, code=app.next_code()), 401, "invalid_grant")


def test_a_forged_or_malformed_second_step_is_refused(api):
    api, _ = api
    assert_error(second_step(api, secrets.token_urlsafe(32), code="123456"), 401, "invalid_grant")
    name, app, codes, _ = enrolled(api)
    mfa_token = first_step(api, name)
    assert_error(second_step(api, mfa_token), 400, "invalid_request")
    assert_error(second_step(api, mfa_token, code=app.next_code(), recovery_code=codes[0]), 400, "invalid_request")
    assert_error(api.call("POST", "/auth/login/mfa", json_body={"code": "123456"}), 400, "invalid_request")


def test_a_password_change_since_the_first_step_ends_its_mfa_token(api):
    api, _ = api
    name, app, _, access = enrolled(api)
    mfa_token = first_step(api, name)
    new_password = PASSWORD + " changed"
    res = api.call(
        "POST", "/auth/password", token=access, json_body={"current_password": PASSWORD, "new_password": new_password}
    )
    assert res.status == 200, res
    assert_error(second_step(api, mfa_token, code=app.next_code()), 401, "invalid_grant")


# --- Recovery codes ------------------------------------------------------------------------


def test_a_recovery_code_signs_in_once(api):
    api, logs = api
    name, _, codes, _ = enrolled(api)
    # As people type it: upper case, the dash left out.
    typed = codes[3].upper().replace("-", "")
    res = second_step(api, first_step(api, name), recovery_code=typed)
    assert res.status == 200, res
    assert amr(res.json()["access_token"]) == ["pwd", "otp", "mfa"]
    assert_error(second_step(api, first_step(api, name), recovery_code=codes[3]), 401, "invalid_grant")
    # The others still work.
    assert second_step(api, first_step(api, name), recovery_code=codes[4]).status == 200


def test_new_recovery_codes_take_a_code_and_replace_the_old_ones(api):
    api, _ = api
    name, app, old, access = enrolled(api)
    path = "/auth/mfa/recovery-codes"
    assert_error(api.call("POST", path, token=access, json_body={"code": "000000"}), 400, "invalid_grant")
    res = api.call("POST", path, token=access, json_body={"code": app.next_code()})
    assert res.status == 200, res
    new = res.json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert_error(second_step(api, first_step(api, name), recovery_code=old[0]), 401, "invalid_grant")
    assert second_step(api, first_step(api, name), recovery_code=new[0]).status == 200
    # Without a factor: nothing to replace.
    _, plain = user(api)
    assert_error(api.call("POST", path, token=plain, json_body={"code": "123456"}), 400, "invalid_request")


# --- Turning it off ---------------------------------------------------------------------------


def disable(api, access, password, code):
    return api.call("DELETE", "/auth/mfa/totp", token=access, json_body={"password": password, "code": code})


def test_turning_it_off_takes_the_password_and_a_code(api):
    api, _ = api
    name, app, codes, access = enrolled(api)
    # (A code of now, not marked used: the wrong password is refused before any code.)
    assert_error(disable(api, access, PASSWORD + " wrong", app.code_for(app.step())), 401, "invalid_grant")
    assert_error(disable(api, access, PASSWORD, "000000"), 400, "invalid_grant")
    assert_mfa_required(api.login(name))
    res = disable(api, access, PASSWORD, app.next_code())
    assert res.status == 204, res
    res = api.login(name)
    assert res.status == 200 and amr(res.json()["access_token"]) == ["pwd"]
    # Off: nothing to turn off, and a new set-up starts afresh.
    assert_error(disable(api, access, PASSWORD, "123456"), 400, "invalid_request")
    assert setup(api, access).status == 200


def test_a_recovery_code_can_turn_it_off_for_a_lost_phone(api):
    api, _ = api
    name, _, codes, _ = enrolled(api)
    res = second_step(api, first_step(api, name), recovery_code=codes[0])
    access = res.json()["access_token"]
    assert disable(api, access, PASSWORD, codes[1]).status == 204
    assert api.login(name).status == 200


# --- An administrator's reset ------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin(api):
    api, _ = api
    name, _ = user(api)
    grant_role(name, "admin")
    res = api.login(name)
    assert res.status == 200, res
    return res.json()["access_token"]


def test_an_administrator_resets_a_lost_factor_and_every_session_ends(api, admin):
    api, _ = api
    name, app, _, access = enrolled(api)
    signed_in = second_step(api, first_step(api, name), code=app.next_code()).json()
    path = f"/admin/users/{name}/mfa/reset"
    # Only administrators.
    assert_error(api.call("POST", path, token=access), 403, "insufficient_scope")
    res = api.call("POST", path, token=admin)
    assert res.status == 204, res
    for token in (access, signed_in["access_token"]):
        assert api.me(token).status == 401
    assert_error(api.refresh(signed_in["refresh_token"]), 401, "invalid_grant")
    # The password alone signs in again; the user can enrol anew.
    res = api.login(name)
    assert res.status == 200, res
    assert setup(api, res.json()["access_token"]).status == 200
    assert_error(api.call("POST", f"/admin/users/{new_name()}/mfa/reset", token=admin), 404, "not_found")
    assert_error(api.call("POST", "/admin/users/NOT%20A%20NAME/mfa/reset", token=admin), 404, "not_found")


def test_every_change_of_the_factor_tells_the_verified_address(api, admin):
    api, _ = api
    email = address()
    name, access = user(api, email=email)
    assert verify(api, token_of(mails_to(api, email)[0])).status == 200
    # (A new session: the authorizer reads the address as verified now.)
    res = setup(api, access)
    app = Authenticator(res.json()["secret"])
    assert confirm(api, access, app.next_code()).status == 200
    res = api.call("POST", "/auth/mfa/recovery-codes", token=access, json_body={"code": app.next_code()})
    assert res.status == 200, res
    assert api.call("POST", f"/admin/users/{name}/mfa/reset", token=admin).status == 204
    subjects = [m["subject"] for m in mails_to(api, email, count=4) if m["to"] == [email]]
    for subject in ("Two-step sign-in was turned on", "New recovery codes were made", "Two-step sign-in was turned off"):
        assert subjects.count(subject) == 1, subjects
    # Nothing secret in them.
    for mail in mails_to(api, email, count=4):
        assert app.secret not in mail["text"] and "recovery_codes" not in mail["text"]


def test_a_password_reset_leaves_mfa_on(api):
    api, _ = api
    email = address()
    name, access = user(api, email=email)
    assert verify(api, token_of(mails_to(api, email)[0])).status == 200
    app = Authenticator(setup(api, access).json()["secret"])
    assert confirm(api, access, app.next_code()).status == 200
    assert forgot(api, email=email).status == 202
    (mail,) = reset_mails(api, email)
    new_password = PASSWORD + " reset"
    assert reset(api, reset_token_of(mail), new_password).status == 204
    # The new password is step one; the factor still guards the account.
    mfa_token = first_step(api, name, new_password)
    assert second_step(api, mfa_token, code=app.next_code()).status == 200


def test_deleting_the_account_deletes_its_factor(api):
    api, _ = api
    name, app, _, access = enrolled(api)
    user_id = decode(access)[1]["sub"]
    users = boto3.resource("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"]).Table(
        os.environ["USERS_TABLE"]
    )
    item = users.get_item(Key={"username": f"mfa#{user_id}"}, ConsistentRead=True)["Item"]
    # At rest: sealed, and the recovery codes hashed.
    assert item["secret"].startswith("v1.") and app.secret not in str(item)
    assert all(len(h) == 64 for h in item["recovery_codes"])
    res = api.call("DELETE", "/auth/account", token=access, json_body={"password": PASSWORD})
    assert res.status == 204, res
    assert "Item" not in users.get_item(Key={"username": f"mfa#{user_id}"}, ConsistentRead=True)


def test_no_secret_code_or_token_reaches_the_logs(api):
    api, logs = api
    name, app, codes, _ = enrolled(api)
    mfa_token = first_step(api, name)
    assert second_step(api, mfa_token, code=app.next_code()).status == 200
    logs.seek(0)
    text = logs.read().decode(errors="replace")
    for secret in (app.secret, mfa_token, *codes, PASSWORD):
        assert secret not in text


# --- AdminRequiresMfa --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_api():
    logs = tempfile.TemporaryFile()
    env = dict(os.environ, JWT_SECRET=secrets.token_hex(32), ALLOWED_ORIGINS=APP_ORIGIN, ADMIN_REQUIRES_MFA="true")
    port, proc = start_local_api(env, logs)
    yield Api(port, PASSWORD)
    assert stop(proc) == 0


def test_with_admin_requires_mfa_admin_routes_need_a_second_factor(strict_api):
    api = strict_api
    name, access = user(api)
    grant_role(name, "admin")
    password_only = api.login(name).json()["access_token"]
    target = f"/admin/users/{name}"
    res = api.call("GET", target, token=password_only, headers={"Origin": APP_ORIGIN})
    assert_error(res, 403, "insufficient_user_authentication")
    # A gateway answer, with CORS as the others.
    assert res.header("Access-Control-Allow-Origin") == APP_ORIGIN
    # The routes without a role stay open to it.
    assert api.me(password_only).status == 200
    # A non-admin is refused for the role, not the factor.
    _, plain = user(api)
    assert_error(api.call("GET", target, token=plain), 403, "insufficient_scope")
    # Enrolled, and signed in with a code: through.
    app = Authenticator(setup(api, password_only).json()["secret"])
    assert confirm(api, password_only, app.next_code()).status == 200
    signed_in = second_step(api, first_step(api, name), code=app.next_code()).json()
    assert amr(signed_in["access_token"]) == ["pwd", "otp", "mfa"]
    res = api.call("GET", target, token=signed_in["access_token"])
    assert res.status == 200, res
    # And after a refresh, still.
    refreshed = api.refresh(signed_in["refresh_token"])
    assert api.call("GET", target, token=refreshed.json()["access_token"]).status == 200
