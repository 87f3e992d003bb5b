"""ESMTP extensions against Postfix (tests/rig): CHUNKING, 8BITMIME, DSN,
ETRN, VRFY, ENHANCEDSTATUSCODES, and the Client session object."""

import re
import time
import uuid


import mimecompose
import smtpsend
from smtpsend import pop3

from test_realserver import build, fetch, send, without_trace


def wait_for(rig, user, pattern, timeout=20):
    """Wait for a message matching ``pattern`` (bytes regex) in ``user``'s box; return and delete it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rig.queue_empty()
        with pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context) as box:
            box.login(user, rig.users[user][0])
            for n in box.list():
                raw = box.retr_bytes(n)
                if re.search(pattern, raw):
                    box.dele(n)
                    return raw
        time.sleep(0.2)
    raise AssertionError(f"no message matching {pattern!r} for {user}")


def test_chunking_used_and_atleastone_in_one_round(rig):
    subject = f"bdat-{uuid.uuid4().hex[:8]}"
    lines = []
    send(rig, build(subject), atleastone=True, debug=lines.append)
    assert "> BDAT" in " ".join(lines) and any(l.startswith("> BDAT") and l.endswith("LAST") for l in lines)
    assert not any(l == "> DATA" for l in lines)
    [got] = fetch(rig, subject)
    assert without_trace(got) == build(subject).buildmessage()


def test_dsn_success_report(rig):
    envid = f"env-{uuid.uuid4().hex[:8]}"
    subject = f"dsn-ok-{uuid.uuid4().hex[:8]}"
    part = build(subject, header=[])
    part.setheader("From", "alice@example.test")
    part.setheader("To", "bob@example.test")
    send(rig, part, notify="SUCCESS,FAILURE", ret="HDRS", envid=envid, orcpt=True)
    report = wait_for(rig, "alice@example.test", re.escape(envid.encode()))
    parsed = mimecompose.initialize(string=report)
    assert parsed.getproperty("content") == "multipart/report"
    assert b"Action: delivered" in report and f"Original-Envelope-Id: {envid}".encode() in report
    fetch(rig, subject, "bob@example.test")


def test_dsn_failure_report_for_a_bounce(rig):
    envid = f"env-{uuid.uuid4().hex[:8]}"
    part = build(f"dsn-bounce-{uuid.uuid4().hex[:8]}")
    part.setheader("From", "alice@example.test")
    part.setheader("To", "bounce-me@example.test")
    rejected = send(rig, part, notify="FAILURE", envid=envid)
    assert rejected == []      # accepted at RCPT; the bounce comes later
    report = wait_for(rig, "alice@example.test", re.escape(envid.encode()))
    assert b"Action: failed" in report and b"Status: 5.1.1" in report


def test_dsn_never(rig):
    part = build(f"dsn-never-{uuid.uuid4().hex[:8]}")
    part.setheader("From", "alice@example.test")
    part.setheader("To", "bounce-me@example.test")
    lines = []
    send(rig, part, notify="NEVER", debug=lines.append)
    assert any(l.startswith("> RCPT TO:<bounce-me@example.test> NOTIFY=NEVER") for l in lines)


def test_etrn_and_vrfy(rig):
    # park a message for the deferring domain, then ask for its queue to run
    part = build(f"etrn-{uuid.uuid4().hex[:8]}", to="someone@relay.example.test")
    send(rig, part)
    try:
        reply = smtpsend.etrn("relay.example.test", servers=["localhost"], ports=[rig.ports["smtp"]],
                              ssl_context=rig.context)
        assert reply.code == 250 and "Queuing started" in reply.text
    finally:
        rig.purge_deferred()
    reply = smtpsend.verify("alice@example.test", server="localhost", port=rig.ports["smtp"], ssl_context=rig.context)
    assert reply.code == 252 and str(reply.status) == "2.0.0"
    reply = smtpsend.verify("nobody@example.test", server="localhost", port=rig.ports["smtp"], ssl_context=rig.context)
    assert reply.code == 550 and str(reply.status) == "5.1.1"
    with smtpsend.connect("localhost", port=rig.ports["smtp"], ssl_context=rig.context) as smtp:
        assert smtp.expn("team@example.test").code == 500   # Postfix does not implement EXPN


def test_session_object_many_messages(rig):
    subjects = [f"many-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    with smtpsend.connect("localhost", port=rig.ports["submission"], ssl_context=rig.context,
                          username="carol@example.test", password="pässwörd") as smtp:
        assert smtp.session.tls is not None
        for subject in subjects:
            smtp.sendmessage(build(subject))
    for subject in subjects:
        assert len(fetch(rig, subject)) == 1


def test_eightbit_to_postfix(rig):
    subject = f"8bit-{uuid.uuid4().hex[:8]}"
    part = mimecompose.initialize("text/plain", string="Grüße aus Köln\n", encoding="8bit", header=[
        ("From", "bob@example.test"), ("To", "alice@example.test"), ("Subject", subject),
        ("Date", "Mon, 23 Nov 2026 10:00:00 +0000"), ("Message-ID", f"<{subject}@example.test>")])
    lines = []
    send(rig, part, debug=lines.append)
    assert any("BODY=8BITMIME" in l for l in lines)
    [got] = fetch(rig, subject)
    assert without_trace(got) == part.buildmessage()
