"""LMTP (RFC 2033) against Dovecot's LMTP server in the rig (tests/rig):
delivery into two mailboxes over the Unix socket and over TCP with
STARTTLS, an unknown user refused at RCPT, an over-quota user refused after
the data while the other recipient gets the message -- every mailbox read
back over POP3."""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

import mimecompose
import smtpsend
from smtpsend import pop3


@pytest.fixture(scope="module")
def lmtp(rig: Any) -> SimpleNamespace:
    """Where the rig's Dovecot takes LMTP, and the passwords of its users."""
    rigmod: Any = importlib.import_module("rig")   # on sys.path: the rig fixture put it there
    socket_path = os.path.join(rig.state, rigmod.LMTP_SOCKET)
    assert os.path.exists(socket_path), "Dovecot's LMTP socket is missing: is dovecot-lmtpd installed?"
    return SimpleNamespace(socket=socket_path, port=rig.ports["lmtp"], quota=rigmod.LMTP_QUOTA,
                           users={**rig.users, **rigmod.LMTP_USERS})


def marker() -> str:
    return f"lmtp-{uuid.uuid4().hex[:12]}"


def build(subject: str, to: str, body: str = "Hello over LMTP\n") -> mimecompose.Part:
    header = [("Date", "Mon, 23 Nov 2026 10:00:00 +0000"), ("Message-ID", f"<{subject}@example.test>"),
              ("From", "bob@example.test"), ("To", to), ("Subject", subject)]
    return mimecompose.compose(body, header=header)


def fetch(rig: Any, lmtp: SimpleNamespace, subject: str, user: str) -> list[bytes]:
    """Every message with this Subject in ``user``'s mailbox (deleted once read)."""
    found = []
    with pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context) as box:
        box.login(user, lmtp.users[user][0])
        for n in box.list():
            if subject.encode() in box.top(n, 0):
                found.append(box.retr_bytes(n))
                box.dele(n)
    return found


def without_trace(raw: bytes) -> bytes:
    """The message without the fields Dovecot puts on top."""
    lines = raw.split(b"\r\n")
    i = 0
    while i < len(lines) and (re.match(rb"(Return-Path|Delivered-To|Received):", lines[i])
                              or (i and lines[i][:1] in (b" ", b"\t"))):
        i += 1
    return b"\r\n".join(lines[i:])


def test_two_mailboxes_over_the_unix_socket(rig, lmtp):
    subject = marker()
    part = build(subject, "alice@example.test, carol@example.test")
    lines: list[str] = []
    assert smtpsend.sendmessage(part, servers=[lmtp.socket], protocol="lmtp", debug=lines.append) == []
    assert "> LHLO localhost" in lines and "> STARTTLS" not in lines   # no TLS over a local socket
    for user in ("alice@example.test", "carol@example.test"):
        [got] = fetch(rig, lmtp, subject, user)
        assert without_trace(got) == part.buildmessage()


def test_tcp_with_starttls(rig, lmtp):
    subject = marker()
    part = build(subject, "bob@example.test")
    lines: list[str] = []
    smtpsend.sendmessage(part, servers=["localhost"], ports=[lmtp.port], protocol="lmtp",
                         ssl_context=rig.context, debug=lines.append)
    assert "> STARTTLS" in lines and lines.count("> LHLO localhost") == 2   # asked again after TLS
    [got] = fetch(rig, lmtp, subject, "bob@example.test")
    assert without_trace(got) == part.buildmessage()


@pytest.mark.parametrize("atleastone", [True, False])
def test_unknown_user_refused_at_rcpt(rig, lmtp, atleastone):
    subject = marker()
    part = build(subject, "alice@example.test, nobody@example.test")
    if atleastone:
        [r] = smtpsend.sendmessage(part, servers=[lmtp.socket], protocol="lmtp", atleastone=True)
        assert (r.address, r.code, r.status, r.stage) == ("nobody@example.test", 550, "5.1.1", "rcpt")
        assert len(fetch(rig, lmtp, subject, "alice@example.test")) == 1
        return
    with pytest.raises(smtpsend.RecipientsRefused) as info:
        smtpsend.sendmessage(part, servers=[lmtp.socket], protocol="lmtp")
    assert [r.address for r in info.value.rejected] == ["nobody@example.test"]
    assert info.value.delivered == ()
    assert fetch(rig, lmtp, subject, "alice@example.test") == []   # nothing delivered


def _big(subject: str, lmtp: SimpleNamespace) -> mimecompose.Part:
    return build(subject, "alice@example.test, tiny@example.test", "over quota\n" * (lmtp.quota // 4))


def test_over_quota_refused_after_the_data_with_atleastone(rig, lmtp):
    subject = marker()
    events: list[Any] = []
    [r] = smtpsend.sendmessage(_big(subject, lmtp), servers=[lmtp.socket], protocol="lmtp", atleastone=True,
                               events=events.append)
    assert (r.address, r.code, r.status, r.stage) == ("tiny@example.test", 552, "5.2.2", "data")
    assert [(e.data["address"], e.data["reply"].code) for e in events if e.name == "delivery"] == \
        [("alice@example.test", 250), ("tiny@example.test", 552)]
    assert len(fetch(rig, lmtp, subject, "alice@example.test")) == 1
    assert fetch(rig, lmtp, subject, "tiny@example.test") == []


def test_over_quota_without_atleastone_says_who_got_it(rig, lmtp):
    subject = marker()
    with pytest.raises(smtpsend.RecipientsRefused) as info:
        smtpsend.sendmessage(_big(subject, lmtp), servers=[lmtp.socket, "localhost:1"], protocol="lmtp")
    error = info.value
    assert error.delivered == ("alice@example.test",)
    assert [(r.address, r.code, r.stage) for r in error.rejected] == [("tiny@example.test", 552, "data")]
    assert (error.server, error.port, error.stage) == (lmtp.socket, 0, "data")
    # it cannot be undone, and was never sent to the second server
    assert len(fetch(rig, lmtp, subject, "alice@example.test")) == 1
    assert fetch(rig, lmtp, subject, "tiny@example.test") == []


def test_asendmessage_and_client_over_the_unix_socket(rig, lmtp):
    first, second = marker(), marker()
    assert asyncio.run(smtpsend.asendmessage(build(first, "bob@example.test"), servers=[lmtp.socket],
                                             protocol="lmtp")) == []
    with smtpsend.connect(lmtp.socket, protocol="lmtp") as client:
        assert client.sendmessage(build(second, "bob@example.test")) == []
        assert client.sendmessage(build(second, "carol@example.test")) == []   # the same connection
    assert len(fetch(rig, lmtp, first, "bob@example.test")) == 1
    assert len(fetch(rig, lmtp, second, "bob@example.test")) == 1
    assert len(fetch(rig, lmtp, second, "carol@example.test")) == 1
