"""Email addresses over HTTP through the local API, as `make dev` runs it (CONTRACT.md Part 3,
"Email address and verification", "Mail delivery"): a registration with an address queues
its verification mail, the local API's deliverer (the same code as deployed, with the local
mailbox as its transport) puts it in `GET /local/mail`, and the link's token proves the
address, once, for one account.
"""

import os
import re
import secrets
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
from support import Api, new_name, start_local_api, stop
from test_api import assert_error

PASSWORD = f"email pass {secrets.token_urlsafe(12)}"
APP_ORIGIN = "https://app.email.test"


@pytest.fixture(scope="module")
def mail_api():
    logs = tempfile.TemporaryFile()
    env = dict(os.environ, JWT_SECRET=secrets.token_hex(32), APP_URL=APP_ORIGIN, ALLOWED_ORIGINS=APP_ORIGIN)
    port, proc = start_local_api(env, logs)
    api = Api(port, PASSWORD)
    yield api, logs
    assert stop(proc) == 0
    logs.seek(0)
    text = logs.read().decode(errors="replace")
    assert PASSWORD not in text
    # No one-time token (nor its link) ever reaches the logs.
    assert "token=" not in text and "verify-email" not in text, text[-2000:]


def address():
    return f"{new_name()}@example.com"


def mails_to(api, to, count=1, timeout=10, also=(), subject=None):
    """The mails the local mailbox holds for `to` (with that `subject`, if given), once there
    are `count` of them. `also`: other local APIs running on the same tables, whose
    deliverers may take the mail."""
    deadline = time.monotonic() + timeout
    while True:
        mine = []
        for each in (api, *also):
            res = each.call("GET", "/local/mail")
            assert res.status == 200, res
            mine += [m for m in res.json()["messages"] if to in m["to"] and subject in (None, m["subject"])]
        if len(mine) >= count or time.monotonic() > deadline:
            return mine
        time.sleep(0.1)


def token_of(mail):
    links = re.findall(r"https?://\S+", mail["text"])
    (link,) = [link for link in links if "/verify-email?" in link]
    assert link.startswith(f"{APP_ORIGIN}/verify-email?token="), link
    return urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["token"][0]


def registered(api, email):
    res = api.register(new_name(), email=email)
    assert res.status == 201, res
    return res.json()


def verify(api, token, **headers):
    return api.call("POST", "/auth/email/verify", json_body={"token": token}, headers=headers)


def test_a_registration_with_an_address_sends_its_verification_and_the_link_proves_it_once(mail_api):
    api, _ = mail_api
    email = address()
    reg = registered(api, f"  {email.upper()} ")
    # Stored trimmed and lower-cased, not verified yet.
    assert (reg["user"]["email"], reg["user"]["email_verified"]) == (email, False)
    me = api.me(reg["access_token"]).json()
    assert (me["email"], me["email_verified"]) == (email, False)

    (mail,) = mails_to(api, email)
    assert mail["to"] == [email] and mail["subject"] == "Confirm your email address"
    assert "24 hours" in mail["text"] and reg["user"]["username"] in mail["text"]
    assert isinstance(mail["sent_at"], int)
    token = token_of(mail)
    assert len(token) >= 22, "at least 128 bits"

    res = verify(api, token, Origin=APP_ORIGIN)
    assert res.status == 200, res
    assert res.json() == {"email": email, "email_verified": True}
    assert res.header("Access-Control-Allow-Origin") == APP_ORIGIN
    me = api.me(reg["access_token"]).json()
    assert (me["email"], me["email_verified"]) == (email, True), "the authorizer reads it at once"
    # Used up: the same link again is refused, and changes nothing.
    assert_error(verify(api, token), 400, "invalid_grant")
    assert api.me(reg["access_token"]).json()["email_verified"] is True


def test_a_registration_without_an_address_sends_nothing(mail_api):
    api, _ = mail_api
    before = len(api.call("GET", "/local/mail").json()["messages"])
    reg = api.register(new_name())
    assert reg.status == 201 and reg.json()["user"]["email"] is None and reg.json()["user"]["email_verified"] is False
    time.sleep(0.5)
    assert len(api.call("GET", "/local/mail").json()["messages"]) == before


