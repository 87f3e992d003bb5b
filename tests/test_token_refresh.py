"""OAuth 2 tokens that expire: ``token=`` as a callable ``token(username,
refresh)``, asked once per connection when a token mechanism starts, and
once more (``refresh=True``) when the server rejects the token as invalid
-- then the same mechanism is tried once more on the same connection.
Transcripts (every byte checked, each feed: whole, byte by byte, random
pieces), the capture server over loopback, POP3, and the CLI's
``--token-command``."""

import base64
import hmac
import json

import pytest

import mimecompose
import smtpsend
from smtpsend import _clicredentials, _cliexit, pop3
from smtpsend._sasl import OAuthBearer, XOAuth2, _invalid_token
from smtpsend.testing import CaptureServer

from conftest import SENTINEL
from servers import Conversation
from test_cli import run as run_cli
from transcript import TLS_INFO, play

OLD, NEW = SENTINEL + "-old", SENTINEL + "-new"   # found by the secret checks wherever they show


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def start(mechanisms: str) -> list:
    return [("TLS", TLS_INFO), ("S", b"220 mx.example ESMTP\r\n"), ("C", b"EHLO client.example\r\n"),
            ("S", b"250-mx.example\r\n250 AUTH " + mechanisms.encode() + b"\r\n")]


def xoauth2(token: str) -> bytes:
    return b"AUTH XOAUTH2 " + b64(f"user=u\x01auth=Bearer {token}\x01\x01".encode()) + b"\r\n"


def oauthbearer(token: str) -> bytes:
    return b"AUTH OAUTHBEARER " + b64(f"n,a=u,\x01auth=Bearer {token}\x01\x01".encode()) + b"\r\n"


def challenge(error: dict) -> bytes:
    return b"334 " + b64(json.dumps(error).encode()) + b"\r\n"


# what Gmail answers an expired token with (XOAUTH2), and RFC 7628 section 3.2.2's error (OAUTHBEARER)
GMAIL_EXPIRED = challenge({"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"})
BEARER_INVALID = challenge({"status": "invalid_token", "scope": "mail",
                            "openid-configuration": "https://example.com/.well-known/openid-configuration"})
REFUSED = ("S", b"535 5.7.8 Username and Password not accepted\r\n")
ACCEPTED = ("S", b"235 2.7.0 Accepted\r\n")
# the client's answer to the error challenge: empty for XOAUTH2, ^A for OAUTHBEARER (RFC 7628 3.2.3)
EXCHANGES = {
    "XOAUTH2": (xoauth2, GMAIL_EXPIRED, b"\r\n"),
    "OAUTHBEARER": (oauthbearer, BEARER_INVALID, b64(b"\x01") + b"\r\n"),
}


def open_session(steps, **options):
    """Session.open() over the script, each feed; returns (session, calls of token=)."""
    calls = []
    token = options.pop("token", None)

    def recorded(user, refresh):
        calls.append((user, refresh))
        return token(user, refresh)
    options.setdefault("username", "u")
    _, _, session = play(steps, lambda s: s.open(), implicit_tls=True, token=recorded, **options)
    return session, calls


def fresh_on_refresh(user, refresh):
    return NEW if refresh else OLD


# ---------------------------------------------------------------- refresh and retry on the same connection

@pytest.mark.parametrize("mechanism", sorted(EXCHANGES))
def test_a_token_the_server_rejects_as_invalid_is_refreshed_and_retried_once(mechanism):
    auth, error, answer = EXCHANGES[mechanism]
    steps = start(mechanism) + [("C", auth(OLD)), ("S", error), ("C", answer), REFUSED,
                                ("C", auth(NEW)), ACCEPTED]
    session, calls = open_session(steps, token=fresh_on_refresh)
    assert calls == [("u", False), ("u", True)]       # once per connection, then once to refresh
    notes = [line for line in session.lines if "rejected the token" in line]
    assert notes == [f"* {mechanism}: the server rejected the token as invalid or expired; asking token= "
                     "for a new one"]
    assert f"* authenticated with {mechanism}" in session.lines
    assert f"> AUTH {mechanism} ***" in session.lines


