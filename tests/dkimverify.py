"""dkimpy as the independent verifier of the DKIM tests: its verdict with
the signers' own key records as the only DNS data; and ``pem`` for the
keys the DKIM tests sign with (the ``keys`` fixture is in conftest)."""

from __future__ import annotations

from typing import Any

import dkim
from cryptography.hazmat.primitives import serialization as ser

from mimecompose import DKIMSigner


def pem(key: Any) -> bytes:
    """A private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())


def verify(message: bytes, *signers: DKIMSigner, index: int = 0) -> bool:
    """dkimpy's verdict on the ``index``-th DKIM-Signature of ``message``,
    with the signers' key records as the only DNS data."""
    records = {(s.dns_name + ".").encode(): s.dns_record().encode() for s in signers}

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    try:
        return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=dnsfunc))
    except dkim.ValidationError:      # dkimpy raises for a body hash mismatch
        return False
