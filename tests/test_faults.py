"""A failing store: every endpoint fails closed with 503 and never leaks internals.

Three ways, all through the local API over real HTTP:
- the DynamoDB emulator is stopped mid-run (a moto server this module starts itself);
- a TCP proxy in front of the emulator refuses connections, stalls past the SDK's
  timeouts, or answers as DynamoDB does when it throttles; back in pass-through mode, the
  same tokens work again;
- the same proxy, reading each DynamoDB request, forwards a write but drops its answer
  (the SDK retries a write that was applied), or answers as DynamoDB does for a
  transaction that conflicted: none of it may look like theft, a taken name, a double
  count or a half-done logout;
- the same proxy holds one request until a competing operation has run to its end, which
  forces the races that real concurrency only sometimes produces: a login against a
  password change or a deletion, a refresh against a logout, a disable or a password
  change. Each test checks that the race happened and that its outcome is safe.
"""

import hashlib
import json
import os
import re
import secrets
import subprocess
import tempfile
import threading
import time

import pytest

from devtools import roles
from devtools.faultproxy import THROTTLED, FaultyProxy, dynamodb_error
from devtools.moto import create_tables, start_moto
from support import Api, new_name, start_local_api, stop
from test_api import assert_error, assert_invalid_token, decode

PASSWORD = f"fault pass {secrets.token_urlsafe(12)}"
# What a 503 may say: the contract's words, nothing about hosts, ports or the SDK.
INTERNALS = ["127.0.0.1", "localhost", "moto", "dispatch", "connect", "timeout", "dynamodb", "Throttl", "sdk"]


def assert_unavailable(res, what):
    assert res.status == 503, (what, res)
    body = res.json()
    assert set(body) == {"error", "error_description"}, (what, body)
    assert body["error"] == "temporarily_unavailable", (what, body)
    assert res.header("Retry-After") and int(res.header("Retry-After")) >= 1, (what, res.headers)
    for word in INTERNALS:
        assert word.lower() not in res.body.decode().lower(), (what, word, res.body)


def every_endpoint_fails_closed(api, tokens):
    """Each endpoint, with input that would succeed if the store answered."""
    access, refresh = tokens
    assert_unavailable(api.register(new_name()), "register")
    assert_unavailable(api.login(api.username), "login")
    assert_unavailable(api.refresh(refresh), "refresh")
    # Behind the authorizer: it cannot check revocation, so it denies (API Gateway's 503).
    assert_unavailable(api.me(access), "authorizer on /auth/me")
    assert_unavailable(api.logout(access), "authorizer on /auth/logout")


def signed_up(api):
    api.username = new_name()
    res = api.register(api.username)
    assert res.status == 201, res
    return res.json()["access_token"], res.json()["refresh_token"]


def start_api(env):
    logs = tempfile.TemporaryFile()
    env = dict(env, JWT_SECRET=secrets.token_urlsafe(48))
    port, proc = start_local_api(env, logs)
    return Api(port, PASSWORD), proc, logs


# --- The emulator stops mid-run -------------------------------------------------------


@pytest.fixture
def own_emulator():
    """A moto server of this test's own, with the project's tables."""
    moto, endpoint = start_moto(dict(os.environ), subprocess.DEVNULL)
    env = dict(os.environ, AWS_ENDPOINT_URL_DYNAMODB=endpoint)
    env.update(create_tables(endpoint, env))
    yield moto, env
    stop(moto)


def test_stopping_the_emulator_mid_run_fails_every_endpoint_closed(own_emulator):
    moto, env = own_emulator
    api, proc, _ = start_api(env)
    try:
        tokens = signed_up(api)
        assert api.me(tokens[0]).status == 200
        stop(moto)
        every_endpoint_fails_closed(api, tokens)
        assert proc.poll() is None, "the API itself keeps running"
    finally:
        stop(proc)


# --- A proxy that refuses, stalls or throttles ----------------------------------------


