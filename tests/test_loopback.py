"""sendmessage over real sockets: aiosmtpd (a real SMTP server library) and
our capture server on 127.0.0.1, with a throwaway CA for verified TLS."""

import email
import email.policy
import socket
import ssl

import pytest

import mimecompose
import smtpsend
from smtpsend.testing import CaptureServer

from servers import ScriptedServer, free_port

aiosmtpd = pytest.importorskip("aiosmtpd")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult  # noqa: E402

PASSWORD = "s3cr3t-Sentinel-9"


class Handler:
    def __init__(self):
        self.received = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bad"):
            return "550 5.1.1 no such user"
        if address.startswith("later"):
            return "450 4.2.0 greylisted"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                              session.authenticated))
        return "250 2.0.0 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=auth_data.login == b"user" and auth_data.password == PASSWORD.encode())


@pytest.fixture
def aio(request):
    """Start aiosmtpd; params via indirect: dict of SMTP keyword arguments."""
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **getattr(request, "param", {}))
    controller.start()
    controller.handler_ref = handler
    yield controller
    controller.stop()


def message(**extra):
    fields = [("From", "Alice <alice@example.com>"), ("To", "bob@example.com"),
              ("Subject", "Grüße"), *extra.items()]
    return mimecompose.compose("Hello Bob,\n.a line starting with a dot\n", header=fields)


def test_plain_delivery_bcc_stripped(aio):
    part = message(Bcc="carol@example.com")
    assert smtpsend.sendmessage(part, servers=["127.0.0.1"], ports=[aio.port], usetls=False) == []
    [(sender, rcpts, data, _)] = aio.handler_ref.received
    assert sender == "alice@example.com"
    assert rcpts == ["bob@example.com", "carol@example.com"]
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Bcc"] is None and msg["Subject"] == "Grüße" and msg["Message-ID"]
    assert msg.get_content().replace("\r\n", "\n") == "Hello Bob,\n.a line starting with a dot\n"
    assert part.getheader("Bcc") == ["carol@example.com"]   # the caller's part is untouched


def test_host_port_forms(aio):
    smtpsend.sendmessage(message(), servers=[f"127.0.0.1:{aio.port}"], usetls=False)
    smtpsend.sendmessage(message(), servers=[f"[127.0.0.1]:{aio.port}"], usetls=False)
    assert len(aio.handler_ref.received) == 2


@pytest.fixture
def tls_aio(server_tls):
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), tls_context=server_tls,
                            require_starttls=True, authenticator=authenticator, auth_require_tls=True)
    controller.start()
    controller.handler_ref = handler
    yield controller
    controller.stop()


def test_starttls_verified_and_auth(tls_aio, client_tls):
    lines, events = [], []
    smtpsend.sendmessage(message(), servers=["localhost"], ports=[tls_aio.port], ssl_context=client_tls,
                         username="user", password=PASSWORD, debug=lines.append, events=events.append)
    [(_, _, _, authenticated)] = tls_aio.handler_ref.received
    assert authenticated
    assert "> STARTTLS" in lines and [e.data["mechanism"] for e in events if e.name == "auth"] == ["PLAIN"]
    assert not any(PASSWORD in l for l in lines)
    # the debug callable gets protocol lines only, greeting first (DESIGN: "> " sent, "< " received)
    assert lines[0].startswith("< 220") and all(l[:2] in ("> ", "< ") for l in lines)


def test_unknown_ca_refused_and_nothing_sent(tls_aio):
    with pytest.raises(smtpsend.AllServersFailed) as info:
        smtpsend.sendmessage(message(), servers=["localhost"], ports=[tls_aio.port],
                             username="user", password=PASSWORD, tlspolicy="insecure")
    [attempt] = [a for a in info.value.attempts]
    assert attempt.stage == "starttls" and isinstance(attempt.error, smtpsend.TLSError)
    assert tls_aio.handler_ref.received == []


