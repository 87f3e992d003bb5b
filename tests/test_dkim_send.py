"""dkim= on every send path (issue 17): what the server receives verifies
with dkimpy, an independent verifier given the test's own key records
instead of DNS -- in the form each server was sent (8-bit, or downgraded
to 7 bits for a server without 8BITMIME), with the Date/Message-ID stamps
and without Bcc, and SIZE= counting the signature fields."""

from __future__ import annotations

import asyncio
import email.message
import io
import os
import re
import subprocess
import sys
import tracemalloc

import pytest

dkim = pytest.importorskip("dkim", reason="dkimpy is the independent verifier (the test extra)")
pytest.importorskip("nacl", reason="dkimpy verifies Ed25519 with PyNaCl (the test extra)")

import mimecompose  # noqa: E402
import smtpsend  # noqa: E402
from mimecompose import DKIMSigner, MimeError  # noqa: E402
from smtpsend import cli  # noqa: E402
from smtpsend._data import MessageData  # noqa: E402
from smtpsend.testing import CaptureServer  # noqa: E402

from dkimverify import pem, verify  # noqa: E402

ALGORITHMS = ["rsa-sha256", "ed25519-sha256"]
NO_8BITMIME = ("PIPELINING", "SIZE 10485760", "ENHANCEDSTATUSCODES")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def signers(keys):
    return {algorithm: DKIMSigner(domain="example.com", selector="r2026" if algorithm == "rsa-sha256" else "e2026",
                                  key=pem(keys[algorithm]), algorithm=algorithm)
            for algorithm in ALGORITHMS}


def signature_tags(message: bytes, index: int = 0) -> dict[str, str]:
    """The tags of the ``index``-th DKIM-Signature field of ``message``."""
    fields = re.findall(rb"^DKIM-Signature:((?:[^\r\n]|\r\n[ \t])*)\r\n", message, re.M)
    unfolded = re.sub(r"\s+", "", fields[index].decode("ascii"))
    return dict(t.split("=", 1) for t in unfolded.split(";") if t)


def letter(**header: str) -> mimecompose.Part:
    """8-bit text with Bcc, and no Date or Message-ID of its own (stamped when sent)."""
    fields = [("From", "Reports <reports@example.com>"), ("To", "team@example.com"),
              ("Bcc", "audit@example.com"), ("Subject", "Monatsbericht für März")]
    fields += list(header.items())
    return mimecompose.initialize("text/plain", string="Grüße,  mit Leerzeichen \nund Umlauten.\n",
                                  params={"charset": "utf-8"}, encoding="8bit", header=fields)


def at(server: CaptureServer) -> list[str]:
    return [f"127.0.0.1:{server.port}"]


def size_param(captured) -> int:
    [size] = [int(p[5:]) for p in captured.esmtp_params if p.upper().startswith("SIZE=")]
    return size


def check_received(captured, *signers: DKIMSigner, seven_bit: bool = False) -> bytes:
    """The message as received: every signature verifies, the stamps are
    signed, Bcc went nowhere but the envelope, SIZE= was its length."""
    data = captured.data
    assert data.startswith(b"DKIM-Signature: ")
    assert data.count(b"DKIM-Signature: ") == len(signers)
    for index in range(len(signers)):
        assert verify(data, *signers, index=index), index
        names = signature_tags(data, index)["h"].split(":")
        assert {"from", "date", "message-id", "mime-version"} <= set(names)
    assert b"\nBcc:" not in data and b"audit@example.com" not in data
    assert "audit@example.com" in captured.envelope.recipients
    if any(p.upper().startswith("SIZE=") for p in captured.esmtp_params):
        assert size_param(captured) == len(data)
    body = data.split(b"\r\n\r\n", 1)[1]
    assert body.isascii() is seven_bit
    assert ("BODY=8BITMIME" in captured.esmtp_params) is not seven_bit
    return data


# ---------------------------------------------------------------- sendmessage

