"""AUTH: one failed login per wrong password, the next mechanism only when
the mechanism failed, no secret in any error, credentials checked before
connecting, and nothing but smtpsend's errors out of a hostile exchange."""

import base64
import hmac
import inspect

import pytest

import mimecompose
import smtpsend
from smtpsend._reply import Reply, ReplyParser
from smtpsend._sasl import (Login, Plain, SASLFailure, ScramSHA256, XOAuth2, check_credentials, choose,
                            saslprep)
from smtpsend._failover import failover, plan
from smtpsend._sync import sendmessage
from smtpsend._driver import Close, Connect, Read, Resolve, Send, StartTLS
from smtpsend._sync import pump
from smtpsend.testing import CaptureServer

from conftest import SENTINEL
from servers import Conversation, ScriptedServer, free_port
from transcript import TLS_INFO, run

GREET = ("S", b"220 mx.example ESMTP\r\n")
EHLO = ("C", b"EHLO client.example\r\n")


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def ehlo(*keywords):
    lines = ["mx.example"] + list(keywords)
    return ("S", b"".join(f"250-{l}\r\n".encode() for l in lines[:-1]) + f"250 {lines[-1]}\r\n".encode())


def start(*keywords):
    return [("TLS", TLS_INFO), GREET, EHLO, ehlo(*keywords)]


def part():
    return mimecompose.compose("x", header=[("From", "a@example.com"), ("To", "b@example.com")])


# ---------------------------------------------------------------- one wrong password, one failed login

def test_a_wrong_password_is_one_failed_login_at_a_real_server(server_tls, client_tls):
    # the capture server offers CRAM-MD5, PLAIN and LOGIN and answers 535 5.7.8 to a wrong password
    with CaptureServer(tls_context=server_tls, users={"user": "right"}) as server:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                                 username="user", password=SENTINEL)
        assert sum(c.upper().startswith("AUTH") for c in server.commands) == 1   # one failed login
    error = info.value.attempts[0].error
    assert isinstance(error, smtpsend.AuthenticationError)
    assert [(name, reply.code) for name, reply in error.replies] == [("CRAM-MD5", 535)]
    assert "not tried with the same credentials: PLAIN LOGIN" in str(error)
    assert str(info.value).splitlines()[-1].startswith("hint: the server refused the user name or password")


@pytest.mark.parametrize("refusal", [b"535 5.7.8 Authentication credentials invalid\r\n", b"535 no\r\n",
                                     b"554 5.7.8 credentials refused\r\n", b"550 5.7.1 not allowed\r\n"])
