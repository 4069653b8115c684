"""Signing keys in the form the functions read (JWT_PRIVATE_KEY): JSON {"kid", "alg", "pkcs8"},
the PKCS#8 DER in standard base64. `make dev` makes one per run when JWT_ALGORITHM is
asymmetric and no key is given; tests make them too.

  signing_keys.py generate ALG [KID]   prints a new private key document (a secret)
"""

import sys

from devtools import keys  # the key documents themselves

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "generate":
        sys.exit(__doc__)
    print(keys.generate(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