def test_a_malformed_address_is_invalid_email_and_creates_nobody(mail_api):
    api, _ = mail_api
    name = new_name()
    for bad in ["no-at-sign", "a b@example.com", "two@@example.com", "x@nodot", "a" * 243 + "@example.com"]:
        assert_error(api.register(name, email=bad), 400, "invalid_email")
    assert api.login(name).status == 401, "nobody was created"


def test_unknown_forged_and_malformed_tokens_are_refused_alike(mail_api):
    api, _ = mail_api
    for token in ["", "x", secrets.token_urlsafe(32), "a" * 300]:
        assert_error(verify(api, token), 400, "invalid_grant")
    assert_error(api.call("POST", "/auth/email/verify", json_body={}), 400, "invalid_request")
    assert_error(api.call("POST", "/auth/email/verify", json_body={"token": 42}), 400, "invalid_request")
    # A page of another origin cannot post it (its visitors' browsers would).
    assert_error(verify(api, secrets.token_urlsafe(32), Origin="https://evil.example"), 403, "invalid_request")


def test_a_verified_address_belongs_to_one_account(mail_api):
    api, _ = mail_api
    email = address()
    first, second = registered(api, email), registered(api, email)
    mails = mails_to(api, email, count=2)
    assert len(mails) == 2
    tokens = {m["text"]: token_of(m) for m in mails}
    by_user = {
        reg["user"]["username"]: next(t for text, t in tokens.items() if reg["user"]["username"] in text)
        for reg in (first, second)
    }
    assert verify(api, by_user[first["user"]["username"]]).status == 200
    assert_error(verify(api, by_user[second["user"]["username"]]), 409, "email_taken")
    assert api.me(second["access_token"]).json()["email_verified"] is False
    assert api.me(first["access_token"]).json()["email_verified"] is True


def test_registering_an_address_another_account_has_verified_is_email_taken_and_creates_nobody(mail_api):
    api, _ = mail_api
    email = address()
    registered(api, email)
    assert verify(api, token_of(mails_to(api, email)[0])).status == 200
    name = new_name()
    assert_error(api.register(name, email=email.upper()), 409, "email_taken")
    assert api.login(name).status == 401, "nobody was created"
    assert len(mails_to(api, email, count=2, timeout=0.5)) == 1, "no mail for it"


def test_two_accounts_verifying_one_address_at_once_have_exactly_one_winner(mail_api):
    api, _ = mail_api
    email = address()
    regs = [registered(api, email) for _ in range(2)]
    tokens = [token_of(m) for m in mails_to(api, email, count=2)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda t: verify(api, t), tokens))
    assert sorted(r.status for r in results) == [200, 409], results
    assert_error(next(r for r in results if r.status == 409), 409, "email_taken")
    verified = [api.me(r["access_token"]).json()["email_verified"] for r in regs]
    assert sorted(verified) == [False, True]


def test_without_a_sender_the_mail_routes_answer_501_and_registration_queues_nothing():
    logs = tempfile.TemporaryFile()
    env = dict(os.environ, JWT_SECRET=secrets.token_hex(32), EMAIL_FROM="")
    port, proc = start_local_api(env, logs)
    try:
        api = Api(port, PASSWORD)
        reg = api.register(new_name(), email=address())
        assert reg.status == 201 and reg.json()["user"]["email_verified"] is False
        assert_error(verify(api, secrets.token_urlsafe(32)), 501, "not_configured")
        # No mailbox either: the local API has nothing to show.
        assert_error(api.call("GET", "/local/mail"), 404, "not_found")
    finally:
        assert stop(proc) == 0