@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_sendmessage_signs_what_is_transmitted(signers, algorithm):
    with CaptureServer() as server:
        assert smtpsend.sendmessage(letter(), servers=at(server), dkim=signers[algorithm]) == []
        data = check_received(server.messages[0], signers[algorithm])
    assert signature_tags(data)["a"] == algorithm
    changed = data.replace(b"Umlauten", b"Umlautem", 1)
    assert changed != data and not verify(changed, signers[algorithm])


def test_dual_signatures_the_last_signer_first(signers):
    """dkim=[rsa, ed25519]: each signs in turn and its field goes above the
    ones before it (RFC 6376 section 5.6), so the Ed25519 field is first."""
    pair = [signers["rsa-sha256"], signers["ed25519-sha256"]]
    with CaptureServer() as server:
        smtpsend.sendmessage(letter(), servers=at(server), dkim=pair)
        data = check_received(server.messages[0], *pair)
    assert signature_tags(data, 0)["a"] == "ed25519-sha256"
    assert signature_tags(data, 1)["a"] == "rsa-sha256"


def test_a_server_without_8bitmime_gets_the_downgraded_form_signed(signers):
    signer = signers["rsa-sha256"]
    with CaptureServer(extensions=NO_8BITMIME) as server:
        smtpsend.sendmessage(letter(), servers=at(server), dkim=signer)
        data = check_received(server.messages[0], signer, seven_bit=True)
    assert data.isascii() and b"Content-Transfer-Encoding: quoted-printable" in data


def test_failover_signs_the_form_each_server_takes(signers):
    """The first server lacks 8BITMIME and refuses MAIL with 451 (after the
    7-bit form was worked out for it); the second takes 8-bit: each got a
    signature for its own form, and what it received verifies."""
    signer = signers["ed25519-sha256"]
    first = CaptureServer(extensions=NO_8BITMIME, responses={"MAIL": (451, "4.3.0 try later")})
    second = CaptureServer()
    with first, second:
        smtpsend.sendmessage(letter(), servers=at(first) + at(second), dkim=signer)
        data = check_received(second.messages[0], signer)
        [mail] = [c for c in first.commands if c.startswith("MAIL")]
    eight_bit_size = len(data)
    seven_bit_size = int(re.search(r"SIZE=(\d+)", mail).group(1))
    assert seven_bit_size != eight_bit_size          # another form, another signature
    # and the other way round: the 7-bit server second
    first = CaptureServer(responses={"MAIL": (451, "4.3.0 try later")})
    second = CaptureServer(extensions=NO_8BITMIME)
    with first, second:
        smtpsend.sendmessage(letter(), servers=at(first) + at(second), dkim=signer)
        check_received(second.messages[0], signer, seven_bit=True)
        assert "BODY=8BITMIME" in [c for c in first.commands if c.startswith("MAIL")][0]


def test_size_counts_the_signature_fields(signers):
    """A server whose SIZE is just above the unsigned message is told the
    signed size, and refused before any data (MessageTooBig)."""
    signer = signers["rsa-sha256"]
    part = letter(Date="Tue, 01 Dec 2026 10:00:00 +0000", **{"Message-ID": "<size-1@example.com>"})
    _, unsigned = smtpsend.transmitted(part)
    _, signed = smtpsend.transmitted(part, dkim=signer)
    assert len(signed) > len(unsigned) + 100
    extensions = ("PIPELINING", "8BITMIME", f"SIZE {len(unsigned) + 10}")
    with CaptureServer(extensions=extensions) as server:
        with pytest.raises(smtpsend.MessageTooBig):
            smtpsend.sendmessage(part, servers=at(server), dkim=signer)
        assert not any(c.startswith(("MAIL", "DATA", "BDAT")) for c in server.commands)
        assert server.received == 0
    with CaptureServer(extensions=extensions) as server:     # unsigned, it fits
        smtpsend.sendmessage(part, servers=at(server))
        assert server.received == 1


