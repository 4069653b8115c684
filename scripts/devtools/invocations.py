"""Invocations of the functions as the benchmarks send them: the events/ files (as `sam
local invoke` takes them), with an authorizer's context or a bearer token filled in, and a
user with a pool of sessions, made by the register and login binaries, to invoke them with.
"""

import base64
import json
import uuid

from devtools import ROOT
from devtools.rie import Runtime, check

EVENTS = ROOT / "events"
PASSWORD = "benchmark passphrase"


def event(name, **changes):
    ev = json.loads((EVENTS / f"{name}.json").read_text())
    ev.update(changes)
    return ev


def claims_of(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def context_of(access_token):
    c = claims_of(access_token)
    return {"principalId": c["sub"], "sub": c["sub"], "username": c["username"], "roles": ",".join(c["roles"]),
            "sid": c["sid"], "jti": c["jti"], "exp": str(c["exp"])}


def with_context(name, access_token):
    ev = event(name)
    ev["requestContext"] = {**ev["requestContext"], "authorizer": context_of(access_token)}
    return ev


def authorizer_event(access_token):
    ev = event("authorizer")
    ev["headers"]["Authorization"] = f"Bearer {access_token}"
    ev["multiValueHeaders"]["Authorization"] = [f"Bearer {access_token}"]
    return ev


def forever(make):
    while True:
        yield make()


def prepare_users(env, binary, count):
    """A user and `count` sessions (for the functions that use a refresh token or a
    session up), made through the same store by the register and login binaries
    (`binary`: a function's name -> the command that runs it)."""
    setup = Runtime(binary("register"), env)
    username = f"bench-{uuid.uuid4().hex[:10]}"
    try:
        user = json.loads(check(setup.invoke(event("register", body=json.dumps({"username": username, "password": PASSWORD}))))["body"])
    finally:
        setup.stop()
    user["username"] = username
    setup = Runtime(binary("login"), env)
    try:
        sessions = [json.loads(check(setup.invoke(event("login", body=json.dumps({"username": username, "password": PASSWORD}))))["body"])
                    for _ in range(count)]
    finally:
        setup.stop()
    return user, iter(sessions)


def events_for(user, pool):
    """Per function, an endless supply of fresh events for `user` (a session from `pool`
    for each one that spends one)."""
    admin = event("admin")
    admin["pathParameters"] = {"username": user["username"]}
    login_body = json.dumps({"username": user["username"], "password": PASSWORD})
    return {
        "register": forever(lambda: event("register", body=json.dumps({"username": f"bench-{uuid.uuid4().hex[:10]}", "password": PASSWORD}))),
        "login": forever(lambda: event("login", body=login_body)),
        "refresh": forever(lambda: event("refresh", body=json.dumps({"refresh_token": next(pool)["refresh_token"]}))),
        "logout": forever(lambda: with_context("logout", next(pool)["access_token"])),
        "me": forever(lambda: with_context("me", user["access_token"])),
        "authorizer": forever(lambda: authorizer_event(user["access_token"])),
        # The event's authorizer context is an admin's; it reads the bench user.
        "admin": forever(lambda: json.loads(json.dumps(admin))),
        "account": forever(lambda: with_context("account", user["access_token"])),
        # A verification with a token nobody issued: refused after a read of the tokens table.
        "email": forever(lambda: event("email")),
        "discovery": forever(lambda: event("discovery")),
        "preflight": forever(lambda: event("preflight")),
    }
