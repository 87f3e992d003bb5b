"""ESMTP extensions: each one used when offered, and its fallback -- from
transcripts (every byte checked) and against the capture server."""

import pytest

import mimecompose
import smtpsend
from smtpsend._data import MessageData, xtext
from smtpsend._envelope import Envelope
from smtpsend._esmtp import Delivery
from smtpsend.testing import CaptureServer

from transcript import TLS_INFO, message, run

GREET = ("S", b"220 mx.example ESMTP\r\n")
EHLO = ("C", b"EHLO client.example\r\n")
BODY = b"Subject: t\r\n\r\nhello\r\n"


def ehlo(*keywords):
    lines = ["mx.example"] + list(keywords)
    return ("S", b"".join(f"250{'-' if i < len(lines) - 1 else ' '}{l}\r\n".encode()
                          for i, l in enumerate(lines)))


TWO = Envelope("a@x.org", ["b@y.org", "c@y.org"])


# ---------------------------------------------------------------- CHUNKING (RFC 3030)

def test_chunking_pipelining_atleastone_is_one_write():
    steps = [GREET, EHLO, ehlo("PIPELINING", "CHUNKING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\n"),
             ("C", b"BDAT %d LAST\r\n" % len(BODY) + BODY + b"QUIT\r\n"),
             ("S", b"250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n221 bye\r\n")]
    result, script, _ = run(steps, usetls=False, env=TWO, atleastone=True)
    assert result == [] and len(script.writes) == 2     # EHLO, then the whole transaction


def test_chunking_without_atleastone_commits_only_when_all_accepted():
    steps = [GREET, EHLO, ehlo("PIPELINING", "CHUNKING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\n"),
             ("C", b"BDAT %d\r\n" % len(BODY) + BODY),
             ("S", b"250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 %d octets\r\n" % len(BODY)),
             ("C", b"BDAT 0 LAST\r\nQUIT\r\n"), ("S", b"250 2.0.0 queued\r\n221 bye\r\n")]
    _, script, _ = run(steps, usetls=False, env=TWO)
    assert len(script.writes) == 3


