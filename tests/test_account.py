"""The caller's account over HTTP against the local API (CONTRACT.md Part 2, "Account"):
list and end sessions, change the password, delete the account, and the races between
them and refresh or login. Runs inside scripts/with_dynamodb.py, like test_api.py, whose
client helpers and fixtures it shares."""

import os
import tempfile

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from support import Api, new_name, start_local_api, stop
from test_api import (  # noqa: F401  (fixtures are used by name)
    ISSUER,
    PASSWORD,
    SECRET,
    XRW,
    admin,
    api,
    api_logs,
    assert_error,
    assert_invalid_token,
    assert_refreshes_lost_or_minted_a_dead_pair,
    audited_api,
    concurrently,
    decode,
    refresh_cookie_of,
    security_events,
    strict_api,
    tokens_of,
    user,
)

NEW_PASSWORD = "a brand new passphrase"


def sessions(api, token):
    res = api.call("GET", "/auth/sessions", token=token)
    assert res.status == 200, res
    return res.json()["sessions"]


def sid(token):
    return decode(token)[1]["sid"]


def change_password(api, token, current, new=NEW_PASSWORD, query=""):
    body = {"current_password": current, "new_password": new}
    return api.call("POST", "/auth/password" + query, token=token, json_body=body)


def delete_account(api, token, password=PASSWORD):
    return api.call("DELETE", "/auth/account", token=token, json_body={"password": password})


def end_session(api, token, session_id):
    return api.call("DELETE", f"/auth/sessions/{session_id}", token=token)


def table(variable):
    return boto3.resource("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"]).Table(os.environ[variable])


def assert_dead(api, access, refresh):
    assert_invalid_token(api.me(access))
    assert_error(api.refresh(refresh), 401, "invalid_grant")


def test_every_account_route_needs_a_token(api):
    for method, path in [
        ("POST", "/auth/password"),
        ("DELETE", "/auth/account"),
        ("GET", "/auth/sessions"),
        ("DELETE", "/auth/sessions/019a9c4e-0000-7000-8000-000000000000"),
    ]:
        assert_invalid_token(api.call(method, path, json_body={}))


def test_sessions_are_listed_newest_first_with_the_current_one_marked(api, user):
    first = user["access_token"]
    second, second_refresh = tokens_of(api.login(user["username"]))
    third, _ = tokens_of(api.login(user["username"]))
    listed = sessions(api, second)
    assert [s["id"] for s in listed] == [sid(third), sid(second), sid(first)]
    assert [s["current"] for s in listed] == [False, True, False]
    for s in listed:
        assert set(s) == {"id", "created_at", "last_used_at", "current"}
        assert s["created_at"] <= s["last_used_at"]
    # Logged out, or ended from the list: gone from the list at once.
    assert api.logout(third).status == 204
    assert [s["id"] for s in sessions(api, second)] == [sid(second), sid(first)]
    # A refresh continues the session: still listed, under the same id.
    refreshed, _ = tokens_of(api.refresh(second_refresh))
    assert [(s["id"], s["current"]) for s in sessions(api, refreshed)] == [(sid(second), True), (sid(first), False)]


def test_ending_a_session_stops_its_tokens_at_once_and_only_the_callers_can_be_ended(api, user):
    phone, phone_refresh = tokens_of(api.login(user["username"]))
    laptop = user["access_token"]
    res = end_session(api, laptop, sid(phone))
    assert res.status == 204 and res.body == b"", res
    assert_dead(api, phone, phone_refresh)
    assert api.me(laptop).status == 200
    assert [s["id"] for s in sessions(api, laptop)] == [sid(laptop)]
    # Ended already, another user's live session, or no session at all: 404, nothing changes.
    stranger = api.register(new_name()).json()
    for session_id in [sid(phone), sid(stranger["access_token"]), "not-a-session", "019a9c4e-0000-7000-8000-000000000000"]:
        assert_error(end_session(api, laptop, session_id), 404, "not_found")
    assert api.me(stranger["access_token"]).status == 200
    # A caller may end its own session too (as logout).
    assert end_session(api, laptop, sid(laptop)).status == 204
    assert_invalid_token(api.me(laptop))


