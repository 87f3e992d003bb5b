"""S/MIME (RFC 8551): sign and encrypt a Part with ``cryptography``'s PKCS #7.

::

    from mimecompose import smime
    signed = smime.sign(part, certificate=cert_pem, key=key_pem)      # multipart/signed
    sealed = smime.encrypt(part, recipients=[bob_cert_pem])           # application/pkcs7-mime

The message fields of ``part`` (From, To, Subject, ...) go on the outside;
its Content- fields and body are the MIME entity that is signed or
encrypted, in its 7-bit form (RFC 8551 section 3.1.2: signed data must not
be changed by a relay's 8-bit to 7-bit conversion). The result is a Part
read back from the bytes built here, so it serialises exactly as signed:
the first part of a multipart/signed is written byte for byte as it was
signed, also after headers are added to the outside.

``cryptography`` (the ``mimecompose-smtpsend[dkim]`` extra) is imported
when a function is called.
"""

from __future__ import annotations

import base64
import os
import secrets
from typing import Any, Iterable, Union

from ._dkim import EXTRA, _fields, _split, _wire
from ._errors import MimeError
from ._initialize import initialize

__all__ = ["encrypt", "sign"]

PemArg = Union[bytes, str, "os.PathLike[str]", Any]
_CRLF = b"\r\n"


def _crypto() -> Any:
    """The parts of ``cryptography`` used here, or ImportError naming the extra."""
    try:
        from cryptography import exceptions, x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.hazmat.primitives.ciphers import algorithms
        from cryptography.hazmat.primitives.serialization import pkcs7
    except ImportError as exc:
        raise ImportError(f"S/MIME needs the 'cryptography' package: pip install '{EXTRA}'") from exc

    class Crypto:
        pass

    crypto = Crypto()
    for name, module in (("exceptions", exceptions), ("x509", x509), ("hashes", hashes),
                         ("serialization", serialization), ("ec", ec), ("rsa", rsa),
                         ("algorithms", algorithms), ("pkcs7", pkcs7)):
        setattr(crypto, name, module)
    return crypto