def test_header_additions_are_signed(keys):
    signer = DKIMSigner(domain="example.com", selector="h2026", key=pem(keys["rsa-sha256"]),
                        headers=["From", "To", "Subject", "X-Campaign", "Date", "Message-ID", "MIME-Version"])
    with CaptureServer() as server:
        smtpsend.sendmessage(letter(), servers=at(server), dkim=signer,
                             header=[("Subject", "Ersetzt"), ("X-Campaign", "spring-2026")])
        data = server.messages[0].data
    assert verify(data, signer)
    names = signature_tags(data)["h"].split(":")
    assert "x-campaign" in names and b"X-Campaign: spring-2026\r\n" in data
    assert b"Subject: Ersetzt\r\n" in data and b"Monatsbericht" not in data
    for before, after in ((b"spring-2026", b"autumn-2026"), (b"Ersetzt", b"Ersetzx")):
        assert not verify(data.replace(before, after, 1), signer)


def test_raw_bytes_and_stdlib_messages_are_signed(signers):
    signer = signers["ed25519-sha256"]
    raw = (b"From: a@example.com\nTo: b@example.com\nBcc: hidden@example.com\nSubject: raw\n\n"
           b".a line that starts with a dot\nno final line break")
    stdlib = email.message.EmailMessage()
    stdlib["From"], stdlib["To"], stdlib["Subject"] = "a@example.com", "b@example.com", "Grüße"
    stdlib.set_content("Grüße aus Köln\n")
    with CaptureServer() as server:
        for message in (raw, stdlib):
            smtpsend.sendmessage(message, servers=at(server), dkim=signer)
        received = [m.data for m in server.messages]
    for data in received:
        assert verify(data, signer)
    assert b"\r\n.a line that starts with a dot\r\nno final line break\r\n" in received[0]
    assert b"hidden@example.com" not in received[0]


def test_binary_parts_are_sent_base64_when_signed(signers):
    """DKIM reads a body as lines: a part labelled binary is sent in the
    7-bit form (base64) when signing, even to a server with BINARYMIME."""
    signer = signers["rsa-sha256"]
    blob = mimecompose.initialize("application/octet-stream", string=bytes(range(256)) * 4, encoding="binary")
    part = mimecompose.initialize("multipart/mixed", parts=[mimecompose.initialize("text/plain", string="x\n"), blob],
                                  header=[("From", "a@example.com"), ("To", "b@example.com")])
    extensions = ("PIPELINING", "8BITMIME", "CHUNKING", "BINARYMIME", "SIZE 10485760")
    with CaptureServer(extensions=extensions) as server:
        smtpsend.sendmessage(part, servers=at(server), dkim=signer)
        captured = server.messages[0]
    assert verify(captured.data, signer)
    assert b"Content-Transfer-Encoding: base64" in captured.data and b"binary" not in captured.data.lower()
    assert "BODY=BINARYMIME" not in captured.esmtp_params
    with CaptureServer(extensions=extensions) as server:     # unsigned, it goes as it is
        smtpsend.sendmessage(part, servers=at(server))
        assert "BODY=BINARYMIME" in server.messages[0].esmtp_params


# ---------------------------------------------------------------- asendmessage, Client

@pytest.mark.parametrize("seven_bit", [False, True], ids=["8bitmime", "7bit"])
def test_asendmessage_signs(signers, seven_bit):
    pair = [signers["rsa-sha256"], signers["ed25519-sha256"]]
    with CaptureServer(**({"extensions": NO_8BITMIME} if seven_bit else {})) as server:
        asyncio.run(smtpsend.asendmessage(letter(), servers=at(server), dkim=pair))
        check_received(server.messages[0], *pair, seven_bit=seven_bit)


