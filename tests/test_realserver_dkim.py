"""DKIM against OpenDKIM, as a Postfix milter in the rig (tests/rig): mail
signed by mimecompose.DKIMSigner arrives with ``Authentication-Results: ...
dkim=pass``, read back over POP3; mail OpenDKIM signs with its KeyTable's
file-based key verifies with dkimpy. Runs only with the rig (CI=true or
SMTPSEND_RIG=1)."""

from __future__ import annotations

import os
import re
import sys
import uuid

import pytest

import mimecompose
import smtpsend
from smtpsend import pop3


@pytest.fixture(scope="module")
def dkim_rig(rig):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "rig"))
    import rig as rigmod
    if not os.path.exists(os.path.join(rig.state, "opendkim", "opendkim.conf")):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("OpenDKIM is part of the rig in CI, and it is not configured")
        pytest.skip("OpenDKIM is not installed: python tests/rig/rig.py install")
    rig.dkim_port = rigmod.DKIM_PORTS["dkim"]
    rig.keys = os.path.join(rig.state, "opendkim", "keys")
    return rig


def marker() -> str:
    return f"dkim-{uuid.uuid4().hex[:12]}"


def build(subject: str, sender: str = "bob@example.test") -> mimecompose.Part:
    """Text with white space a relaxed verifier forgives and a strict one
    does not, and a binary attachment, with its own Date and Message-ID."""
    text = mimecompose.initialize("text/plain", string="Grüße,  mit Leerzeichen \nund Umlauten.\n",
                                  params={"charset": "utf-8"}, encoding="quoted-printable")
    attachment = mimecompose.initialize("application/octet-stream", string=bytes(range(256)),
                                        disposition="attachment", filename="daten.bin")
    return mimecompose.initialize("multipart/mixed", parts=[text, attachment], header=[
        ("Date", "Tue, 01 Dec 2026 10:00:00 +0000"), ("Message-ID", f"<{subject}@example.test>"),
        ("From", sender), ("To", "alice@example.test"), ("Subject", subject)])


def fetch(rig, subject: str) -> bytes:
    assert rig.queue_empty(), "Postfix still has mail in its queue"
    found = []
    with pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context) as box:
        box.login("alice@example.test", rig.users["alice@example.test"][0])
        for n in box.list():
            if subject.encode() in box.top(n, 0):
                found.append(box.retr_bytes(n))
                box.dele(n)
    assert len(found) == 1, found
    return found[0]


def results(raw: bytes) -> list[str]:
    """The DKIM results OpenDKIM wrote, unfolded: ["pass header.d=...", ...]."""
    header = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields = re.findall(r"^Authentication-Results:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", header, re.M | re.I)
    out = []
    for field in fields:
        value = re.sub(r"\s+", " ", field).strip()
        if value.startswith("mail.example.test;"):
            out += re.findall(r"dkim=(\w+ [^;]*)", value)
    return out


def send(rig, data, **kwargs) -> None:
    smtpsend.sendmessage(data, servers=["localhost"], ports=[rig.dkim_port], ssl_context=rig.context, **kwargs)


@pytest.mark.parametrize("canonicalization", ["relaxed/relaxed", "simple/simple"])
def test_opendkim_passes_our_rsa_signature(dkim_rig, canonicalization):
    subject = marker()
    signer = mimecompose.DKIMSigner(domain="example.test", selector="rig", canonicalization=canonicalization,
                                    key=os.path.join(dkim_rig.keys, "rig.private"))
    send(dkim_rig, signer.sign(build(subject)))
    verdicts = results(fetch(dkim_rig, subject))
    assert len(verdicts) == 1 and verdicts[0].startswith("pass") and "header.d=example.test" in verdicts[0]


def test_opendkim_passes_both_signatures_of_a_dual_signed_message(dkim_rig):
    subject = marker()
    rsa_signer = mimecompose.DKIMSigner(domain="example.test", selector="rig",
                                        key=os.path.join(dkim_rig.keys, "rig.private"))
    ed_signer = mimecompose.DKIMSigner(domain="example.test", selector="rig-ed", algorithm="ed25519-sha256",
                                       key=os.path.join(dkim_rig.keys, "rig-ed.private"))
    send(dkim_rig, ed_signer.sign(rsa_signer.sign(build(subject))))
    verdicts = results(fetch(dkim_rig, subject))
    assert len(verdicts) == 2 and all(v.startswith("pass") for v in verdicts), verdicts


