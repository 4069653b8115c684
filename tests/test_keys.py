"""Keys, JWKS and discovery over HTTP against the local API (CONTRACT.md Part 2, "Keys, JWKS
and discovery"): with HS256 nothing is published; with RS256, ES256 or EdDSA (a key pair
made for the run, as `make dev` does) an independent verifier, PyJWT's PyJWKClient, reads
the JWKS the discovery document points to and verifies the access tokens."""

import hashlib
import hmac
import json
import os
import tempfile

import jwt
import pytest

from support import Api, new_name, start_local_api, stop
from test_api import (  # noqa: F401  (fixtures are used by name)
    AUDIENCE,
    ISSUER,
    PASSWORD,
    api,
    api_logs,
    assert_invalid_token,
    b64url,
    decode,
    tokens_of,
)

PRIVATE_FIELDS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth", "pkcs8"}


def well_known(api, name):
    res = api.call("GET", f"/.well-known/{name}")
    assert res.status == 200, res
    cache = res.header("Cache-Control")
    assert cache.startswith("public, max-age=") and int(cache.split("=")[1]) <= 300, cache
    return res.json()


def test_with_hs256_the_jwks_is_empty_and_discovery_names_the_issuer(api):
    assert well_known(api, "jwks.json") == {"keys": []}
    doc = well_known(api, "openid-configuration")
    # A configured issuer URL (a custom domain): OpenID's rule, the metadata hangs under it.
    assert doc["issuer"] == ISSUER
    assert (doc["jwks_uri"], doc["token_endpoint"]) == (f"{ISSUER}/.well-known/jwks.json", f"{ISSUER}/auth/login")
    assert doc["id_token_signing_alg_values_supported"] == ["HS256"]
    assert set(doc["grant_types_supported"]) == {"password", "refresh_token"}


@pytest.fixture(scope="module", params=["RS256", "ES256", "EdDSA"])
def keyed_api(request):
    """The local API signing with a fresh key pair of one asymmetric algorithm."""
    logs = tempfile.TemporaryFile()
    env = dict(os.environ, JWT_ALGORITHM=request.param)
    for variable in ("JWT_SECRET", "JWT_PRIVATE_KEY", "JWT_ISSUER"):
        env.pop(variable, None)
    port, proc = start_local_api(env, logs)
    yield Api(port, PASSWORD), request.param
    assert stop(proc) == 0
    logs.seek(0)
    text = logs.read().decode(errors="replace")
    assert "pkcs8" not in text and PASSWORD not in text and "eyJ" not in text


def test_an_independent_verifier_checks_access_tokens_from_the_published_keys(keyed_api):
    api, alg = keyed_api
    res = api.register(new_name())
    assert res.status == 201, res
    access = res.json()["access_token"]
    header, claims = decode(access)[:2]
    assert header["alg"] == alg

    doc = well_known(api, "openid-configuration")
    # No issuer configured (the template's default): the API's own URL, here the local API's.
    issuer = f"http://127.0.0.1:{api.port}"
    assert doc["issuer"] == claims["iss"] == issuer
    assert doc["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert doc["id_token_signing_alg_values_supported"] == [alg]
    keys = well_known(api, "jwks.json")["keys"]
    assert [k["kid"] for k in keys] == [header["kid"]]
    for key in keys:
        assert not PRIVATE_FIELDS & set(key), key
        assert (key["alg"], key["use"]) == (alg, "sig")

    client = jwt.PyJWKClient(doc["jwks_uri"])
    signing_key = client.get_signing_key_from_jwt(access)
    verified = jwt.decode(access, signing_key.key, algorithms=[alg], audience=AUDIENCE, issuer=issuer)
    assert verified["sub"] == res.json()["user"]["id"] and verified["token_use"] == "access"

    # The service's own authorizer and refresh verify with the same public key.
    assert api.me(access).status == 200
    new_access, _ = tokens_of(api.refresh(res.json()["refresh_token"]))
    assert api.me(new_access).status == 200


def test_a_token_with_an_unknown_kid_or_a_switched_algorithm_is_401(keyed_api):
    api, alg = keyed_api
    access = api.register(new_name()).json()["access_token"]
    header, claims, signature = access.split(".")
    head = decode(access)[0]
    for changes in [{"kid": "not-a-key-of-ours"}, {"alg": "HS256"}, {"alg": "none"}, {"alg": "RS256" if alg != "RS256" else "ES256"}]:
        forged_header = b64url(json.dumps({**head, **changes}).encode())
        assert_invalid_token(api.me(f"{forged_header}.{claims}.{signature}"))
    # HS256 keyed with the published public key (the classic confusion) is refused too.
    # Signed by hand: newer PyJWT refuses to use a JWK as an HMAC secret (an attacker's
    # library would not).
    jwk = json.dumps(well_known(api, "jwks.json")["keys"][0]).encode()
    signing_input = f"{b64url(json.dumps({**head, 'alg': 'HS256'}).encode())}.{claims}"
    mac = hmac.new(jwk, signing_input.encode(), hashlib.sha256).digest()
    assert_invalid_token(api.me(f"{signing_input}.{b64url(mac)}"))
