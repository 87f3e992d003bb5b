"""End to end against Postfix and Dovecot (tests/rig): every sending mode,
every SASL mechanism, every user; each message retrieved over POP3 and
compared with what was sent."""

import os
import re
import uuid

import pytest

import mimecompose
import smtpsend
from smtpsend import pop3

from servers import Forwarder, ScriptedServer, free_port

MECHANISMS = ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"]
USERS = ["alice@example.test", "carol@example.test", "jörg@example.test"]


def marker():
    return f"e2e-{uuid.uuid4().hex[:12]}"


def build(subject, body="Hello\n", to="alice@example.test", **kwargs):
    """A message with its own Date and Message-ID, so the bytes sent are
    exactly part.buildmessage() minus Bcc."""
    header = [("Date", "Mon, 23 Nov 2026 10:00:00 +0000"), ("Message-ID", f"<{subject}@example.test>"),
              ("From", "bob@example.test"), ("To", to), ("Subject", subject)]
    extra = kwargs.pop("header", [])
    return mimecompose.compose(body, header=header + extra, **kwargs) if isinstance(body, str) else body


def fetch(rig, subject, user="alice@example.test", delete=True):
    """Retrieve the message with this Subject from ``user``'s mailbox (raw bytes)."""
    assert rig.queue_empty(), "Postfix still has mail in its queue"
    password = rig.users[user][0]
    found = []
    with pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context) as box:
        box.login(user, password)
        for n in box.list():
            if subject.encode() in box.top(n, 0):
                found.append(box.retr_bytes(n))
                if delete:
                    box.dele(n)
    return found


def without_trace(raw: bytes) -> bytes:
    """Drop the fields Postfix and Dovecot put on top (Return-Path,
    X-Original-To, Delivered-To, Received)."""
    lines = raw.split(b"\r\n")
    i = 0
    while i < len(lines) and (re.match(rb"(Return-Path|Delivered-To|X-Original-To|Received):", lines[i])
                              or (i and lines[i][:1] in (b" ", b"\t"))):
        i += 1
    return b"\r\n".join(lines[i:])


def send(rig, part, port="smtp", **kwargs):
    kwargs.setdefault("ssl_context", rig.context)
    return smtpsend.sendmessage(part, servers=["localhost"], ports=[rig.ports[port]], **kwargs)


# ---------------------------------------------------------------- listeners and TLS

@pytest.mark.parametrize("port,options", [
    ("smtp", {}),                                                    # STARTTLS, verified
    ("plain", {}),                                                   # no TLS offered: plaintext
    ("submission", {"username": "alice@example.test", "password": "alice-pw"}),
    ("submissions", {"username": "alice@example.test", "password": "alice-pw", "tlsimport": True}),
])
def test_every_listener(rig, port, options):
    subject = marker()
    part = build(subject)
    lines = []
    send(rig, part, port, debug=lines.append, **options)
    [got] = fetch(rig, subject)
    assert without_trace(got) == part.buildmessage()
    if port in ("smtp", "submission"):
        assert "> STARTTLS" in lines


def test_wrong_host_name_refused_nothing_sent(rig):
    subject = marker()
    with Forwarder(rig.ports["smtp"]) as wrong:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(build(subject), servers=[wrong.host], ports=[wrong.port], ssl_context=rig.context)
    error = info.value.attempts[0].error
    assert isinstance(error, smtpsend.TLSError) and "certificate" in str(error)
    assert fetch(rig, subject) == []


def test_unknown_ca_refused(rig):
    with pytest.raises(smtpsend.AllServersFailed) as info:
        smtpsend.sendmessage(build(marker()), servers=["localhost"], ports=[rig.ports["smtp"]])
    assert isinstance(info.value.attempts[0].error, smtpsend.TLSError)


def test_submission_requires_tls_and_auth(rig):
    with pytest.raises(smtpsend.AllServersFailed) as info:
        send(rig, build(marker()), "submission", usetls=False)
    error = info.value.attempts[0].error
    assert isinstance(error, smtpsend.ServerUnavailable)
    assert error.reply.code == 530   # "Must issue a STARTTLS command first": the server's terms


# ---------------------------------------------------------------- SASL

@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_every_mechanism_every_user(rig, mechanism, user):
    subject = marker()
    events = []
    send(rig, build(subject), "submission", username=user, password=rig.users[user][0],
         mechanisms=[mechanism], events=events.append)
    assert [e.data["mechanism"] for e in events if e.name == "auth"] == [mechanism]
    assert fetch(rig, subject)


def test_strongest_offered_is_chosen(rig):
    lines, events = [], []
    send(rig, build(subject := marker()), "submission", username="carol@example.test",
         password="pässwörd", debug=lines.append, events=events.append)
    assert [e.data["mechanism"] for e in events if e.name == "auth"] == ["SCRAM-SHA-256"]
    assert [l for l in lines if l.startswith("> AUTH")] == ["> AUTH SCRAM-SHA-256 ***"]
    fetch(rig, subject)


def test_bad_password_no_mail(rig):
    subject = marker()
    with pytest.raises(smtpsend.AllServersFailed) as info:
        send(rig, build(subject), "submission", username="alice@example.test", password="wrong-pw")
    error = info.value.attempts[0].error
    assert isinstance(error, smtpsend.AuthenticationError)
    # Dovecot answers 535 5.7.8: the credentials were refused, so no weaker
    # mechanism is tried with them (one failed login, not six: issue 13)
    assert [name for name, _ in error.replies] == ["SCRAM-SHA-256"]
    assert error.replies[0][1].code == 535 and str(error.replies[0][1].status) == "5.7.8"
    assert "wrong-pw" not in str(info.value)
    assert fetch(rig, subject) == []