def test_a_deleted_account_frees_its_verified_address_for_another(mail_api):
    api, _ = mail_api
    email = address()
    leaver = registered(api, email)
    assert verify(api, token_of(mails_to(api, email)[0])).status == 200
    res = api.call("DELETE", "/auth/account", token=leaver["access_token"], json_body={"password": PASSWORD})
    assert res.status == 204, res
    newcomer = registered(api, email)
    mails = mails_to(api, email, count=2)
    token = token_of(next(m for m in mails if newcomer["user"]["username"] in m["text"]))
    assert verify(api, token).status == 200
    assert api.me(newcomer["access_token"]).json()["email_verified"] is True


def resend(api, email):
    return api.call("POST", "/auth/email/resend", json_body={"email": email})


def test_a_resend_answers_the_same_bytes_whoever_holds_the_address_and_mails_within_the_allowance(mail_api):
    api, _ = mail_api
    email = address()
    reg = registered(api, email)
    mails_to(api, email)
    unknown = resend(api, address())
    assert unknown.status == 202 and unknown.json() == {}, unknown
    known = resend(api, email.upper())
    assert (known.status, known.body) == (unknown.status, unknown.body), "nothing tells who has the address"
    # A fresh verification, whose link works.
    mails = mails_to(api, email, count=2)
    assert len(mails) == 2
    assert verify(api, token_of(mails[-1])).status == 200
    assert api.me(reg["access_token"]).json()["email_verified"] is True
    # Verified: nothing more is sent for it.
    assert resend(api, email).status == 202
    time.sleep(0.6)
    assert len(mails_to(api, email, count=3, timeout=0)) == 2


def test_a_resend_within_the_minute_still_answers_202_and_sends_nothing(mail_api):
    api, _ = mail_api
    email = address()
    registered(api, email)
    mails_to(api, email)
    assert resend(api, email).status == 202
    assert len(mails_to(api, email, count=2)) == 2
    again = resend(api, email)
    assert again.status == 202 and again.json() == {}
    time.sleep(0.6)
    assert len(mails_to(api, email, count=3, timeout=0)) == 2, "one a minute"
    assert_error(resend(api, "not an address"), 400, "invalid_email")


# --- A change of address ------------------------------------------------------------------

CHANGE_NOTICE = "A change of your email address was requested"


def change_email(api, access, email, password=PASSWORD):
    return api.call("POST", "/auth/email", token=access, json_body={"email": email, "password": password})


def test_a_new_address_replaces_the_old_once_verified_the_old_is_told_and_freed(mail_api):
    api, _ = mail_api
    reg, old = verified_user(api)
    access = reg["access_token"]
    # A reset link mailed to the old address before the change.
    assert forgot(api, email=old).status == 202
    (reset_mail,) = reset_mails(api, old)
    new = address()
    res = change_email(api, access, new.upper())
    assert (res.status, res.body) == (202, b"{}"), res
    # The account keeps its old address until the new one is verified.
    me = api.me(access).json()
    assert (me["email"], me["email_verified"]) == (old, True)
    (notice,) = [m for m in mails_to(api, old, count=3) if m["subject"] == CHANGE_NOTICE]
    assert new in notice["text"] and "If you did not ask" in notice["text"]
    assert "token=" not in notice["text"], "the old address gets no link"
    (mail,) = mails_to(api, new)
    assert mail["subject"] == "Confirm your email address" and mail["to"] == [new]
    res = verify(api, token_of(mail))
    assert res.status == 200, res
    assert res.json() == {"email": new, "email_verified": True}
    me = api.me(access).json()
    assert (me["email"], me["email_verified"]) == (new, True)
    # The reset link went to the address the account no longer has: dead.
    assert_error(reset(api, reset_token_of(reset_mail), PASSWORD + " via the old address"), 400, "invalid_grant")
    # A forgotten password now mails the new address, and the old one matches nobody.
    assert forgot(api, email=old).status == 202 and forgot(api, email=new).status == 202
    assert len(reset_mails(api, new)) == 1
    time.sleep(0.6)
    assert len(reset_mails(api, old, count=1, timeout=0)) == 1, "only the one from before"
    # The old address is free: another account can prove it.
    newcomer = registered(api, old)
    mails = mails_to(api, old, count=4)
    (theirs,) = [m for m in mails if "/verify-email?" in m["text"] and newcomer["user"]["username"] in m["text"]]
    assert verify(api, token_of(theirs)).status == 200
    assert api.me(newcomer["access_token"]).json()["email_verified"] is True


