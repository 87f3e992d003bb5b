"""The seed systems' RFC 821 commands on the wire: SEND, SOML, SAML begin a
transaction like MAIL; TURN only with explicit consent. Each returns the
server's reply, as the other seed commands do (tests/servers.py's
Conversation checks every byte the client writes over a socket; a
transcript Script, every byte fed whole, a byte at a time and in random
pieces)."""

import socket

import pytest

import smtpsend
from smtpsend import _client as client_module
from smtpsend.testing import CaptureServer

from servers import Conversation
from transcript import FEEDS, Script

GREETING = [("S", b"220 mx.example ESMTP\r\n"), ("C", b"EHLO localhost\r\n"), ("S", b"250 mx.example\r\n")]
BYE = [("C", b"QUIT\r\n"), ("S", b"221 bye\r\n"), ("CLOSE",)]
NOT_IMPLEMENTED = b"502 5.5.1 command not implemented\r\n"


def connect(conversation):
    return smtpsend.connect("127.0.0.1", port=conversation.port, usetls=False)


@pytest.mark.parametrize("verb", ["SEND", "SOML", "SAML"])
def test_a_server_without_it_answers_502_and_that_is_the_reply(verb):
    script = GREETING + [("C", f"{verb} FROM:<a@x.org>\r\n".encode()), ("S", NOT_IMPLEMENTED),
                         ("C", b"NOOP\r\n"), ("S", b"250 ok\r\n")] + BYE
    with Conversation(script) as server:
        with connect(server) as smtp:
            with pytest.raises(smtpsend.ReplyError) as info:
                getattr(smtp, verb.lower())("a@x.org")
            reply = info.value.reply
            assert info.value.command == f"{verb} FROM:<a@x.org>" and not info.value.is_transient
            assert (reply.code, reply.status, reply.text) == (502, "5.5.1", "5.5.1 command not implemented")
            assert not reply.is_positive and reply.is_permanent
            assert smtp.noop().code == 250          # the connection goes on as after any refused command


def test_send_begins_a_transaction_like_mail():
    body = b"Subject: to your terminal\r\n\r\nhello\r\n"
    script = GREETING + [("C", b"SEND FROM:<a@x.org> BODY=7BIT\r\n"), ("S", b"250 2.1.0 ok\r\n"),
                         ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 2.1.5 ok\r\n"),
                         ("C", b"DATA\r\n"), ("S", b"354 go ahead\r\n"),
                         ("C", body + b".\r\n"), ("S", b"250 2.0.0 delivered to the terminal\r\n")] + BYE
    with Conversation(script) as server:
        with connect(server) as smtp:
            assert smtp.send("a@x.org", params=["BODY=7BIT"]).code == 250
            assert smtp.rcpt("b@y.org").code == 250
            assert smtp.data(body).code == 250


@pytest.mark.parametrize("verb", ["soml", "saml"])
def test_soml_and_saml_take_the_reverse_path_and_parameters(verb):
    script = GREETING + [("C", f"{verb.upper()} FROM:<> SIZE=10\r\n".encode()), ("S", b"250 ok\r\n"),
                         ("C", b"RSET\r\n"), ("S", b"250 ok\r\n")] + BYE
    with Conversation(script) as server:
        with connect(server) as smtp:
            assert getattr(smtp, verb)("", params=["SIZE=10"]).code == 250
            assert smtp.rset().code == 250


@pytest.mark.parametrize("sender", ["a@x.org>\r\nRCPT TO:<evil@x.org", "a@x.org\0"])
def test_no_injection_through_the_reverse_path(sender):
    with Conversation(GREETING + BYE) as server:
        with connect(server) as smtp:
            for command in (smtp.send, smtp.soml, smtp.saml):
                with pytest.raises(smtpsend.UsageError):
                    command(sender)
                with pytest.raises(smtpsend.UsageError):
                    command("a@x.org", params=["X=1\r\nRSET"])


def test_turn_needs_explicit_consent_and_sends_nothing_without_it():
    with Conversation(GREETING + BYE) as server:          # nothing between EHLO and QUIT
        with connect(server) as smtp:
            with pytest.raises(smtpsend.UsageError, match="i_know_turn_is_obsolete=True") as info:
                smtp.turn()
            assert "RFC 2821" in str(info.value) and "etrn()" in str(info.value)
            with pytest.raises(TypeError):
                smtp.turn(True)                                # keyword only: consent is spelt out
    assert "security" in smtpsend.Client.turn.__doc__ and "RFC 2821" in smtpsend.Client.turn.__doc__