def _pem(value: PemArg, what: str) -> bytes:
    """PEM bytes from bytes, PEM text, or a path to a PEM file."""
    if isinstance(value, str) and "-----BEGIN" in value:
        return value.encode("ascii", "replace")
    if isinstance(value, (str, os.PathLike)):
        try:
            with open(value, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise MimeError(f"cannot read the {what} file: {exc.strerror}") from None
        except ValueError:   # a NUL, or a lone surrogate the file system cannot encode
            raise MimeError(f"cannot read the {what} file: its name is not a usable path") from None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise MimeError(f"the {what} must be PEM bytes, PEM text or a path, not {type(value).__name__}")


def _certificate(value: PemArg, crypto: Any, what: str = "certificate") -> Any:
    if isinstance(value, crypto.x509.Certificate):
        return value
    pem = _pem(value, what)
    try:
        return crypto.x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise MimeError(f"the {what} is not a PEM X.509 certificate") from None


def _private_key(value: PemArg, crypto: Any) -> Any:
    if isinstance(value, (crypto.rsa.RSAPrivateKey, crypto.ec.EllipticCurvePrivateKey)):
        return value
    pem = _pem(value, "key")
    try:
        key = crypto.serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise MimeError("the key is encrypted: give it unencrypted (or load it yourself and "
                        "pass the key object)") from None
    except (ValueError, crypto.exceptions.UnsupportedAlgorithm):
        # the parser's message is dropped: it may quote key material
        raise MimeError("the key is not a PEM private key that can be read") from None
    if not isinstance(key, (crypto.rsa.RSAPrivateKey, crypto.ec.EllipticCurvePrivateKey)):
        raise MimeError("S/MIME signing needs an RSA or EC key")
    return key


def _entity(part: Any) -> tuple[list[bytes], bytes]:
    """``part`` in its 7-bit form, split into the message fields that stay
    outside (each with its CRLF; MIME-Version left out) and the MIME entity
    (Content- fields, empty line, body) that is signed or encrypted."""
    if not hasattr(part, "iterbytes"):
        raise MimeError(f"give a mimecompose Part, not {type(part).__name__}")
    header, _, body = _split(_wire(part.iterbytes(seven_bit=True)))
    outside: list[bytes] = []
    inside: list[bytes] = []
    for name, raw in _fields(header):
        if name == b"mime-version":
            continue
        (inside if name is not None and name.startswith(b"content-") else outside).append(raw + _CRLF)
    if not any(raw.lower().startswith(b"content-type:") for raw in inside):
        inside.insert(0, b"Content-Type: text/plain; charset=us-ascii\r\n")
    return outside, b"".join(inside) + _CRLF + b"".join(body)


def _base64_lines(data: bytes) -> bytes:
    text = base64.b64encode(data)
    return b"".join(text[i:i + 76] + _CRLF for i in range(0, len(text), 76))


def _boundary(*contents: bytes) -> bytes:
    while True:
        boundary = b"=_smime_" + secrets.token_hex(16).encode("ascii")
        if not any(boundary in content for content in contents):
            return boundary


def _parse(data: bytes) -> Any:
    return initialize(string=data)


def _pkcs7_part(outside: list[bytes], smime_type: bytes, der: bytes) -> Any:
    """application/pkcs7-mime (RFC 8551 section 3.2) with the message fields."""
    return _parse(b"".join(outside) + b"MIME-Version: 1.0\r\n"
                  b"Content-Type: application/pkcs7-mime; smime-type=" + smime_type + b"; name=smime.p7m\r\n"
                  b"Content-Transfer-Encoding: base64\r\n"
                  b"Content-Disposition: attachment; filename=smime.p7m\r\n\r\n" + _base64_lines(der))


def sign(part: Any, *, certificate: PemArg, key: PemArg, chain: Iterable[PemArg] = (),
         detached: bool = True) -> Any:
    """Sign ``part`` with ``key`` (RSA or EC) and its ``certificate``; the
    certificates of ``chain`` (intermediates) are included for the verifier.

    ``detached=True`` gives multipart/signed (RFC 8551 section 3.5.3; RFC
    1847): the entity readable by everyone, the signature beside it.
    ``detached=False`` gives application/pkcs7-mime; smime-type=signed-data
    (the entity inside the signature). SHA-256. Returns a new Part; ``part``
    is not changed. Raises MimeError (a ValueError) for unreadable or
    mismatched certificates and keys, ImportError without ``cryptography``.
    """
    crypto = _crypto()
    cert = _certificate(certificate, crypto)
    private = _private_key(key, crypto)
    public = crypto.serialization.PublicFormat.SubjectPublicKeyInfo
    der = crypto.serialization.Encoding.DER
    if private.public_key().public_bytes(der, public) != cert.public_key().public_bytes(der, public):
        raise MimeError("the key does not belong to the certificate")
    extra = [_certificate(c, crypto, "chain certificate") for c in chain]
    outside, entity = _entity(part)
    options = crypto.pkcs7.PKCS7Options
    builder = crypto.pkcs7.PKCS7SignatureBuilder().set_data(entity).add_signer(
        cert, private, crypto.hashes.SHA256())
    for c in extra:
        builder = builder.add_certificate(c)
    if not detached:
        # Binary: the entity is CRLF already and must be signed as it is
        return _pkcs7_part(outside, b"signed-data", builder.sign(der, [options.Binary]))
    signature = builder.sign(der, [options.DetachedSignature, options.Binary])
    body = _base64_lines(signature)
    boundary = _boundary(entity, body)
    message = (b"".join(outside) + b"MIME-Version: 1.0\r\n"
               b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
               b' micalg=sha-256; boundary="' + boundary + b'"\r\n\r\n'
               b"This is a cryptographically signed message in MIME format.\r\n\r\n"
               b"--" + boundary + _CRLF + entity + b"\r\n--" + boundary + _CRLF +
               b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
               b"Content-Transfer-Encoding: base64\r\n"
               b"Content-Disposition: attachment; filename=smime.p7s\r\n\r\n" + body +
               b"\r\n--" + boundary + b"--\r\n")
    signed = _parse(message)
    first = signed.getproperty("parts")[0].buildmessage()
    if first != entity:   # the promise of this module: never a signature over other bytes
        raise MimeError("internal error: the signed part does not serialise as signed")
    return signed


def encrypt(part: Any, *, recipients: Iterable[PemArg]) -> Any:
    """Encrypt ``part`` for each certificate in ``recipients`` (RSA keys):
    application/pkcs7-mime; smime-type=enveloped-data (RFC 8551 section
    3.3), AES-256-CBC where ``cryptography`` offers the choice, else its
    AES-128-CBC. The message fields (From, To, Subject, ...) stay readable
    outside. Returns a new Part. Raises MimeError (a ValueError) for no
    recipient or an unusable certificate, ImportError without
    ``cryptography``."""
    crypto = _crypto()
    if isinstance(recipients, (str, bytes)) or not isinstance(recipients, Iterable):
        raise MimeError("recipients must be a list of certificates")
    certs = [_certificate(c, crypto, "recipient certificate") for c in recipients]
    if not certs:
        raise MimeError("encrypt needs at least one recipient certificate")
    for cert in certs:
        if not isinstance(cert.public_key(), crypto.rsa.RSAPublicKey):
            raise MimeError("S/MIME encryption supports recipients with RSA keys only")
    outside, entity = _entity(part)
    builder = crypto.pkcs7.PKCS7EnvelopeBuilder().set_data(entity)
    for cert in certs:
        builder = builder.add_recipient(cert)
    if hasattr(builder, "set_content_encryption_algorithm"):
        builder = builder.set_content_encryption_algorithm(crypto.algorithms.AES256)
    sealed = builder.encrypt(crypto.serialization.Encoding.DER, [crypto.pkcs7.PKCS7Options.Binary])
    return _pkcs7_part(outside, b"enveloped-data", sealed)