def test_a_change_of_address_needs_the_password_and_an_address_no_other_account_verified(mail_api):
    api, _ = mail_api
    reg, own = verified_user(api)
    access = reg["access_token"]
    _, theirs = verified_user(api)
    assert_error(change_email(api, access, address(), password="not the password"), 401, "invalid_grant")
    assert_error(change_email(api, access, "not an address"), 400, "invalid_email")
    assert_error(api.call("POST", "/auth/email", token=access, json_body={"email": address()}), 400, "invalid_request")
    assert_error(change_email(api, access, theirs.upper()), 409, "email_taken")
    assert api.call("POST", "/auth/email", json_body={"email": address(), "password": PASSWORD}).status == 401
    # Its own verified address: nothing to do, nothing sent.
    assert change_email(api, access, own).status == 202
    time.sleep(0.6)
    assert [m["subject"] for m in mails_to(api, own, count=2, timeout=0)] == ["Confirm your email address"]
    assert mails_to(api, theirs, count=2, timeout=0)[1:] == [], "nothing to the other account's address"
    assert api.me(access).json()["email"] == own


def test_an_account_without_an_address_asks_for_one_and_a_stolen_session_cannot_mail_bomb(mail_api):
    api, _ = mail_api
    reg = api.register(new_name()).json()
    access = reg["access_token"]
    first, second = address(), address()
    assert change_email(api, access, first).status == 202
    (mail,) = mails_to(api, first)
    # Within the minute: the same answer, no mail (the allowance of verification mails).
    assert change_email(api, access, second).status == 202
    time.sleep(0.6)
    assert mails_to(api, second, timeout=0) == []
    # (The first link died with the second request: see the test below.)
    assert_error(verify(api, token_of(mail)), 400, "invalid_grant")
    me = api.me(access).json()
    assert (me["email"], me["email_verified"]) == (None, False)
    # An account without an address gets one the same way.
    adder, third = api.register(new_name()).json()["access_token"], address()
    assert change_email(api, adder, third).status == 202
    assert verify(api, token_of(mails_to(api, third)[0])).status == 200
    me = api.me(adder).json()
    assert (me["email"], me["email_verified"]) == (third, True)


def test_a_newer_change_request_kills_the_link_of_an_earlier_one_even_without_its_own_mail(mail_api):
    api, _ = mail_api
    reg, old = verified_user(api)
    access = reg["access_token"]
    mistyped, meant = address(), address()
    assert change_email(api, access, mistyped).status == 202
    (first,) = mails_to(api, mistyped)
    # Corrected within the minute: no mail yet (the allowance), but the mistyped address's
    # link, a way into the account for whoever holds that mailbox, is dead already.
    assert change_email(api, access, meant).status == 202
    assert_error(verify(api, token_of(first)), 400, "invalid_grant")
    me = api.me(access).json()
    assert (me["email"], me["email_verified"]) == (old, True)


def test_a_pending_change_dies_with_a_password_change(mail_api):
    api, _ = mail_api
    reg, old = verified_user(api)
    access = reg["access_token"]
    new = address()
    assert change_email(api, access, new).status == 202
    (pending,) = mails_to(api, new)
    # The owner, told by the notice, changes the password: the change's link dies with it.
    body = {"current_password": PASSWORD, "new_password": PASSWORD + " changed"}
    changed = api.call("POST", "/auth/password", token=access, json_body=body)
    assert changed.status == 200, changed
    assert_error(verify(api, token_of(pending)), 400, "invalid_grant")
    me = api.me(changed.json()["access_token"]).json()
    assert (me["email"], me["email_verified"]) == (old, True)


