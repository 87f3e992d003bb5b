"""The SMTP dialogue from transcripts: every branch, no sockets."""

import base64

import pytest

import smtpsend
from smtpsend._envelope import Envelope
from smtpsend._errors import TLSError
from smtpsend._driver import Timeouts

from transcript import TLS_INFO, message, run

GREET = ("S", b"220 mx.example ESMTP\r\n")
EHLO = ("C", b"EHLO client.example\r\n")


def ehlo(*keywords):
    lines = ["mx.example"] + list(keywords)
    out = b"".join(f"250-{l}\r\n".encode() for l in lines[:-1]) + f"250 {lines[-1]}\r\n".encode()
    return ("S", out)


BODY = b"Subject: t\r\n\r\nhello\r\n"


def plain_transaction(rcpts=("b@y.org",)):
    steps = [("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 2.1.0 Ok\r\n")]
    for r in rcpts:
        steps += [("C", f"RCPT TO:<{r}>\r\n".encode()), ("S", b"250 2.1.5 Ok\r\n")]
    steps += [("C", b"DATA\r\n"), ("S", b"354 go\r\n"), ("C", BODY + b".\r\n"),
              ("S", b"250 2.0.0 queued\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    return steps


@pytest.mark.parametrize("bytewise", [False, True])
def test_simple_send_without_extensions(bytewise):
    result, script, session = run([GREET, EHLO, ehlo("HELP")] + plain_transaction(), bytewise=bytewise,
                                  usetls=False)
    assert result == []
    assert session.stage == "quit"


def test_ehlo_5xx_falls_back_to_helo():
    steps = [GREET, EHLO, ("S", b"502 what?\r\n"), ("C", b"HELO client.example\r\n"),
             ("S", b"250 mx.example\r\n")] + plain_transaction()
    assert run(steps, usetls=False)[0] == []


def test_ehlo_4xx_is_server_failure():
    with pytest.raises(smtpsend.ServerUnavailable) as info:
        run([GREET, EHLO, ("S", b"421 4.3.2 shutting down\r\n")], usetls=False)
    assert info.value.reply.code == 421


@pytest.mark.parametrize("greeting", [b"554 go away\r\n", b"421 busy\r\n"])
def test_bad_greeting(greeting):
    with pytest.raises(smtpsend.ServerUnavailable):
        run([("S", greeting)], usetls=False)


def test_pipelining_one_write_for_envelope_and_one_for_data_and_quit():
    steps = [GREET, EHLO, ehlo("PIPELINING", "8BITMIME"),
             ("C", b"MAIL FROM:<a@x.org>\r\n"), ("C", b"RCPT TO:<b@y.org>\r\n"),
             ("C", b"RCPT TO:<c@y.org>\r\n"), ("C", b"DATA\r\n"),
             ("S", b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
             ("C", BODY + b".\r\nQUIT\r\n"), ("S", b"250 queued\r\n221 bye\r\n")]
    result, script, _ = run(steps, usetls=False, env=Envelope("a@x.org", ["b@y.org", "c@y.org"]))
    assert result == []
    assert len(script.writes) == 3   # EHLO; MAIL+RCPT+RCPT+DATA; data+"."+QUIT


def test_size_and_body_parameters():
    data = message(b"Subject: t\r\n\r\ncaf\xc3\xa9\r\n")
    steps = [GREET, EHLO, ehlo("SIZE 1000", "8BITMIME"),
             ("C", f"MAIL FROM:<a@x.org> SIZE={data.size} BODY=8BITMIME\r\n".encode()),
             ("S", b"250 ok\r\n"), ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"DATA\r\n"), ("S", b"354 go\r\n"), ("C", b"Subject: t\r\n\r\ncaf\xc3\xa9\r\n.\r\n"),
             ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    run(steps, usetls=False, data=data)


def test_message_too_big_before_any_data():
    data = message(b"x" * 1998 + b"\r\n")
    with pytest.raises(smtpsend.MessageTooBig) as info:
        run([GREET, EHLO, ehlo("SIZE 1000")], usetls=False, data=data)
    assert (info.value.size, info.value.limit) == (2000, 1000)


def test_dot_stuffing_and_final_crlf():
    data = message(b"Subject: t\r\n\r\n.leading dot\r\nmiddle\r\n..two\r\nno final newline")
    steps = [GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"), ("C", b"DATA\r\n"), ("S", b"354 go\r\n"),
             ("C", b"Subject: t\r\n\r\n..leading dot\r\nmiddle\r\n...two\r\nno final newline\r\n.\r\n"),
             ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    run(steps, usetls=False, data=data)


def test_bare_line_breaks_never_reach_the_wire():
    # SMTP smuggling (CVE-2023-51764 class): "\n.\n" must not end the data early
    data = message(b"Subject: t\r\n\r\na\n.\nb\r.\rc\n.\r\nd")
    steps = [GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"), ("C", b"DATA\r\n"), ("S", b"354 go\r\n"),
             ("C", b"Subject: t\r\n\r\na\r\n..\r\nb\r\n..\r\nc\r\n..\r\nd\r\n.\r\n"),
             ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    run(steps, usetls=False, data=data)


def test_sender_refused_5xx_raises():
    with pytest.raises(smtpsend.SenderRefused) as info:
        run([GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"),
             ("S", b"550 5.7.1 sender rejected\r\n")], usetls=False)
    assert info.value.reply.status.__str__() == "5.7.1"
    assert info.value.command == "MAIL FROM:<a@x.org>"
    assert info.value.is_permanent


def test_mail_4xx_is_server_failure():
    with pytest.raises(smtpsend.ServerUnavailable):
        run([GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"451 later\r\n")],
            usetls=False)


TWO = Envelope("a@x.org", ["b@y.org", "bad@y.org"])


def test_refused_recipient_without_atleastone_sends_rset_and_nothing():
    steps = [GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<bad@y.org>\r\n"), ("S", b"550 5.1.1 no such user\r\n"),
             ("C", b"RSET\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    with pytest.raises(smtpsend.RecipientsRefused) as info:
        run(steps, usetls=False, env=TWO)
    [rej] = info.value.rejected
    assert (rej.address, rej.code, rej.status) == ("bad@y.org", 550, "5.1.1")


def test_refused_recipient_with_pipelining_drops_the_connection_without_the_dot():
    steps = [GREET, EHLO, ehlo("PIPELINING"), ("C", b"MAIL FROM:<a@x.org>\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("C", b"RCPT TO:<bad@y.org>\r\n"), ("C", b"DATA\r\n"),
             ("S", b"250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n354 go\r\n")]
    with pytest.raises(smtpsend.RecipientsRefused):
        result, script, _ = run(steps, usetls=False, env=TWO)


def test_atleastone_sends_to_the_accepted_and_returns_the_rejected():
    steps = [GREET, EHLO, ehlo("PIPELINING"), ("C", b"MAIL FROM:<a@x.org>\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("C", b"RCPT TO:<bad@y.org>\r\n"), ("C", b"DATA\r\n"),
             ("S", b"250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n354 go\r\n"),
             ("C", BODY + b".\r\nQUIT\r\n"), ("S", b"250 ok\r\n221 bye\r\n")]
    result, _, _ = run(steps, usetls=False, env=TWO, atleastone=True)
    assert [(r.address, r.code, r.status, r.is_permanent) for r in result] == [("bad@y.org", 550, "5.1.1", True)]


def test_atleastone_with_nobody_accepted_raises():
    steps = [GREET, EHLO, ehlo("PIPELINING"), ("C", b"MAIL FROM:<a@x.org>\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("C", b"DATA\r\n"),
             ("S", b"250 ok\r\n550 5.1.1 unknown\r\n554 5.5.1 no valid recipients\r\n"),
             ("C", b"RSET\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    with pytest.raises(smtpsend.RecipientsRefused):
        run(steps, usetls=False, atleastone=True)


def test_every_recipient_4xx_is_transient():
    steps = [GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"450 4.2.0 greylisted\r\n"),
             ("C", b"RSET\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    with pytest.raises(smtpsend.RecipientsRefused) as info:
        run(steps, usetls=False)
    assert info.value.rejected[0].is_transient and not info.value.is_permanent


@pytest.mark.parametrize("reply,error", [(b"554 5.6.0 no\r\n", smtpsend.DataRefused),
                                         (b"451 4.3.0 later\r\n", smtpsend.ServerUnavailable)])
def test_final_dot_refusals(reply, error):
    steps = [GREET, EHLO, ehlo("HELP")] + plain_transaction()[:-3] + [("S", reply)]
    with pytest.raises(error):
        run(steps, usetls=False)


@pytest.mark.parametrize("failure", [("EOF",), ("TIMEOUT",), ("S", b"garbage\r\n")])
def test_lost_after_the_data_is_uncertain(failure):
    steps = [GREET, EHLO, ehlo("HELP")] + plain_transaction()[:-3] + [failure]
    with pytest.raises(smtpsend.DeliveryUncertain):
        run(steps, usetls=False)


def test_lost_goodbye_still_delivered():
    steps = [GREET, EHLO, ehlo("HELP")] + plain_transaction()[:-1] + [("EOF",)]
    assert run(steps, usetls=False)[0] == []


def test_malformed_reply_is_a_protocol_error():
    with pytest.raises(smtpsend.RemoteProtocolError):
        run([("S", b"2x0 hello\r\n")], usetls=False)


def test_530_to_mail_is_the_servers_terms():
    with pytest.raises(smtpsend.ServerUnavailable):
        run([GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"),
             ("S", b"530 5.7.0 Must issue a STARTTLS command first\r\n")], usetls=False)


def test_421_anywhere_is_server_failure():
    with pytest.raises(smtpsend.ServerUnavailable):
        run([GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"421 4.4.2 timeout\r\n")], usetls=False)


# ---------------------------------------------------------------- TLS

def test_starttls_then_ehlo_again_and_forget_old_extensions():
    steps = [GREET, EHLO, ehlo("STARTTLS", "SIZE 10"), ("C", b"STARTTLS\r\n"), ("S", b"220 go ahead\r\n"),
             ("TLS", TLS_INFO), EHLO, ehlo("PIPELINING"),
             ("C", b"MAIL FROM:<a@x.org>\r\n"), ("C", b"RCPT TO:<b@y.org>\r\n"), ("C", b"DATA\r\n"),
             ("S", b"250 ok\r\n250 ok\r\n354 go\r\n"), ("C", BODY + b".\r\nQUIT\r\n"),
             ("S", b"250 ok\r\n221 bye\r\n")]
    _, _, session = run(steps)
    assert "SIZE" not in session.extensions and session.tls is TLS_INFO


def test_starttls_injection_discarded():
    # bytes sent with the 220 before the handshake must not be read afterwards (RFC 3207 4.2)
    steps = [GREET, EHLO, ehlo("STARTTLS"), ("C", b"STARTTLS\r\n"),
             ("S", b"220 go ahead\r\n250-injected\r\n250 PIPELINING\r\n"),
             ("TLS", TLS_INFO), EHLO, ehlo("HELP")] + plain_transaction()
    _, _, session = run(steps)
    assert "PIPELINING" not in session.extensions


def test_handshake_failure_never_downgrades():
    calls = []
    steps = [GREET, EHLO, ehlo("STARTTLS"), ("C", b"STARTTLS\r\n"), ("S", b"220 go\r\n"),
             ("TLS", TLSError("certificate verification failed"))]
    with pytest.raises(TLSError):
        run(steps, tlspolicy=lambda code, text: calls.append((code, text)) or "insecure")
    assert calls and "certificate" in calls[0][1]


def test_starttls_absent_default_policy_continues_in_plaintext():
    steps = [GREET, EHLO, ehlo("HELP")] + plain_transaction()
    run(steps)


def test_starttls_absent_secure_policy_fails():
    with pytest.raises(smtpsend.TLSRequired):
        run([GREET, EHLO, ehlo("HELP")], tlspolicy="secure")


def test_starttls_refused_asks_the_policy():
    calls = []
    steps = [GREET, EHLO, ehlo("STARTTLS"), ("C", b"STARTTLS\r\n"), ("S", b"454 4.7.0 TLS not available\r\n")]
    with pytest.raises(smtpsend.TLSRequired):
        run(steps, tlspolicy=lambda code, text: calls.append((code, text)) or "secure")
    assert calls == [(454, "4.7.0 TLS not available")]
    steps += plain_transaction()
    run(steps, tlspolicy=lambda code, text: "insecure")


def test_credentials_never_in_cleartext_by_default():
    for features in (("AUTH PLAIN",), ("STARTTLS", "AUTH PLAIN")):
        steps = [GREET, EHLO, ehlo(*features)]
        if "STARTTLS" in features:
            steps += [("C", b"STARTTLS\r\n"), ("S", b"454 no TLS\r\n")]
        with pytest.raises(smtpsend.TLSRequired):
            run(steps, username="u", password="p")


def test_implicit_tls_handshake_first():
    steps = [("TLS", TLS_INFO), GREET, EHLO, ehlo("HELP")] + plain_transaction()
    run(steps, implicit_tls=True)


# ---------------------------------------------------------------- AUTH

def b64(data):
    return base64.b64encode(data)


def auth_steps(*exchange):
    return [("TLS", TLS_INFO), GREET, EHLO, ehlo(*exchange[0])] + list(exchange[1:])


def test_plain_with_initial_response_and_redacted_trace():
    steps = auth_steps(("AUTH LOGIN PLAIN",),
                       ("C", b"AUTH PLAIN " + b64(b"\0user\0s3cret") + b"\r\n"), ("S", b"235 ok\r\n"),
                       *plain_transaction())
    _, _, session = run(steps, implicit_tls=True, username="user", password="s3cret")
    trace = "\n".join(session.lines)
    assert "s3cret" not in trace and b64(b"\0user\0s3cret").decode() not in trace
    assert "> AUTH PLAIN ***" in trace


def test_strongest_mechanism_first_then_fall_back():
    steps = auth_steps(("AUTH PLAIN CRAM-MD5",),
                       ("C", b"AUTH CRAM-MD5\r\n"), ("S", b"334 " + b64(b"<1.2@mx>") + b"\r\n"),
                       ("C", b64(b"user " + __import__("hmac").new(b"pw", b"<1.2@mx>", "md5").hexdigest().encode())
                        + b"\r\n"),
                       ("S", b"534 5.7.9 mechanism too weak\r\n"),   # the mechanism failed: next one
                       ("C", b"AUTH PLAIN " + b64(b"\0user\0pw") + b"\r\n"), ("S", b"235 ok\r\n"),
                       *plain_transaction())
    run(steps, implicit_tls=True, username="user", password="pw")


def test_all_mechanisms_fail():
    steps = auth_steps(("AUTH PLAIN LOGIN",),
                       ("C", b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n"), ("S", b"454 4.7.0 try later\r\n"),
                       ("C", b"AUTH LOGIN\r\n"), ("S", b"334 " + b64(b"Username:") + b"\r\n"),
                       ("C", b64(b"u") + b"\r\n"), ("S", b"334 " + b64(b"Password:") + b"\r\n"),
                       ("C", b64(b"p") + b"\r\n"), ("S", b"535 5.7.8 bad\r\n"))
    with pytest.raises(smtpsend.AuthenticationError) as info:
        run(steps, implicit_tls=True, username="u", password="p")
    assert [name for name, _ in info.value.replies] == ["PLAIN", "LOGIN"]
    assert [r.code for _, r in info.value.replies] == [454, 535]


def test_scram_server_that_cannot_prove_itself_is_refused():
    # driven by hand: the client nonce is random, so the script is written as we go
    from smtpsend._reply import ReplyParser
    from smtpsend._session import Session
    from transcript import message as msg
    sess = Session(client="client.example", implicit_tls=True, username="user", password="pencil")
    gen = sess.run(Envelope("a@x.org", ["b@y.org"]), msg())
    action = next(gen)                      # StartTLS
    action = gen.send(TLS_INFO)             # Read greeting
    p = ReplyParser()
    action = gen.send(p.feed(b"220 hi\r\n"))     # Send EHLO
    action = gen.send(None)
    action = gen.send(p.feed(b"250-mx\r\n250 AUTH SCRAM-SHA-256\r\n"))
    first = base64.b64decode(action.data.split()[2])
    nonce = first.split(b"r=")[1].decode()
    gen.send(None)
    action = gen.send(p.feed(b"334 " + b64(f"r={nonce}XYZ,s={base64.b64encode(b'salt').decode()},i=4096".encode())
                             + b"\r\n"))
    gen.send(None)
    action = gen.send(p.feed(b"334 " + b64(b"v=" + b64(b"wrong signature")) + b"\r\n"))
    assert action.data == b"*\r\n"          # the exchange is cancelled
    gen.send(None)
    with pytest.raises(smtpsend.RemoteProtocolError):
        gen.send(p.feed(b"501 5.7.0 cancelled\r\n"))


def test_no_auth_offered_with_credentials():
    with pytest.raises(smtpsend.NotSupported):
        run([("TLS", TLS_INFO), GREET, EHLO, ehlo("HELP")], implicit_tls=True, username="u", password="p")


# ---------------------------------------------------------------- addresses

def test_non_ascii_local_part_needs_smtputf8():
    env = Envelope("a@x.org", ["jörg@y.org"])
    with pytest.raises(smtpsend.NotSupported):
        run([GREET, EHLO, ehlo("HELP")], usetls=False, env=env)
    steps = [GREET, EHLO, ehlo("SMTPUTF8"), ("C", b"MAIL FROM:<a@x.org> SMTPUTF8\r\n"), ("S", b"250 ok\r\n"),
             ("C", "RCPT TO:<jörg@y.org>\r\n".encode()), ("S", b"250 ok\r\n"), ("C", b"DATA\r\n"),
             ("S", b"354 go\r\n"), ("C", BODY + b".\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"),
             ("S", b"221 bye\r\n")]
    run(steps, usetls=False, env=env)


def test_idn_domain_as_a_labels_without_smtputf8():
    env = Envelope("a@x.org", ["info@bücher.example"])
    steps = [GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<info@xn--bcher-kva.example>\r\n"), ("S", b"250 ok\r\n"), ("C", b"DATA\r\n"),
             ("S", b"354 go\r\n"), ("C", BODY + b".\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"),
             ("S", b"221 bye\r\n")]
    run(steps, usetls=False, env=env)


def test_null_reverse_path():
    steps = [GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<>\r\n"), ("S", b"250 ok\r\n"),
             ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"), ("C", b"DATA\r\n"),
             ("S", b"354 go\r\n"), ("C", BODY + b".\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"),
             ("S", b"221 bye\r\n")]
    run(steps, usetls=False, env=Envelope("", ["b@y.org"]))


def test_queue_sends_qued_when_xque_offered():
    steps = [GREET, EHLO, ehlo("XQUE"), ("C", b"QUED\r\n"), ("S", b"250 queued mode\r\n")] + plain_transaction()
    run(steps, usetls=False, queue=True)
    run([GREET, EHLO, ehlo("HELP")] + plain_transaction(), usetls=False, queue=True)


def test_timeouts_from_rfc_5321_and_maxsecs():
    t = Timeouts.make(None, 42)
    assert (t.greeting, t.command, t.data_start, t.data_block, t.final) == (300, 300, 120, 180, 42)
    assert Timeouts.make(5, 9).command == 5 and Timeouts.make(5, 9).final == 9


# ---------------------------------------------------------------- the layout (issue 14)

import ast  # noqa: E402
import inspect  # noqa: E402
import pathlib  # noqa: E402
import typing  # noqa: E402

from smtpsend import _failover, _options  # noqa: E402
from smtpsend._esmtp import Delivery  # noqa: E402
from smtpsend._extensions import Extensions  # noqa: E402
from smtpsend._reply import Reply  # noqa: E402
from smtpsend._transaction import (chunked, pipelined, pipelined_chunks, pipelined_last, plain,  # noqa: E402
                                   shape_for)

ROOT = pathlib.Path(__file__).resolve().parent.parent
SMTPSEND = ROOT / "smtpsend"

# smtpsend's core, lowest first, as docs/architecture.md draws it: a module
# imports only modules of the layers before its own, at module level.
LAYERS = [
    {"_errors", "_secret", "_deprecated"},
    {"_reply", "_sasl", "_data", "_url"},
    {"_extensions", "_envelope", "_driver"},
    {"_sockets", "_verdicts"},
    {"_channel", "_esmtp"},
    {"_setup", "_transaction"},
    {"_bulk", "_options"},
    {"_session"},
    {"_failover"},
    {"_sync", "_pool"},
    {"_async", "_client", "_transport"},
    {"_atransport"},
    {"__init__"},
]
RANK = {name: n for n, layer in enumerate(LAYERS) for name in layer}


def _smtpsend_imports(path):
    """(line, imported smtpsend module, at module level?) for every import of
    a smtpsend module in ``path``; imports under ``if TYPE_CHECKING`` are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    checking = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and ast.unparse(node.test).endswith("TYPE_CHECKING") for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [a.name for a in node.names]
            for name in names:
                yield node.lineno, name.split(".")[0], id(node) in top
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("smtpsend"):
            yield node.lineno, (node.module.split(".") + ["__init__"])[1], id(node) in top
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("smtpsend."):
                    yield node.lineno, alias.name.split(".")[1], id(node) in top


@pytest.mark.parametrize("name", sorted(RANK), ids=str)
def test_smtpsend_core_imports_flow_one_way(name):
    path = SMTPSEND / f"{name}.py"
    if not path.exists():
        pytest.skip(f"{name}.py is not there")
    wrong = [f"line {line}: {name} imports {target}" + ("" if top else " inside a function")
             for line, target, top in _smtpsend_imports(path)
             if RANK.get(target, len(LAYERS)) >= RANK[name] or not top]
    assert wrong == []


def test_the_layer_check_sees_a_violation(tmp_path):
    bad = tmp_path / "_driver.py"
    bad.write_text("from ._session import Session\ndef f():\n    from . import _errors\n"
                   "import typing\nif typing.TYPE_CHECKING:\n    from ._client import Client\n")
    assert list(_smtpsend_imports(bad)) == [(1, "_session", True), (3, "_errors", False)]


def test_the_architecture_page_names_every_core_module():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert [name for name in sorted(RANK) if (SMTPSEND / f"{name}.py").exists()
            and f"`{name}" not in page] == []
    assert "## mimecompose" in page


# the modules whose import lines on the architecture page are checked exactly
# (the others -- _data, _envelope -- only by their layer)
DRAWN = ["__init__", "_atransport", "_async", "_client", "_transport", "_sync", "_pool", "_failover", "_session", "_bulk", "_options", "_setup",
         "_transaction", "_channel", "_esmtp", "_sockets", "_verdicts", "_driver", "_extensions", "_reply",
         "_sasl", "_errors", "_secret", "_url", "_deprecated"]


def test_the_architecture_page_lists_each_modules_imports():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawn = {}
    for line in page.splitlines():
        name, arrow, rest = line.partition(" -> ")
        if arrow and name.strip() in RANK:
            drawn[name.strip()] = set() if "(nothing)" in rest else {t.strip() for t in rest.split(",")}
    actual = {name: {target for _, target, _ in _smtpsend_imports(SMTPSEND / f"{name}.py")} for name in DRAWN}
    assert {name: drawn.get(name) for name in DRAWN} == actual


# above the core, the command's modules, lowest first: each imports only those before it
COMMAND_LAYERS = [{"_cliexit"}, {"_cliconfig"}, {"_clicredentials", "_cliserve"}, {"cli"}]


def test_the_commands_modules_import_one_way():
    rank = {name: n for n, layer in enumerate(COMMAND_LAYERS) for name in layer}
    wrong = [f"line {line}: {name} imports {target}" for name in sorted(rank)
             for line, target, _ in _smtpsend_imports(SMTPSEND / f"{name}.py")
             if rank.get(target, -1) >= rank[name]]
    assert wrong == []
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert [name for name in sorted(rank) if f"`{name}`" not in page] == []


# above the core: integrations on smtpsend's and mimecompose's public names only
INTEGRATIONS = ["celery", "django", "logging"]


def _private_imports(path):
    """Imports in ``path`` (anywhere in it) of a private module of ours, or relative ones."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = [(n.lineno, "." * n.level + (n.module or "")) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [(n.lineno, a.name) for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    return [f"line {line}: {module}" for line, module in modules if module.startswith(".")
            or (module.split(".")[0] in ("smtpsend", "mimecompose")
                and any(part.startswith("_") for part in module.split(".")[1:]))]


@pytest.mark.parametrize("name", INTEGRATIONS)
def test_the_integrations_use_only_the_public_api(name):
    path = SMTPSEND / f"{name}.py"
    if not path.exists():
        pytest.skip(f"{name}.py is not there")
    assert _private_imports(path) == []


def test_the_integration_check_sees_a_private_import(tmp_path):
    bad = tmp_path / "celery.py"
    bad.write_text("import smtpsend\nfrom smtpsend._errors import hint\ndef f():\n    from . import _sync\n"
                   "import mimecompose._part\nfrom smtpsend.testing import CaptureServer\n")
    assert sorted(_private_imports(bad)) == ["line 2: smtpsend._errors", "line 4: .", "line 5: mimecompose._part"]


def test_client_uses_only_the_dialogues_public_methods():
    """Client reaches into no private attribute of another object (the
    session, its setup, the connection): only its own."""
    tree = ast.parse((SMTPSEND / "_client.py").read_text(encoding="utf-8"))
    private = [f"line {n.lineno}: {ast.unparse(n)}" for n in ast.walk(tree)
               if isinstance(n, ast.Attribute) and n.attr.startswith("_") and not n.attr.startswith("__")
               and not (isinstance(n.value, ast.Name) and n.value.id == "self")]
    assert private == []


def test_failover_does_no_io():
    imported = {line.split()[1].split(".")[0] for line in
                (SMTPSEND / "_failover.py").read_text(encoding="utf-8").splitlines()
                if line.startswith(("import ", "from "))}
    assert not imported & {"socket", "ssl", "asyncio", "select", "selectors"}


DIALOGUE = ["_setup.py", "_transaction.py", "_bulk.py", "_session.py", "_channel.py", "_failover.py",
            "_client.py"]


@pytest.mark.parametrize("name", DIALOGUE)
def test_only_the_verdicts_read_reply_codes(name):
    """What a reply means is decided in smtpsend._verdicts alone: the
    dialogue modules never compare a reply code (they may print one)."""
    def reads_code(node):   # ``reply.code``, ``reply.code // 100``: not inside a call's arguments
        return (isinstance(node, ast.Attribute) and node.attr == "code") or \
            (isinstance(node, ast.BinOp) and (reads_code(node.left) or reads_code(node.right)))
    tree = ast.parse((SMTPSEND / name).read_text(encoding="utf-8"))
    compared = [f"line {n.lineno}: {ast.unparse(n)}" for n in ast.walk(tree) if isinstance(n, ast.Compare)
                and any(reads_code(part) for part in [n.left, *n.comparators])]
    assert compared == []


@pytest.mark.parametrize("keywords,atleastone,shape", [
    ((), False, plain), ((), True, plain),
    (("CHUNKING",), False, chunked),
    (("PIPELINING",), False, pipelined), (("PIPELINING",), True, pipelined),
    (("PIPELINING", "CHUNKING"), False, pipelined_chunks),
    (("PIPELINING", "CHUNKING"), True, pipelined_last),
])
def test_one_shape_per_combination_of_extensions(keywords, atleastone, shape):
    ext = Extensions.from_reply(Reply(250, ("mx.example",) + keywords))
    assert shape_for(ext, Delivery(atleastone=atleastone)) is shape


# ---------------------------------------------------------------- the public API's shape

def _parameters(function):
    return [p for p in inspect.signature(function).parameters.values() if p.name != "self"]


KEYWORD_AFTER_FIRST = [smtpsend.sendmessage, smtpsend.asendmessage, smtpsend.Client.sendmessage,
                       smtpsend.Client.sendmessages, smtpsend.verify, smtpsend.expand, smtpsend.smtp_help,
                       smtpsend.etrn, smtpsend.Client.mail, smtpsend.Client.rcpt, smtpsend.envelope,
                       smtpsend.transmitted]


@pytest.mark.parametrize("function", KEYWORD_AFTER_FIRST, ids=lambda f: f.__qualname__)
def test_options_after_the_first_argument_are_keyword_only(function):
    rest = _parameters(function)[1:]
    assert rest and all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in rest), \
        [p.name for p in rest if p.kind not in (p.KEYWORD_ONLY, p.VAR_KEYWORD)]


def test_connect_takes_its_address_then_keywords():
    server, port, *rest = _parameters(smtpsend.connect)
    assert (server.name, port.name) == ("server", "port")
    assert all(p.kind is p.KEYWORD_ONLY for p in [port, *rest])


def test_connect_with_a_positional_port_still_works_deprecated():
    # port 1 on loopback: nothing listens, so the call gets as far as connecting there
    with pytest.warns(DeprecationWarning, match=r"pass port= by keyword"):
        with pytest.raises(smtpsend.TransportError) as info:
            smtpsend.connect("127.0.0.1", 1, timeout=5)
    assert info.value.port == 1


def test_asendmessage_has_sendmessage_written_out():
    sync, asyn = inspect.signature(smtpsend.sendmessage), inspect.signature(smtpsend.asendmessage)
    assert inspect.iscoroutinefunction(smtpsend.asendmessage)
    assert [(p.name, p.kind, p.default, p.annotation) for p in asyn.parameters.values()] == \
        [(p.name, p.kind, p.default, p.annotation) for p in sync.parameters.values()]
    assert asyn.return_annotation == sync.return_annotation
    assert "args" not in asyn.parameters and "kwargs" not in asyn.parameters


def test_plan_checks_what_sendmessage_takes():
    wanted = [(p.name, p.default, p.annotation) for p in _parameters(smtpsend.sendmessage)
              if p.name != "ssl_context"]
    assert [(p.name, p.default, p.annotation) for p in _parameters(_failover.plan)] == wanted


def test_the_one_call_helpers_pass_on_connects_options():
    keywords = [p.name for p in _parameters(smtpsend.connect) if p.kind is p.KEYWORD_ONLY and p.name != "port"]
    assert list(typing.get_type_hints(_options.ConnectOptions)) == keywords


def test_every_public_function_is_fully_typed():
    functions = [getattr(smtpsend, name) for name in smtpsend.__all__ if inspect.isfunction(getattr(smtpsend, name))]
    functions += [f for name, f in vars(smtpsend.Client).items() if inspect.isfunction(f)
                  and not name.startswith("_")]
    untyped = [f"{f.__qualname__}({p.name})" for f in functions for p in _parameters(f)
               if p.annotation is p.empty]
    untyped += [f"{f.__qualname__} -> ?" for f in functions if inspect.signature(f).return_annotation is
                inspect.Signature.empty]
    assert untyped == []


def _classes(hint):
    if isinstance(hint, type):
        yield hint
    for arg in typing.get_args(hint):
        yield from _classes(arg)


def test_the_types_public_methods_return_are_exported():
    functions = [getattr(smtpsend, name) for name in smtpsend.__all__ if inspect.isfunction(getattr(smtpsend, name))]
    functions += [f for name, f in vars(smtpsend.Client).items() if inspect.isfunction(f)
                  and not name.startswith("_")]
    returned = {cls for f in functions for cls in _classes(typing.get_type_hints(f).get("return"))
                if cls.__module__.startswith("smtpsend")}
    assert sorted(c.__name__ for c in returned if getattr(smtpsend, c.__name__, None) is not c) == []
    assert {"Extensions", "TLSInfo", "Event", "Reply", "Rejected", "Outcome"} <= set(smtpsend.__all__)


def test_no_exported_name_hides_a_builtin():
    import builtins
    assert [name for name in smtpsend.__all__ if hasattr(builtins, name)] == []
    namespace: dict = {}
    exec("from smtpsend import *", namespace)
    assert "help" not in namespace
    assert smtpsend.Client.help.__name__ == "help"   # on a connection, HELP keeps its SMTP name