def test_no_credentials_in_clear_unless_asked(rig):
    subject = marker()
    lines = []
    with pytest.raises(smtpsend.AllServersFailed) as info:
        send(rig, build(subject), "plain", username="alice@example.test", password="alice-pw",
             debug=lines.append)
    assert isinstance(info.value.attempts[0].error, smtpsend.TLSRequired)
    assert not any(l.startswith("> AUTH") for l in lines)
    send(rig, build(subject), "plain", username="alice@example.test", password="alice-pw", tlspolicy="insecure")
    assert fetch(rig, subject)


# ---------------------------------------------------------------- bodies

def _body_cases():
    long_line = "x" * 3000 + "\n"
    return {
        "plain": build("plain"),
        "utf8-8bit": mimecompose.initialize("text/plain", string="Grüße, 你好, привет\n" * 20, encoding="8bit"),
        "long-lines": mimecompose.compose(long_line * 3),
        "dots": mimecompose.compose(".\n..\n.leading\n.\r\n.\n"),
        "binary": mimecompose.compose("see attachment", attachments=[("blob.bin", bytes(range(256)) * 64)]),
    }


@pytest.mark.parametrize("case", ["plain", "utf8-8bit", "long-lines", "dots", "binary"])
def test_bodies_arrive_byte_for_byte(rig, case):
    part = _body_cases()[case]
    subject = marker()
    for name, value in (("Date", "Mon, 23 Nov 2026 10:00:00 +0000"), ("Message-ID", f"<{subject}@example.test>"),
                        ("From", "bob@example.test"), ("To", "alice@example.test"), ("Subject", subject)):
        part.setheader(name, value)
    lines = []
    send(rig, part, debug=lines.append)
    [got] = fetch(rig, subject)
    assert without_trace(got) == part.buildmessage()
    if case == "utf8-8bit":
        assert any("BODY=8BITMIME" in l for l in lines)


def test_nine_megabyte_message(rig, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(6_700_000))   # about 9 MB once base64-encoded
    subject = marker()
    part = build(subject, "big attachment", attachments=[str(path)])
    size = len(part.buildmessage())
    assert 8_500_000 < size < 10_485_760
    send(rig, part)
    [got] = fetch(rig, subject)
    assert without_trace(got) == part.buildmessage()


def test_over_size_refused_before_data(rig, tmp_path):
    path = tmp_path / "huge.bin"
    path.write_bytes(os.urandom(8_000_000))   # about 11 MB encoded
    lines = []
    with pytest.raises(smtpsend.MessageTooBig) as info:
        send(rig, build(marker(), "too big", attachments=[str(path)]), debug=lines.append)
    assert info.value.limit == 10485760
    assert not any(l.startswith("> MAIL") for l in lines)


def test_smtputf8_address(rig):
    subject = marker()
    lines = []
    send(rig, build(subject, to="jörg@example.test"), debug=lines.append)
    assert any(l.startswith("> MAIL FROM:<bob@example.test>") and "SMTPUTF8" in l for l in lines)
    [got] = fetch(rig, subject, user="jörg@example.test")
    assert "To: jörg@example.test".encode() in got


# ---------------------------------------------------------------- recipients

def test_unknown_recipient_without_atleastone_delivers_nothing(rig):
    subject = marker()
    with pytest.raises(smtpsend.RecipientsRefused) as info:
        send(rig, build(subject, to="alice@example.test, nobody@example.test"))
    [r] = info.value.rejected
    assert (r.address, r.code, r.status) == ("nobody@example.test", 550, "5.1.1")
    assert fetch(rig, subject) == []


def test_unknown_recipient_with_atleastone(rig):
    subject = marker()
    rejected = send(rig, build(subject, to="alice@example.test, nobody@example.test"), atleastone=True)
    assert [r.address for r in rejected] == ["nobody@example.test"]
    assert len(fetch(rig, subject)) == 1


def test_bcc_delivered_but_never_visible(rig):
    subject = marker()
    send(rig, build(subject, header=[("Cc", "bob@example.test"), ("Bcc", "carol@example.test")]))
    copies = [fetch(rig, subject, user) for user in ("alice@example.test", "bob@example.test",
                                                      "carol@example.test")]
    assert all(len(c) == 1 for c in copies)
    for [raw] in copies:
        assert b"carol@example.test" not in without_trace(raw) and b"Bcc" not in raw


def test_resent_envelope(rig):
    subject = marker()
    raw = (f"Resent-From: alice@example.test\r\nResent-To: carol@example.test\r\n"
           f"Resent-Date: Mon, 23 Nov 2026 11:00:00 +0000\r\nResent-Message-ID: <r-{subject}@example.test>\r\n"
           f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
           f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.test>\r\n\r\n"
           f"forwarded\r\n").encode()
    send(rig, raw)
    [got] = fetch(rig, subject, "carol@example.test")
    assert without_trace(got) == raw
    assert fetch(rig, subject, "alice@example.test") == []
    assert "from=<alice@example.test>" in rig.log()


# ---------------------------------------------------------------- failover

def test_failover_closed_port_then_421_then_postfix(rig):
    subject = marker()
    events = []
    with ScriptedServer(b"421 4.3.2 busy\r\n") as busy:
        smtpsend.sendmessage(build(subject), servers=["127.0.0.1", "127.0.0.1", "localhost"],
                             ports=[free_port(), busy.port, rig.ports["smtp"]], ssl_context=rig.context,
                             events=events.append)
    assert [e.data["stage"] for e in events if e.name == "failed"] == ["connect", "greeting"]
    assert len(fetch(rig, subject)) == 1   # delivered once