@pytest.mark.parametrize("mechanism", sorted(EXCHANGES))
def test_a_refreshed_token_rejected_again_gives_up_on_the_mechanism(mechanism):
    auth, error, answer = EXCHANGES[mechanism]
    steps = start(mechanism) + [("C", auth(OLD)), ("S", error), ("C", answer), REFUSED,
                                ("C", auth(NEW)), ("S", error), ("C", answer), REFUSED]   # no third AUTH
    with pytest.raises(smtpsend.AuthenticationError) as info:
        open_session(steps, token=fresh_on_refresh)
    error_ = info.value
    assert [(name, reply.code) for name, reply in error_.replies] == [(mechanism, 535), (mechanism, 535)]
    assert error_.hint.startswith("the server refused the token: check username= and token=")


def test_the_refresh_is_once_per_connection_not_once_per_mechanism():
    # OAUTHBEARER's token is refreshed and still refused; 535 ends AUTH: XOAUTH2 is not offered it
    steps = start("OAUTHBEARER XOAUTH2") + [
        ("C", oauthbearer(OLD)), ("S", BEARER_INVALID), ("C", b64(b"\x01") + b"\r\n"), REFUSED,
        ("C", oauthbearer(NEW)), ("S", BEARER_INVALID), ("C", b64(b"\x01") + b"\r\n"), REFUSED]
    calls = []

    def token(user, refresh):
        calls.append(refresh)
        return NEW if refresh else OLD
    with pytest.raises(smtpsend.AuthenticationError, match="not tried with the same credentials: XOAUTH2"):
        play(steps, lambda s: s.open(), implicit_tls=True, username="u", token=token)
    assert calls == [False, True]


@pytest.mark.parametrize("status", ["400", "insufficient_scope", None])
def test_no_refresh_for_another_error(status):
    auth, _, answer = EXCHANGES["XOAUTH2"]
    error = challenge({"status": status} if status else {"scope": "x"})
    calls = []

    def token(user, refresh):
        calls.append(refresh)
        return OLD
    steps = start("XOAUTH2") + [("C", auth(OLD)), ("S", error), ("C", answer), REFUSED]   # no second AUTH
    with pytest.raises(smtpsend.AuthenticationError):
        play(steps, lambda s: s.open(), implicit_tls=True, username="u", token=token)
    assert calls == [False]


def test_a_fixed_token_is_not_retried():
    auth, error, answer = EXCHANGES["XOAUTH2"]
    steps = start("XOAUTH2") + [("C", auth(OLD)), ("S", error), ("C", answer), REFUSED]
    with pytest.raises(smtpsend.AuthenticationError) as info:
        play(steps, lambda s: s.open(), implicit_tls=True, username="u", token=OLD)
    assert [name for name, _ in info.value.replies] == ["XOAUTH2"]


def test_the_mechanisms_recognise_the_providers_invalid_token_errors():
    for cls, body in ((XOAuth2, b'{"status":"401","schemes":"bearer"}'),
                      (OAuthBearer, b'{"status":"invalid_token"}'),
                      (XOAuth2, b'{"status":401}')):
        mech = cls("u", None, "tok")
        mech.start()
        mech.respond(body)
        assert mech.token_rejected
    # a fixed token is not refreshable even when rejected
    assert not mech.refreshable


@pytest.mark.parametrize("body", [b"[" * 200_000, b'{"status":' * 100_000, b"\xff\xfe", b"401",
                                  b'["status", "401"]', b'{"status": "401"' + b" " * 1_000_000])
def test_hostile_error_challenges_are_not_an_invalid_token_and_never_crash(body):
    # deep nesting would be a RecursionError in a naive parser; a megabyte merely has to finish
    assert _invalid_token(body) is False
    mech = XOAuth2("u", None, "tok")
    mech.start()
    assert mech.respond(body) == b""
    assert not mech.token_rejected


# ---------------------------------------------------------------- once per connection, lazily

def test_the_token_callable_is_not_called_when_a_password_mechanism_is_used():
    cram = b"<1.2@mx.example>"
    answer = b"u " + hmac.new(b"pw", cram, "md5").hexdigest().encode()
    steps = start("CRAM-MD5 XOAUTH2") + [("C", b"AUTH CRAM-MD5\r\n"), ("S", b"334 " + b64(cram) + b"\r\n"),
                                         ("C", b64(answer) + b"\r\n"), ACCEPTED]
    _, calls = open_session(steps, token=fresh_on_refresh, password="pw")
    assert calls == []


