"""The binaries `make build` packages, the ones a deployment ships, for this machine's
architecture: static (no program interpreter, no shared library), and working under the
Lambda Runtime Interface Emulator against the same DynamoDB API as the other tests: a
registration, a login (and a refused one), a refresh, the authorizer's decisions, and the
store reached by a host name (musl's resolver, not glibc's).

They are `.local/lambda-static-<arch>/<name>/bootstrap`, which the Makefile's build-<LogicalId>
targets copy verbatim into SAM's artifacts. `make test` builds the four these tests run
(the Makefile's PACKAGED_TESTED) and sets REQUIRE_PACKAGED to them; `make test-build`
builds every function and requires them all. Run alone, the tests skip what is not built,
saying so.
"""

import json
import os
import uuid

import pytest
from devtools import cargo_target
from devtools.functions import by_name
from devtools.invocations import authorizer_event, claims_of, event
from test_lambda_rie import Function

DIR = cargo_target.static_dir()
PT_INTERP, PT_DYNAMIC = 3, 2
TOGETHER = ("register", "login", "refresh", "authorizer")
# The names that must be built: "all", or names (REQUIRE_PACKAGED="register login ...").
_required = os.environ.get("REQUIRE_PACKAGED", "").replace(",", " ").split()
REQUIRED = set(by_name()) if _required == ["all"] else set(_required)


def packaged(name):
    path = DIR / name / "bootstrap"
    if not path.exists():
        if name in REQUIRED:
            pytest.fail(f"{path} is missing: REQUIRE_PACKAGED names {name} (make test builds it: `make packaged`)")
        pytest.skip(f"{name} is not built: `make packaged` builds {', '.join(TOGETHER)}, `make test-build` every function")
    return path


def test_the_required_names_are_functions():
    assert REQUIRED <= set(by_name()), f"REQUIRE_PACKAGED names no function: {sorted(REQUIRED - set(by_name()))}"


@pytest.mark.parametrize("name", sorted(by_name()))
def test_every_packaged_function_is_a_static_binary_for_this_machine(name):
    arch, headers = cargo_target.elf(packaged(name))
    assert arch == cargo_target.host_arch(), f"{name} is built for {arch or 'another machine'}"
    assert PT_INTERP not in headers, f"{name} asks for a dynamic loader"
    assert PT_DYNAMIC not in headers, f"{name} links shared libraries"


@pytest.fixture(scope="module")
def started():
    binaries = {name: packaged(name) for name in TOGETHER}
    running = {}
    try:
        for name, binary in binaries.items():
            running[name] = Function(name, binary=binary)
        yield running
    finally:
        for f in running.values():
            f.stop()


def test_the_packaged_register_login_refresh_and_authorizer_work_together(started):
    body = json.dumps({"username": f"pkg-{uuid.uuid4().hex[:12]}", "password": "correct horse battery"})
    assert started["register"].invoke(event("register", body=body))["statusCode"] == 201
    res = started["login"].invoke(event("login", body=body))
    assert res["statusCode"] == 200, res
    pair = json.loads(res["body"])
    res = started["refresh"].invoke(event("refresh", body=json.dumps({"refresh_token": pair["refresh_token"]})))
    assert res["statusCode"] == 200, res
    successor = json.loads(res["body"])
    access = successor["access_token"]
    decision = started["authorizer"].invoke(authorizer_event(access))
    assert decision["principalId"] == claims_of(access)["sub"]
    assert decision["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    # The spent token again at once from the same address (a retried refresh): the same
    # successor pair, not a second one.
    again = started["refresh"].invoke(event("refresh", body=json.dumps({"refresh_token": pair["refresh_token"]})))
    assert again["statusCode"] == 200, again
    assert json.loads(again["body"])["refresh_token"] == successor["refresh_token"]


def test_the_packaged_login_refuses_a_wrong_password_and_the_authorizer_a_forged_token(started):
    name = f"pkg-{uuid.uuid4().hex[:12]}"
    body = json.dumps({"username": name, "password": "correct horse battery"})
    assert started["register"].invoke(event("register", body=body))["statusCode"] == 201
    res = started["login"].invoke(event("login", body=json.dumps({"username": name, "password": "wrong horse battery"})))
    assert res["statusCode"] == 401, res
    assert json.loads(res["body"])["error"] == "invalid_grant"
    good = json.loads(started["login"].invoke(event("login", body=body))["body"])["access_token"]
    head, payload, signature = good.split(".")
    forged = ".".join((head, payload, ("A" if signature[0] != "A" else "B") + signature[1:]))
    assert started["authorizer"].invoke(authorizer_event(forged)).get("errorMessage") == "Unauthorized"
    assert started["authorizer"].invoke(authorizer_event(good))["policyDocument"]["Statement"][0]["Effect"] == "Allow"


def test_the_packaged_authorizer_reaches_the_store_by_host_name(started):
    """Static musl resolves names with its own resolver (no NSS): the store's endpoint given
    as localhost instead of an address, the way every AWS endpoint is named."""
    endpoint = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    assert "127.0.0.1" in endpoint, endpoint
    body = json.dumps({"username": f"pkg-{uuid.uuid4().hex[:12]}", "password": "correct horse battery"})
    assert started["register"].invoke(event("register", body=body))["statusCode"] == 201
    access = json.loads(started["login"].invoke(event("login", body=body))["body"])["access_token"]
    authorizer = Function("authorizer", binary=packaged("authorizer"),
                          extra_env={"AWS_ENDPOINT_URL_DYNAMODB": endpoint.replace("127.0.0.1", "localhost")})
    try:
        decision = authorizer.invoke(authorizer_event(access))
        assert decision["policyDocument"]["Statement"][0]["Effect"] == "Allow", decision
    finally:
        authorizer.stop()