def test_client_signs_with_the_connection_default_or_the_messages_own(signers):
    rsa_signer, ed_signer = signers["rsa-sha256"], signers["ed25519-sha256"]
    with CaptureServer() as server:
        with smtpsend.connect(at(server)[0], dkim=rsa_signer) as smtp:
            smtp.sendmessage(letter())                       # the connection's signer
            smtp.sendmessage(letter(), dkim=ed_signer)       # its own
            smtp.sendmessage(letter(), dkim=[])              # none
        default, own, unsigned = (m.data for m in server.messages)
    check_received(server.messages[0], rsa_signer)
    check_received(server.messages[1], ed_signer)
    assert signature_tags(default)["a"] == "rsa-sha256" and signature_tags(own)["a"] == "ed25519-sha256"
    assert b"DKIM-Signature" not in unsigned
    with CaptureServer(extensions=NO_8BITMIME) as server:
        with smtpsend.connect(at(server)[0]) as smtp:
            smtp.sendmessage(letter(), dkim=[rsa_signer, ed_signer])
        check_received(server.messages[0], rsa_signer, ed_signer, seven_bit=True)


@pytest.mark.parametrize("extensions", [None, NO_8BITMIME], ids=["pipelined-bdat", "7bit-data"])
def test_client_sendmessages_signs_every_message(signers, extensions):
    pair = [signers["rsa-sha256"], signers["ed25519-sha256"]]
    parts = [letter(**{"X-Number": str(n)}) for n in range(3)]
    with CaptureServer(**({"extensions": extensions} if extensions else {})) as server:
        with smtpsend.connect(at(server)[0], dkim=pair[0]) as smtp:
            outcomes = smtp.sendmessages(parts, dkim=pair)
        assert outcomes == [[], [], []]
        for captured in server.messages:
            check_received(captured, *pair, seven_bit=extensions is not None)
        if extensions is None:
            assert {m.via for m in server.messages} == {"BDAT"}


@pytest.mark.parametrize("extensions", [None, NO_8BITMIME], ids=["8bitmime", "7bit"])
def test_transport_signs_every_message(signers, extensions):
    pair = [signers["rsa-sha256"], signers["ed25519-sha256"]]
    with CaptureServer(**({"extensions": extensions} if extensions else {})) as server:
        with smtpsend.Transport(servers=at(server), dkim=pair) as transport:
            for _ in range(2):
                assert transport.sendmessage(letter()) == []
        for captured in server.messages:
            check_received(captured, *pair, seven_bit=extensions is not None)

        async def pooled() -> None:
            async with smtpsend.AsyncTransport(servers=at(server), dkim=pair[1]) as transport:
                await transport.sendmessage(letter())
        asyncio.run(pooled())
        check_received(server.messages[-1], pair[1], seven_bit=extensions is not None)
    with pytest.raises(TypeError, match=r"dkim="):
        smtpsend.Transport(servers=["127.0.0.1"], dkim="example.com")


def test_transport_takes_a_signer_per_message(signers):
    """Transport.sendmessage(dkim=): None keeps the transport's signer, a
    signer replaces it for that message, [] sends it unsigned."""
    rsa, ed = signers["rsa-sha256"], signers["ed25519-sha256"]
    with CaptureServer() as server:
        with smtpsend.Transport(servers=at(server), dkim=rsa) as transport:
            transport.sendmessage(letter())
            transport.sendmessage(letter(), dkim=ed)
            transport.sendmessage(letter(), dkim=[])
            transport.sendmessage(letter(), dkim=[rsa, ed])
            assert transport.stats.connections_opened == 1
        first, second, third, fourth = server.messages
        check_received(first, rsa)
        check_received(second, ed)
        assert b"DKIM-Signature" not in third.data
        check_received(fourth, rsa, ed)

        async def pooled() -> None:
            async with smtpsend.AsyncTransport(servers=at(server)) as atransport:
                await atransport.sendmessage(letter(), dkim=ed)
                await atransport.sendmessage(letter())
        asyncio.run(pooled())
        check_received(server.messages[-2], ed)
        assert b"DKIM-Signature" not in server.messages[-1].data


# ---------------------------------------------------------------- bad input, before connecting

