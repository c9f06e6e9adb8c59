"""Test PKI for the DNS-over-TLS tests, made at test time with
python3-cryptography (no files in the tree, nothing from the network).

    root CA  "dnsmux test root"          ca.pem        (the --ca-file)
      intermediate "dnsmux test intermediate"
        server   dns.test  RSA-2048      server.pem (leaf + intermediate), server.key
        ecdsa    dns.test  ECDSA P-256   ecdsa.pem  (leaf + intermediate), ecdsa.key
        expired  dns.test  expired a day ago          expired.pem, expired.key
    other root "unknown test root" (NOT in ca.pem)
        other    dns.test                 other.pem, other.key

Pki.issue() makes more (e.g. a fresh certificate for the SIGHUP reload
test). Pki.pin(name) is the SPKI pin dnsmux takes in ?pin=sha256/BASE64:
base64(SHA-256(DER SubjectPublicKeyInfo)), the same value as
`openssl x509 -pubkey | openssl pkey -pubin -outform der |
openssl dgst -sha256 -binary | base64`.
"""

import base64
import datetime
import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAME = "dns.test"


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dnsmux tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key(kind):
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_cert(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def spki_pin(cert):
    """base64(SHA-256(DER SubjectPublicKeyInfo)) of a cryptography certificate."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


class Issuer:
    def __init__(self, cert, key):
        self.cert = cert
        self.key = key


class Pki:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        self.certs = {}  # name -> leaf cryptography certificate
        self.root = self._ca("dnsmux test root", None)
        self.intermediate = self._ca("dnsmux test intermediate", self.root, path_len=0)
        self.other_root = self._ca("unknown test root", None)
        (self.dir / "ca.pem").write_bytes(_pem_cert(self.root.cert))
        (self.dir / "other-ca.pem").write_bytes(_pem_cert(self.other_root.cert))
        self.issue("server")
        self.issue("ecdsa", kind="ecdsa")
        self.issue("expired", not_before=self.now - datetime.timedelta(days=30),
                   not_after=self.now - datetime.timedelta(days=1))
        self.issue("other", issuer=self.other_root, chain=False)

    # -- paths ---------------------------------------------------------------

    @property
    def ca_file(self):
        return self.dir / "ca.pem"

    @property
    def other_ca_file(self):
        return self.dir / "other-ca.pem"

    def cert_file(self, name):
        """Leaf followed by its intermediate (what a server presents)."""
        return self.dir / (name + ".pem")

    def key_file(self, name):
        return self.dir / (name + ".key")

    def leaf_file(self, name):
        return self.dir / (name + ".leaf.pem")

    def der(self, name):
        return self.certs[name].public_bytes(serialization.Encoding.DER)

    def pin(self, name):
        return spki_pin(self.certs[name])

    # -- making ----------------------------------------------------------------

    def _ca(self, cn, parent, path_len=1):
        key = _key("rsa")
        b = (x509.CertificateBuilder()
             .subject_name(_name(cn))
             .issuer_name(parent.cert.subject if parent else _name(cn))
             .public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(self.now - datetime.timedelta(days=1))
             .not_valid_after(self.now + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=True, crl_sign=True,
                                          encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if parent:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
                                critical=False)
        cert = b.sign(parent.key if parent else key, hashes.SHA256())
        return Issuer(cert, key)

    def issue(self, name, dns_names=(SERVER_NAME,), kind="rsa", issuer=None, chain=True,
              not_before=None, not_after=None):
        """A server certificate `name` for dns_names, written as name.pem
        (leaf + intermediate when chain), name.leaf.pem and name.key.
        Returns the certificate's path."""
        issuer = issuer or self.intermediate
        key = _key(kind)
        b = (x509.CertificateBuilder()
             .subject_name(_name(dns_names[0]))
             .issuer_name(issuer.cert.subject)
             .public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(not_before or self.now - datetime.timedelta(hours=1))
             .not_valid_after(not_after or self.now + datetime.timedelta(days=7))
             .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                            critical=False))
        cert = b.sign(issuer.key, hashes.SHA256())
        self.certs[name] = cert
        pem = _pem_cert(cert)
        if chain and issuer is self.intermediate:
            pem += _pem_cert(self.intermediate.cert)
        self.leaf_file(name).write_bytes(_pem_cert(cert))
        self.cert_file(name).write_bytes(pem)
        self.key_file(name).write_bytes(_pem_key(key))
        self.key_file(name).chmod(0o600)
        return self.cert_file(name)
