"""Against a real server: implicit TLS on port 465 by default, the wrong
TLS mode recognised at once, and errors that say what to do next."""

import asyncio
import inspect

import pytest

import mimecompose
import smtpsend
from smtpsend._failover import plan
from smtpsend._driver import Read, StartTLS, Timeouts
from smtpsend._session import Session
from smtpsend._setup import GREETING_QUIET
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
    checked = plan(**arguments)
    seen = []
    for target in checked.targets:
        session = Session(host=target.host, port=target.port, implicit_tls=target.implicit_tls,
                          **checked.session_options)
        seen.append((target.port, type(next(session.open())).__name__))
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
    with CaptureServer(tls_context=server_tls, tlsimport=True) as server:
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
        smtpsend.connect("127.0.0.1", port=port)
    assert hint_line(info.value).startswith("hint: nothing accepts connections")


# ---------------------------------------------------------------- the error tree, in one place each (issue 14)

import ast  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402

from smtpsend._driver import Deadline  # noqa: E402
from smtpsend._errors import locate  # noqa: E402
from smtpsend._reply import Reply  # noqa: E402
from smtpsend._sockets import transport_errors  # noqa: E402

SMTPSEND = pathlib.Path(__file__).resolve().parent.parent / "smtpsend"


def test_tls_error_is_a_connection_failure():
    assert issubclass(smtpsend.TLSError, smtpsend.TransportError)
    assert issubclass(smtpsend.TLSError, ConnectionError)
    error = smtpsend.TLSError("certificate verification failed", reason="certificate")
    # a bad certificate does not get better by waiting, unlike a lost connection
    assert not error.is_transient and not error.is_permanent
    assert smtpsend.TransportError("connection lost").is_transient


@pytest.mark.parametrize("error,transient,permanent", [
    (smtpsend.ServerUnavailable("busy", Reply(451, ("4.3.0 later",))), True, False),
    (smtpsend.ServerUnavailable("refused", Reply(554, ("no service",))), False, True),
    (smtpsend.SenderRefused("refused", Reply(550, ("5.1.0 no",))), False, True),
    (smtpsend.Timeout("no reply within 1 s"), True, False),
    (smtpsend.TransportError("connection lost"), True, False),
    (smtpsend.TLSError("handshake failed"), False, False),
    (smtpsend.DeliveryUncertain("no reply after the data"), False, False),
    (smtpsend.RemoteProtocolError("malformed"), False, False),
    (smtpsend.MessageTooBig(10, 5), False, False),
    (smtpsend.NotSupported("no SMTPUTF8"), False, False),
    (smtpsend.AllServersFailed([]), False, False),
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v))
def test_each_error_answers_whether_to_try_later(error, transient, permanent):
    assert (error.is_transient, error.is_permanent) == (transient, permanent)


def test_the_base_class_does_not_guess_from_attributes():
    """Each class answers for itself: an error that merely carries a reply
    (not a ReplyError) is neither transient nor permanent."""
    class Odd(smtpsend.SMTPError):
        pass
    odd = Odd("something")
    odd.reply = Reply(451, ("later",))
    assert not odd.is_transient and not odd.is_permanent


def test_locate_records_where_an_error_happened():
    error = smtpsend.TransportError("connection lost")
    assert locate(error, "mx.example", 2525, "rcpt") is error
    assert (error.server, error.port, error.stage) == ("mx.example", 2525, "rcpt")
    assert error.summary() == "connection lost (mx.example:2525, rcpt)"


def test_only_locate_sets_where_an_error_happened():
    """No module writes .server/.port/.stage on an error by hand: locate()
    is the one place (read from the source)."""
    by_hand = re.compile(r"\.server\s*,\s*\w+\.port\b[^=]*=[^=]|\b(exc|error|outcome)\.(server|port|stage)\s*=[^=]")
    found = [(path.name, line.strip()) for path in sorted(SMTPSEND.glob("*.py"))
             for line in path.read_text(encoding="utf-8").splitlines() if by_hand.search(line)]
    assert found == [("_errors.py", "error.server, error.port, error.stage = server, port, stage")]


def _mapped(during, exc, **where):
    with pytest.raises(BaseException) as info:
        with transport_errors(during, **where):
            raise exc
    return info.value


@pytest.mark.parametrize("during,raised,kind,text,reason,chained", [
    ("resolve", socket.gaierror(-2, "Name or service not known"), smtpsend.TransportError,
     "cannot resolve 'mx.example'", None, False),
    ("resolve", UnicodeError("label too long"), smtpsend.TransportError, "cannot resolve", None, False),
    ("connect", ConnectionRefusedError(111, "Connection refused"), smtpsend.TransportError,
     "cannot connect to 192.0.2.1 port 25: Connection refused", "refused", True),
    ("connect", TimeoutError(), smtpsend.Timeout, "connect to 192.0.2.1 port 25 timed out after 3 s", None, False),
    ("send", TimeoutError(), smtpsend.Timeout, "server did not take data for 3 s", None, False),
    ("send", ssl.SSLError(1, "bad record mac"), smtpsend.TransportError, "TLS error while sending", None, True),
    ("send", BrokenPipeError(32, "Broken pipe"), smtpsend.TransportError,
     "connection lost while sending: Broken pipe", None, True),
    ("read", ConnectionResetError(104, "Connection reset by peer"), smtpsend.TransportError,
     "connection lost: Connection reset by peer", None, True),
    ("read", ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed"), smtpsend.TransportError,
     "TLS error while reading", None, True),
    ("handshake", TimeoutError(), smtpsend.TLSError, "TLS handshake timed out after 3 s", None, False),
    ("handshake", ssl.SSLCertVerificationError(1, "certificate verify failed"), smtpsend.TLSError,
     "certificate verification failed", "certificate", True),
    ("handshake", ConnectionResetError(104, "reset"), smtpsend.TLSError, "TLS handshake failed", None, True),
])
def test_transport_errors_maps_each_lower_layer_error(during, raised, kind, text, reason, chained):
    error = _mapped(during, raised, timeout=3, host="mx.example" if during == "resolve" else "192.0.2.1",
                    port=25)
    assert type(error) is kind and text in str(error) and error.reason == reason
    assert (error.__cause__ is raised) == chained
    assert error.__suppress_context__   # never "during handling of the above..." twice


def test_transport_errors_reads_time_out_at_the_deadline():
    deadline = Deadline(0.0, "no reply")
    error = _mapped("read", TimeoutError(), deadline=deadline)
    assert type(error) is smtpsend.Timeout and str(error).startswith("no reply within 0.0 s")


@pytest.mark.parametrize("raised", [smtpsend.RemoteProtocolError("malformed"), ValueError("not ours"),
                                    UnicodeError("not a look-up")])
def test_transport_errors_lets_other_errors_through(raised):
    assert _mapped("read", raised) is raised


def test_the_drivers_map_lower_layer_errors_only_through_transport_errors():
    """Neither driver catches a socket, ssl or OS error to turn it into an
    SMTPError itself (closing quietly aside)."""
    for name in ("_sync.py", "_async.py"):
        tree = ast.parse((SMTPSEND / name).read_text(encoding="utf-8"))
        for handler in (n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler)):
            raises = [n for n in ast.walk(handler) if isinstance(n, ast.Raise) and n.exc is not None]
            caught = ast.unparse(handler.type) if handler.type else ""
            if re.search(r"OSError|SSLError|socket\.|TimeoutError|gaierror", caught):
                assert not raises or caught == "asyncio.TimeoutError", f"{name}:{handler.lineno}: {caught}"
