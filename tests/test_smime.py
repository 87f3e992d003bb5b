"""S/MIME (mimecompose.smime): signatures and encryption checked by OpenSSL's
own command line tool, against a throwaway CA made here."""

from __future__ import annotations

import datetime
import pathlib
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("cryptography", reason="S/MIME needs cryptography (the dkim extra)")
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization as ser  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

import mimecompose  # noqa: E402
import smtpsend  # noqa: E402
from mimecompose import MimeError, smime  # noqa: E402
from smtpsend.testing import CaptureServer  # noqa: E402

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command verifies the results")
HERE = pathlib.Path(__file__).resolve().parent
NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key) -> bytes:
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())


class Authority:
    """A throwaway CA, optionally with an intermediate, issuing S/MIME
    certificates (emailProtection, the address as rfc822Name)."""

    def __init__(self, tmp: pathlib.Path, intermediate: bool = False) -> None:
        self.tmp = tmp
        self.root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.root = self._ca("Test Root CA", self.root_key, self.root_key, None)
        self.issuer_key, self.issuer = self.root_key, self.root
        self.intermediate = None
        if intermediate:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.intermediate = self._ca("Test Intermediate CA", key, self.root_key, self.root)
            self.issuer_key, self.issuer = key, self.intermediate
        self.cafile = tmp / "root.pem"
        self.cafile.write_bytes(self.root.public_bytes(ser.Encoding.PEM))

    def _ca(self, common, key, signer, issuer):
        return (x509.CertificateBuilder().subject_name(_name(common))
                .issuer_name(issuer.subject if issuer else _name(common))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(NOW - datetime.timedelta(days=1))
                .not_valid_after(NOW + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                               critical=True)
                .sign(signer, hashes.SHA256()))

    def issue(self, address: str, key=None) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for ``address``; files beside them."""
        key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (x509.CertificateBuilder().subject_name(_name(address)).issuer_name(self.issuer.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(NOW - datetime.timedelta(days=1))
                .not_valid_after(NOW + datetime.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
                .add_extension(x509.KeyUsage(True, False, isinstance(key, rsa.RSAPrivateKey), False,
                                             not isinstance(key, rsa.RSAPrivateKey), False, False, False, False),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                .sign(self.issuer_key, hashes.SHA256()))
        cert_pem, key_pem = cert.public_bytes(ser.Encoding.PEM), _pem_key(key)
        (self.tmp / f"{address}.pem").write_bytes(cert_pem)
        (self.tmp / f"{address}.key").write_bytes(key_pem)
        return cert_pem, key_pem


@pytest.fixture
def ca(tmp_path):
    return Authority(tmp_path)


def openssl_verify(message: bytes, ca: Authority, tool: str = "smime") -> subprocess.CompletedProcess:
    path = ca.tmp / "message.eml"
    path.write_bytes(message)
    return subprocess.run([OPENSSL, tool, "-verify", "-in", str(path), "-CAfile", str(ca.cafile)],
                          capture_output=True)


def openssl_decrypt(message: bytes, ca: Authority, address: str) -> subprocess.CompletedProcess:
    path = ca.tmp / "sealed.eml"
    path.write_bytes(message)
    return subprocess.run([OPENSSL, "cms", "-decrypt", "-in", str(path), "-recip", str(ca.tmp / f"{address}.pem"),
                           "-inkey", str(ca.tmp / f"{address}.key")], capture_output=True)


def message() -> mimecompose.Part:
    """Text with trailing white space and 8-bit characters, HTML, an
    attachment: what a relay would most like to change."""
    return mimecompose.compose("Grüße aus Köln.  \nZweite Zeile\t\n", "<p>Grüße</p>\n",
                               attachments=[("Bericht März.bin", b"binary\x00\xff\r\ndata")],
                               header=[("From", "alice@example.com"), ("To", "bob@example.com"),
                                       ("Subject", "Signierte Grüße"), ("X-Mailer", "tests")])


# ---------------------------------------------------------------- signing

@needs_openssl
def test_detached_signature_verifies_and_survives_a_second_parse(ca):
    cert, key = ca.issue("alice@example.com")
    part = message()
    signed = smime.sign(part, certificate=cert, key=key)
    data = signed.buildmessage()
    result = openssl_verify(data, ca)
    assert result.returncode == 0, result.stderr
    first = signed.getproperty("parts")[0]
    assert result.stdout == first.buildmessage()          # what was signed is the first part, exactly
    again = mimecompose.initialize(string=data)
    assert again.buildmessage() == data
    assert openssl_verify(again.buildmessage(), ca).returncode == 0
    assert openssl_verify(data, ca, tool="cms").returncode == 0


@needs_openssl
def test_one_changed_byte_fails_verification(ca):
    cert, key = ca.issue("alice@example.com")
    data = smime.sign(message(), certificate=cert, key=key).buildmessage()
    assert openssl_verify(data, ca).returncode == 0
    changed = data.replace(b"YmluYXJ5AP8NCmRhdGE=", b"YmluYXJ5AP8NCmRhdGF=", 1)   # in the attachment
    assert changed != data
    result = openssl_verify(changed, ca)
    assert result.returncode != 0 and b"digest failure" in result.stderr


def test_structure_of_the_signed_message(ca):
    cert, key = ca.issue("alice@example.com")
    part = message()
    before = part.buildmessage()
    signed = smime.sign(part, certificate=cert, key=key)
    assert part.buildmessage() == before                  # the caller's part is not changed
    assert signed.getproperty("content") == "multipart/signed"
    assert signed.getproperty("params")["protocol"] == "application/pkcs7-signature"
    assert signed.getproperty("params")["micalg"] == "sha-256"
    assert signed.getheader("Subject") == ["Signierte Grüße"] and signed.getheader("X-Mailer") == ["tests"]
    first, signature = signed.getproperty("parts")
    assert first.getproperty("content") == "multipart/mixed"
    assert first.getheader("From") == [] and first.getheader("MIME-Version") == []
    assert signature.getproperty("content") == "application/pkcs7-signature"
    assert signature.getbody()[:1] == b"\x30"          # DER
    assert first.buildmessage().isascii()               # RFC 8551 3.1.2: 7-bit, nothing for a relay to recode
    assert signed.buildmessage().count(b"MIME-Version:") == 1


@needs_openssl
def test_headers_added_outside_and_sending_keep_the_signature(ca):
    cert, key = ca.issue("alice@example.com")
    signed = smime.sign(message(), certificate=cert, key=key)
    signed.setheader("Date", "Tue, 01 Dec 2026 10:00:00 +0000")
    signed.setheader("Reply-To", "team@example.com")
    assert openssl_verify(signed.buildmessage(), ca).returncode == 0
    for extensions in (("8BITMIME", "PIPELINING"), ("PIPELINING",), ("CHUNKING", "BINARYMIME")):
        with CaptureServer(extensions=extensions) as server:
            smtpsend.sendmessage(signed, servers=["localhost"], ports=[server.port])
            [got] = server.messages
        assert b"\r\nMessage-ID: " in got.data or got.data.startswith(b"Message-ID: ")
        assert openssl_verify(got.data, ca).returncode == 0, extensions


@needs_openssl
def test_chain_certificates_go_with_the_signature(tmp_path):
    ca = Authority(tmp_path, intermediate=True)
    cert, key = ca.issue("alice@example.com")
    intermediate = ca.intermediate.public_bytes(ser.Encoding.PEM)
    with_chain = smime.sign(message(), certificate=cert, key=key, chain=[intermediate]).buildmessage()
    assert openssl_verify(with_chain, ca).returncode == 0
    without = smime.sign(message(), certificate=cert, key=key).buildmessage()
    result = openssl_verify(without, ca)
    assert result.returncode != 0 and b"unable to get local issuer certificate" in result.stderr


@needs_openssl
def test_opaque_signature(ca):
    cert, key = ca.issue("alice@example.com")
    part = message()
    signed = smime.sign(part, certificate=cert, key=key, detached=False)
    assert signed.getproperty("content") == "application/pkcs7-mime"
    assert signed.getproperty("params")["smime-type"] == "signed-data"
    assert signed.getheader("To") == ["bob@example.com"]
    result = openssl_verify(signed.buildmessage(), ca)
    assert result.returncode == 0, result.stderr
    inner = mimecompose.initialize(string=result.stdout)
    assert inner.getproperty("content") == "multipart/mixed"
    text = inner.getproperty("parts")[0].getproperty("parts")[0]
    assert text.getbody(decode=True) == "Grüße aus Köln.  \r\nZweite Zeile\t\r\n"


@needs_openssl
def test_ec_key_and_paths(ca):
    cert, key = ca.issue("ec@example.com", key=ec.generate_private_key(ec.SECP256R1()))
    signed = smime.sign(message(), certificate=str(ca.tmp / "ec@example.com.pem"),
                        key=ca.tmp / "ec@example.com.key")
    assert openssl_verify(signed.buildmessage(), ca).returncode == 0
    signed = smime.sign(message(), certificate=cert.decode(), key=key.decode())
    assert openssl_verify(signed.buildmessage(), ca).returncode == 0


@needs_openssl
def test_parsed_corpus_message_signed(ca):
    cert, key = ca.issue("alice@example.com")
    part = mimecompose.initialize(string=(HERE / "corpus" / "thunderbird_alternative.eml").read_bytes())
    signed = smime.sign(part, certificate=cert, key=key)
    assert signed.getheader("Subject") == part.getheader("Subject")
    assert openssl_verify(signed.buildmessage(), ca).returncode == 0


@needs_openssl
def test_dkim_over_smime(ca):
    dkim = pytest.importorskip("dkim")
    cert, key = ca.issue("alice@example.com")
    signed = smime.sign(message(), certificate=cert, key=key)
    signer = mimecompose.DKIMSigner(domain="example.com", selector="s",
                                    key=_pem_key(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    both = signer.sign(signed)
    assert dkim.verify(both, dnsfunc=lambda name, timeout=5: signer.dns_record().encode())
    assert openssl_verify(both, ca).returncode == 0


# ---------------------------------------------------------------- encryption

@needs_openssl
def test_encrypted_for_each_recipient(ca):
    bob, _ = ca.issue("bob@example.com")
    carol, _ = ca.issue("carol@example.com")
    part = message()
    sealed = smime.encrypt(part, recipients=[bob, carol])
    assert sealed.getproperty("content") == "application/pkcs7-mime"
    assert sealed.getproperty("params")["smime-type"] == "enveloped-data"
    assert sealed.getheader("Subject") == ["Signierte Grüße"]
    data = sealed.buildmessage()
    assert b"YmluYXJ5AP8NCmRhdGE=" not in data and b"multipart/mixed" not in data
    expected = None
    for address in ("bob@example.com", "carol@example.com"):
        result = openssl_decrypt(data, ca, address)
        assert result.returncode == 0, result.stderr
        expected = expected or result.stdout
        assert result.stdout == expected
    inner = mimecompose.initialize(string=expected)
    assert inner.getproperty("content") == "multipart/mixed" and inner.getheader("From") == []
    assert b"YmluYXJ5AP8NCmRhdGE=" in expected
    (ca.tmp / "other").mkdir()
    other = Authority(ca.tmp / "other")
    other.issue("eve@example.com")
    assert openssl_decrypt(data, other, "eve@example.com").returncode != 0   # not a recipient


@needs_openssl
def test_signed_then_encrypted(ca):
    alice, alice_key = ca.issue("alice@example.com")
    bob, _ = ca.issue("bob@example.com")
    sealed = smime.encrypt(smime.sign(message(), certificate=alice, key=alice_key), recipients=[bob])
    opened = openssl_decrypt(sealed.buildmessage(), ca, "bob@example.com")
    assert opened.returncode == 0
    assert mimecompose.initialize(string=opened.stdout).getproperty("content") == "multipart/signed"
    assert openssl_verify(opened.stdout, ca).returncode == 0


# ---------------------------------------------------------------- bad input

def test_bad_arguments(ca, tmp_path):
    cert, key = ca.issue("alice@example.com")
    other_cert, other_key = ca.issue("other@example.com")
    ec_cert, _ = ca.issue("ec@example.com", key=ec.generate_private_key(ec.SECP256R1()))
    encrypted = ser.load_pem_private_key(key, None).private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.BestAvailableEncryption(b"pw"))
    part = message()
    cases = [
        (lambda: smime.sign(part, certificate=cert, key=other_key), "does not belong"),
        (lambda: smime.sign(part, certificate=b"junk", key=key), "not a PEM X.509 certificate"),
        (lambda: smime.sign(part, certificate=cert, key=b"junk"), "not a PEM private key"),
        (lambda: smime.sign(part, certificate=cert, key=encrypted), "encrypted"),
        (lambda: smime.sign(part, certificate=str(tmp_path / "none.pem"), key=key), "cannot read"),
        (lambda: smime.sign(part, certificate=cert, key=key, chain=[b"junk"]), "chain certificate"),
        (lambda: smime.sign(b"From: a\r\n\r\nx", certificate=cert, key=key), "mimecompose Part"),
        (lambda: smime.sign(part, certificate=42, key=key), "not int"),
        (lambda: smime.encrypt(part, recipients=[]), "at least one"),
        (lambda: smime.encrypt(part, recipients=cert), "list of certificates"),
        (lambda: smime.encrypt(part, recipients=[ec_cert]), "RSA keys only"),
    ]
    for call, text in cases:
        with pytest.raises(ValueError, match=text):
            call()
    assert other_cert


def test_missing_cryptography_names_the_extra():
    code = ("import sys\nsys.modules['cryptography'] = None\nimport mimecompose\n"
            "from mimecompose import smime\n"
            "part = mimecompose.compose('x', header=[('From', 'a@example.com')])\n"
            "for call in (lambda: smime.sign(part, certificate=b'', key=b''),\n"
            "             lambda: smime.encrypt(part, recipients=[b''])):\n"
            "    try:\n        call()\n    except ImportError as exc:\n        print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all("pip install 'mimecompose-smtpsend[dkim]'" in line for line in lines)