def test_a_definitive_refusal_ends_auth(refusal):
    steps = start("AUTH PLAIN LOGIN") + [("C", b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n"), ("S", refusal)]
    with pytest.raises(smtpsend.AuthenticationError) as info:
        run(steps, implicit_tls=True, username="u", password="p")   # the script has no second AUTH
    assert [name for name, _ in info.value.replies] == ["PLAIN"]


@pytest.mark.parametrize("failure", [b"504 5.5.4 unrecognized mechanism\r\n", b"534 5.7.9 too weak\r\n",
                                     b"538 5.7.11 encryption required\r\n", b"454 4.7.0 temporary failure\r\n",
                                     b"432 4.7.12 password transition needed\r\n"])
def test_a_mechanism_failure_moves_to_the_next_mechanism(failure):
    steps = start("AUTH PLAIN CRAM-MD5") + [
        ("C", b"AUTH CRAM-MD5\r\n"), ("S", failure),
        ("C", b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n"), ("S", b"235 2.7.0 ok\r\n"),
        ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"421 4.3.2 bye\r\n")]
    with pytest.raises(smtpsend.ServerUnavailable) as info:   # AUTH succeeded; the 421 came at MAIL
        run(steps, implicit_tls=True, username="u", password="p")
    assert info.value.command == "MAIL"


def test_a_malformed_challenge_is_cancelled_and_the_next_mechanism_tried():
    steps = start("AUTH PLAIN CRAM-MD5") + [
        ("C", b"AUTH CRAM-MD5\r\n"), ("S", b"334 not base64 at all!\r\n"),
        ("C", b"*\r\n"), ("S", b"501 5.7.0 cancelled\r\n"),
        ("C", b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n"), ("S", b"235 2.7.0 ok\r\n"),
        ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"421 4.3.2 bye\r\n")]
    with pytest.raises(smtpsend.ServerUnavailable) as info:
        run(steps, implicit_tls=True, username="u", password="p")
    assert info.value.command == "MAIL"   # AUTH succeeded; the 421 came at MAIL


# ---------------------------------------------------------------- a server that answers as it goes

class Responder:
    """A driver whose server answers each line the client sends with
    ``answer(line)`` (bytes: one or more replies); it speaks first with a
    greeting and an EHLO reply announcing ``mechanisms``."""

    def __init__(self, mechanisms: str, exchange):
        self.exchange = exchange
        self.sent: list[bytes] = []
        self.mechanisms = mechanisms
        self._connect()

    def _connect(self):
        self.answer = self.exchange()
        self.parser = ReplyParser()
        self.queued = [Reply(220, ("mx.example ESMTP",))]

    def perform(self, action):
        if isinstance(action, Resolve):
            return [(2, ("127.0.0.1", action.port))]
        if isinstance(action, Connect):
            self._connect()
            return None
        if isinstance(action, Close):
            return None
        if isinstance(action, StartTLS):
            return TLS_INFO
        if isinstance(action, Send):
            data = action.data if isinstance(action.data, bytes) else b"".join(action.data)
            for line in data.split(b"\r\n")[:-1]:
                self.sent.append(line)
                if line.startswith(b"EHLO"):
                    reply = b"250-mx.example\r\n250 AUTH " + self.mechanisms.encode() + b"\r\n"
                else:
                    reply = self.answer(line)
                self.queued.extend(self.parser.feed(reply))
            return None
        if isinstance(action, Read):
            out, self.queued = self.queued[:action.count], self.queued[action.count:]
            assert len(out) == action.count, "the client waits for a reply the server never sends"
            return out
        raise AssertionError(action)


def scram_server(line: bytes) -> bytes:
    if line.startswith(b"AUTH SCRAM-SHA-256 "):
        first = base64.b64decode(line.split()[2])
        nonce = first.split(b"r=")[1]
        return b"334 " + b64(b"r=" + nonce + b"srv,s=" + b64(b"salt") + b",i=4096") + b"\r\n"
    return b"421 4.4.2 shutting down\r\n"      # answers the client's proof


def challenges(*replies: bytes):
    """An exchange: a fresh answer() per connection, giving the replies in order, then 421."""
    def exchange():
        queue = list(replies)
        return lambda line: queue.pop(0) if queue else b"421 4.4.2 shutting down\r\n"
    return exchange


EXCHANGES = {
    "LOGIN": challenges(b"334 " + b64(b"Username:") + b"\r\n", b"334 " + b64(b"Password:") + b"\r\n"),
    "PLAIN": challenges(),
    "CRAM-MD5": challenges(b"334 " + b64(b"<1.2@mx.example>") + b"\r\n"),
    "DIGEST-MD5": challenges(b"334 " + b64(b'realm="mx",nonce="abc",qop="auth",charset=utf-8') + b"\r\n"),
    "SCRAM-SHA-256": lambda: scram_server,
    "OAUTHBEARER": challenges(),
    "XOAUTH2": challenges(b"334 " + b64(b'{"status":"401"}') + b"\r\n"),   # then the empty response gets 421
}


def texts_of(error, seen=None):
    """Every string an error shows: str, repr, and those of its attributes,
    its cause and context, and the errors of its attempts, recursively."""
    seen = set() if seen is None else seen
    if id(error) in seen:
        return []
    seen.add(id(error))
    out = [str(error), repr(error)]
    if isinstance(error, BaseException):
        for value in list(vars(error).values()) + [error.__cause__, error.__context__, *error.args]:
            if isinstance(value, BaseException):
                out += texts_of(value, seen)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    out += texts_of(item, seen) if isinstance(item, BaseException) else [repr(item)]
                    if hasattr(item, "error"):
                        out += texts_of(item.error, seen)
            else:
                out.append(repr(value))
    return out


@pytest.mark.parametrize("mechanism", sorted(EXCHANGES))
def test_a_421_mid_sasl_carries_no_secret_and_failover_moves_on(mechanism):
    events = []
    secret = {"token": SENTINEL} if mechanism in ("OAUTHBEARER", "XOAUTH2") else {"password": SENTINEL}
    bound = inspect.signature(sendmessage).bind(part(), servers=["one.example", "two.example"],
                                                tlsimport=True, username="user", events=events.append, **secret)
    bound.apply_defaults()
    options = dict(bound.arguments)
    options.pop("ssl_context")
    driver = Responder(mechanism, EXCHANGES[mechanism])
    with pytest.raises(smtpsend.AllServersFailed) as info:
        pump(failover(plan(**options)), driver)
    errors = [a.error for a in info.value.attempts]
    assert len(errors) == 2 and all(isinstance(e, smtpsend.ServerUnavailable) for e in errors)
    assert errors[0].command == f"AUTH {mechanism} ***"
    # what went on the wire after EHLO: every secret-bearing value, in base64
    wire = [line.split()[-1].decode() for line in driver.sent if line and not line.startswith(b"EHLO")]
    wire = [w for w in wire if len(w) > 8 and w != mechanism]
    shown = texts_of(info.value) + [repr(e.data) for e in events if e.name == "failed"]
    for text in shown:
        assert SENTINEL not in text
        assert not any(w in text for w in wire), text


def test_an_empty_sasl_response_answered_421_is_server_unavailable():
    # XOAUTH2: the client answers the error challenge with an empty line
    steps = start("AUTH XOAUTH2") + [
        ("C", b"AUTH XOAUTH2 " + b64(b"user=u\x01auth=Bearer tok\x01\x01") + b"\r\n"),
        ("S", b"334 " + b64(b'{"status":"400"}') + b"\r\n"), ("C", b"\r\n"), ("S", b"421 4.7.0 bye\r\n")]
    with pytest.raises(smtpsend.ServerUnavailable) as info:   # not IndexError
        run(steps, implicit_tls=True, username="u", token="tok")
    assert info.value.command == "AUTH XOAUTH2 ***"


def test_an_impostor_that_cannot_prove_itself_gets_no_weaker_mechanism():
    def answer(line):
        if line.startswith(b"AUTH SCRAM-SHA-256 "):
            return scram_server(line)
        if line.startswith(b"AUTH"):
            raise AssertionError(f"a weaker mechanism was offered the password: {line!r}")
        if line == b"*":
            return b"501 5.7.0 cancelled\r\n"
        return b"334 " + b64(b"v=" + b64(b"not the signature")) + b"\r\n"
    session = smtpsend._session.Session(client="c.example", implicit_tls=True, username="u", password="pw")
    with pytest.raises(smtpsend.RemoteProtocolError, match="signature"):
        pump(session.open(), Responder("SCRAM-SHA-256 PLAIN LOGIN", lambda: answer))


# ---------------------------------------------------------------- hostile server values

@pytest.mark.parametrize("count", ["²", "1" + "0" * 5000, "0", "-1", "+5", " 5", "٣"])
def test_scram_iteration_counts_that_are_not_plain_digits(count):
    m = ScramSHA256("user", "pencil", cnonce="abc")
    m.start()
    with pytest.raises(SASLFailure):   # not ValueError from int()
        m.respond(f"r=abcsrv,s={b64(b'salt').decode()},i={count}".encode())


def test_a_user_name_saslprep_refuses_skips_scram_and_names_no_character():
    bad = "us\u0007er"      # a control character (RFC 3454 C.2.1)
    skipped = []
    names = [m.name for m in choose(["SCRAM-SHA-256", "PLAIN"], bad, "pw", None, "h", None, skipped)]
    assert names == ["PLAIN"] and [name for name, _ in skipped] == ["SCRAM-SHA-256"]
    assert "\u0007" not in skipped[0][1] and "0007" not in skipped[0][1]
    # only SCRAM offered: a NotSupported for that server (an SMTPError: failover moves on)
    with pytest.raises(smtpsend.NotSupported, match="SASLprep"):
        run(start("AUTH SCRAM-SHA-256"), implicit_tls=True, username=bad, password="pw")


def test_saslprep_errors_never_name_the_character():
    for secret in ("pass\u0007word", "p\ue000w", "\u0627x1", "pw\u200e"):
        try:
            saslprep(secret)
        except SASLFailure as exc:
            text = str(exc)
            assert not any(c in text for c in secret if not c.isascii())
            assert "U+" not in text and "\\u" not in text
        else:
            raise AssertionError(f"{secret!r} passed SASLprep")


def test_unassigned_code_points_are_allowed_as_scram_queries():
    # RFC 5802 section 2.2: SASLprep as a query (a password with a newer emoji works)
    assert saslprep("pw\U0001FAE0") == "pw\U0001FAE0"


# ---------------------------------------------------------------- credentials checked before connecting

@pytest.mark.parametrize("credentials,name", [
    (dict(username="a\0b", password="pw"), "username"),
    (dict(username="u\x01ser", token="tok"), "username"),
    (dict(username="u", token="tok\x01"), "token"),
    (dict(username="u", password="p\0w"), "password"),
    (dict(username="u", password="pw\udcff" + SENTINEL), "password"),
    (dict(username="u", token="t\udcff" + SENTINEL), "token"),
    (dict(username="u\udce9", password="pw"), "username"),
    (dict(password=SENTINEL), "username"),
    (dict(username="u", password=b"bytes"), "password"),
])
def test_credentials_that_cannot_be_sent_are_refused_before_connecting(credentials, name):
    with ScriptedServer(b"220 hi\r\n") as server:
        with pytest.raises(smtpsend.UsageError) as info:
            smtpsend.sendmessage(part(), servers=["127.0.0.1"], ports=[server.port], tlspolicy="insecure",
                                 **credentials)
        with pytest.raises(smtpsend.UsageError):
            smtpsend.connect("127.0.0.1", port=server.port, tlspolicy="insecure", **credentials)
        assert server.connections == 0
    error = info.value
    assert f"{name}=" in str(error)
    for text in (str(error), repr(error), repr(error.args)):
        assert SENTINEL not in text and "\udcff" not in text
    assert error.__context__ is None and error.__cause__ is None


def test_the_mechanisms_refuse_separators_too():
    with pytest.raises(smtpsend.UsageError):
        Plain("a\0b", "pw").start()
    with pytest.raises(smtpsend.UsageError):
        XOAuth2("u\x01", token="t")
    check_credentials("u\r\nRSET", "pw")   # CR/LF go inside base64: harmless, allowed


def test_login_checks_the_credentials_before_sending(server_tls, client_tls):
    with CaptureServer(tls_context=server_tls, users={"u": "pw"}) as server:
        with smtpsend.connect("localhost", port=server.port, ssl_context=client_tls) as smtp:
            with pytest.raises(smtpsend.UsageError):
                smtp.login("u", "pw\udc80")
            smtp.login("u", "pw")
        assert sum(c.upper().startswith("AUTH") for c in server.commands) == 1


def test_failover_over_a_real_421_mid_sasl(no_secret_in_logs):
    # a real socket: the 421 after LOGIN's password, then the next server is tried
    script = [("S", b"220 mx ESMTP\r\n"), ("C", b"EHLO localhost\r\n"), ("S", b"250-mx\r\n250 AUTH LOGIN\r\n"),
              ("C", b"AUTH LOGIN\r\n"), ("S", b"334 " + b64(b"Username:") + b"\r\n"), ("C", b64(b"u") + b"\r\n"),
              ("S", b"334 " + b64(b"Password:") + b"\r\n"), ("C", b64(SENTINEL.encode()) + b"\r\n"),
              ("S", b"421 4.4.2 closing\r\n"), ("CLOSE",)]
    closed = free_port()
    with Conversation(script) as server:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(part(), servers=["localhost", "localhost"], ports=[server.port, closed],
                                 username="u", password=SENTINEL, tlspolicy="insecure", debug=True)
    assert [a.stage for a in info.value.attempts] == ["auth", "connect"]
    assert info.value.attempts[0].error.command == "AUTH LOGIN ***"
    encoded = b64(SENTINEL.encode()).decode()
    for text in texts_of(info.value) + no_secret_in_logs.messages:
        assert SENTINEL not in text and encoded not in text


def test_login_mechanism_values():
    login = Login("u", SENTINEL)
    assert [login.respond(b"Username:"), login.respond(b"Password:")] == [b"u", SENTINEL.encode()]


def test_hmac_of_cram_md5_uses_the_secret():
    from smtpsend._sasl import CramMD5
    assert CramMD5("u", "k").respond(b"c") == b"u " + hmac.new(b"k", b"c", "md5").hexdigest().encode()


# ---------------------------------------------------------------- a huge EHLO

def test_a_huge_ehlo_merges_its_auth_mechanisms_in_linear_time():
    # 512 AUTH lines of 800 distinct names (3.5 MB, more than the reply caps
    # allow): merged with a "not in list" check this would take hours; it
    # must merely finish
    from smtpsend._extensions import Extensions
    lines = ["mx"] + ["AUTH " + " ".join(f"m{i}-{j}" for j in range(800)) for i in range(512)] + ["AUTH PLAIN m0-0"]
    auth = Extensions.from_reply(Reply(250, tuple(lines))).auth
    assert len(auth) == 512 * 800 + 1 and auth[:2] == ["M0-0", "M0-1"] and auth[-1] == "PLAIN"