def test_wrong_host_name_refused(ca, client_tls):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.other.example").configure_cert(context)
    with CaptureServer(tls_context=context) as server:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(message(), servers=["localhost"], ports=[server.port], ssl_context=client_tls)
        assert isinstance(info.value.attempts[0].error, smtpsend.TLSError)
        assert "certificate" in str(info.value.attempts[0].error)
        assert server.messages == []


def test_credentials_not_sent_without_tls():
    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port(), authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(message(), servers=["127.0.0.1"], ports=[controller.port],
                                 username="user", password=PASSWORD)
        assert isinstance(info.value.attempts[0].error, smtpsend.TLSRequired)
        assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value.attempts)
        # the caller can opt in explicitly
        smtpsend.sendmessage(message(), servers=["127.0.0.1"], ports=[controller.port],
                             username="user", password=PASSWORD, tlspolicy="insecure")
    finally:
        controller.stop()


def test_implicit_tls(server_tls, client_tls):
    with CaptureServer(tls_context=server_tls, tlsimport=True, users={"user": PASSWORD}) as server:
        smtpsend.sendmessage(message(), servers=["localhost"], ports=[server.port], tlsimport=True,
                             ssl_context=client_tls, username="user", password=PASSWORD)
        assert server.messages[0].authenticated_as == "user"


def test_strongest_mechanism_chosen(server_tls, client_tls):
    events = []
    with CaptureServer(tls_context=server_tls, users={"jörg": "pässwörd"}) as server:
        smtpsend.sendmessage(message(), servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                             username="jörg", password="pässwörd", events=events.append)
        assert [e.data["mechanism"] for e in events if e.name == "auth"] == ["CRAM-MD5"]
        assert server.messages[0].authenticated_as == "jörg"


def test_bad_password(server_tls, client_tls):
    with CaptureServer(tls_context=server_tls, users={"user": "right"}) as server:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(message(), servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                                 username="user", password=PASSWORD)
        error = info.value.attempts[0].error
        assert isinstance(error, smtpsend.AuthenticationError)
        # 535: the credentials were refused, so no weaker mechanism gets them (issue 13)
        assert [m for m, _ in error.replies] == ["CRAM-MD5"]
        assert server.messages == []
        assert PASSWORD not in str(info.value)


def test_failover_closed_port_then_421_then_success(aio, no_secret_in_logs):
    events = []
    with ScriptedServer(b"421 4.3.2 busy\r\n") as busy:
        result = smtpsend.sendmessage(message(), servers=["127.0.0.1", "127.0.0.1", "127.0.0.1"],
                                      ports=[free_port(), busy.port, aio.port], usetls=False,
                                      events=events.append, debug=True)
    assert result == []
    assert len(aio.handler_ref.received) == 1
    failures = [e.data for e in events if e.name == "failed"]
    assert [f["stage"] for f in failures] == ["connect", "greeting"]
    # with debug=True the logged transcript carries smtpsend's notes too
    assert sum(" failed at " in m for m in no_secret_in_logs.messages) == 2


def test_all_servers_failed_tells_every_attempt():
    closed = free_port()
    with ScriptedServer(b"554 5.3.2 no service\r\n") as refusing:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(message(), servers=["127.0.0.1", "127.0.0.1"], ports=[closed, refusing.port])
    attempts = info.value.attempts
    assert [(a.port, a.stage) for a in attempts] == [(closed, "connect"), (refusing.port, "greeting")]
    assert isinstance(attempts[0].error, smtpsend.TransportError)
    assert isinstance(attempts[0].error, ConnectionError)
    assert attempts[1].error.reply.code == 554
    assert attempts[1].error.server == "127.0.0.1" and attempts[1].error.port == refusing.port


def test_single_server_also_raises_all_servers_failed():
    with pytest.raises(smtpsend.AllServersFailed) as info:
        smtpsend.sendmessage(message(), servers=["127.0.0.1"], ports=[free_port()])
    assert len(info.value.attempts) == 1


def test_silent_server_times_out():
    with ScriptedServer(b"", hold=5) as silent:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(message(), servers=["127.0.0.1"], ports=[silent.port], timeout=0.3)
    error = info.value.attempts[0].error
    assert isinstance(error, smtpsend.Timeout) and isinstance(error, TimeoutError)
    assert info.value.attempts[0].stage == "greeting"