def test_chunking_refused_recipient_resets_and_never_sends_last():
    steps = [GREET, EHLO, ehlo("PIPELINING", "CHUNKING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\n"),
             ("C", b"BDAT %d\r\n" % len(BODY) + BODY),
             ("S", b"250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n250 2.0.0 ok\r\n"),
             ("C", b"RSET\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    with pytest.raises(smtpsend.RecipientsRefused):
        run(steps, usetls=False, env=TWO)


def test_chunking_without_pipelining():
    steps = [GREET, EHLO, ehlo("CHUNKING"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"BDAT %d LAST\r\n" % len(BODY) + BODY), ("S", b"250 queued\r\n"),
             ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    run(steps, usetls=False)


def test_lost_after_bdat_last_is_uncertain():
    steps = [GREET, EHLO, ehlo("PIPELINING", "CHUNKING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\n"),
             ("C", b"BDAT %d LAST\r\n" % len(BODY) + BODY + b"QUIT\r\n"), ("EOF",)]
    with pytest.raises(smtpsend.DeliveryUncertain):
        run(steps, usetls=False, atleastone=True)


def test_bdat_sends_no_dot_stuffing():
    data = message(b"Subject: t\r\n\r\n.dot\r\n")
    steps = [GREET, EHLO, ehlo("CHUNKING"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"BDAT 20 LAST\r\nSubject: t\r\n\r\n.dot\r\n"), ("S", b"250 queued\r\n"),
             ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    run(steps, usetls=False, data=data)


# ---------------------------------------------------------------- 8BITMIME, BINARYMIME

def _part(text, encoding):
    return mimecompose.initialize("text/plain", string=text, encoding=encoding,
                                  header=[("Subject", "t")])


def test_eightbit_declared_when_offered():
    data = MessageData.from_part(_part("Grüße\n", "8bit"))
    steps = [GREET, EHLO, ehlo("8BITMIME"),
             ("C", "MAIL FROM:<a@x.org> BODY=8BITMIME\r\n".encode()), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"), ("C", b"DATA\r\n"), ("S", b"354 go\r\n")]
    body = b"".join(data.chunks()) + b".\r\n"
    steps += [("C", body), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    run(steps, usetls=False, data=data)


def test_eightbit_downgraded_without_8bitmime():
    data = MessageData.from_part(_part("Grüße\n", "8bit"))
    seven = data.seven_bit()
    wire = b"".join(seven.chunks())
    assert wire.isascii() and b"Content-Transfer-Encoding: quoted-printable" in wire
    steps = [GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"), ("C", b"DATA\r\n"), ("S", b"354 go\r\n"),
             ("C", wire + b".\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    _, _, session = run(steps, usetls=False, data=data)
    assert any("8BITMIME" in line for line in session.lines if line.startswith("*"))


def test_binarymime_with_chunking_keeps_octets():
    part = mimecompose.initialize("application/octet-stream", string=b"\x00\x01\n\r\xff", encoding="binary",
                                  header=[("Subject", "t")])
    data = MessageData.from_part(part)
    assert data.binary
    wire = b"".join(data.chunks())
    assert wire.endswith(b"\x00\x01\n\r\xff")       # not line-normalised
    steps = [GREET, EHLO, ehlo("CHUNKING", "BINARYMIME", "8BITMIME"),
             ("C", b"MAIL FROM:<a@x.org> BODY=BINARYMIME\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"BDAT %d LAST\r\n" % len(wire) + wire), ("S", b"250 ok\r\n"),
             ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    run(steps, usetls=False, data=data)


def test_binary_without_binarymime_goes_as_base64():
    part = mimecompose.initialize("application/octet-stream", string=b"\x00\x01\n\r\xff", encoding="binary",
                                  header=[("Subject", "t")])
    with CaptureServer(extensions=["PIPELINING", "8BITMIME", "CHUNKING"]) as server:
        smtpsend.sendmessage(part, servers=["localhost"], ports=[server.port], originator="a@x.org",
                             recipients=["b@y.org"])
        got = server.messages[0]
        assert b"Content-Transfer-Encoding: base64" in got.data and got.data.isascii()
        assert got.part.getbody() == b"\x00\x01\n\r\xff"
        assert "BODY=BINARYMIME" not in got.esmtp_params


# ---------------------------------------------------------------- DSN (RFC 3461)

def test_xtext():
    assert xtext("a+b=c d\u00e9") == "a+2Bb+3Dc+20d+C3+A9"
    assert xtext("<ok@x.org>") == "<ok@x.org>"


def test_dsn_parameters():
    options = Delivery(ret="hdrs", envid="QQ 314", notify={"b@y.org": ["success", "FAILURE"]}, orcpt=True)
    steps = [GREET, EHLO, ehlo("DSN"),
             ("C", b"MAIL FROM:<a@x.org> RET=HDRS ENVID=QQ+20314\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@y.org\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"DATA\r\n"), ("S", b"354 go\r\n"), ("C", BODY + b".\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    run(steps, usetls=False, atleastone=options)


def test_dsn_ignored_or_required_when_not_offered():
    steps = [GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"), ("C", b"DATA\r\n"), ("S", b"354 go\r\n"),
             ("C", BODY + b".\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    _, _, session = run(steps, usetls=False, atleastone=Delivery(notify="NEVER"))
    assert "* server lacks DSN: RET, ENVID, NOTIFY and ORCPT left out" in session.lines
    with pytest.raises(smtpsend.NotSupported):
        run([GREET, EHLO, ehlo("HELP")], usetls=False, atleastone=Delivery(notify="NEVER", require_dsn=True))


@pytest.mark.parametrize("kwargs", [dict(ret="ALL"), dict(envid="x" * 101), dict(envid="é"),
                                    dict(notify="NEVER,SUCCESS"), dict(notify="SOMETIMES"),
                                    dict(priority=10), dict(deliverby="soon"), dict(mail_auth="a b")])
def test_delivery_options_validated(kwargs):
    with pytest.raises(ValueError):
        Delivery(**kwargs)


# ---------------------------------------------------------------- DELIVERBY, MT-PRIORITY, REQUIRETLS, AUTH=

def test_deliverby_priority_requiretls_auth_parameters():
    options = Delivery(deliverby="3600;R", priority=-3, requiretls=True, mail_auth="a+b@x.org")
    steps = [("TLS", TLS_INFO), GREET, EHLO, ehlo("DELIVERBY", "MT-PRIORITY", "REQUIRETLS", "AUTH PLAIN"),
             ("C", b"MAIL FROM:<a@x.org> BY=3600;R MT-PRIORITY=-3 REQUIRETLS AUTH=a+2Bb@x.org\r\n"),
             ("S", b"250 ok\r\n"), ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"DATA\r\n"), ("S", b"354 go\r\n"), ("C", BODY + b".\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    run(steps, implicit_tls=True, atleastone=options)


@pytest.mark.parametrize("options", [Delivery(deliverby="60;N"), Delivery(requiretls=True)])
def test_required_extensions_missing(options):
    with pytest.raises(smtpsend.NotSupported):
        run([("TLS", TLS_INFO), GREET, EHLO, ehlo("HELP")], implicit_tls=True, atleastone=options)


def test_requiretls_needs_tls_even_if_offered():
    with pytest.raises(smtpsend.NotSupported):
        run([GREET, EHLO, ehlo("REQUIRETLS")], usetls=False, atleastone=Delivery(requiretls=True))


def test_priority_ignored_when_not_offered():
    steps = [GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"), ("C", b"DATA\r\n"), ("S", b"354 go\r\n"),
             ("C", BODY + b".\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    run(steps, usetls=False, atleastone=Delivery(priority=5))


# ---------------------------------------------------------------- hooks

def test_events_monitor_progress(server_tls, client_tls):
    events, lines, progress = [], [], []
    part = mimecompose.compose("x" * 200_000, header=[("From", "a@x.org"), ("To", "b@y.org"), ("Subject", "S")])
    with CaptureServer(tls_context=server_tls, users={"u": "pw-Sentinel"}) as server:
        smtpsend.sendmessage(part, servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                             username="u", password="pw-Sentinel",
                             events=events.append, monitor=lambda d, l: lines.append((d, l)),
                             monitor_headers=True, progress=lambda sent, total: progress.append((sent, total)))
    names = [e.name for e in events if e.name != "note"]
    # chronological: with PIPELINING and CHUNKING the data goes out before the RCPT replies arrive
    assert names == ["connect", "greeting", "extensions", "tls", "extensions", "auth", "mail", "data", "rcpt",
                     "accepted", "disconnect"]
    events = [e for e in events if e.name != "note"]
    tls = events[3].data
    assert tls["version"].startswith("TLS") and tls["peer_certificate"]
    assert events[5].data["mechanism"] == "CRAM-MD5"
    assert events[8].data["reply"].code == 250 and events[8].data["address"] == "b@y.org"
    assert all(d in "<>" for d, _ in lines)
    assert not any("pw-Sentinel" in l for _, l in lines)
    assert (">", "Subject: S") in lines                   # headers, with monitor_headers
    assert not any("xxxxxxxxxx" in l for _, l in lines)   # never the body
    total = progress[-1][1]
    assert progress[-1][0] == total and len(progress) > 1
    assert [s for s, _ in progress] == sorted(s for s, _ in progress)


# ---------------------------------------------------------------- the session object and one-call helpers

def test_client_commands():
    with CaptureServer(extensions=["PIPELINING", "8BITMIME", "HELP"]) as server:
        with smtpsend.connect("localhost", port=server.port) as smtp:
            assert smtp.noop().code == 250
            assert "PIPELINING" in smtp.ehlo()
            assert smtp.helo().code == 250
            assert smtp.mail("a@x.org").code == 250
            assert smtp.rcpt("b@y.org").code == 250
            reply = smtp.data(b"Subject: low level\r\n\r\n.dot\r\n")
            assert reply.code == 250
            assert smtp.rset().code == 250
            assert smtp.vrfy("b@y.org").code == 252     # RFC 5321 4.5.1 requires VRFY; 252: will not verify
            assert smtp.command("NOOP").code == 250
            for seed in (smtp.send, smtp.soml, smtp.saml):   # sent: the capture server does not know them
                with pytest.raises(smtpsend.ReplyError, match="500"):   # (tests/test_seed_commands.py has more)
                    seed("a@x.org")
            with pytest.raises(smtpsend.UsageError, match="RFC 2821"):
                smtp.turn()
            with pytest.raises(smtpsend.NotSupported):
                smtp.etrn("example.org")
            with pytest.raises(ValueError):
                smtp.command("NOOP\r\nRSET")
        assert server.messages[0].data == b"Subject: low level\r\n\r\n.dot\r\n"


def test_client_reconnects_after_the_server_closed(monkeypatch):
    with CaptureServer() as server:
        smtp = smtpsend.connect("localhost", port=server.port)
        part = mimecompose.compose("x", header=[("From", "a@x.org"), ("To", "b@y.org")])
        smtp.sendmessage(part)
        smtp._connection._sock.close()            # as if the server had dropped an idle connection
        smtp.sendmessage(part)
        smtp.close()
        assert len(server.messages) == 2


def test_one_call_helpers():
    with CaptureServer() as server:
        assert smtpsend.smtp_help(server="localhost", port=server.port).code == 500
        assert smtpsend.verify("x@y.org", server="localhost", port=server.port).code == 252
        with pytest.raises(smtpsend.AllServersFailed):
            smtpsend.etrn("example.org", servers=["localhost"], ports=[server.port])