def test_a_password_change_keeps_only_the_new_pair(api, user):
    other, other_refresh = tokens_of(api.login(user["username"]))
    old, old_refresh = user["access_token"], user["refresh_token"]
    res = change_password(api, old, PASSWORD)
    new_access, new_refresh = tokens_of(res)
    assert set(res.json()) == {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in"}
    assert_dead(api, other, other_refresh)
    assert_dead(api, old, old_refresh)
    assert api.me(new_access).status == 200
    listed = sessions(api, new_access)
    assert [(s["id"], s["current"]) for s in listed] == [(sid(new_access), True)]
    assert tokens_of(api.refresh(new_refresh))
    assert_error(api.login(user["username"]), 401, "invalid_grant")
    assert tokens_of(api.login(user["username"], NEW_PASSWORD))


def test_a_refused_password_change_changes_nothing(api, user):
    token = user["access_token"]
    assert_error(change_password(api, token, "not the password"), 401, "invalid_grant")
    assert_error(change_password(api, token, PASSWORD, "short"), 400, "invalid_password")
    assert_error(change_password(api, token, PASSWORD, user["username"]), 400, "invalid_password")
    assert_error(change_password(api, token, PASSWORD, "x" * 129), 400, "invalid_password")
    assert_error(api.call("POST", "/auth/password", token=token, json_body={"new_password": NEW_PASSWORD}), 400, "invalid_request")
    assert_error(api.call("POST", "/auth/password", token=token, body="{", headers={"Content-Type": "application/json"}), 400, "invalid_request")
    assert api.me(token).status == 200
    assert tokens_of(api.refresh(user["refresh_token"]))
    assert tokens_of(api.login(user["username"]))


def test_wrong_current_passwords_count_in_the_login_throttle(strict_api, user):
    # strict_api: the template's 30 s locks, which no slow argon2 run can outlast.
    api = strict_api
    guesser = api.from_address("127.0.0.21")
    for _ in range(5):
        assert_error(change_password(guesser, user["access_token"], "not the password"), 401, "invalid_grant")
    locked = change_password(guesser, user["access_token"], PASSWORD)
    assert_error(locked, 429, "too_many_attempts")
    assert int(locked.header("Retry-After")) >= 1
    # The owner elsewhere is not locked out.
    assert tokens_of(api.from_address("127.0.0.22").login(user["username"]))


def test_a_password_change_in_cookie_mode_sets_the_new_refresh_cookie(api, user):
    res = change_password(api, user["access_token"], PASSWORD, query="?cookie=true")
    assert_error(res, 403, "invalid_request")  # no X-Requested-With: the CSRF check
    assert api.me(user["access_token"]).status == 200, "refused before anything changed"
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    res = api.call("POST", "/auth/password?cookie=true", token=user["access_token"], json_body=body, headers=XRW)
    assert res.status == 200, res
    assert "refresh_token" not in res.json()
    cookie, attributes = refresh_cookie_of(res)
    assert decode(cookie)[1]["sid"] == sid(res.json()["access_token"])
    assert "httponly" in attributes


def test_a_session_id_that_is_not_a_uuid_is_not_found_before_any_store_call(api, user):
    token = user["access_token"]
    # An over-long id would exceed DynamoDB's key size: a store fault (500) before.
    for bad in ["x" * 1100, "not-a-session", "019a9c4e00007000800000000000000z"]:
        assert_error(end_session(api, token, bad), 404, "not_found")
    assert api.me(token).status == 200, "the caller's own session is untouched"


@pytest.fixture(scope="module")
def low_ceiling_api():
    """The local API with the lowest name-wide ceiling (5 failures from all addresses)."""
    logs = tempfile.TemporaryFile()
    env = dict(os.environ, JWT_SECRET=SECRET, JWT_ISSUER=ISSUER, LOGIN_NAME_MAX_FAILURES="5")
    port, proc = start_local_api(env, logs)
    yield Api(port, PASSWORD)
    assert stop(proc) == 0


def test_a_name_locked_for_everyone_still_lets_its_signed_in_owner_change_the_password_and_delete(low_ceiling_api):
    api = low_ceiling_api
    name = new_name()
    res = api.register(name)
    assert res.status == 201, res
    access = res.json()["access_token"]
    # Five addresses, one guess each: no pair is near its lock, the name is at its ceiling.
    for i in range(1, 6):
        assert_error(api.from_address(f"127.0.1.{i}").login(name, "not the password"), 401, "invalid_grant")
    assert_error(api.login(name), 429, "too_many_attempts")
    # The owner, signed in, re-checks the password on its own pair only: a wrong one is
    # refused as such, the right one goes through.
    assert_error(change_password(api, access, "not the password"), 401, "invalid_grant")
    res = change_password(api, access, PASSWORD)
    assert res.status == 200, res
    access = res.json()["access_token"]
    assert delete_account(api, access, NEW_PASSWORD).status == 204


def test_deleting_the_account_ends_everything_and_frees_the_name(api, user):
    other, other_refresh = tokens_of(api.login(user["username"]))
    assert api.login(user["username"], "not the password").status == 401
    user_id = user["user"]["id"]
    assert_error(delete_account(api, other, "not the password"), 401, "invalid_grant")
    assert api.me(other).status == 200, "a refusal changes nothing"
    res = delete_account(api, other)
    assert res.status == 204 and res.body == b"", res
    assert "Max-Age=0" in res.header("set-cookie"), "the refresh cookie is cleared"
    # Nothing of the user is left: user item, throttle counters, session rows (checked
    # first: a login attempt on the name counts again, as for any unknown name). The id
    # item stays as a tombstone that names nobody (no name, only when): the id is never a
    # user's again, so no import or migration can bring the deleted user's tokens back.
    users = table("USERS_TABLE")
    for key in [user["username"], f"login#{user['username']}", f"login#{user['username']}#127.0.0.1"]:
        assert "Item" not in users.get_item(Key={"username": key}, ConsistentRead=True), key
    tombstone = users.get_item(Key={"username": f"id#{user_id}"}, ConsistentRead=True)["Item"]
    assert set(tombstone) == {"username", "deleted_at"}, tombstone
    rows = table("SESSIONS_TABLE").query(KeyConditionExpression=Key("user_id").eq(user_id), ConsistentRead=True)
    assert rows["Items"] == []
    assert_dead(api, other, other_refresh)
    assert_dead(api, user["access_token"], user["refresh_token"])
    assert_error(api.login(user["username"]), 401, "invalid_grant")
    # The name is free; the old tokens, which name it, stay dead for the newcomer's account.
    newcomer = api.register(user["username"], "the newcomer's password")
    assert newcomer.status == 201 and newcomer.json()["user"]["id"] != user_id
    assert_dead(api, other, other_refresh)
    assert_invalid_token(delete_account(api, user["access_token"]))
    assert api.me(newcomer.json()["access_token"]).status == 200


# --- Races, with real concurrency over HTTP --------------------------------------------
#
# Smoke tests: which side of each race a request lands on is the scheduler's choice, so each
# result is checked to be exactly one of the two documented outcomes. The interleavings that
# matter are forced (a request held at the DynamoDB proxy until the other side has ended)
# in test_faults.py, which also checks that the race happened.


def assert_lost_or_dead(api, res):
    """A login or refresh that raced the end of the user's sessions: refused as a wrong
    password or a spent token is (401 invalid_grant), or answered with a pair that is
    already dead."""
    if res.status == 200:
        assert_dead(api, *tokens_of(res))
    else:
        assert_error(res, 401, "invalid_grant")


def test_a_password_change_racing_refreshes_leaves_no_token_of_an_earlier_session(api, user):
    # Forced: test_faults.py's
    # test_a_refresh_of_another_session_found_live_while_a_password_change_lands_mints_a_dead_pair.
    other, other_refresh = tokens_of(api.login(user["username"]))
    own_refresh = user["refresh_token"]
    change = lambda: change_password(api, user["access_token"], PASSWORD)  # noqa: E731
    # One refresh of the caller's own token (two would be reuse, which ends the session
    # the change is asked from), two of another session's.
    results = concurrently([change] + [lambda: api.refresh(other_refresh)] * 2 + [lambda: api.refresh(own_refresh)])
    new_access, new_refresh = tokens_of(results[0])
    # A refresh that won minted a pair in an old session, which died with the change.
    assert_refreshes_lost_or_minted_a_dead_pair(api, results[1:3])
    assert_refreshes_lost_or_minted_a_dead_pair(api, results[3:])
    assert_invalid_token(api.me(other))
    assert api.me(new_access).status == 200
    assert tokens_of(api.refresh(new_refresh))


def test_logins_with_the_old_password_racing_a_password_change_leave_no_usable_token(api, user):
    # Forced: test_faults.py's
    # test_a_login_that_checks_the_old_password_while_the_change_lands_opens_no_lasting_session.
    logins = [lambda i=i: api.from_address(f"127.0.0.{40 + i}").login(user["username"]) for i in range(4)]
    results = concurrently([lambda: change_password(api, user["access_token"], PASSWORD)] + logins)
    new_access, _ = tokens_of(results[0])
    for res in results[1:]:
        # A login that checked the old password before the change opened a session the
        # change ended; one after it is refused.
        assert_lost_or_dead(api, res)
    assert api.me(new_access).status == 200


def test_logins_racing_a_deletion_leave_no_usable_token(api, user):
    # Forced: test_faults.py's
    # test_a_login_that_reads_the_user_while_its_deletion_lands_gets_tokens_of_nobody.
    logins = [lambda i=i: api.from_address(f"127.0.0.{30 + i}").login(user["username"]) for i in range(4)]
    results = concurrently([lambda: delete_account(api, user["access_token"])] + logins)
    assert results[0].status == 204, results[0]
    for res in results[1:]:
        # A login that read the user before it was deleted got tokens of nobody; one after
        # it is refused as for any unknown name.
        assert_lost_or_dead(api, res)


# --- Security events ------------------------------------------------------------------


def test_account_changes_are_security_events(audited_api):
    api, logs = audited_api
    name = new_name()
    reg = api.register(name)
    user_id = reg.json()["user"]["id"]
    access = reg.json()["access_token"]
    other, _ = tokens_of(api.login(name))
    assert end_session(api, access, sid(other)).status == 204
    assert change_password(api, access, "not the password").status == 401
    new_access, _ = tokens_of(change_password(api, access, PASSWORD))
    assert delete_account(api, new_access, "not the password").status == 401
    assert delete_account(api, new_access, NEW_PASSWORD).status == 204

    mine = [e for e in security_events(logs) if e["user_id"] == user_id or e["username"] == name]
    by_kind = {e["event"]: e for e in mine}
    ended = by_kind["session_ended"]
    assert (ended["session_id"], ended["reason"]) == (sid(other), "ended_from_session_list")
    assert by_kind["password_change_failed"]["outcome"] == "failure"
    changed = by_kind["password_changed"]
    assert (changed["outcome"], changed["session_id"], changed["client_ip"]) == ("success", sid(new_access), "127.0.0.7")
    assert by_kind["account_deletion_failed"]["outcome"] == "failure"
    deleted = by_kind["account_deleted"]
    assert (deleted["outcome"], deleted["user_id"], deleted["username"]) == ("success", user_id, name)
    # Nothing secret anywhere in the log, events or not.
    logs.seek(0)
    text = logs.read().decode(errors="replace")
    for secret in [PASSWORD, NEW_PASSWORD, "not the password", "$argon2", "eyJ"]:
        assert secret not in text, secret