def test_opendkim_fails_a_changed_message(dkim_rig):
    subject = marker()
    signer = mimecompose.DKIMSigner(domain="example.test", selector="rig",
                                    key=os.path.join(dkim_rig.keys, "rig.private"))
    signed = signer.sign(build(subject))
    changed = signed.replace(b"Umlauten.", b"Umlautem.", 1)
    assert changed != signed
    send(dkim_rig, changed)
    verdicts = results(fetch(dkim_rig, subject))
    assert len(verdicts) == 1 and verdicts[0].startswith("fail"), verdicts


def test_opendkim_signs_with_its_keytable_and_dkimpy_verifies(dkim_rig):
    """The other direction: authenticated mail From signed.example.test is
    signed by OpenDKIM with the KeyTable's file-based key; dkimpy accepts it
    with the public key the rig publishes."""
    dkim = pytest.importorskip("dkim")
    subject = marker()
    send(dkim_rig, build(subject, sender="bob@signed.example.test"), originator="bob@example.test",
         username="bob@example.test", password=dkim_rig.users["bob@example.test"][0])
    raw = fetch(dkim_rig, subject)
    assert raw.count(b"DKIM-Signature:") == 1 and b"d=signed.example.test" in raw
    records = dict(line.split(" ", 1) for line in open(
        os.path.join(dkim_rig.state, "opendkim", "public-keys"), encoding="ascii").read().splitlines())
    record = records["rig._domainkey.signed.example.test"].encode()
    start = raw.index(b"DKIM-Signature:")           # the trace fields above it were added later
    assert dkim.verify(raw[start:], dnsfunc=lambda name, timeout=5: record)


def rig_signers(rig) -> list[mimecompose.DKIMSigner]:
    """The rig's RSA and Ed25519 keys, in the order dkim= takes them."""
    return [mimecompose.DKIMSigner(domain="example.test", selector="rig",
                                   key=os.path.join(rig.keys, "rig.private")),
            mimecompose.DKIMSigner(domain="example.test", selector="rig-ed", algorithm="ed25519-sha256",
                                   key=os.path.join(rig.keys, "rig-ed.private"))]


def eight_bit(subject: str) -> mimecompose.Part:
    """8-bit text without Date or Message-ID: what sendmessage stamps is signed too."""
    return mimecompose.initialize("text/plain", string="Schöne Grüße,  über 8BITMIME.\n",
                                  params={"charset": "utf-8"}, encoding="8bit",
                                  header=[("From", "bob@example.test"), ("To", "alice@example.test"),
                                          ("Subject", subject)])


def test_opendkim_passes_what_sendmessage_signs_with_dkim(dkim_rig):
    """sendmessage(dkim=[rsa, ed25519]): the stamped, 8-bit transmitted form
    with a header= addition, signed twice as sent; both pass."""
    subject = marker()
    send(dkim_rig, eight_bit(subject), dkim=rig_signers(dkim_rig), header=[("X-Campaign", "rig")])
    raw = fetch(dkim_rig, subject)
    verdicts = results(raw)
    assert len(verdicts) == 2 and all(v.startswith("pass") for v in verdicts), verdicts
    assert b"X-Campaign: rig" in raw and raw.count(b"DKIM-Signature:") == 2


def test_opendkim_passes_what_a_client_signs_for_each_message(dkim_rig):
    subjects = [marker(), marker()]
    with smtpsend.connect("localhost", port=dkim_rig.dkim_port, ssl_context=dkim_rig.context,
                          dkim=rig_signers(dkim_rig)[0]) as smtp:
        smtp.sendmessage(eight_bit(subjects[0]))
        assert smtp.sendmessages([eight_bit(subjects[1])]) == [[]]
    for subject in subjects:
        verdicts = results(fetch(dkim_rig, subject))
        assert len(verdicts) == 1 and verdicts[0].startswith("pass"), verdicts