def test_once_a_new_address_is_verified_older_links_no_longer_take_the_account_back(mail_api):
    api, _ = mail_api
    # Registered with an address never verified: its link still lives, unused.
    first = address()
    reg = registered(api, first)
    (registration_link,) = mails_to(api, first)
    access = reg["access_token"]
    second = address()
    assert change_email(api, access, second).status == 202
    assert verify(api, token_of(mails_to(api, second)[0])).status == 200
    assert_error(verify(api, token_of(registration_link)), 400, "invalid_grant")
    me = api.me(access).json()
    assert (me["email"], me["email_verified"]) == (second, True)


# --- A forgotten password -------------------------------------------------------------


def verified_user(api):
    """A registered user whose address is verified: (registration, address)."""
    email = address()
    reg = registered(api, email)
    assert verify(api, token_of(mails_to(api, email)[0])).status == 200
    return reg, email


def reset_token_of(mail):
    (link,) = [link for link in re.findall(r"https?://\S+", mail["text"]) if "/reset-password?" in link]
    assert link.startswith(f"{APP_ORIGIN}/reset-password?token="), link
    return urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["token"][0]


def forgot(api, **body):
    return api.call("POST", "/auth/password/forgot", json_body=body)


def reset(api, token, new_password):
    return api.call("POST", "/auth/password/reset", json_body={"token": token, "new_password": new_password})


def reset_mails(api, email, count=1, timeout=10):
    """The password-reset mails to `email`, once there are `count` of them: counted by
    themselves, as the address may have had other mails (its verification, notices)."""
    return mails_to(api, email, count=count, timeout=timeout, subject="Reset your password")


def test_a_forgotten_password_is_reset_through_the_mailed_link_and_every_session_ends(mail_api):
    api, _ = mail_api
    reg, email = verified_user(api)
    name = reg["user"]["username"]
    other_access, _ = api.login(name).json()["access_token"], None
    unknown = forgot(api, email=address())
    known = forgot(api, email=email.upper())
    assert (known.status, known.body) == (unknown.status, unknown.body) == (202, b"{}"), (known, unknown)
    (mail,) = reset_mails(api, email)
    assert "60 minutes" in mail["text"] and "If you did not ask" in mail["text"]
    token = reset_token_of(mail)
    # The password rules are register's: refused, and the link still works.
    assert_error(reset(api, token, "short"), 400, "invalid_password")
    new_password = PASSWORD + " renewed"
    res = reset(api, token, new_password)
    assert res.status == 204, res
    # Every session is over; no tokens were issued; the new password signs in, the old not.
    for access in (reg["access_token"], other_access):
        assert api.me(access).status == 401
    assert_error(api.refresh(reg["refresh_token"]), 401, "invalid_grant")
    assert api.login(name, new_password).status == 200
    assert_error(api.login(name), 401, "invalid_grant")
    # Used up.
    assert_error(reset(api, token, PASSWORD + " again"), 400, "invalid_grant")
    # And a notice went to the address.
    notices = [m for m in mails_to(api, email, count=3) if m["subject"] == "Your password was changed"]
    assert len(notices) == 1 and notices[0]["to"] == [email]


def test_by_username_too_and_never_to_an_unverified_address(mail_api):
    api, _ = mail_api
    reg, email = verified_user(api)
    assert forgot(api, username=reg["user"]["username"].upper()).status == 202
    assert len(reset_mails(api, email)) == 1
    # An address nobody verified gets nothing, and the answer is the same.
    unverified = address()
    other = registered(api, unverified)
    for body in ({"email": unverified}, {"username": other["user"]["username"]}, {"username": "no such user!"}):
        res = forgot(api, **body)
        assert (res.status, res.body) == (202, b"{}"), res
    time.sleep(0.6)
    assert [m for m in mails_to(api, unverified, timeout=0) if m["subject"] == "Reset your password"] == []
    assert_error(forgot(api), 400, "invalid_request")
    assert_error(forgot(api, email="not an address"), 400, "invalid_email")


