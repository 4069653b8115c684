"""The binaries `make build` packages (.aws-sam/build/<LogicalId>/bootstrap), the ones a
deployment ships: static (no program interpreter, no shared library), and working under
the Lambda Runtime Interface Emulator: a registration, a login, a refresh and the
authorizer's decision on the token, against the same DynamoDB API as the other tests.

They exist only after `make build ARCH=x86_64` (this machine's architecture); `make
test-build` builds them and runs this file. Without them the tests say so and do not run.
"""

import json
import pathlib
import struct
import uuid

import pytest
from devtools.functions import by_name
from devtools.invocations import authorizer_event, claims_of, event
from test_lambda_rie import Function

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = ROOT / ".aws-sam" / "build"
PT_INTERP, PT_DYNAMIC = 3, 2


def packaged(name):
    return BUILD / by_name()[name].logical_id / "bootstrap"


def program_headers(path):
    """The types of an ELF64 little-endian file's program headers."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path} is not a 64-bit little-endian ELF"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]


pytestmark = pytest.mark.skipif(
    not packaged("authorizer").exists(), reason="no packaged build: `make test-build` builds it (make build ARCH=x86_64) and runs these"
)


@pytest.mark.parametrize("name", sorted(by_name()))
def test_every_packaged_function_is_a_static_binary(name):
    headers = program_headers(packaged(name))
    assert PT_INTERP not in headers, f"{name} asks for a dynamic loader"
    assert PT_DYNAMIC not in headers, f"{name} links shared libraries"


def test_the_packaged_login_refresh_and_authorizer_work_together():
    started = {name: Function(name, binary=packaged(name)) for name in ("register", "login", "refresh", "authorizer")}
    try:
        body = json.dumps({"username": f"pkg-{uuid.uuid4().hex[:12]}", "password": "correct horse battery"})
        assert started["register"].invoke(event("register", body=body))["statusCode"] == 201
        res = started["login"].invoke(event("login", body=body))
        assert res["statusCode"] == 200, res
        pair = json.loads(res["body"])
        res = started["refresh"].invoke(event("refresh", body=json.dumps({"refresh_token": pair["refresh_token"]})))
        assert res["statusCode"] == 200, res
        access = json.loads(res["body"])["access_token"]
        decision = started["authorizer"].invoke(authorizer_event(access))
        assert decision["principalId"] == claims_of(access)["sub"]
        assert decision["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    finally:
        for f in started.values():
            f.stop()