def test_one_call_serves_every_token_mechanism_of_the_connection():
    # OAUTHBEARER fails as a mechanism (504): XOAUTH2 gets the same token, not a second call
    steps = start("OAUTHBEARER XOAUTH2") + [("C", oauthbearer(OLD)), ("S", b"504 5.5.4 not here\r\n"),
                                            ("C", xoauth2(OLD)), ACCEPTED]
    _, calls = open_session(steps, token=fresh_on_refresh)
    assert calls == [("u", False)]


def part():
    return mimecompose.compose("x", header=[("From", "a@example.com"), ("To", "b@example.com")])


def test_each_connection_asks_the_callable_once_and_a_refresh_works_over_loopback():
    calls = []

    def token(user, refresh):
        calls.append((user, refresh))
        return "fresh" if refresh else "stale"
    with CaptureServer(tokens={"u": "fresh"}, responses={"MAIL": (451, "4.3.0 try elsewhere")}) as first, \
            CaptureServer(tokens={"u": "fresh"}) as second:
        smtpsend.sendmessage(part(), servers=[f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"],
                             username="u", token=token, tlspolicy="insecure", timeout=10)
        assert second.messages[0].authenticated_as == "u"
    # each connection: the stale token, refused with the provider's error, then one refresh
    assert calls == [("u", False), ("u", True)] * 2


def test_connect_and_login_take_a_token_callable():
    calls = []

    def token(user, refresh):
        calls.append(refresh)
        return "t0k"
    with CaptureServer(tokens={"u": "t0k"}) as server:
        with smtpsend.connect("127.0.0.1", port=server.port, username="u", token=token,
                              tlspolicy="insecure", timeout=10) as smtp:
            smtp.sendmessage(part())
            smtp.sendmessage(part())     # the same connection: no second call
        assert calls == [False]
        assert [m.authenticated_as for m in server.messages] == ["u", "u"]


# ---------------------------------------------------------------- a callable that fails

class EndpointDown(Exception):
    pass


def test_a_callable_that_raises_is_an_authentication_error_with_its_cause():
    def token(user, refresh):
        raise EndpointDown("token endpoint unreachable")
    with pytest.raises(smtpsend.AuthenticationError) as info:
        play(start("XOAUTH2"), lambda s: s.open(), implicit_tls=True, username="u", token=token)
    error = info.value
    assert str(error).startswith("the token= callable raised EndpointDown")
    assert isinstance(error.__cause__, EndpointDown)
    assert (error.replies, error.reply, error.command) == ([], None, "AUTH")
    assert not error.is_transient and not error.is_permanent
    assert error.hint.startswith("getting the OAuth token failed")


def test_a_refresh_that_raises_keeps_the_refusal_before_it():
    auth, error, answer = EXCHANGES["XOAUTH2"]

    def token(user, refresh):
        if refresh:
            raise EndpointDown("refresh token revoked")
        return OLD
    steps = start("XOAUTH2") + [("C", auth(OLD)), ("S", error), ("C", answer), REFUSED]
    with pytest.raises(smtpsend.AuthenticationError, match=r"raised EndpointDown \(asked to refresh\)") as info:
        play(steps, lambda s: s.open(), implicit_tls=True, username="u", token=token)
    assert [(name, reply.code) for name, reply in info.value.replies] == [("XOAUTH2", 535)]


@pytest.mark.parametrize("value,why", [(123, "returned int, not a token"), ("", "returned an empty str"),
                                       (SENTINEL + "\r\nQUIT", "printable ASCII"),
                                       (SENTINEL + "\udcff", "lone surrogate")])
def test_a_callable_returning_what_cannot_be_sent_sends_nothing(value, why):
    with pytest.raises(smtpsend.AuthenticationError, match=why) as info:
        play(start("XOAUTH2"), lambda s: s.open(), implicit_tls=True, username="u",
             token=lambda user, refresh: value)
    assert info.value.__cause__ is None
    assert info.value.__context__.__context__ is None   # not the error that held the value


def test_a_token_that_is_neither_str_nor_callable_is_refused_before_connecting():
    with pytest.raises(smtpsend.UsageError, match="token= must be a str or a callable"):
        smtpsend.sendmessage(part(), servers=["127.0.0.1:1"], username="u", token=123)


# ---------------------------------------------------------------- POP3

def test_pop3_auth_refreshes_a_rejected_token():
    def auth(token):
        return b"AUTH XOAUTH2 " + b64(f"user=u\x01auth=Bearer {token}\x01\x01".encode()) + b"\r\n"
    caps = [("C", b"CAPA\r\n"), ("S", b"+OK\r\nSASL XOAUTH2\r\n.\r\n")]
    script = [("S", b"+OK ready\r\n"), *caps, *caps,
              ("C", auth(OLD)), ("S", b"+ " + GMAIL_EXPIRED[4:]), ("C", b"\r\n"),
              ("S", b"-ERR [AUTH] Invalid credentials\r\n"),
              ("C", auth(NEW)), ("S", b"+OK logged in\r\n"), ("CLOSE",)]
    calls = []

    def token(user, refresh):
        calls.append(refresh)
        return NEW if refresh else OLD
    with Conversation(script) as server:
        box = pop3.connect("127.0.0.1", port=server.port, tlspolicy="insecure", timeout=5)
        assert box.auth("u", token=token) == "logged in"
        box.close()
    assert calls == [False, True]


def test_pop3_auth_reports_a_failing_token_callable():
    caps = [("C", b"CAPA\r\n"), ("S", b"+OK\r\nSASL XOAUTH2\r\n.\r\n")]
    script = [("S", b"+OK ready\r\n"), *caps, *caps, ("C", b"NOOP\r\n"), ("S", b"+OK\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = pop3.connect("127.0.0.1", port=server.port, tlspolicy="insecure", timeout=5)

        def token(user, refresh):
            raise EndpointDown("down")
        with pytest.raises(pop3.AuthenticationFailed, match="token: the token= callable raised EndpointDown") as info:
            box.auth("u", token=token)
        assert isinstance(info.value.__cause__, EndpointDown)
        box.noop()   # nothing of AUTH was sent
        box.close()


# ---------------------------------------------------------------- the CLI's --token-command

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\nbody\r\n"
# prints a stale token first and a fresh one when asked to refresh; fails unless told the user
TOKEN_COMMAND = ('test "$SMTPSEND_TOKEN_USER" = u || exit 5; '
                 'if [ "$SMTPSEND_TOKEN_REFRESH" = 1 ]; then echo fresh; else echo stale; fi')


def test_cli_token_command_gets_the_user_and_the_refresh_indicator():
    with CaptureServer(tokens={"u": "fresh"}) as server:
        result = run_cli(["-t", "--server", f"127.0.0.1:{server.port}", "--user", "u", "--tlspolicy", "insecure",
                          "--token-command", TOKEN_COMMAND, "--trace"], MESSAGE)
        assert result.returncode == 0, result.stderr
        assert server.messages[0].authenticated_as == "u"
    trace = result.stderr.decode()
    assert "rejected the token" in trace and "stale" not in trace and "fresh" not in trace


def test_cli_token_command_that_fails_is_reported_as_an_authentication_failure():
    with CaptureServer(tokens={"u": "fresh"}) as server:
        result = run_cli(["-t", "--server", f"127.0.0.1:{server.port}", "--user", "u", "--tlspolicy", "insecure",
                          "--token-command", "exit 3"], MESSAGE)
    assert result.returncode == 77, result.stderr
    first = result.stderr.decode().splitlines()[1]
    assert "at auth: the token= callable raised CLIError" in first
    assert first.endswith(": the token command failed (exit status 3)")
    assert server.messages == []


def test_cli_token_command_needs_a_user():
    assert run_cli(["-t", "--server", "127.0.0.1:1", "--token-command", "echo t"], MESSAGE).returncode == 64


def test_cli_token_command_runs_with_its_environment():
    token = _clicredentials.token_command('printf "%s:%s" "$SMTPSEND_TOKEN_USER" "$SMTPSEND_TOKEN_REFRESH"', 10)
    assert (token("alice", False), token("alice", True)) == ("alice:0", "alice:1")
    with pytest.raises(_cliexit.CLIError, match="printed no token"):
        _clicredentials.token_command("true", 10)("alice", False)


def test_asendmessage_takes_a_token_callable_too():
    import asyncio
    calls = []

    def token(user, refresh):
        calls.append(refresh)
        return "fresh" if refresh else "stale"
    with CaptureServer(tokens={"u": "fresh"}) as server:
        asyncio.run(smtpsend.asendmessage(part(), servers=[f"127.0.0.1:{server.port}"], username="u", token=token,
                                          tlspolicy="insecure", timeout=10))
        assert server.messages[0].authenticated_as == "u"
    assert calls == [False, True]