def test_at_most_three_reset_mails_an_hour_and_a_newer_reset_kills_older_links(mail_api):
    api, _ = mail_api
    reg, email = verified_user(api)
    for _ in range(4):
        assert forgot(api, email=email).status == 202
    mails = reset_mails(api, email, count=3)
    time.sleep(0.6)
    mails = reset_mails(api, email, count=4, timeout=0)
    assert len(mails) == 3, "three an hour"
    first, second = reset_token_of(mails[0]), reset_token_of(mails[1])
    assert reset(api, second, PASSWORD + " one").status == 204
    # The other links of that account died with the reset.
    assert_error(reset(api, first, PASSWORD + " two"), 400, "invalid_grant")
    # A forged token, or a verification token, is not a reset token.
    assert_error(reset(api, secrets.token_urlsafe(32), PASSWORD + " three"), 400, "invalid_grant")


def test_a_reset_lifts_the_names_failed_login_lock(mail_api):
    api, _ = mail_api
    reg, email = verified_user(api)
    name = reg["user"]["username"]
    # The name-wide ceiling (50 from all addresses) is what a reset lifts.
    for i in range(10):
        guesser = api.from_address(f"127.0.4.{i + 1}")
        for _ in range(5):
            assert_error(guesser.login(name, "not the password"), 401, "invalid_grant")
    assert_error(api.from_address("127.0.4.100").login(name), 429, "too_many_attempts")
    assert forgot(api, email=email).status == 202
    token = reset_token_of(reset_mails(api, email)[0])
    new_password = PASSWORD + " after the storm"
    assert reset(api, token, new_password).status == 204
    assert api.from_address("127.0.4.100").login(name, new_password).status == 200


def test_the_reset_links_lifetime_is_a_setting_and_the_mail_says_it(mail_api):
    # PasswordResetTtlSeconds (PASSWORD_RESET_TTL_SECONDS). The module's other local API
    # delivers from the same outbox: the lifetime travels with the mail, whoever sends it.
    other, _ = mail_api
    logs = tempfile.TemporaryFile()
    env = dict(os.environ, JWT_SECRET=secrets.token_hex(32), APP_URL=APP_ORIGIN, PASSWORD_RESET_TTL_SECONDS="900")
    port, proc = start_local_api(env, logs)
    try:
        api = Api(port, PASSWORD)
        email = address()
        registered(api, email)
        assert verify(api, token_of(mails_to(api, email, also=(other,))[0])).status == 200
        assert forgot(api, email=email).status == 202
        mails = mails_to(api, email, count=2, also=(other,))
        (mail,) = [m for m in mails if m["subject"] == "Reset your password"]
        assert "for 15 minutes." in mail["text"], mail["text"]
    finally:
        assert stop(proc) == 0
    for bad in ("299", "86401"):
        env = dict(os.environ, JWT_SECRET=secrets.token_hex(32), APP_URL=APP_ORIGIN, PASSWORD_RESET_TTL_SECONDS=bad)
        with pytest.raises(RuntimeError, match="PASSWORD_RESET_TTL_SECONDS"):
            start_local_api(env, tempfile.TemporaryFile())


def test_with_verification_required_registration_opens_no_session_until_the_link_is_opened(mail_api):
    # The module's local API delivers from the same outbox: its mailbox is read too.
    other, _ = mail_api
    logs = tempfile.TemporaryFile()
    env = dict(os.environ, JWT_SECRET=secrets.token_hex(32), APP_URL=APP_ORIGIN, REQUIRE_VERIFIED_EMAIL="true")
    port, proc = start_local_api(env, logs)
    try:
        api = Api(port, PASSWORD)
        name, email = new_name(), address()
        assert_error(api.register(name), 400, "invalid_email")
        res = api.register(name, email=email)
        assert res.status == 201, res
        assert set(res.json()) == {"user"} and res.json()["user"]["email_verified"] is False, "no tokens"
        # The right password: told to verify first; a wrong one: the usual 401.
        assert_error(api.login(name), 403, "email_not_verified")
        assert_error(api.login(name, "not the password"), 401, "invalid_grant")
        assert verify(api, token_of(mails_to(api, email, also=(other,))[0])).status == 200
        res = api.login(name)
        assert res.status == 200, res
        assert api.me(res.json()["access_token"]).json()["email_verified"] is True
    finally:
        assert stop(proc) == 0