class LoseFirstAnswers:
    """A rule for the proxy's "scripted" mode: the first time it sees a request of one of
    `operations` (by its exact bytes), the request reaches DynamoDB but its answer is
    lost; the SDK's retry of the very same request goes through."""

    def __init__(self, *operations):
        self.operations = set(operations)
        self.seen = set()
        self.lost = []

    def __call__(self, operation, request):
        body = request.split(b"\r\n\r\n", 1)[1]
        digest = hashlib.sha256(body).hexdigest()
        if operation in self.operations and digest not in self.seen:
            self.seen.add(digest)
            self.lost.append(operation)
            return "lose"
        return "pass"


class Refuse:
    """A rule: every request of `operation` is throttled (DynamoDB's own error); the rest
    goes through."""

    def __init__(self, operation):
        self.operation = operation

    def __call__(self, operation, request):
        if operation == self.operation:
            return dynamodb_error("400 Bad Request", json.loads(THROTTLED))
        return "pass"


class ConflictOnce:
    """A rule: the first TransactWriteItems is cancelled as DynamoDB cancels a transaction
    that met another one on the same item; everything else goes through."""

    def __init__(self):
        self.done = False

    def __call__(self, operation, request):
        if operation == "TransactWriteItems" and not self.done:
            self.done = True
            return dynamodb_error(
                "400 Bad Request",
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                    "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]",
                    "CancellationReasons": [
                        {"Code": "None"},
                        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
                    ],
                },
            )
        return "pass"


