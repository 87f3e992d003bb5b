"""DKIM signing (mimecompose.DKIMSigner), checked by an independent verifier:
dkimpy, given the test's own public key records instead of DNS."""

from __future__ import annotations

import datetime
import pathlib
import pickle
import re
import subprocess
import sys
import tracemalloc
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

dkim = pytest.importorskip("dkim", reason="dkimpy is the independent verifier (the test extra)")
pytest.importorskip("nacl", reason="dkimpy verifies Ed25519 with PyNaCl (the test extra)")
from cryptography.hazmat.primitives import serialization as ser  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

import mimecompose  # noqa: E402
from mimecompose import DKIMSigner, MimeError, _dkim  # noqa: E402
from mimecompose._serialize import iter_part  # noqa: E402

from dkimverify import pem, verify  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
SHARED = HERE.parent.parent / "shared" / "corpus" / "messages"
PAIRS = ["relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple"]
ALGORITHMS = ["rsa-sha256", "ed25519-sha256"]


def signer_for(keys, algorithm="rsa-sha256", **options) -> DKIMSigner:
    options.setdefault("domain", "example.com")
    options.setdefault("selector", "s2026" if algorithm == "rsa-sha256" else "e2026")
    return DKIMSigner(key=pem(keys[algorithm]), algorithm=algorithm, **options)


def tags(value: str) -> dict[str, str]:
    unfolded = re.sub(r"\s+", "", value)
    return dict(t.split("=", 1) for t in unfolded.split(";") if t)


@pytest.fixture
def frozen(monkeypatch):
    """The signers' clock stopped at the current second (t= stays the same
    across two signatures)."""
    import time
    now = int(time.time())
    monkeypatch.setattr(_dkim, "time", types.SimpleNamespace(time=lambda: now))
    return now


def nested_message() -> mimecompose.Part:
    """multipart/mixed > (multipart/alternative > text 8bit + html), a
    binary attachment, and a forwarded message."""
    text = mimecompose.initialize("text/plain", string="Grüße aus Köln,  \n mit   Leerzeichen \t\n\n\n",
                                  params={"charset": "utf-8"}, encoding="8bit")
    html = mimecompose.initialize("text/html", string="<p>Grüße</p>\n", params={"charset": "utf-8"})
    alternative = mimecompose.initialize("multipart/alternative", parts=[text, html])
    attachment = mimecompose.initialize("application/octet-stream", string=bytes(range(256)) * 4,
                                        disposition="attachment", filename="Daten März.bin")
    inner = mimecompose.initialize("text/plain", string="forwarded\n",
                                   header=[("From", "x@example.org"), ("Subject", "inner")])
    forwarded = mimecompose.initialize("message/rfc822", parts=[inner])
    return mimecompose.initialize("multipart/mixed", parts=[alternative, attachment, forwarded], header=[
        ("From", "Jörg <joerg@example.com>"), ("To", "a@example.net, b@example.net"),
        ("Cc", "c@example.net"), ("Subject", "Grüße  und   Anhänge"), ("Date", "Tue, 01 Dec 2026 10:00:00 +0000"),
        ("Message-ID", "<nested@example.com>"), ("X-Mailer", "tests")])


# ---------------------------------------------------------------- accepted by dkimpy