def test_recipient_refused_nothing_delivered(aio):
    part = message(Cc="bad@example.com")
    with pytest.raises(smtpsend.RecipientsRefused) as info:
        smtpsend.sendmessage(part, servers=["127.0.0.1"], ports=[aio.port], usetls=False)
    assert [(r.address, r.code, r.status) for r in info.value.rejected] == [("bad@example.com", 550, "5.1.1")]
    assert info.value.server == "127.0.0.1" and info.value.port == aio.port
    assert aio.handler_ref.received == []


def test_recipient_refused_with_atleastone(aio):
    part = message(Cc="bad@example.com")
    rejected = smtpsend.sendmessage(part, servers=["127.0.0.1"], ports=[aio.port], usetls=False, atleastone=True)
    assert [r.address for r in rejected] == ["bad@example.com"]
    assert aio.handler_ref.received[0][1] == ["bob@example.com"]


def test_pipelined_refusal_delivers_nothing():
    with CaptureServer(responses={"RCPT bad@example.com": (550, "5.1.1 no such user")}) as server:
        with pytest.raises(smtpsend.RecipientsRefused):
            smtpsend.sendmessage(message(Cc="bad@example.com"), servers=["127.0.0.1"], ports=[server.port])
        assert server.messages == []
        assert smtpsend.sendmessage(message(Cc="bad@example.com"), servers=["127.0.0.1"], ports=[server.port],
                                    atleastone=True)[0].address == "bad@example.com"
        assert server.messages[0].envelope.recipients == ["bob@example.com"]


def test_transient_recipient_moves_on(aio):
    with CaptureServer(responses={"RCPT": (450, "4.2.0 greylisted")}) as grey:
        smtpsend.sendmessage(message(), servers=["127.0.0.1", "127.0.0.1"], ports=[grey.port, aio.port],
                             usetls=False)
    assert len(aio.handler_ref.received) == 1


def test_message_too_big_raised_before_data():
    with CaptureServer(extensions=["PIPELINING", "SIZE 1000"]) as server:
        big = mimecompose.compose("x" * 5000, header=[("From", "a@example.com"), ("To", "b@example.com")])
        with pytest.raises(smtpsend.MessageTooBig):
            smtpsend.sendmessage(big, servers=["127.0.0.1"], ports=[server.port])
        assert not any(c.startswith("MAIL") for c in server.commands)


def test_bytes_and_email_message_inputs(aio):
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nBcc: c@example.com\r\nSubject: raw\r\n\r\nbody\n"
    smtpsend.sendmessage(raw, servers=["127.0.0.1"], ports=[aio.port], usetls=False)
    m = email.message.EmailMessage()
    m["From"], m["To"], m["Subject"] = "a@example.com", "b@example.com", "stdlib"
    m.set_content("body")
    smtpsend.sendmessage(m, servers=["127.0.0.1"], ports=[aio.port], usetls=False)
    first, second = aio.handler_ref.received
    assert first[1] == ["b@example.com", "c@example.com"] and b"Bcc" not in first[2]
    assert first[2].endswith(b"body\r\n")   # bare LF normalised
    assert b"Subject: stdlib" in second[2]


@pytest.mark.parametrize("kwargs", [
    dict(servers=[]), dict(tlspolicy="maybe"), dict(usetls=False, tlsimport=True),
    dict(usetls=False, tlspolicy="secure"), dict(ports=["x"]), dict(timeout=0),
    dict(client="bad name"), dict(servers=["host:notaport"]), dict(servers=["[::1"]),
])
def test_usage_errors(kwargs):
    with pytest.raises(ValueError):
        smtpsend.sendmessage(message(), **kwargs)


def test_ipv6_loopback_if_available():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with pytest.raises(smtpsend.AllServersFailed) as info:
        smtpsend.sendmessage(message(), servers=[f"[::1]:{free_port()}"], timeout=2)
    assert info.value.attempts[0].stage == "connect"
