"""A private CA for tests and benchmarks, made at run time: root -> intermediate -> a server
certificate for localhost and 127.0.0.1, RSA 2048 like Amazon's chain. Nothing is
installed anywhere; the caller says who trusts the root.
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def make_pki(directory):
    """Root CA -> intermediate CA -> server certificate (localhost, 127.0.0.1), RSA 2048,
    as Amazon's endpoints present (leaf + intermediate sent, root in the trust store).
    Returns (root PEM, path of the server's chain, path of its key)."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "jwt-auth bench"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, subject_key, issuer, issuer_key, ca, path_length=None, san=None):
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(subject_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        )
        if ca:
            b = b.add_extension(
                x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                              key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True,
            )
        else:
            b = b.add_extension(
                x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True, data_encipherment=False,
                              key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
                critical=True,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    root_key, mid_key, leaf_key = key(), key(), key()
    root_name, mid_name = name("bench test root CA"), name("bench test intermediate CA")
    root = cert(root_name, root_key, root_name, root_key, ca=True, path_length=1)
    mid = cert(mid_name, mid_key, root_name, root_key, ca=True, path_length=0)
    leaf = cert(name("localhost"), leaf_key, mid_name, mid_key, ca=False,
                san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    chain = directory / "server-chain.pem"
    chain.write_bytes(pem(leaf) + pem(mid))
    key_file = directory / "server-key.pem"
    key_file.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return pem(root), chain, key_file
