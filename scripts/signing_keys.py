"""Signing keys in the form the functions read (JWT_PRIVATE_KEY): JSON {"kid", "alg", "pkcs8"},
the PKCS#8 DER in standard base64. `make dev` makes one per run when JWT_ALGORITHM is
asymmetric and no key is given; tests make them too.

  signing_keys.py generate ALG [KID]   prints a new private key document (a secret)
"""

import base64
import json
import sys
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


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "generate":
        sys.exit(__doc__)
    print(generate(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