@pytest.fixture
def proxied_api():
    upstream = os.environ["AWS_ENDPOINT_URL_DYNAMODB"].rsplit("/", 1)[-1].split(":")
    proxy = FaultyProxy((upstream[0], int(upstream[1])))
    env = dict(os.environ, AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{proxy.port}")
    api, proc, logs = start_api(env)
    yield api, proxy
    proxy.close()
    stop(proc)
    logs.seek(0)
    assert PASSWORD not in logs.read().decode(errors="replace")


@pytest.mark.parametrize("mode", ["refuse", "stall", "throttle"])
def test_a_refusing_stalling_or_throttling_store_fails_closed_and_recovers(proxied_api, mode):
    api, proxy = proxied_api
    tokens = signed_up(api)
    proxy.set_mode(mode)
    # Each call ends within the SDK's timeouts (6 s an operation), not the client's 30 s.
    every_endpoint_fails_closed(api, tokens)
    proxy.set_mode("pass")
    assert api.me(tokens[0]).status == 200, "the same token works once the store is back"
    assert api.login(api.username).status == 200


def test_a_slow_store_within_the_timeouts_still_works(proxied_api):
    api, proxy = proxied_api
    proxy.set_mode("slow")
    access, refresh = signed_up(api)
    assert api.me(access).status == 200
    assert api.refresh(refresh).status == 200


def test_a_malformed_session_id_never_reaches_the_store(proxied_api):
    api, proxy = proxied_api
    access, _ = signed_up(api)
    seen = []

    def record(operation, request):
        seen.append(request)
        return "pass"

    proxy.set_mode("scripted", record)
    bad = "x" * 1100  # over DynamoDB's key size: a store fault (500) if it were sent
    res = api.call("DELETE", f"/auth/sessions/{bad}", token=access)
    assert res.status == 404 and res.json()["error"] == "not_found", res
    assert seen, "the authorizer's read went through the proxy"
    assert not any(bad.encode() in r for r in seen), "the malformed session id reached DynamoDB"


# --- Writes whose answer is lost, transactions that conflict ---------------------------


def test_a_refresh_whose_spend_was_applied_but_whose_answer_was_lost_is_not_theft(proxied_api):
    api, proxy = proxied_api
    access, refresh = signed_up(api)
    rule = LoseFirstAnswers("PutItem")
    proxy.set_mode("scripted", rule)
    res = api.refresh(refresh)
    assert rule.lost == ["PutItem"], "the spend reached DynamoDB and its answer was dropped"
    assert res.status == 200, res
    new_access, new_refresh = res.json()["access_token"], res.json()["refresh_token"]
    proxy.set_mode("pass")
    # The session was not revoked as stolen: the new pair works, and rotates on.
    assert api.me(new_access).status == 200
    assert api.refresh(new_refresh).status == 200
    # The old token really is spent: presenting it from another address is reuse.
    assert api.from_address("127.0.0.9").refresh(refresh).status == 401


def is_spend(operation, body):
    return operation == "PutItem" and b'"spent"' in body


class LoseEveryAnswerOf:
    """A rule: every request that `matches(operation, body)` reaches DynamoDB but its
    answer is lost, until `stop` is set: the function gives up however often it retries."""

    def __init__(self, matches):
        self.matches = matches
        self.lost = 0
        self.stop = threading.Event()

    def __call__(self, operation, request):
        if not self.stop.is_set() and self.matches(operation, request.split(b"\r\n\r\n", 1)[1]):
            self.lost += 1
            return "lose"
        return "pass"


def test_a_client_retrying_a_refresh_that_answered_503_after_its_spend_landed_keeps_the_session(proxied_api):
    api, proxy = proxied_api
    access, refresh = signed_up(api)
    rule = LoseEveryAnswerOf(is_spend)
    proxy.set_mode("scripted", rule)
    res = api.refresh(refresh)
    assert_unavailable(res, "a refresh whose spend never answered")
    assert rule.lost >= 1, "the spend reached DynamoDB"
    rule.stop.set()
    # The spend was applied: the token is spent, and the pair it was exchanged for was
    # never seen. The client retries as a 503 invites: it gets that pair, not a theft alarm.
    retried = api.refresh(refresh)
    assert retried.status == 200, retried
    new_access, new_refresh = retried.json()["access_token"], retried.json()["refresh_token"]
    assert api.me(access).status == 200 and api.me(new_access).status == 200
    assert api.refresh(new_refresh).status == 200


def test_a_registration_whose_write_was_applied_but_whose_answer_was_lost_is_created(proxied_api):
    api, proxy = proxied_api
    rule = LoseFirstAnswers("TransactWriteItems")
    proxy.set_mode("scripted", rule)
    name = new_name()
    res = api.register(name)
    assert rule.lost == ["TransactWriteItems"]
    assert res.status == 201, res
    proxy.set_mode("pass")
    assert api.me(res.json()["access_token"]).status == 200
    assert api.register(name).status == 409, "and the name is taken for anyone else"


def test_failed_logins_whose_count_was_applied_but_whose_answer_was_lost_count_once(proxied_api):
    api, proxy = proxied_api
    signed_up(api)
    rule = LoseFirstAnswers("UpdateItem")
    proxy.set_mode("scripted", rule)
    # Four failures, every count's first answer lost: counted twice, they would lock the
    # pair at the third.
    for _ in range(4):
        res = api.login(api.username, "not the password")
        assert res.status == 401, res
    assert len(rule.lost) >= 8, rule.lost  # each failure's pair count and name count
    assert api.login(api.username).status == 200


def test_a_logout_whose_write_was_lost_or_refused_is_all_or_nothing_and_retriable(proxied_api):
    api, proxy = proxied_api
    access, refresh = signed_up(api)
    # The write is throttled (the authorizer's read is not): 503, and nothing is revoked,
    # nothing half-done; the client may simply retry.
    proxy.set_mode("scripted", Refuse("PutItem"))
    assert_unavailable(api.logout(access), "logout")
    proxy.set_mode("pass")
    assert api.me(access).status == 200
    # The write lands but its answer is lost: the SDK's retry is harmless, logout is done.
    rule = LoseFirstAnswers("PutItem")
    proxy.set_mode("scripted", rule)
    assert api.logout(access).status == 204
    assert rule.lost == ["PutItem"]
    proxy.set_mode("pass")
    assert api.me(access).status == 401
    assert api.refresh(refresh).status == 401


def test_a_registration_that_meets_a_transaction_conflict_is_retried_not_a_500(proxied_api):
    api, proxy = proxied_api
    proxy.set_mode("scripted", ConflictOnce())
    res = api.register(new_name())
    assert res.status == 201, res


# --- A change whose write is slow to land, and a login in between ----------------------


def is_password_change(operation, body):
    return operation == "UpdateItem" and b"password_hash" in body and b"sessions_valid_after" in body


def is_account_deletion(operation, body):
    return operation == "TransactWriteItems" and b'"Delete"' in body


class Hold:
    """A rule: the first request that `matches(operation, body)`, and the SDK's retries of
    it, are held back until `release` is set (or `timeout` seconds pass: a test that never
    releases does not hang the proxy); everything else goes through. `released_in_time`
    says which it was, so a test can tell that the interleaving it forced really happened."""

    def __init__(self, matches, timeout=5):
        self.matches = matches
        self.timeout = timeout
        self.held, self.release = threading.Event(), threading.Event()
        self.released_in_time = None
        self.body = None
        self.lock = threading.Lock()

    def __call__(self, operation, request):
        body = request.split(b"\r\n\r\n", 1)[1]
        with self.lock:
            first = not self.held.is_set() and self.matches(operation, body)
            if first:
                self.held.set()
                self.body = body
        if first:
            self.released_in_time = self.release.wait(timeout=self.timeout)
        elif body == self.body:
            # The SDK's retry of the held request (its attempt timed out: 2 s): held too,
            # or it would land while the competing operation is still under way.
            self.release.wait(timeout=self.timeout)
        return "pass"


class LoseFirstAnswerOf:
    """A rule: the first request that `matches(operation, body)` reaches DynamoDB but its
    answer is lost (the SDK retries it); everything else goes through."""

    def __init__(self, matches):
        self.matches = matches
        self.lost = 0

    def __call__(self, operation, request):
        if not self.lost and self.matches(operation, request.split(b"\r\n\r\n", 1)[1]):
            self.lost += 1
            return "lose"
        return "pass"


def in_background(call):
    """Runs `call` on a thread; returns a function that waits for and gives its result."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=call()))
    thread.start()

    def wait():
        thread.join(timeout=30)
        return result["value"]

    return wait


def test_a_login_that_checks_the_old_password_while_the_change_lands_opens_no_lasting_session(proxied_api):
    api, proxy = proxied_api
    access, _ = signed_up(api)
    rule = Hold(is_password_change)
    proxy.set_mode("scripted", rule)
    body = {"current_password": PASSWORD, "new_password": "a brand new passphrase"}
    changed = in_background(lambda: api.call("POST", "/auth/password", token=access, json_body=body))
    assert rule.held.wait(timeout=20), "the change's write never came"
    # The change has taken its cutoff time; its write has not landed: the old password
    # still verifies, and this login starts after the cutoff.
    login = api.from_address("127.0.0.51").login(api.username)
    rule.release.set()
    res = changed()
    assert rule.released_in_time, "the change's write was held until the login had answered"
    assert res.status == 200, res
    assert login.status == 200, login
    proxy.set_mode("pass")
    assert api.me(login.json()["access_token"]).status == 401, "the change ended the racing login's session"
    assert api.refresh(login.json()["refresh_token"]).status == 401
    assert api.me(res.json()["access_token"]).status == 200


def test_a_login_that_reads_the_user_while_its_deletion_lands_gets_tokens_of_nobody(proxied_api):
    api, proxy = proxied_api
    access, _ = signed_up(api)
    rule = Hold(is_account_deletion)
    proxy.set_mode("scripted", rule)
    deleted = in_background(lambda: api.call("DELETE", "/auth/account", token=access, json_body={"password": PASSWORD}))
    assert rule.held.wait(timeout=20), "the deletion's transaction never came"
    login = api.from_address("127.0.0.52").login(api.username)
    rule.release.set()
    assert deleted().status == 204
    assert rule.released_in_time, "the deletion was held until the login had answered"
    assert login.status == 200, login  # it read the user before the deletion landed
    proxy.set_mode("pass")
    assert api.me(login.json()["access_token"]).status == 401
    assert api.refresh(login.json()["refresh_token"]).status == 401
    assert api.login(api.username).status == 401


# --- A refresh whose spend is slow to land, and a logout, disable or change in between ---
#
# A refresh reads its session and user (one BatchGetItem), finds them live, mints the next
# pair and spends the token (a conditional PutItem of a "spent" marker). Held at that spend,
# it has decided "live" and not yet answered: whatever ends the session meanwhile must still
# end the pair it then hands out. The unforced versions in test_api.py and test_account.py
# (real concurrency) only sometimes interleave so; these always do, and say so.


def assert_dead(api, access, refresh):
    assert_invalid_token(api.me(access))
    assert_error(api.refresh(refresh), 401, "invalid_grant")


def made_admin(api):
    """An access token of a new user with the role `admin`, granted as an operator does
    (scripts/grant_role.py's change of the user item, straight to the emulator)."""
    name = new_name()
    assert api.register(name).status == 201
    roles.change_role(os.environ["USERS_TABLE"], name, "admin", endpoint=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    res = api.login(name)
    assert res.status == 200, res
    return res.json()["access_token"]


def held_refresh(api, proxy, refresh):
    """Starts a refresh of `refresh` and returns once it has found the session live and its
    spend is held at the proxy: a function that releases the spend and gives the refresh's
    answer, having checked that the spend was held until then."""
    # Held long enough for any competing operation here (a password change hashes twice).
    rule = Hold(is_spend, timeout=20)
    proxy.set_mode("scripted", rule)
    refreshed = in_background(lambda: api.refresh(refresh))
    assert rule.held.wait(timeout=20), "the refresh's spend never came"

    def release():
        rule.release.set()
        res = refreshed()
        assert rule.released_in_time, "the hold gave up before the competing operation ended: nothing was forced"
        return res

    return release


@pytest.mark.parametrize("everywhere", [False, True])
def test_a_refresh_that_found_its_session_live_while_a_logout_lands_mints_a_dead_pair(proxied_api, everywhere):
    api, proxy = proxied_api
    access, refresh = signed_up(api)
    release = held_refresh(api, proxy, refresh)
    # The logout (of this session, or of every session) runs to its end meanwhile.
    assert api.logout(access, "?all=true" if everywhere else "").status == 204
    res = release()
    # The race happened: the refresh decided before the logout, and answered after it...
    assert res.status == 200, res
    new_access, new_refresh = res.json()["access_token"], res.json()["refresh_token"]
    assert decode(new_access)[1]["sid"] == decode(access)[1]["sid"], "a pair of the session logged out"
    proxy.set_mode("pass")
    # ...with a pair that died with the session.
    assert_dead(api, new_access, new_refresh)
    assert_dead(api, access, refresh)


def test_a_refresh_that_found_the_user_enabled_while_a_disable_lands_mints_a_dead_pair(proxied_api):
    api, proxy = proxied_api
    admin = made_admin(api)
    access, refresh = signed_up(api)
    release = held_refresh(api, proxy, refresh)
    disabled = api.call("POST", f"/admin/users/{api.username}/disable", token=admin)
    assert disabled.status == 204, disabled
    res = release()
    assert res.status == 200, res  # decided before the disable, answered after it
    new_access, new_refresh = res.json()["access_token"], res.json()["refresh_token"]
    proxy.set_mode("pass")
    assert_dead(api, new_access, new_refresh)
    assert_dead(api, access, refresh)
    # Enabled again, the pair stays dead: the disable cut off every session begun before it.
    assert api.call("POST", f"/admin/users/{api.username}/enable", token=admin).status == 204
    assert_dead(api, new_access, new_refresh)
    assert api.login(api.username).status == 200


def test_a_refresh_of_another_session_found_live_while_a_password_change_lands_mints_a_dead_pair(proxied_api):
    api, proxy = proxied_api
    access, _ = signed_up(api)
    other = api.login(api.username)
    assert other.status == 200, other
    other_access, other_refresh = other.json()["access_token"], other.json()["refresh_token"]
    release = held_refresh(api, proxy, other_refresh)
    body = {"current_password": PASSWORD, "new_password": "a brand new passphrase"}
    changed = api.call("POST", "/auth/password", token=access, json_body=body)
    assert changed.status == 200, changed
    res = release()
    assert res.status == 200, res  # decided before the change, answered after it
    new_access, new_refresh = res.json()["access_token"], res.json()["refresh_token"]
    proxy.set_mode("pass")
    assert_dead(api, new_access, new_refresh)
    assert_dead(api, other_access, other_refresh)
    # Only the change's own pair goes on.
    assert api.me(changed.json()["access_token"]).status == 200
    rotated = api.refresh(changed.json()["refresh_token"])
    assert rotated.status == 200, rotated
    assert api.me(rotated.json()["access_token"]).status == 200


def test_a_password_change_whose_write_was_applied_but_whose_answer_was_lost_succeeds(proxied_api):
    api, proxy = proxied_api
    access, refresh = signed_up(api)
    rule = LoseFirstAnswerOf(is_password_change)
    proxy.set_mode("scripted", rule)
    body = {"current_password": PASSWORD, "new_password": "a brand new passphrase"}
    res = api.call("POST", "/auth/password", token=access, json_body=body)
    assert rule.lost == 1
    assert res.status == 200, res  # the SDK's retry found its own write, not a conflict
    proxy.set_mode("pass")
    assert api.me(res.json()["access_token"]).status == 200
    assert api.me(access).status == 401 and api.refresh(refresh).status == 401
    assert api.login(api.username, "a brand new passphrase").status == 200


# --- A password reset racing a login and a password change -----------------------------


def mailed_link(api, to, page):
    """The newest `page` link (e.g. "/reset-password") in the local mailbox's mails to `to`."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        messages = [m for m in api.call("GET", "/local/mail").json()["messages"] if to in m["to"]]
        tokens = [t for m in messages for t in re.findall(page + r"\?token=([A-Za-z0-9_-]+)", m["text"])]
        if tokens:
            return tokens[-1]
        time.sleep(0.1)
    raise AssertionError(f"no {page} link mailed to {to}")


def with_a_reset_link(api):
    """A user with a verified address and a reset link: (access token, reset token)."""
    api.username, email = new_name(), f"{new_name()}@example.com"
    res = api.register(api.username, email=email)
    assert res.status == 201, res
    verify = api.call("POST", "/auth/email/verify", json_body={"token": mailed_link(api, email, "/verify-email")})
    assert verify.status == 200, verify
    assert api.call("POST", "/auth/password/forgot", json_body={"email": email}).status == 202
    return res.json()["access_token"], mailed_link(api, email, "/reset-password")


def test_a_login_that_checks_the_old_password_while_a_reset_lands_opens_no_lasting_session(proxied_api):
    api, proxy = proxied_api
    _, token = with_a_reset_link(api)
    rule = Hold(is_password_change)
    proxy.set_mode("scripted", rule)
    new_password = PASSWORD + " reset"
    body = {"token": token, "new_password": new_password}
    reset = in_background(lambda: api.call("POST", "/auth/password/reset", json_body=body))
    assert rule.held.wait(timeout=20), "the reset's write never came"
    # The reset has taken its cutoff; its write has not landed: the old password still
    # verifies, and this login starts after the cutoff.
    login = api.from_address("127.0.0.61").login(api.username)
    rule.release.set()
    res = reset()
    assert rule.released_in_time, "the reset's write was held until the login had answered"
    assert res.status == 204, res
    assert login.status == 200, login
    proxy.set_mode("pass")
    assert_invalid_token(api.me(login.json()["access_token"]))
    assert_error(api.refresh(login.json()["refresh_token"]), 401, "invalid_grant")
    assert api.login(api.username, new_password).status == 200


def test_a_reset_racing_a_password_change_loses_and_changes_nothing(proxied_api):
    api, proxy = proxied_api
    access, token = with_a_reset_link(api)
    rule = Hold(is_password_change)
    proxy.set_mode("scripted", rule)
    reset = in_background(
        lambda: api.call("POST", "/auth/password/reset", json_body={"token": token, "new_password": PASSWORD + " reset"})
    )
    assert rule.held.wait(timeout=20), "the reset's write never came"
    # Meanwhile the owner changes the password, signed in: it lands first (the hold keeps
    # only the reset's write).
    changed = api.call(
        "POST", "/auth/password", token=access, json_body={"current_password": PASSWORD, "new_password": PASSWORD + " changed"}
    )
    assert changed.status == 200, changed
    rule.release.set()
    res = reset()
    # The reset compared the hash it read: it lost, and nothing of it was written.
    assert_error(res, 400, "invalid_grant")
    assert api.login(api.username, PASSWORD + " changed").status == 200
    assert_error(api.login(api.username, PASSWORD + " reset"), 401, "invalid_grant")