@pytest.mark.parametrize("canonicalization", PAIRS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nested_8bit_message_verifies(keys, algorithm, canonicalization):
    signer = signer_for(keys, algorithm, canonicalization=canonicalization)
    signed = signer.sign(nested_message())
    assert signed.startswith(b"DKIM-Signature: v=1; a=" + algorithm.encode())
    assert verify(signed, signer)
    assert b"\r\n" in signed and re.search(rb"(?<!\r)\n|\r(?!\n)", signed) is None
    assert tags(signed.split(b"\r\n\r\n")[0].decode("utf-8"))["c"].startswith(canonicalization)


@pytest.mark.parametrize("canonicalization", PAIRS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_changed_byte_is_rejected(keys, algorithm, canonicalization):
    signer = signer_for(keys, algorithm, canonicalization=canonicalization)
    signed = signer.sign(nested_message())
    assert verify(signed, signer)
    subject = signed.replace(b"\r\nSubject: ", b"\r\nSubject: X", 1)
    assert subject != signed and not verify(subject, signer)
    to = signed.replace(b"a@example.net", b"a@example.nef", 1)
    assert to != signed and not verify(to, signer)
    body = signed.replace(b"PHA+R3LDvMOfZTwvcD4", b"PHA+R3LDvMOfZTwvcD5", 1)
    assert body != signed and not verify(body, signer)
    forwarded = signed.replace(b"forwarded", b"forwardee", 1)
    assert forwarded != signed and not verify(forwarded, signer)


def test_what_relaxed_canonicalization_forgives(keys):
    """Relaxed tolerates what relays do to white space and folding; simple
    does not. (The test of the rule, and that the verifier is not lenient.)"""
    message = nested_message()
    for canonicalization, expected in (("relaxed/relaxed", True), ("simple/simple", False)):
        signer = signer_for(keys, canonicalization=canonicalization)
        signed = signer.sign(message)
        refolded = signed.replace(b"\r\nSubject: ", b"\r\nSubject:\r\n\t ", 1)
        respaced = signed.replace(b"mit   Leerzeichen", b"mit Leerzeichen", 1)   # inside the 8-bit text
        assert verify(refolded, signer) is expected
        assert verify(respaced, signer) is expected
        assert verify(signed, signer)


def test_oversigned_fields_cannot_be_added(keys):
    signer = signer_for(keys)
    signed = signer.sign(nested_message())
    signature, rest = signed.split(b"\r\nFrom: ", 1)
    listed = tags(signature.decode())["h"].split(":")
    assert listed.count("from") == 2 and listed.count("subject") == 2 and listed.count("to") == 2
    assert "reply-to" in listed and "x-mailer" not in listed and "l" not in tags(signature.decode())
    for added in (b"From: boss@example.com", b"Subject: urgent", b"Reply-To: thief@example.org",
                  b"Cc: more@example.org"):
        assert not verify(signature + b"\r\n" + added + b"\r\nFrom: " + rest, signer), added
    # a field the signature does not cover may be added (relays add Received)
    assert verify(signature + b"\r\nX-Added: fine\r\nFrom: " + rest, signer)
    plain = signer_for(keys, oversign=False)
    signed = plain.sign(nested_message())
    signature, rest = signed.split(b"\r\nFrom: ", 1)
    assert tags(signature.decode())["h"].split(":").count("subject") == 1
    assert verify(signature + b"\r\nSubject: urgent\r\nFrom: " + rest, plain)   # what oversigning prevents


def test_dual_signature_rsa_then_ed25519(keys):
    rsa_signer, ed_signer = signer_for(keys, "rsa-sha256"), signer_for(keys, "ed25519-sha256")
    twice = ed_signer.sign(rsa_signer.sign(nested_message()))
    assert twice.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256")
    assert twice.count(b"DKIM-Signature:") == 2
    assert verify(twice, rsa_signer, ed_signer, index=0)
    assert verify(twice, rsa_signer, ed_signer, index=1)


def test_identity_and_expiry_tags(keys, frozen):
    signer = signer_for(keys, identity="news=letter@mail.example.com", expires=3600)
    signed = signer.sign(nested_message())
    found = tags(signed.split(b"\r\nFrom: ")[0].decode())
    assert found["i"] == "news=3Dletter@mail.example.com"
    assert int(found["t"]) == frozen and int(found["x"]) == frozen + 3600
    assert verify(signed, signer)
    later = datetime.datetime.fromtimestamp(frozen + 60, datetime.timezone.utc)
    found = tags(signer_for(keys, expires=later).signature(nested_message()))
    assert int(found["x"]) == frozen + 60 and "i" not in found
    past = signer_for(keys, expires=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
    with pytest.raises(MimeError, match="not after the signing time"):
        past.sign(nested_message())


def test_seven_bit_downgraded_form_verifies_and_the_8bit_signature_does_not(keys):
    """Sign what is transmitted: the signature of the 8-bit form breaks when
    a relay downgrades it; the signature of the downgraded form holds."""
    signer = signer_for(keys)
    message = nested_message()
    eight = signer.sign(message)
    seven = b"".join(iter_part(message, root=True, seven_bit=True))
    assert seven.isascii() and not eight.split(b"\r\n\r\n", 1)[1].isascii()
    signed_seven = signer.sign(iter_part(message, root=True, seven_bit=True))
    assert verify(signed_seven, signer)
    header = eight.split(b"\r\nFrom: ")[0]
    assert not verify(header + b"\r\n" + seven, signer)


def test_signature_is_the_field_that_sign_writes(keys, frozen):
    for algorithm in ALGORITHMS:
        signer = signer_for(keys, algorithm)
        part = nested_message()
        value = signer.signature(part)
        signed = signer.sign(part)
        if algorithm == "ed25519-sha256":        # deterministic signatures: the same bytes
            assert signed == b"DKIM-Signature: " + value.encode() + b"\r\n" + part.buildmessage()
        assert verify(b"DKIM-Signature: " + value.encode() + b"\r\n" + part.buildmessage(), signer)
        lines = ("DKIM-Signature: " + value).split("\r\n")
        assert len(lines) > 2 and all(len(line) <= 78 for line in lines)
        assert all(line[:1] == " " for line in lines[1:])


def test_part_bytes_lf_bytes_and_chunks_sign_alike(keys, frozen):
    signer = signer_for(keys, "ed25519-sha256")
    part = nested_message()
    data = part.buildmessage()
    expected = signer.signature(part)
    assert signer.signature(data) == expected
    assert signer.signature(bytearray(data)) == expected
    assert signer.signature(memoryview(data)) == expected
    assert signer.signature(data.replace(b"\r\n", b"\n")) == expected
    assert signer.signature(data[i:i + 7] for i in range(0, len(data), 7)) == expected
    signed = signer.sign(data.replace(b"\r\n", b"\n"))
    assert b"\n" not in signed.replace(b"\r\n", b"") and verify(signed, signer)


@pytest.mark.parametrize("message", [
    b"From: a@example.com\r\nSubject: no body\r\n",            # no empty line at all
    b"From: a@example.com\r\nSubject: empty body\r\n\r\n",
    b"From: a@example.com\r\n\r\n\r\n\r\n\r\n",                # only empty lines
    b"From: a@example.com\r\n\r\n \t \r\n\t\r\n",              # only white space
    b"From: a@example.com\r\n\r\nno final line break",
    b"From: a@example.com\r\n\r\ntrailing space at the end  ",
    b"From: a@example.com\r\n\r\nbare\rCR and bare\nLF\r\n",
])
@pytest.mark.parametrize("canonicalization", PAIRS)
def test_edge_bodies_verify(keys, message, canonicalization):
    signer = signer_for(keys, "ed25519-sha256", canonicalization=canonicalization)
    signed = signer.sign(message)
    assert verify(signed, signer)
    assert signed.endswith(b"\r\n")


def test_empty_body_hashes_as_the_rfc_says(keys):
    """RFC 6376 3.4.3 and 3.4.4: an empty body is one CRLF for simple and
    nothing for relaxed (the SHA-256 values given in the RFC's errata)."""
    message = b"From: a@example.com\r\n\r\n"
    simple = tags(signer_for(keys, canonicalization="simple/simple").signature(message))["bh"]
    relaxed = tags(signer_for(keys, canonicalization="relaxed/relaxed").signature(message))["bh"]
    assert simple == "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY="
    assert relaxed == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


# ---------------------------------------------------------------- real messages

@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.eml")), ids=lambda p: p.name)
def test_corpus_messages_resigned(keys, path):
    raw = path.read_bytes()
    part = mimecompose.initialize(string=raw)
    signer = signer_for(keys, "ed25519-sha256")
    if not part.getheader("From"):
        with pytest.raises(MimeError, match="no From field"):
            signer.sign(part)
        return
    for message in (part, raw):
        signed = signer.sign(message)
        try:
            accepted = verify(signed, signer)
        except dkim.MessageFormatError:
            # dkimpy refuses a header line without a colon; ours is signed all the same
            assert any(b":" not in line for line in raw.split(b"\n\n")[0].splitlines()[1:])
            continue
        assert accepted, path.name
        assert signed.endswith(part.buildmessage() if message is part else signed[-1:])


def test_shared_corpus_sample_resigned(keys):
    if not SHARED.is_dir():
        pytest.skip("the shared corpus (../shared/corpus/messages) is not next to the repository")
    files = sorted(p for p in SHARED.rglob("*") if p.is_file())[::40]
    signer = signer_for(keys, "ed25519-sha256", canonicalization="simple/simple")
    verified = 0
    for path in files:
        part = mimecompose.initialize(string=path.read_bytes())
        if not part.getheader("From"):
            continue
        signed = signer.sign(part)
        try:
            ok = verify(signed, signer)
        except (dkim.MessageFormatError, dkim.ValidationError):
            continue
        assert ok, path
        verified += 1
    assert verified >= len(files) // 2


# ---------------------------------------------------------------- property tests against dkimpy

_NAMES = st.sampled_from(["From", "To", "Subject", "Cc", "Reply-To", "X-Test", "subject", "Date"])
_TEXT = st.binary(max_size=30).map(lambda b: bytes(c for c in b if c not in b"\r\n\x0b\x0c"))
_VALUE = st.lists(st.tuples(_TEXT, st.sampled_from([b" ", b"\t", b"  \t"])), max_size=4).map(
    lambda pieces: b"".join(text + (b"\r\n" + wsp if n % 2 else wsp) for n, (text, wsp) in enumerate(pieces)))
_BODY = st.lists(st.one_of(st.binary(max_size=20), st.sampled_from(
    [b"\r\n", b" ", b"\t", b" \r\n", b"\r\n\r\n", b"\n", b"\r", b" \t "])), max_size=30).map(b"".join)


@settings(max_examples=150)
@given(fields=st.lists(st.tuples(_NAMES, _VALUE), max_size=8), body=_BODY,
       canonicalization=st.sampled_from(PAIRS), oversign=st.booleans())
def test_arbitrary_headers_and_bodies_verify(keys, fields, body, canonicalization, oversign):
    header = b"From: a@example.com\r\n" + b"".join(
        name.encode() + b":" + value + b"\r\n" for name, value in fields)
    message = header + b"\r\n" + body
    signer = signer_for(keys, "ed25519-sha256", canonicalization=canonicalization, oversign=oversign)
    signed = signer.sign(message)
    assert verify(signed, signer)


@settings(max_examples=150)
@given(body=_BODY, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_body_hash_matches_dkimpy_however_the_stream_is_cut(keys, body, cuts):
    from dkim.canonicalization import Relaxed, Simple
    import base64
    import hashlib
    message = b"From: a@example.com\r\n\r\n" + body
    wire = b"".join(_dkim._wire(iter([message])))
    wire_body = wire.split(b"\r\n\r\n", 1)[1]
    bounds = sorted({min(c, len(message)) for c in cuts} | {0, len(message)})
    pieces = [message[a:b] for a, b in zip(bounds, bounds[1:])]
    for canonicalization, algorithm in (("relaxed/relaxed", Relaxed), ("simple/simple", Simple)):
        expected = base64.b64encode(hashlib.sha256(algorithm.canonicalize_body(wire_body)).digest()).decode()
        signer = signer_for(keys, "ed25519-sha256", canonicalization=canonicalization)
        assert tags(signer.signature(iter(pieces)))["bh"] == expected


# ---------------------------------------------------------------- bounded memory, linear work

def test_200_mb_attachment_signs_in_bounded_memory(keys, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        fh.truncate(200 << 20)             # sparse: 200 MiB read back from the file
    part = mimecompose.compose("see attached", attachments=[str(big)],
                               header=[("From", "a@example.com"), ("To", "b@example.com")])
    signer = signer_for(keys, "ed25519-sha256")
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        value = signer.signature(part)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20, f"peak {peak / 1e6:.1f} MB"
    print(f"200 MiB attachment: DKIM signature peak memory {peak / 1e6:.2f} MB")
    assert len(tags(value)["bh"]) == 44


def test_hostile_bodies_finish(keys):
    """Inputs that a per-line or quadratic canonicalizer would choke on:
    merely finishing proves linearity here (no timing is asserted)."""
    signer = signer_for(keys, "ed25519-sha256")
    for body in (b"\r\n" * (1 << 20), b" \t" * (1 << 20), b"x" * (4 << 20), (b" " * 999 + b"\r\n") * 2000):
        for canonicalization in ("relaxed/relaxed", "simple/simple"):
            signer = signer_for(keys, "ed25519-sha256", canonicalization=canonicalization)
            assert verify(signer.sign(b"From: a@example.com\r\n\r\n" + body), signer)
    # the same content in tiny chunks: held-back state stays a few bytes
    chunks = iter([b"From: a@example.com\r\n\r\n"] + [b" \r", b"\n\t", b"\r"] * 100000)
    assert len(tags(signer.signature(chunks))["bh"]) == 44
    # a field of a million folded lines (dkimpy's own parser is quadratic in
    # that, so the work is counted in the signer: one pass over the lines)
    folded = b"From: a@example.com\r\nX-Long: " + b"a\r\n " * (1 << 20) + b"\r\n\r\nbody\r\n"
    fields = _dkim._fields(_dkim._split(iter([folded]))[0])
    assert [name for name, _ in fields] == [b"from", b"x-long"] and len(fields[1][1]) == 8 + 4 * (1 << 20)
    signed = signer_for(keys, "ed25519-sha256", headers=["From", "X-Long"]).sign(folded)
    assert signed.endswith(folded)
    small = b"From: a@example.com\r\nX-Long: " + b"a\r\n " * 1000 + b"\r\n\r\nbody\r\n"
    long_signer = signer_for(keys, "ed25519-sha256", headers=["From", "X-Long"])
    assert verify(long_signer.sign(small), long_signer)
    assert not verify(long_signer.sign(small).replace(b"a\r\n a", b"a\r\n b", 1), long_signer)


# ---------------------------------------------------------------- arguments

def test_keys_from_pem_text_path_and_object(keys, tmp_path):
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem(keys["rsa-sha256"]))
    pkcs1 = keys["rsa-sha256"].private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL,
                                             ser.NoEncryption())
    records = set()
    for key in (pem(keys["rsa-sha256"]), pem(keys["rsa-sha256"]).decode(), str(path), path, pkcs1,
                keys["rsa-sha256"]):
        signer = DKIMSigner(domain="example.com", selector="s2026", key=key)
        records.add(signer.dns_record())
        assert verify(signer.sign(nested_message()), signer)
    assert len(records) == 1 and records.pop().startswith("v=DKIM1; k=rsa; p=MIIB")
    ed = DKIMSigner(domain="example.com", selector="e", key=pem(keys["ed25519-sha256"]),
                    algorithm="ed25519-sha256")
    assert re.fullmatch(r"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=", ed.dns_record())
    assert ed.dns_name == "e._domainkey.example.com"


def test_a_1024_bit_rsa_key_is_the_minimum(tmp_path):
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    signer = DKIMSigner(domain="example.com", selector="s", key=pem(small))
    assert verify(signer.sign(nested_message()), signer)
    short = tmp_path / "short.pem"
    made = subprocess.run(["openssl", "genrsa", "-out", str(short), "768"], capture_output=True)
    if made.returncode:
        pytest.skip(f"openssl cannot make a 768-bit key here: {made.stderr!r}")
    with pytest.raises(ValueError, match="768 bits is too short: RFC 8301"):
        DKIMSigner(domain="example.com", selector="s", key=str(short))


@pytest.mark.parametrize("options,message", [
    (dict(domain="exa_mple.com"), "not a valid DNS name"),
    (dict(domain="localhost"), "not a valid DNS name"),
    (dict(domain="-bad.example.com"), "not a valid DNS name"),
    (dict(domain="a..example.com"), "not a valid DNS name"),
    (dict(domain="example.com."), "not a valid DNS name"),
    (dict(domain="example.com; s=evil"), "not a valid DNS name"),
    (dict(domain="bücher.example"), "A-label"),
    (dict(domain="x" * 64 + ".com"), "not a valid DNS name"),
    (dict(domain=b"example.com"), "must be a str"),
    (dict(selector="s_2026"), "not a valid DNS name"),
    (dict(selector="s;h=from"), "not a valid DNS name"),
    (dict(selector=""), "not a valid DNS name"),
    (dict(selector="s\r\nBcc: x"), "not a valid DNS name"),
    (dict(algorithm="rsa-sha1"), "RFC 8301"),
    (dict(algorithm="RSA"), "algorithm must be one of"),
    (dict(algorithm="ed25519-sha256"), "this is an RSA key"),
    (dict(canonicalization="relaxed"), "canonicalization must be one of"),
    (dict(canonicalization="nowsp/simple"), "canonicalization must be one of"),
    (dict(headers=["To", "Subject"]), "must include From"),
    (dict(headers=[]), "must include From"),
    (dict(headers="From:To"), "list of field names"),
    (dict(headers=["From", "Bad Name"]), "not a header field name"),
    (dict(headers=["From", "To:"]), "not a header field name"),
    (dict(identity="a@example.org"), "subdomain"),
    (dict(identity="a@notexample.com"), "subdomain"),
    (dict(identity="example.com"), "local@domain"),
    (dict(identity="a b@example.com"), "dot-atom"),
    (dict(identity="a;b@example.com"), "dot-atom"),
    (dict(expires=0), "positive"),
    (dict(expires=datetime.timedelta(seconds=-5)), "positive"),
    (dict(expires=datetime.datetime(2030, 1, 1)), "aware"),
    (dict(expires=True), "seconds"),
    (dict(expires="tomorrow"), "seconds"),
])
def test_bad_arguments_are_value_errors_at_construction(keys, options, message):
    arguments = dict(domain="example.com", selector="s", key=pem(keys["rsa-sha256"]))
    arguments.update(options)
    with pytest.raises(ValueError, match=re.escape(message)):
        DKIMSigner(**arguments)


def test_bad_keys(keys, tmp_path):
    encrypted = keys["rsa-sha256"].private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                                 ser.BestAvailableEncryption(b"pw"))
    ec_key = pem(ec.generate_private_key(ec.SECP256R1()))
    public = keys["rsa-sha256"].public_key().public_bytes(ser.Encoding.PEM,
                                                          ser.PublicFormat.SubjectPublicKeyInfo)
    garbage = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    for key, message in ((encrypted, "encrypted"), (ec_key, "needs an RSA key"), (garbage, "not a PEM private key"),
                         (public, "not a PEM private key"), (b"not a key", "not in PEM form"),
                         (str(tmp_path / "missing.pem"), "cannot read the key file"), (42, "not int")):
        with pytest.raises(ValueError, match=message):
            DKIMSigner(domain="example.com", selector="s", key=key)
    with pytest.raises(ValueError, match="this is an Ed25519 key"):
        DKIMSigner(domain="example.com", selector="s", key=pem(keys["ed25519-sha256"]))


def test_messages_that_cannot_be_signed(keys):
    signer = signer_for(keys)
    for message in (b"To: b@example.com\r\n\r\nbody", b"", b"\r\nFrom: a@example.com\r\n"):
        with pytest.raises(MimeError, match="no From field"):
            signer.sign(message)
    for message in ("From: a@example.com\r\n\r\n", 42, [b"From: a@example.com\r\n", "text"]):
        with pytest.raises(MimeError):
            signer.signature(message)


def test_explicit_header_list(keys):
    signer = signer_for(keys, headers=["From", "Subject", "X-Mailer", "List-Id"])
    signed = signer.sign(nested_message())
    listed = tags(signed.split(b"\r\nFrom: ")[0].decode())["h"].split(":")
    assert listed == ["from", "from", "subject", "subject", "x-mailer", "x-mailer", "list-id"]
    assert verify(signed, signer)
    assert verify(signed.replace(b"\r\nTo: a@", b"\r\nTo: z@", 1), signer)    # To is not signed
    assert not verify(signed.replace(b"X-Mailer: tests", b"X-Mailer: other", 1), signer)
    exact = signer_for(keys, headers=["From", "List-Id"], oversign=False)
    assert tags(exact.signature(nested_message()))["h"] == "from"


def test_no_secret_in_repr_vars_or_pickle(keys):
    signer = signer_for(keys)
    key_pem = pem(keys["rsa-sha256"])
    body = key_pem.split(b"\n")[1].decode()
    assert "example.com" in repr(signer) and body not in repr(signer) + str(signer)
    assert body not in repr(vars(signer)) and not any(isinstance(v, bytes) for v in vars(signer).values())
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(signer)


def test_missing_cryptography_names_the_extra(keys, tmp_path):
    """Without cryptography: importing mimecompose works, making a signer
    raises ImportError naming the extra."""
    key = tmp_path / "k.pem"
    key.write_bytes(pem(keys["ed25519-sha256"]))
    code = (
        "import sys\n"
        "sys.modules['cryptography'] = None\n"
        "import mimecompose\n"
        "try:\n"
        f"    mimecompose.DKIMSigner(domain='example.com', selector='s', key={str(key)!r},\n"
        "                           algorithm='ed25519-sha256')\n"
        "except ImportError as exc:\n"
        "    print('ImportError:', exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ImportError: DKIM signing needs the 'cryptography' package" in result.stdout
    assert "mimecompose-smtpsend[dkim]" in result.stdout
    imported = subprocess.run([sys.executable, "-c", "import sys, mimecompose; "
                               "print('cryptography' in sys.modules)"], capture_output=True, text=True)
    assert imported.stdout.strip() == "False"


# ---------------------------------------------------------------- signed bytes through sendmessage

def test_signed_bytes_survive_sendmessage(keys):
    """Until dkim= is on the send paths, signed bytes are what to send: the
    Date and Message-ID a sender adds (above the signature) leave it valid;
    an 8-bit body downgraded for a server without 8BITMIME does not, which
    is why the signature must be made over the form that is transmitted."""
    import smtpsend
    from smtpsend.testing import CaptureServer
    signer = signer_for(keys)
    bare = mimecompose.compose("Hello\n", header=[("From", "a@example.com"), ("To", "b@example.com"),
                                                  ("Subject", "no Date, no Message-ID")])
    seven = signer.sign(bare)
    eight = signer.sign(nested_message())
    with CaptureServer() as server:
        smtpsend.sendmessage(seven, servers=["localhost"], ports=[server.port])
        smtpsend.sendmessage(eight, servers=["localhost"], ports=[server.port])
        first, second = server.messages
    assert b"\r\nDate: " in first.data.split(b"DKIM-Signature:")[0] or first.data.startswith(b"Date: ")
    assert verify(first.data, signer) and verify(second.data, signer)
    with CaptureServer(extensions=("PIPELINING",)) as server:        # no 8BITMIME: downgraded
        smtpsend.sendmessage(eight, servers=["localhost"], ports=[server.port])
        [downgraded] = server.messages
    assert downgraded.data.isascii() and not verify(downgraded.data, signer)