def test_turn_with_consent_is_sent_and_502_returned():
    script = GREETING + [("C", b"TURN\r\n"), ("S", NOT_IMPLEMENTED)] + BYE
    with Conversation(script) as server:
        with connect(server) as smtp:
            with pytest.raises(smtpsend.ReplyError) as info:
                smtp.turn(i_know_turn_is_obsolete=True)
            assert info.value.reply.code == 502 and info.value.command == "TURN"
            assert smtp.session is not None           # refused: the connection goes on


def test_a_server_that_accepts_turn_gets_the_connection_closed():
    """After 250 the server waits for us to greet it as a server: we cannot,
    so the connection is closed at once -- no QUIT (the script ends and
    checks the client sends nothing more)."""
    script = GREETING + [("C", b"TURN\r\n"), ("S", b"250 OK, you are the server now\r\n")]
    with Conversation(script) as server:
        smtp = connect(server)
        reply = smtp.turn(i_know_turn_is_obsolete=True)
        assert reply.code == 250
        assert smtp.session is None                  # closed; a later command would open a new connection
        smtp.close()


def test_against_the_capture_server():
    """A real server that does not know the RFC 821 commands: its refusal
    comes back as a ReplyError with the reply, and the connection still
    sends mail."""
    with CaptureServer() as server:
        with smtpsend.connect("localhost", port=server.port) as smtp:
            for command in (smtp.send, smtp.soml, smtp.saml):
                with pytest.raises(smtpsend.ReplyError) as info:
                    command("a@x.org")
                assert info.value.reply.code == 500 and info.value.reply.is_permanent
            with pytest.raises(smtpsend.ReplyError, match="500"):
                smtp.turn(i_know_turn_is_obsolete=True)
            assert smtp.mail("a@x.org").code == 250
            assert smtp.rcpt("b@y.org").code == 250
            assert smtp.data(b"Subject: after the seed commands\r\n\r\nx\r\n").code == 250
        assert server.commands[1:5] == ["SEND FROM:<a@x.org>", "SOML FROM:<a@x.org>", "SAML FROM:<a@x.org>",
                                        "TURN"]
    assert len(server.messages) == 1


# ---------------------------------------------------------------- transcripts: every byte, every feed

class Scripted(Script):
    """A transcript Script as the Client's connection (it is closed once)."""

    closed = 0

    def close(self) -> None:
        self.closed += 1


def scripted(monkeypatch, steps, feed):
    """connect() over a transcript instead of a socket."""
    script = Scripted(steps, feed=feed)
    monkeypatch.setattr(client_module, "resolve", lambda host, port: [(socket.AF_INET, ("192.0.2.25", port))])
    monkeypatch.setattr(client_module.SyncConnection, "open", staticmethod(lambda *args: script))
    return smtpsend.connect("mx.example", usetls=False, client="client.example"), script


SCRIPT_OPEN = [("S", b"220 mx.example ESMTP\r\n"), ("C", b"EHLO client.example\r\n"), ("S", b"250 mx.example\r\n")]


@pytest.mark.parametrize("feed", FEEDS)
def test_a_multiline_502_arrives_whole_in_every_feed(monkeypatch, feed):
    steps = SCRIPT_OPEN + [("C", b"SAML FROM:<a@x.org> RET=HDRS\r\n"),
                           ("S", b"502-5.5.1 SAML is not implemented\r\n502 5.5.1 RFC 5321 dropped it\r\n"),
                           ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    smtp, script = scripted(monkeypatch, steps, feed)
    with pytest.raises(smtpsend.ReplyError) as info:
        smtp.saml("a@x.org", params=["RET=HDRS"])
    reply = info.value.reply
    assert (reply.code, reply.lines) == (502, ("5.5.1 SAML is not implemented", "5.5.1 RFC 5321 dropped it"))
    smtp.close()
    script.finish()
    assert script.closed == 1


@pytest.mark.parametrize("feed", FEEDS)
def test_turn_accepted_closes_without_quit_in_every_feed(monkeypatch, feed):
    steps = SCRIPT_OPEN + [("C", b"TURN\r\n"), ("S", b"250 OK\r\n")]
    smtp, script = scripted(monkeypatch, steps, feed)
    assert smtp.turn(i_know_turn_is_obsolete=True).code == 250
    script.finish()                         # nothing after TURN: no QUIT was written
    assert script.closed == 1 and smtp.session is None
