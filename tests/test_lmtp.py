"""LMTP (RFC 2033): LHLO, one reply per accepted recipient after the data,
in every transaction shape; what a refusal after the data means (returned,
or RecipientsRefused with ``.delivered``, never another server); the
``protocol=`` option everywhere; Unix sockets in both drivers.

The dialogues are transcripts (tests/transcript.py: fed whole, a byte at
a time and in random pieces); the option plumbing and the Unix sockets go
through real sockets to the scripted server of tests/servers.py."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import tempfile
from typing import Any, Iterator

import pytest

import mimecompose
import smtpsend
from smtpsend import _verdicts as verdict
from smtpsend import _cliconfig, _cliexit, cli
from smtpsend._envelope import Envelope
from smtpsend._errors import Rejected
from smtpsend._options import parse_server, protocol_name
from smtpsend._reply import Reply

from servers import Conversation
from transcript import run


GREET = ("S", b"220 lmtp.example LMTP ready\r\n")
LHLO = ("C", b"LHLO client.example\r\n")
ONE = Envelope("a@x.org", ["b@y.org"])
TWO = Envelope("a@x.org", ["b@y.org", "c@y.org"])
THREE = Envelope("a@x.org", ["b@y.org", "c@y.org", "d@y.org"])
DATA = b"Subject: t\r\n\r\nhello\r\n"
SIZE = len(DATA)
OK = b"250 2.1.5 ok\r\n"
MAIL_OK = b"250 2.1.0 ok\r\n"


def lhlo(*keywords: str) -> tuple[str, bytes]:
    lines = ["lmtp.example"] + list(keywords)
    return ("S", b"".join(f"250{'-' if i < len(lines) - 1 else ' '}{line}\r\n".encode()
                          for i, line in enumerate(lines)))


def lmtp_run(steps: list[Any], env: Envelope = TWO, **options: Any) -> tuple[Any, Any, Any]:
    return run(steps, env=env, protocol="lmtp", usetls=False, **options)


def group(*lines: bytes) -> tuple[str, bytes]:
    return ("C", b"".join(lines))


MAIL = b"MAIL FROM:<a@x.org>\r\n"
RCPT_B, RCPT_C, RCPT_D = b"RCPT TO:<b@y.org>\r\n", b"RCPT TO:<c@y.org>\r\n", b"RCPT TO:<d@y.org>\r\n"


# ---------------------------------------------------------------- LHLO (section 4.1)

def test_lhlo_instead_of_ehlo_and_one_reply_per_recipient_plain():
    steps = [GREET, LHLO, lhlo(),
             ("C", MAIL), ("S", MAIL_OK), ("C", RCPT_B), ("S", OK), ("C", RCPT_C), ("S", OK),
             ("C", b"DATA\r\n"), ("S", b"354 go\r\n"), ("C", DATA + b".\r\n"),
             ("S", b"250 2.0.0 <b@y.org> saved\r\n250 2.0.0 <c@y.org> saved\r\n"),
             ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    rejected, script, session = lmtp_run(steps)
    assert rejected == []
    assert not any(w.startswith((b"EHLO", b"HELO")) for w in script.writes)


@pytest.mark.parametrize("code", [b"500 5.5.1 unknown command", b"421 4.3.2 going down", b"550 no"])
def test_lhlo_refused_is_the_error_and_helo_never_follows(code):
    steps = [GREET, LHLO, ("S", code + b"\r\n")]
    with pytest.raises(smtpsend.ServerUnavailable) as info:
        lmtp_run(steps)
    assert info.value.command == "LHLO"
    assert info.value.reply.code == int(code[:3])


def test_lhlo_again_after_starttls():
    from transcript import TLS_INFO
    steps = [GREET, LHLO, lhlo("STARTTLS"), ("C", b"STARTTLS\r\n"), ("S", b"220 go\r\n"), ("TLS", TLS_INFO),
             LHLO, lhlo("PIPELINING"),
             group(MAIL, RCPT_B, b"DATA\r\n"), ("S", MAIL_OK + OK + b"354 go\r\n"),
             ("C", DATA + b".\r\nQUIT\r\n"), ("S", b"250 2.0.0 saved\r\n221 bye\r\n")]
    rejected, _, session = run(steps, env=ONE, protocol="lmtp")
    assert rejected == [] and session.tls is TLS_INFO


def test_smtp_is_unchanged_by_default():
    steps = [GREET, ("C", b"EHLO client.example\r\n"), ("S", b"250 mx\r\n"),
             ("C", MAIL), ("S", MAIL_OK), ("C", RCPT_B), ("S", OK), ("C", RCPT_C), ("S", OK),
             ("C", b"DATA\r\n"), ("S", b"354 go\r\n"), ("C", DATA + b".\r\n"), ("S", b"250 queued\r\n"),
             ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    assert run(steps, env=TWO, usetls=False)[0] == []


# ---------------------------------------------------------------- the shapes (sections 4.2 and 4.3)

def _pipelined(after: bytes, env: Envelope = TWO, rcpt_replies: bytes = OK + OK,
               unread: bytes = b"") -> list[Any]:
    """PIPELINING: the group, the data and a pipelined QUIT, then ``after``
    from the server -- and ``unread``, its reply to QUIT, which the client
    leaves unread when ``after`` already ended the transaction."""
    rcpts = [b"RCPT TO:<%s>\r\n" % a.encode() for a in env.recipients]
    return [GREET, LHLO, lhlo("PIPELINING", "ENHANCEDSTATUSCODES"),
            group(MAIL, *rcpts, b"DATA\r\n"), ("S", MAIL_OK + rcpt_replies + b"354 go\r\n"),
            ("C", DATA + b".\r\nQUIT\r\n"), ("S", after)] + ([("LEFT", unread)] if unread else [])


def test_pipelined_every_recipient_delivered():
    steps = _pipelined(b"250 2.0.0 <b@y.org> saved\r\n250 2.0.0 <c@y.org> saved\r\n221 bye\r\n")
    events: list[Any] = []
    assert lmtp_run(steps, events=events.append)[0] == []
    deliveries = [(e.data["address"], e.data["reply"].code) for e in events if e.name == "delivery"]
    assert deliveries == [("b@y.org", 250), ("c@y.org", 250)]
    assert [e.name for e in events][-1] == "accepted"


def test_chunked_bdat_last_one_reply_per_recipient():
    steps = [GREET, LHLO, lhlo("CHUNKING"),
             ("C", MAIL), ("S", MAIL_OK), ("C", RCPT_B), ("S", OK), ("C", RCPT_C), ("S", OK),
             ("C", b"BDAT %d LAST\r\n" % SIZE + DATA),
             ("S", b"250 2.0.0 saved\r\n552 5.2.2 <c@y.org> quota exceeded\r\n"),
             ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    rejected, _, _ = lmtp_run(steps, atleastone=True)
    assert rejected == [Rejected("c@y.org", 552, "5.2.2 <c@y.org> quota exceeded", "5.2.2", "data")]


def test_pipelined_chunks_bdat_0_last_gets_the_per_recipient_replies():
    steps = [GREET, LHLO, lhlo("PIPELINING", "CHUNKING"),
             group(MAIL, RCPT_B, RCPT_C, b"BDAT %d\r\n" % SIZE, DATA),
             ("S", MAIL_OK + OK + OK + b"250 2.0.0 chunk\r\n"),
             ("C", b"BDAT 0 LAST\r\nQUIT\r\n"), ("S", b"250 2.0.0 saved\r\n250 2.0.0 saved\r\n221 bye\r\n")]
    assert lmtp_run(steps)[0] == []


def test_pipelined_last_reads_the_rcpt_replies_then_one_per_accepted_recipient():
    steps = [GREET, LHLO, lhlo("PIPELINING", "CHUNKING"),
             group(MAIL, RCPT_B, RCPT_C, RCPT_D, b"BDAT %d LAST\r\n" % SIZE, DATA, b"QUIT\r\n"),
             ("S", MAIL_OK + OK + b"550 5.1.1 <c@y.org> unknown\r\n" + OK),
             ("S", b"250 2.0.0 saved\r\n452 4.2.2 <d@y.org> quota, later\r\n221 bye\r\n")]
    rejected, _, _ = lmtp_run(steps, env=THREE, atleastone=True)
    assert rejected == [Rejected("c@y.org", 550, "5.1.1 <c@y.org> unknown", "5.1.1", "rcpt"),
                        Rejected("d@y.org", 452, "4.2.2 <d@y.org> quota, later", "4.2.2", "data")]


def test_pipelined_last_no_recipient_accepted_reads_the_one_bdat_refusal():
    steps = [GREET, LHLO, lhlo("PIPELINING", "CHUNKING"),
             group(MAIL, RCPT_B, RCPT_C, b"BDAT %d LAST\r\n" % SIZE, DATA, b"QUIT\r\n"),
             ("S", MAIL_OK + b"550 5.1.1 unknown\r\n550 5.1.1 unknown\r\n503 5.5.1 no valid recipients\r\n"),
             ("C", b"RSET\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    with pytest.raises(smtpsend.RecipientsRefused) as info:
        lmtp_run(steps, atleastone=True)
    assert [r.address for r in info.value.rejected] == ["b@y.org", "c@y.org"]
    assert info.value.delivered == ()


def test_only_the_accepted_recipients_get_a_reply_after_the_data():
    # c@ refused at RCPT (atleastone): two replies after the data, for b@ and d@
    steps = _pipelined(b"250 2.0.0 saved\r\n250 2.0.0 saved\r\n221 bye\r\n", env=THREE,
                       rcpt_replies=OK + b"550 5.1.1 unknown\r\n" + OK)
    rejected, _, _ = lmtp_run(steps, env=THREE, atleastone=True)
    assert [(r.address, r.stage) for r in rejected] == [("c@y.org", "rcpt")]


# ---------------------------------------------------------------- refusals after the data

QUOTA = b"552 5.2.2 <c@y.org> mailbox full\r\n"


def _three(steps_after: list[Any]) -> list[Any]:
    """Three recipients, all accepted at RCPT; then ``steps_after``."""
    return _pipelined(b"", env=THREE, rcpt_replies=OK + OK + OK)[:-1] + steps_after


def test_partial_refusal_with_atleastone_is_returned_like_a_rcpt_refusal():
    steps = _pipelined(b"250 2.0.0 saved\r\n" + QUOTA + b"221 bye\r\n")
    rejected, _, _ = lmtp_run(steps, atleastone=True)
    assert rejected == [Rejected("c@y.org", 552, "5.2.2 <c@y.org> mailbox full", "5.2.2", "data")]
    assert rejected[0].is_permanent


@pytest.mark.parametrize("refusal", [QUOTA, b"452 4.2.2 <c@y.org> over quota, later\r\n"], ids=["5xx", "4xx"])
def test_partial_refusal_without_atleastone_raises_with_the_delivered(refusal):
    steps = _pipelined(b"250 2.0.0 saved\r\n" + refusal, unread=b"221 bye\r\n")
    with pytest.raises(smtpsend.RecipientsRefused) as info:
        lmtp_run(steps)
    error = info.value
    assert error.delivered == ("b@y.org",)
    assert [(r.address, r.code, r.stage) for r in error.rejected] == [("c@y.org", int(refusal[:3]), "data")]
    assert error.command == "DATA"
    assert "the other 1 have the message" in str(error)
    # b@ has the message: whatever the code, never another server
    assert verdict.is_message_fault(error)


def test_every_recipient_refused_after_the_data_permanently_is_data_refused():
    steps = _pipelined(b"452 4.2.2 full\r\n552 5.2.2 full\r\n", unread=b"221 bye\r\n")
    with pytest.raises(smtpsend.DataRefused) as info:
        lmtp_run(steps, atleastone=True)
    assert info.value.reply.code == 552 and verdict.is_message_fault(info.value)


def test_every_recipient_refused_after_the_data_for_now_tries_the_next_server():
    steps = _pipelined(b"451 4.3.0 later\r\n452 4.2.2 later\r\n", unread=b"221 bye\r\n")
    with pytest.raises(smtpsend.ServerUnavailable) as info:
        lmtp_run(steps)
    assert info.value.reply.code == 451 and not verdict.is_message_fault(info.value)


@pytest.mark.parametrize("atleastone", [True, False])
def test_421_in_the_middle_of_the_replies_refuses_the_rest(atleastone):
    # with atleastone the client goes on to read QUIT's reply and finds the connection closed
    steps = _three([("S", b"250 2.0.0 saved\r\n421 4.3.2 shutting down\r\n")] + ([("EOF",)] if atleastone else []))
    if atleastone:
        rejected, _, _ = lmtp_run(steps, env=THREE, atleastone=True)
        assert [(r.address, r.code, r.stage) for r in rejected] == [("c@y.org", 421, "data"),
                                                                    ("d@y.org", 421, "data")]
        return
    with pytest.raises(smtpsend.RecipientsRefused) as info:
        lmtp_run(steps, env=THREE)
    assert info.value.delivered == ("b@y.org",)
    assert [r.address for r in info.value.rejected] == ["c@y.org", "d@y.org"]
    assert verdict.is_message_fault(info.value)


def test_connection_lost_in_the_middle_of_the_replies_is_uncertain_and_says_who_has_it():
    steps = _three([("S", b"250 2.0.0 saved\r\n"), ("EOF",)])
    with pytest.raises(smtpsend.DeliveryUncertain) as info:
        lmtp_run(steps, env=THREE)
    assert "1 of 3 replies" in str(info.value) and "delivered to b@y.org" in str(info.value)


def test_a_reply_out_of_step_after_the_data_is_uncertain():
    steps = _three([("S", b"250 2.0.0 saved\r\n354 what\r\n"), ("LEFT", b"250 2.0.0 saved\r\n221 bye\r\n")])
    with pytest.raises(smtpsend.DeliveryUncertain):
        lmtp_run(steps, env=THREE)


def test_each_reply_after_the_data_has_its_own_wait():
    # silence after the first reply: a Timeout for the second, uncertain
    steps = _three([("S", b"250 2.0.0 saved\r\n"), ("TIMEOUT",)])
    with pytest.raises(smtpsend.DeliveryUncertain) as info:
        lmtp_run(steps, env=THREE)
    assert isinstance(info.value.__cause__, smtpsend.Timeout)


def test_many_recipients_replies_in_rcpt_order_linear():
    # 2,000 recipients: one reply each after the data, matched in order
    env = Envelope("a@x.org", [f"r{i}@y.org" for i in range(2000)])
    rcpts = [b"RCPT TO:<%s>\r\n" % a.encode() for a in env.recipients]
    after = b"".join(b"250 2.0.0 ok\r\n" if i % 7 else b"552 5.2.2 full\r\n" for i in range(2000))
    steps = [GREET, LHLO, lhlo("PIPELINING"), group(MAIL, *rcpts, b"DATA\r\n"),
             ("S", MAIL_OK + OK * 2000 + b"354 go\r\n"), ("C", DATA + b".\r\nQUIT\r\n"), ("S", after + b"221 bye\r\n")]
    rejected, _, _ = run(steps, env=env, protocol="lmtp", atleastone=True, feed="whole")
    assert [r.address for r in rejected] == [f"r{i}@y.org" for i in range(0, 2000, 7)]


# ---------------------------------------------------------------- the verdict alone

def test_per_recipient_verdict_table():
    ok, full, later = Reply(250, ("ok",)), Reply(552, ("full",)), Reply(452, ("later",))
    assert verdict.per_recipient(["b", "c"], [ok, ok], [], False) == []
    assert [r.address for r in verdict.per_recipient(["b", "c"], [ok, full], [], True)] == ["c"]
    with pytest.raises(smtpsend.RecipientsRefused) as info:
        verdict.per_recipient(["b", "c"], [ok, later], [], False)
    assert info.value.delivered == ("b",)
    with pytest.raises(smtpsend.ServerUnavailable):
        verdict.per_recipient(["b", "c"], [later, later], [], True)
    with pytest.raises(smtpsend.DataRefused) as refused:
        verdict.per_recipient(["b", "c"], [later, full], [], True)
    assert refused.value.reply is full


def test_smtp_recipients_refused_delivered_nothing():
    steps = [GREET, ("C", b"EHLO client.example\r\n"), ("S", b"250 mx\r\n"),
             ("C", MAIL), ("S", MAIL_OK), ("C", RCPT_B), ("S", b"550 5.1.1 unknown\r\n"),
             ("C", b"RSET\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    with pytest.raises(smtpsend.RecipientsRefused) as info:
        run(steps, env=ONE, usetls=False)
    assert info.value.delivered == () and info.value.rejected[0].stage == "rcpt"


# ---------------------------------------------------------------- protocol= and the default port

def test_protocol_is_checked_everywhere():
    part = mimecompose.compose("x", header={"From": "a@x.org", "To": "b@y.org"})
    for call in (lambda: smtpsend.sendmessage(part, servers=["127.0.0.1"], protocol="esmtp"),
                 lambda: asyncio.run(smtpsend.asendmessage(part, servers=["127.0.0.1"], protocol="LMTP ")),
                 lambda: smtpsend.connect("127.0.0.1", protocol="http")):
        with pytest.raises(smtpsend.UsageError, match="protocol must be 'smtp' or 'lmtp'"):
            call()
    assert protocol_name("lmtp") == "lmtp"


def test_lmtp_is_never_sent_to_port_25():
    part = mimecompose.compose("x", header={"From": "a@x.org", "To": "b@y.org"})
    with pytest.raises(smtpsend.UsageError, match="RFC 2033 section 5"):
        smtpsend.sendmessage(part, servers=["127.0.0.1:25"], protocol="lmtp")
    with pytest.raises(smtpsend.UsageError, match="RFC 2033 section 5"):
        smtpsend.connect("127.0.0.1", port=25, protocol="lmtp")


def test_lmtp_default_port_is_24():
    from smtpsend._failover import plan
    part = mimecompose.compose("x", header={"From": "a@x.org", "To": "b@y.org"})
    targets = plan(part, servers=["127.0.0.1", "h.example:2424", "/run/lmtp"], protocol="lmtp").targets
    assert [(t.host, t.port) for t in targets] == [("127.0.0.1", 24), ("h.example", 2424), ("/run/lmtp", 0)]
    assert plan(part, servers=["127.0.0.1"]).targets[0].port == 25


def test_unix_socket_entries():
    assert parse_server(" /run/dovecot/lmtp ", None, 24) == ("/run/dovecot/lmtp", 0)
    with pytest.raises(smtpsend.UsageError, match="takes no port"):
        parse_server("/run/dovecot/lmtp", 24, 24)
    with pytest.raises(smtpsend.UsageError):
        parse_server("/run/x\r\nRCPT", None, 24)


# ---------------------------------------------------------------- real sockets: TCP and Unix

RAW = (b"From: a@x.org\r\nTo: b@y.org, c@y.org\r\nSubject: t\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
       b"Message-ID: <lmtp@x.org>\r\n\r\nhello\r\n")
PART = mimecompose.initialize(string=RAW)


def _conversation(after: bytes, quit: bool = True) -> list[Any]:
    """LHLO (STARTTLS offered), the pipelined group for b@ and c@, the data,
    then ``after`` (the replies after the data, and QUIT's with ``quit``)."""
    return [("S", b"220 lmtp.example LMTP\r\n"), ("C", b"LHLO localhost\r\n"),
            ("S", b"250-lmtp.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"),
            ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n"),
            ("S", MAIL_OK + OK + OK + b"354 go\r\n"), ("C", RAW + b".\r\n" + (b"QUIT\r\n" if quit else b"")),
            ("S", after), ("CLOSE",)]


@pytest.fixture
def socket_path() -> Iterator[str]:
    # short: a Unix socket's path has a small limit (108 bytes on Linux)
    with tempfile.TemporaryDirectory(prefix="lmtp-") as directory:
        yield os.path.join(directory, "lmtp")


def test_unix_socket_sync_no_starttls_even_when_offered(socket_path):
    with Conversation(_conversation(b"250 2.0.0 saved\r\n" + QUOTA + b"221 bye\r\n"), unix=socket_path):
        rejected = smtpsend.sendmessage(PART, servers=[socket_path], protocol="lmtp", atleastone=True)
    assert [(r.address, r.stage) for r in rejected] == [("c@y.org", "data")]


def test_unix_socket_async(socket_path):
    with Conversation(_conversation(b"250 2.0.0 saved\r\n250 2.0.0 saved\r\n221 bye\r\n"), unix=socket_path):
        assert asyncio.run(smtpsend.asendmessage(PART, servers=[socket_path], protocol="lmtp")) == []


def test_unix_socket_client(socket_path):
    script = _conversation(b"250 2.0.0 saved\r\n250 2.0.0 saved\r\n", quit=False)[:-1]
    script += [("C", b"QUIT\r\n"), ("S", b"221 bye\r\n"), ("CLOSE",)]
    with Conversation(script, unix=socket_path):
        with smtpsend.connect(socket_path, protocol="lmtp") as client:
            assert (client.host, client.port) == (socket_path, 0)
            assert client.sendmessage(PART) == []


def test_partial_delivery_never_goes_to_the_next_server(socket_path):
    events: list[Any] = []
    with Conversation(_conversation(b"250 2.0.0 saved\r\n452 4.2.2 later\r\n221 bye\r\n"), unix=socket_path):
        with pytest.raises(smtpsend.RecipientsRefused) as info:
            smtpsend.sendmessage(PART, servers=[socket_path, "127.0.0.1:1"], protocol="lmtp", events=events.append)
    assert info.value.delivered == ("b@y.org",)
    assert (info.value.server, info.value.port) == (socket_path, 0)
    assert not any(e.name == "failed" for e in events)
    assert str(info.value).count(socket_path) == 1 and f"{socket_path}:0" not in str(info.value)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_unix_socket_nothing_listening_is_located_at_the_path(socket_path, use_async):
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(socket_path)
    listener.close()   # the file exists, nothing listens: ECONNREFUSED
    call = (lambda: asyncio.run(smtpsend.asendmessage(PART, servers=[socket_path], protocol="lmtp"))) if use_async \
        else (lambda: smtpsend.sendmessage(PART, servers=[socket_path], protocol="lmtp"))
    with pytest.raises(smtpsend.AllServersFailed) as info:
        call()
    [attempt] = info.value.attempts
    assert (attempt.server, attempt.port, attempt.stage) == (socket_path, 0, "connect")
    assert "Unix socket" in str(info.value) and "port 0" not in str(info.value)


def test_tls_required_over_a_unix_socket_is_attempted(socket_path):
    script = [("S", b"220 lmtp.example LMTP\r\n"), ("C", b"LHLO localhost\r\n"),
              ("S", b"250-lmtp.example\r\n250 PIPELINING\r\n")]
    with Conversation(script, unix=socket_path):
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(PART, servers=[socket_path], protocol="lmtp", tlspolicy="secure")
    assert isinstance(info.value.attempts[0].error, smtpsend.TLSRequired)


def test_tcp_lmtp(socket_path):
    with Conversation(_conversation(b"250 2.0.0 saved\r\n250 2.0.0 saved\r\n221 bye\r\n")) as server:
        assert smtpsend.sendmessage(PART, servers=["127.0.0.1"], ports=[server.port], protocol="lmtp",
                                    usetls=False, client="localhost") == []


def test_cli_protocol_lmtp(socket_path):
    stdin = io.BytesIO(RAW)
    with Conversation(_conversation(b"250 2.0.0 saved\r\n" + QUOTA + b"221 bye\r\n"), unix=socket_path):
        stderr = io.StringIO()
        code = cli.main(["--protocol", "lmtp", "--server", socket_path, "-t"], stdin=stdin, stderr=stderr)
    assert code != 0
    assert "delivered by" in stderr.getvalue() and "b@y.org" in stderr.getvalue()
    assert "c@y.org: 552" in stderr.getvalue()


def test_transport_keeps_an_lmtp_connection_to_a_unix_socket(socket_path):
    script = _conversation(b"250 2.0.0 saved\r\n250 2.0.0 saved\r\n", quit=False)[:-1]
    script += [("C", b"QUIT\r\n"), ("S", b"221 bye\r\n"), ("CLOSE",)]
    with Conversation(script, unix=socket_path):
        transport = smtpsend.Transport(servers=[socket_path], protocol="lmtp")
        try:
            assert transport.sendmessage(PART) == []
        finally:
            transport.close()


def test_config_file_protocol_key():
    warn = _cliexit.warner(io.StringIO())
    assert _cliconfig.resolve_account({"protocol": ("lmtp", "f:1")}, warn).protocol == "lmtp"
    assert _cliconfig.resolve_account({"protocol": ("SMTP", "f:1")}, warn).protocol == "smtp"
    with pytest.raises(_cliexit.CLIError) as info:
        _cliconfig.resolve_account({"protocol": ("esmtp", "f:3")}, warn)
    assert info.value.code == _cliexit.EX_CONFIG and "f:3" in str(info.value)


def test_cli_refuses_an_unknown_protocol_flag():
    stderr = io.StringIO()
    code = cli.main(["--protocol", "uucp", "--server", "127.0.0.1:1", "b@y.org"], stdin=io.BytesIO(RAW),
                    stderr=stderr)
    assert code == cli.EX_USAGE


def test_a_recipient_status_after_the_data_is_a_delivery():
    # each reply answers for one recipient: 2.1.5 (an address status) is no sign of replies out of step
    steps = _pipelined(b"250 2.1.5 <b@y.org> delivered\r\n250 2.1.5 <c@y.org> delivered\r\n221 bye\r\n")
    assert lmtp_run(steps)[0] == []
