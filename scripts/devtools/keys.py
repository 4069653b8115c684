"""Signing keys in the form the functions read (JWT_PRIVATE_KEY): JSON {"kid", "alg", "pkcs8"},
the PKCS#8 DER in standard base64; and the public set (JWKS) such a key publishes. `make
dev` makes one per run when JWT_ALGORITHM is asymmetric and no key is given; tests and the
benchmarks make them too.
"""

import base64
import json
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ASYMMETRIC = ("RS256", "ES256", "EdDSA")


def generate(alg, kid=None):
    """A new private key document for `alg` (RS256: 2048-bit RSA; ES256: P-256; EdDSA: Ed25519)."""
    if alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"{alg} is not one of {', '.join(ASYMMETRIC)}")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return json.dumps({"kid": kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}", "alg": alg, "pkcs8": base64.b64encode(der).decode()})


def public_jwks(private_document):
    """The published set of an RS256 key document: its public JWK (n, e)."""
    doc = json.loads(private_document)
    key = serialization.load_der_private_key(base64.b64decode(doc["pkcs8"]), password=None)
    numbers = key.public_key().public_numbers()
    b64 = lambda n: base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()  # noqa: E731
    return json.dumps({"keys": [{"kid": doc["kid"], "kty": "RSA", "alg": "RS256", "use": "sig", "n": b64(numbers.n), "e": b64(numbers.e)}]})