@pytest.mark.parametrize("bad", ["example.com", {"domain": "example.com"}, 42, [None], b"key"])
def test_dkim_of_the_wrong_type_is_refused_before_connecting(signers, bad):
    with CaptureServer() as server:
        with pytest.raises(TypeError, match=r"dkim="):
            smtpsend.sendmessage(letter(), servers=at(server), dkim=bad)
        with pytest.raises(TypeError, match=r"dkim="):
            asyncio.run(smtpsend.asendmessage(letter(), servers=at(server), dkim=bad))
        with pytest.raises(TypeError, match=r"dkim="):
            smtpsend.connect(at(server)[0], dkim=bad)
        assert server.commands == []
        with smtpsend.connect(at(server)[0]) as smtp:
            with pytest.raises(TypeError, match=r"dkim="):
                smtp.sendmessage(letter(), dkim=bad)
            with pytest.raises(TypeError, match=r"dkim="):
                smtp.sendmessages([letter()], dkim=bad)
        assert not any(c.startswith("MAIL") for c in server.commands)
    with pytest.raises(TypeError, match=r"dkim="):
        smtpsend.transmitted(letter(), dkim=bad)


def test_a_signing_failure_is_raised_before_connecting(keys):
    import datetime
    expired = DKIMSigner(domain="example.com", selector="x2026", key=pem(keys["ed25519-sha256"]),
                         algorithm="ed25519-sha256",
                         expires=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
    with CaptureServer() as server:
        with pytest.raises(MimeError, match="not after the signing time"):
            smtpsend.sendmessage(letter(), servers=at(server), dkim=expired)
        with pytest.raises(MimeError, match="not after the signing time"):
            asyncio.run(smtpsend.asendmessage(letter(), servers=at(server), dkim=expired))
        assert server.commands == []


def test_missing_cryptography_is_the_signers_error_and_nothing_is_sent():
    code = ("import sys\nsys.modules['cryptography'] = None\nimport mimecompose, smtpsend\n"
            "try:\n    signer = mimecompose.DKIMSigner(domain='example.com', selector='s', key=b'')\n"
            "except ImportError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "pip install 'mimecompose-smtpsend[dkim]'" in result.stdout


# ---------------------------------------------------------------- the measured-while-sending path

def test_a_large_message_is_signed_and_sent_as_measured(monkeypatch, signers):
    """Over the in-memory threshold the message is serialised again for
    each use: signed over the octets measured, and a change between the
    passes is MessageChanged, never a signature over other bytes."""
    monkeypatch.setattr(smtpsend._data, "_KEEP", 1000)
    signer = signers["ed25519-sha256"]
    part = letter()
    lines = [b"From: a@example.com\r\nTo: b@example.com\r\n\r\n"] + [b"line %d\r\n" % n for n in range(2000)]
    data = MessageData(lambda: iter(lines), dkim=[signer])
    octets = b"".join(data.chunks())
    assert len(octets) == data.size and data.head == octets[:len(data.head)]
    assert verify(octets, signer)
    assert octets.startswith(data.signature) and data.signature.endswith(b"\r\n")
    versions = [lines, lines, lines[:-1] + [b"line X\r\n"]]      # measured, signed, then changed
    changing = MessageData(lambda: iter(versions.pop(0) if len(versions) > 1 else versions[0]), dkim=[signer])
    with pytest.raises(smtpsend.MessageChanged):
        b"".join(changing.chunks())
    versions = [lines, lines[:-1] + [b"line X\r\n"]]              # changed before it was signed
    with pytest.raises(smtpsend.MessageChanged):
        MessageData(lambda: iter(versions.pop(0) if len(versions) > 1 else versions[0]), dkim=[signer])
    with CaptureServer() as server:
        smtpsend.sendmessage(part, servers=at(server), dkim=signer)
        check_received(server.messages[0], signer)


def test_a_file_attachment_signs_and_sends_in_bounded_memory(tmp_path, signers):
    """A 24 MiB file attachment (over the 4 MiB kept in memory): measured,
    signed and sent in passes over the file. The server reads and drops the
    data (552 past its limit), so what is traced is the sender's."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        fh.truncate(24 << 20)
    part = mimecompose.compose("see attached", attachments=[str(big)],
                               header=[("From", "a@example.com"), ("To", "b@example.com")])
    with CaptureServer(extensions=("PIPELINING", "8BITMIME", "CHUNKING"), max_message_size=1 << 16) as server:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            with pytest.raises(smtpsend.DataRefused):
                smtpsend.sendmessage(part, servers=at(server), dkim=signers["ed25519-sha256"])
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        [mail] = [c for c in server.commands if c.startswith("MAIL")]
    assert peak < 50 << 20, f"peak {peak / 1e6:.1f} MB"
    print(f"24 MiB attachment, signed and sent: peak traced memory {peak / 1e6:.1f} MB")
    assert "BODY=8BITMIME" not in mail   # base64: the message is 7-bit


# ---------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def key_files(keys, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dkim-keys")
    paths = {}
    for algorithm, key in keys.items():
        path = folder / f"{algorithm}.pem"
        path.write_bytes(pem(key))
        path.chmod(0o600)
        paths[algorithm] = str(path)
    return paths


def run_cli(argv: list[str], stdin: bytes, monkeypatch, config: str | None = None) -> tuple[int, str, str]:
    monkeypatch.setenv("SMTPSEND_CONFIG", config or "/nonexistent/smtpsend-config")
    monkeypatch.setenv("SMTPSEND_SYSCONFIG", "/nonexistent/smtpsend.conf")
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, io.BytesIO(stdin), out, err)
    return code, out.getvalue(), err.getvalue()


MESSAGE = ("From: Ops <ops@example.com>\nTo: admin@example.com\nBcc: audit@example.com\n"
           "Subject: Grüße\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n"
           "MIME-Version: 1.0\n\nAlles gut, schöne Grüße.\n").encode("utf-8")


def cli_signers(key_files):
    return (DKIMSigner(domain="example.com", selector="r2026", key=key_files["rsa-sha256"]),
            DKIMSigner(domain="example.com", selector="e2026", key=key_files["ed25519-sha256"],
                       algorithm="ed25519-sha256"))


def test_cli_flags_sign_once_or_twice(key_files, monkeypatch):
    rsa_signer, ed_signer = cli_signers(key_files)
    with CaptureServer(extensions=NO_8BITMIME) as server:
        code, _, err = run_cli(["--server", at(server)[0], "-t", "--dkim-domain", "example.com",
                                "--dkim-selector", "r2026", "--dkim-key", key_files["rsa-sha256"]],
                               MESSAGE, monkeypatch)
        assert code == 0, err
        data = server.messages[0].data
        assert verify(data, rsa_signer) and data.count(b"DKIM-Signature:") == 1
        assert b"audit@example.com" not in data
        assert data.split(b"\r\n\r\n", 1)[1].isascii()     # the 7-bit form, signed
        code, _, err = run_cli(["--server", at(server)[0], "-t", "--dkim-domain", "example.com",
                                "--dkim-selector", "r2026", "--dkim-key", key_files["rsa-sha256"],
                                "--dkim-selector", "e2026", "--dkim-key", key_files["ed25519-sha256"],
                                "--dkim-algorithm", "rsa-sha256", "--dkim-algorithm", "ed25519-sha256",
                                "--dkim-canonicalization", "simple/simple", "--dkim-headers", "From,To,Subject,Date"],
                               MESSAGE, monkeypatch)
        assert code == 0, err
        data = server.messages[1].data
    assert verify(data, rsa_signer, ed_signer, index=0) and verify(data, rsa_signer, ed_signer, index=1)
    assert signature_tags(data, 0)["a"] == "ed25519-sha256" and signature_tags(data, 0)["c"] == "simple/simple"
    assert signature_tags(data, 1)["h"] == "from:from:to:to:subject:subject:date:date"


def test_cli_config_keys_sign(key_files, monkeypatch, tmp_path):
    ed_signer = cli_signers(key_files)[1]
    config = tmp_path / "config"
    with CaptureServer() as server:
        config.write_text(f"account default\nhost 127.0.0.1\nport {server.port}\ntls off\n"
                          f"dkim_domain example.com\ndkim_selector e2026\ndkim_key {key_files['ed25519-sha256']}\n"
                          "dkim_algorithm ed25519-sha256\ndkim_canonicalization relaxed/simple\n")
        code, _, err = run_cli(["-t"], MESSAGE, monkeypatch, str(config))
        assert code == 0, err
        check_received(server.messages[0], ed_signer)
        assert signature_tags(server.messages[0].data)["c"] == "relaxed/simple"
        # a flag wins over the key of the same name
        code, _, err = run_cli(["-t", "--dkim-canonicalization", "simple/relaxed"], MESSAGE, monkeypatch,
                               str(config))
        assert code == 0, err
        assert signature_tags(server.messages[1].data)["c"] == "simple/relaxed"
        assert verify(server.messages[1].data, ed_signer)


def test_cli_dry_run_prints_the_signed_message(key_files, monkeypatch):
    rsa_signer = cli_signers(key_files)[0]
    code, out, err = run_cli(["--dry-run", "-t", "--dkim-domain", "example.com", "--dkim-selector", "r2026",
                              "--dkim-key", key_files["rsa-sha256"]], MESSAGE, monkeypatch)
    assert code == 0, err
    message = out.split("\n\n", 1)[1].encode("utf-8")
    assert message.startswith(b"DKIM-Signature: ") and verify(message, rsa_signer)


@pytest.mark.parametrize("argv,config,status,text", [
    (["--dkim-domain", "example.com", "--dkim-selector", "s"], None, 64, "--dkim-domain needs a key"),
    (["--dkim-key", "KEY"], None, 64, "--dkim-key needs --dkim-domain and --dkim-selector"),
    (["--dkim-domain", "example.com", "--dkim-selector", "a", "--dkim-selector", "b", "--dkim-key", "KEY"],
     None, 64, "given 2 times for 1 keys"),
    (["--dkim-domain", "exa_mple.com", "--dkim-selector", "s", "--dkim-key", "KEY"], None, 64,
     "not a valid DNS name"),
    (["--dkim-domain", "example.com", "--dkim-selector", "s", "--dkim-key", "/nonexistent/key.pem"], None, 64,
     "cannot read the key file"),
    (["--dkim-domain", "example.com", "--dkim-selector", "s", "--dkim-key", "KEY", "--dkim-algorithm",
      "ed25519-sha256"], None, 64, "use algorithm='rsa-sha256'"),
    (["--dkim-domain", "example.com", "--dkim-selector", "s", "--dkim-key", "KEY", "--dkim-headers", "To"],
     None, 64, "must include From"),
    ([], "dkim_domain example.com\ndkim_selector s\ndkim_key KEY\ndkim_algorithm rsa-sha1\n", 78, "RFC 8301"),
    ([], "dkim_domain example.com\ndkim_selector s\ndkim_key KEY\ndkim_canonicalization loose\n", 78,
     "canonicalization must be one of"),
    ([], "dkim_selector s\n", 78, "dkim_selector needs a key"),
])
def test_cli_bad_dkim_settings_stop_before_sending(key_files, monkeypatch, tmp_path, argv, config, status, text):
    argv = [a.replace("KEY", key_files["rsa-sha256"]) for a in argv]
    path = None
    if config is not None:
        path = tmp_path / "config"
        path.write_text("account default\n" + config.replace("KEY", key_files["rsa-sha256"]))
    with CaptureServer() as server:
        code, _, err = run_cli(["--server", at(server)[0], "-t"] + argv, MESSAGE, monkeypatch,
                               str(path) if path else None)
        assert server.commands == []
    assert code == status, err
    assert text in err and err.startswith("smtpsend: ") and "Traceback" not in err
    if config is not None:       # FILE:LINE of the key whose value is wrong
        number, key = re.search(rf"{re.escape(str(path))}:(\d+): (dkim_\w+)", err).groups()
        assert path.read_text().splitlines()[int(number) - 1].split()[0] == key
        assert key in ("dkim_algorithm", "dkim_canonicalization", "dkim_selector")


# DKIM flags without the cryptography package: tests/test_cli_exit.py (status 78, its row in docs/cli.md)
