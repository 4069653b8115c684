"""Makes shared/tests/vectors/imported_hashes.json: password hashes as the libraries that
write them in the wild make them (bcrypt, passlib, Django's hashers, Werkzeug, argon2-cffi),
each with a password that matches and one that does not, for the verifiers of imported
hashes (shared/src/password/imported.rs) to be tested against.

Run it with the libraries of requirements-vectors.txt (not needed by `make test`: the
vectors are committed):

    python3 -m venv .venv-vectors && .venv-vectors/bin/pip install -r requirements-vectors.txt
    .venv-vectors/bin/python scripts/make_hash_vectors.py
"""

import hashlib
import json
import pathlib
import sys

import argon2
import bcrypt
import django
from importlib.metadata import version
from django.conf import settings
from passlib.hash import pbkdf2_sha256 as passlib_pbkdf2
from werkzeug.security import generate_password_hash

OUT = pathlib.Path(__file__).resolve().parent.parent / "shared" / "tests" / "vectors" / "imported_hashes.json"

settings.configure(PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"])
django.setup()
from django.contrib.auth.hashers import PBKDF2PasswordHasher  # noqa: E402  (needs settings)

PASSWORDS = ["correct horse battery staple", "pässwörd ✓ unicode", "x" * 8]


def vector(scheme, library, password, encoded, **extra):
    return {"scheme": scheme, "library": library, "password": password, "hash": encoded, **extra}


def main():
    out = []
    # bcrypt: $2b$ as the library writes it, and the same hash under the $2a$ and $2y$
    # prefixes other implementations write (PHP's password_hash: $2y$).
    for cost, password in [(4, PASSWORDS[0]), (10, PASSWORDS[1]), (12, PASSWORDS[2])]:
        encoded = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()
        for prefix in ("$2b$", "$2a$", "$2y$"):
            out.append(vector("bcrypt", f"bcrypt {version('bcrypt')}", password, prefix + encoded[4:]))
    # bcrypt reads only the first 72 bytes of a password: libraries before bcrypt 5 (and
    # the C original) cut longer ones silently, so such a hash matches any password with
    # those 72 bytes. bcrypt 5 refuses to hash them; the hash is of the 72 bytes it reads.
    long = "seventy-two bytes and then some: " + "y" * 39 + "-and-the-rest-is-ignored"
    assert len(long.encode()) > 72
    encoded = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    out.append(vector("bcrypt", f"bcrypt {version('bcrypt')}", long, encoded, note="truncated at 72 bytes"))
    out.append(vector("bcrypt", f"bcrypt {version('bcrypt')}", long.encode()[:72].decode(), encoded, note="the 72 bytes read"))
    out.append(vector("bcrypt", f"bcrypt {version('bcrypt')}", "S" + long[1:], encoded, note="a byte within the 72 differs", matches=False))
    # PBKDF2-SHA256 in Django's encoding: its default iterations, and a lower count.
    hasher = PBKDF2PasswordHasher()
    for iterations, password in [(None, PASSWORDS[0]), (10_000, PASSWORDS[1])]:
        encoded = hasher.encode(password, hasher.salt(), iterations)
        out.append(vector("pbkdf2_sha256", f"Django {django.__version__}", password, encoded))
    # passlib's.
    for rounds, password in [(29_000, PASSWORDS[0]), (1_000, PASSWORDS[1])]:
        encoded = passlib_pbkdf2.using(rounds=rounds).hash(password)
        out.append(vector("pbkdf2_sha256", f"passlib {version('passlib')}", password, encoded))
    # Werkzeug's: PBKDF2 and scrypt, its defaults and lower costs.
    for method, password in [("pbkdf2:sha256", PASSWORDS[0]), ("pbkdf2:sha256:20000", PASSWORDS[1])]:
        encoded = generate_password_hash(password, method=method)
        out.append(vector("pbkdf2_sha256", f"Werkzeug {version('Werkzeug')}", password, encoded))
    for method, password in [("scrypt", PASSWORDS[0]), ("scrypt:16384:8:1", PASSWORDS[1]), ("scrypt:1024:8:2", PASSWORDS[2])]:
        encoded = generate_password_hash(password, method=method)
        out.append(vector("scrypt", f"Werkzeug {version('Werkzeug')}", password, encoded))
    # argon2i and argon2id as argon2-cffi writes them (the PHC strings of FastAPI's tutorial).
    for kind, scheme in [(argon2.Type.I, "argon2i"), (argon2.Type.ID, "argon2id")]:
        ph = argon2.PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1, type=kind)
        for password in PASSWORDS[:2]:
            out.append(vector(scheme, f"argon2-cffi {version('argon2-cffi')}", password, ph.hash(password)))
    # Each also with a password that must not match.
    for v in list(out):
        if "note" not in v:
            out.append({**v, "password": v["password"] + "!", "matches": False})
    for v in out:
        v.setdefault("matches", True)
    # Refused whatever the password: plain or unsalted digests, and costs that would let
    # one login burn a function (made by editing the cost of a real hash: never verified).
    refused = [
        (hashlib.md5(b"password").hexdigest(), "unsalted digest"),
        (hashlib.sha1(b"password").hexdigest(), "unsalted digest"),
        (hashlib.sha256(b"password").hexdigest(), "unsalted digest"),
        ("password", "plain text"),
        ("md5$salt$" + hashlib.md5(b"saltpassword").hexdigest(), "Django's MD5"),
        ("sha1$salt$" + hashlib.sha1(b"saltpassword").hexdigest(), "Django's SHA-1"),
        ("$1$saltsalt$abcdefghijklmnopqrstuv", "md5-crypt"),
        ("pbkdf2:sha1:600000$salt$" + "00" * 20, "PBKDF2-SHA1"),
    ]
    costly = bcrypt.hashpw(b"x", bcrypt.gensalt(rounds=4)).decode()
    refused.append((costly[:4] + "15" + costly[6:], "bcrypt cost 15"))
    django_hash = hasher.encode("x", hasher.salt(), 1000)
    refused.append((django_hash.replace("$1000$", "$2000001$"), "PBKDF2 over 2,000,000 iterations"))
    werkzeug_scrypt = generate_password_hash("x", method="scrypt:1024:8:1")
    refused.append((werkzeug_scrypt.replace("scrypt:1024:8:1$", "scrypt:131072:8:1$"), "scrypt memory 128 MiB"))
    for encoded, why in refused:
        out.append({"scheme": None, "library": why, "password": "password", "hash": encoded, "matches": False})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(out)} vectors -> {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
