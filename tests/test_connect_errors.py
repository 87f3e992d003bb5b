"""Against a real server: implicit TLS on port 465 by default, the wrong
TLS mode recognised at once, and errors that say what to do next."""

import asyncio
import inspect

import pytest

import mimecompose
import smtpsend
from smtpsend._send import _plan
from smtpsend._session import GREETING_QUIET, Read, Session, StartTLS, Timeouts
from smtpsend._sync import pump
from smtpsend.testing import CaptureServer

from servers import ScriptedServer, free_port
from transcript import Script

# A TLS alert record (content type 21, version 3.3): what some TLS servers
# send to a client that speaks plaintext.
TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x46"


def part():
    return mimecompose.compose("x", header=[("From", "a@example.com"), ("To", "b@example.com")])


def send(driver, **options):
    if driver == "sync":
        return smtpsend.sendmessage(part(), **options)
    return asyncio.run(smtpsend.asendmessage(part(), **options))


def failure(driver, **options):
    with pytest.raises(smtpsend.AllServersFailed) as info:
        send(driver, **options)
    [attempt] = info.value.attempts
    return info.value, attempt


def hint_line(error) -> str:
    lines = str(error).splitlines()
    assert sum(line.startswith("hint:") for line in lines) == 1 and lines[-1].startswith("hint: "), lines
    return lines[-1]


# ---------------------------------------------------------------- which TLS mode, by port

def first_actions(servers, **options):
    """The actions each connection starts with, for the given servers (no sockets)."""
    bound = inspect.signature(smtpsend.sendmessage).bind(part(), servers=servers, **options)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop("ssl_context")
    plan = _plan(**arguments)
    seen = []
    for host, port, implicit in plan.targets:
        session = Session(host=host, port=port, implicit_tls=implicit, **plan.session_options)
        seen.append((port, type(next(session.open())).__name__))
    return seen


def test_port_465_speaks_tls_from_the_first_byte_by_default():
    assert first_actions(["mx.example:465", "mx.example:587", "mx.example"]) == [
        (465, "StartTLS"), (587, "Read"), (25, "Read")]


def test_tlsimport_forces_the_mode_either_way():
    assert first_actions(["mx.example", "mx.example:587"], tlsimport=True) == [(465, "StartTLS"), (587, "StartTLS")]
    assert first_actions(["mx.example:465"], tlsimport=False) == [(465, "Read")]
    assert first_actions(["mx.example:465"], usetls=False) == [(465, "Read")]


def test_connect_takes_tlsimport_none_too():
    assert inspect.signature(smtpsend.connect).parameters["tlsimport"].default is None
    assert inspect.signature(smtpsend.sendmessage).parameters["tlsimport"].default is None
    client = smtpsend.Client("mx.example", 465, client="c.example", usetls=True, tlsimport=None, tlspolicy=None,
                             ssl_context=None, username=None, password=None, token=None, timeouts=Timeouts(),
                             trace=None)
    assert next(Session(**client._options).open()).__class__ is StartTLS


# ---------------------------------------------------------------- the wrong mode, recognised

@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_tls_server_on_a_port_treated_as_plaintext(driver, server_tls, client_tls):
    # the server waits for a ClientHello; the client, after GREETING_QUIET (here half of
    # timeout=6) without a greeting, says NOOP and the TLS server hangs up: long before
    # the greeting timeout, and the error says what to pass
    with CaptureServer(tls_context=server_tls, implicit_tls=True) as server:
        error, attempt = failure(driver, servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                                 timeout=6)
    assert attempt.stage == "greeting" and attempt.error.reason == "implicit-tls"
    assert isinstance(attempt.error, smtpsend.TransportError) and not isinstance(attempt.error, smtpsend.Timeout)
    assert "tlsimport=True" in hint_line(error)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_tls_record_instead_of_a_greeting_fails_at_once(driver):
    # no line end ever comes: without looking at the first bytes the client
    # would wait for one until the timeout (20 s here, 300 s by default)
    with ScriptedServer(TLS_ALERT, hold=30) as server:
        error, attempt = failure(driver, servers=["127.0.0.1"], ports=[server.port], timeout=20)
    assert isinstance(attempt.error, smtpsend.RemoteProtocolError) and attempt.error.reason == "implicit-tls"
    assert "TLS" in str(attempt.error) and "tlsimport=True" in hint_line(error)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_plaintext_server_on_a_port_treated_as_tls(driver, client_tls):
    with CaptureServer() as server:
        error, attempt = failure(driver, servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                                 tlsimport=True)
    assert isinstance(attempt.error, smtpsend.TLSError) and attempt.error.reason == "not-implicit-tls"
    assert "plaintext" in str(attempt.error) and "tlsimport=False" in hint_line(error)


class Recording(Script):
    """A Script that also records the timeout of every Read."""

    def __init__(self, steps):
        super().__init__(steps)
        self.reads = []

    def perform(self, action):
        if isinstance(action, Read):
            self.reads.append(action.timeout)
        return super().perform(action)


def greet(port, steps, timeouts=Timeouts()):
    session = Session(client="c.example", usetls=False, port=port, timeouts=timeouts)
    script = Recording(steps)
    pump(session.open(), script)
    assert not script.steps
    return script


def test_a_slow_greeting_on_a_submission_port_is_probed_once():
    steps = [("TIMEOUT",), ("C", b"NOOP\r\n"), ("S", b"220 slow but fine\r\n"), ("S", b"250 2.0.0 ok\r\n"),
             ("C", b"EHLO c.example\r\n"), ("S", b"250 mx\r\n")]
    script = greet(587, steps)
    # the default: GREETING_QUIET seconds of silence, then the rest of RFC 5321's 300 s
    assert script.reads[:2] == [GREETING_QUIET, 300 - GREETING_QUIET]


def test_port_25_is_never_probed():
    # MX servers may delay their greeting on purpose and refuse early talkers
    script = greet(25, [("S", b"220 mx\r\n"), ("C", b"EHLO c.example\r\n"), ("S", b"250 mx\r\n")])
    assert script.reads[0] == 300
    with pytest.raises(smtpsend.Timeout) as info:
        greet(25, [("TIMEOUT",)])
    assert info.value.reason == "no-greeting" and "tlsimport=True" in info.value.hint


# ---------------------------------------------------------------- what next

def test_a_refused_connection_names_the_port():
    port = free_port()
    error, attempt = failure("sync", servers=["127.0.0.1"], ports=[port])
    assert attempt.error.reason == "refused"
    line = hint_line(error)
    assert f"port {port}" in line and "check the port" in line and "587" in line


def test_an_untrusted_certificate_names_ssl_context_and_cafile(server_tls):
    with CaptureServer(tls_context=server_tls) as server:   # a CA this client does not trust
        error, attempt = failure("sync", servers=["localhost"], ports=[server.port])
    assert isinstance(attempt.error, smtpsend.TLSError) and attempt.error.reason == "certificate"
    line = hint_line(error)
    assert "ssl_context=" in line and "--cafile" in line


def test_a_530_must_issue_starttls_names_the_tlspolicy():
    responses = {"MAIL": (530, "5.7.0 Must issue a STARTTLS command first")}
    with CaptureServer(responses=responses) as server:
        error, attempt = failure("sync", servers=["localhost"], ports=[server.port])
    assert attempt.stage == "mail" and attempt.error.reply.code == 530
    assert "tlspolicy=" in hint_line(error)


def test_a_530_authentication_required_names_the_credentials():
    responses = {"MAIL": (530, "5.7.0 Authentication required")}
    with CaptureServer(responses=responses) as server:
        error, _ = failure("sync", servers=["localhost"], ports=[server.port])
    assert "username=" in hint_line(error)


def test_hints_of_several_attempts_on_one_line():
    closed = free_port()
    with CaptureServer(responses={"MAIL": (530, "5.7.0 Must issue a STARTTLS command first")}) as server:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(part(), servers=["127.0.0.1", "localhost"], ports=[closed, server.port])
    line = hint_line(info.value)
    assert "check the port" in line and "tlspolicy=" in line
    # each attempt is described without its own hint line
    assert str(info.value).count("\n") == 1


def test_errors_without_advice_have_no_hint_line():
    with ScriptedServer(b"554 5.3.2 no service\r\n") as server:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(part(), servers=["127.0.0.1"], ports=[server.port])
    assert info.value.hint is None and "\n" not in str(info.value)


def test_a_connect_error_raised_directly_ends_with_its_hint():
    port = free_port()
    with pytest.raises(smtpsend.TransportError) as info:
        smtpsend.connect("127.0.0.1", port)
    assert hint_line(info.value).startswith("hint: nothing accepts connections")
