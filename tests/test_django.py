"""smtpsend.django.EmailBackend with the real Django, against the capture
server: Django's own entry points (send_mail, send_mass_mail,
EmailMultiAlternatives, get_connection), the settings mapping, Bcc,
attachments, connection reuse across backends, fail_silently and refused
recipients."""

import email
import email.policy
import logging
import os
import socket
import ssl
import subprocess
import sys
from email.mime.image import MIMEImage

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")

from django.core import mail  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.test import override_settings  # noqa: E402

import smtpsend  # noqa: E402
import smtpsend.django  # noqa: E402
from smtpsend.django import EmailBackend, to_part  # noqa: E402
from smtpsend.testing import CaptureServer  # noqa: E402

from conftest import SENTINEL, assert_no_secret  # noqa: E402

BACKEND = "smtpsend.django.EmailBackend"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


@pytest.fixture(autouse=True)
def fresh_transports():
    """Each test starts without shared transports and closes those it made."""
    smtpsend.django.close_transports()
    yield
    smtpsend.django.close_transports()


@pytest.fixture
def server():
    with CaptureServer() as capture:
        yield capture


def settings_for(server, **more):
    return override_settings(EMAIL_BACKEND=BACKEND, EMAIL_HOST="127.0.0.1", EMAIL_PORT=server.port, **more)


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ehlos(server):
    return sum(1 for c in server.commands if c.upper().startswith(("EHLO", "HELO")))


def parsed(captured):
    """The received message as the standard library reads it: an
    independent reader of what was sent (it wants its own line breaks)."""
    return email.message_from_bytes(captured.data.replace(b"\r\n", b"\n"), policy=email.policy.default)


# ---------------------------------------------------------------- Django's entry points

def test_send_mail_goes_through_the_settings(server):
    with settings_for(server):
        sent = mail.send_mail("Grüße aus Köln", "Hallo Welt\n", "Jörg <joerg@example.com>", ["bob@example.com"])
    assert sent == 1
    [received] = server.messages
    assert received.envelope.originator == "joerg@example.com"
    assert received.envelope.recipients == ["bob@example.com"]
    message = parsed(received)
    assert message["Subject"] == "Grüße aus Köln"
    assert message["From"].addresses[0].display_name == "Jörg"
    assert message.get_content() == "Hallo Welt\n"
    assert message["Date"] is not None and message["Message-ID"] is not None
    assert received.data.isascii()                       # RFC 2047 headers, encoded body


def test_multi_alternatives_with_attachments(server, tmp_path):
    path = tmp_path / "Bericht März.csv"
    path.write_bytes(b"a,b\n1,2\n")
    image = MIMEImage(PNG, "png")
    image.add_header("Content-ID", "<logo>")
    message = mail.EmailMultiAlternatives("Report", "Plain text", "reports@example.com", ["boss@example.com"])
    message.attach_alternative("<p>HTML <img src='cid:logo'></p>", "text/html")
    message.attach("data.bin", bytes(range(256)), "application/octet-stream")
    message.attach("notes.txt", "Überblick\n", "text/plain")
    message.attach(image)
    message.attach_file(str(path))
    with settings_for(server):
        assert mail.get_connection().send_messages([message]) == 1
    top = parsed(server.messages[0])
    assert top.get_content_type() == "multipart/mixed"
    alternative, binary, notes, png, csv = top.iter_parts()
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert [p.get_content() for p in alternative.iter_parts()] == ["Plain text", "<p>HTML <img src='cid:logo'></p>"]
    assert (binary.get_filename(), binary.get_content()) == ("data.bin", bytes(range(256)))
    # text in base64 or quoted-printable has CRLF line breaks: its canonical form (RFC 2046 4.1.1)
    assert (notes.get_filename(), notes.get_content().replace("\r\n", "\n")) == ("notes.txt", "Überblick\n")
    assert (png.get_content_type(), png["Content-ID"], png.get_content()) == ("image/png", "<logo>", PNG)
    assert csv.get_filename() == "Bericht März.csv"      # RFC 2231 on the wire
    assert csv.get_content() == "a,b\n1,2\n"


def test_bcc_cc_reply_to_and_extra_headers(server):
    message = mail.EmailMessage("Hi", "Body", "Sender <from@example.com>", ["to@example.com"],
                                bcc=["hidden@example.com"], cc=["cc@example.com"],
                                reply_to=["Replies <reply@example.com>"],
                                headers={"X-Campaign": "spring", "Message-ID": "<fixed@example.com>"})
    with settings_for(server):
        assert message.send() == 1
    [received] = server.messages
    assert received.envelope.recipients == ["to@example.com", "cc@example.com", "hidden@example.com"]
    assert b"hidden@example.com" not in received.data and b"Bcc" not in received.data
    top = parsed(received)
    assert (top["To"], top["Cc"], top["X-Campaign"]) == ("to@example.com", "cc@example.com", "spring")
    assert top["Reply-To"].addresses[0].addr_spec == "reply@example.com"
    assert top["Message-ID"] == "<fixed@example.com>"
    assert len(top.get_all("Message-ID")) == 1 and len(top.get_all("Subject")) == 1


def test_extra_headers_replace_the_header_but_not_the_envelope(server):
    # Django's semantics: a To in extra_headers is what readers see; the
    # envelope is still message.recipients()
    message = mail.EmailMessage("Hi", "Body", "a@example.com", ["real@example.com"],
                                headers={"To": "Everyone <list@example.com>", "From": "Team <team@example.com>",
                                         "Subject": "Replaced"})
    with settings_for(server):
        assert message.send() == 1
    [received] = server.messages
    assert received.envelope.originator == "a@example.com"
    assert received.envelope.recipients == ["real@example.com"]
    top = parsed(received)
    assert top["To"].addresses[0].addr_spec == "list@example.com"
    assert top["From"].addresses[0].addr_spec == "team@example.com"
    assert top.get_all("Subject") == ["Replaced"]


def test_send_mass_mail_over_one_connection(server):
    datatuple = [(f"Note {n}", f"Body {n}", "a@example.com", [f"user{n}@example.com"]) for n in range(3)]
    with settings_for(server):
        assert mail.send_mass_mail(datatuple) == 3
    assert [m.envelope.recipients for m in server.messages] == [[f"user{n}@example.com"] for n in range(3)]
    assert ehlos(server) == 1


def test_a_message_without_recipients_is_not_sent(server):
    with settings_for(server):
        assert mail.get_connection().send_messages([mail.EmailMessage("x", "y", "a@example.com", [])]) == 0
    assert server.messages == [] and ehlos(server) == 0


# ---------------------------------------------------------------- connection reuse

def test_get_connection_as_context_manager_reuses_the_connection(server):
    with settings_for(server):
        with mail.get_connection() as connection:
            for n in range(3):
                mail.EmailMessage(f"m{n}", "x", "a@example.com", ["b@example.com"], connection=connection).send()
            transport = connection.transport
        assert not transport.closed                         # close() of the backend leaves it open
        with mail.get_connection() as again:                # another backend, a later request
            assert again.transport is transport
            mail.EmailMessage("m3", "x", "a@example.com", ["b@example.com"], connection=again).send()
        mail.send_mail("m4", "x", "a@example.com", ["b@example.com"])
    assert len(server.messages) == 5
    assert ehlos(server) == 1                               # one connection, one setup
    stats = transport.stats
    assert (stats.connections_opened, stats.connections_reused, stats.messages_sent) == (1, 4, 5)


def test_a_different_configuration_gets_its_own_transport(server):
    with settings_for(server):
        first = mail.get_connection().transport
        assert mail.get_connection(timeout=30).transport is not first
        assert mail.get_connection().transport is first


def test_close_transports_quits_and_the_next_message_reconnects(server):
    with settings_for(server):
        mail.send_mail("one", "x", "a@example.com", ["b@example.com"])
        transport = mail.get_connection().transport
        smtpsend.django.close_transports()
        assert transport.closed and any(c.upper() == "QUIT" for c in server.commands)
        mail.send_mail("two", "x", "a@example.com", ["b@example.com"])
        assert mail.get_connection().transport is not transport
    assert len(server.messages) == 2 and ehlos(server) == 2


EXIT_SCRIPT = """
import sys
from django.conf import settings
settings.configure(EMAIL_BACKEND="smtpsend.django.EmailBackend", EMAIL_HOST="127.0.0.1",
                   EMAIL_PORT=int(sys.argv[1]))
from django.core import mail
assert mail.send_mail("bye", "x", "a@example.com", ["b@example.com"]) == 1
# no close_transports(): interpreter exit says QUIT
"""


def test_interpreter_exit_closes_the_shared_transports(server):
    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, str(server.port)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(server.messages) == 1
    assert server.commands[-1].upper() == "QUIT"


def test_a_transport_closed_by_hand_is_replaced(server):
    with settings_for(server):
        transport = mail.get_connection().transport
        transport.close()
        assert mail.send_mail("x", "y", "a@example.com", ["b@example.com"]) == 1
        assert mail.get_connection().transport is not transport
    assert len(server.messages) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connection(server):
    with settings_for(server):
        mail.send_mail("parent", "x", "a@example.com", ["b@example.com"])
        pid = os.fork()
        if pid == 0:   # the child: send and leave at once
            code = 1
            try:
                code = 0 if mail.send_mail("child", "x", "a@example.com", ["b@example.com"]) == 1 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        mail.send_mail("parent again", "x", "a@example.com", ["b@example.com"])
        transport = mail.get_connection().transport
    assert [parsed(m)["Subject"] for m in server.messages] == ["parent", "child", "parent again"]
    assert ehlos(server) == 2                           # the child's own; the parent's kept
    assert transport.stats.connections_opened == 1


# ---------------------------------------------------------------- failures

def test_fail_silently_false_raises_and_true_logs(caplog):
    refusing = {"MAIL": (550, "5.7.1 sender not allowed")}
    with CaptureServer(responses=refusing) as server, settings_for(server):
        with pytest.raises(smtpsend.SenderRefused):
            mail.send_mail("x", "y", "a@example.com", ["b@example.com"])
        with caplog.at_level(logging.ERROR, logger="smtpsend.django"):
            assert mail.send_mail("x", "y", "a@example.com", ["b@example.com"], fail_silently=True) == 0
    errors = [r for r in caplog.records if r.name == "smtpsend.django" and r.levelno == logging.ERROR]
    assert errors and "5.7.1 sender not allowed" in errors[0].getMessage()


def test_fail_silently_goes_on_with_the_other_messages():
    refusing = {"RCPT nobody@example.com": (550, "5.1.1 no such user")}
    with CaptureServer(responses=refusing) as server, settings_for(server):
        messages = [mail.EmailMessage("bad", "x", "a@example.com", ["nobody@example.com"]),
                    mail.EmailMessage("good", "x", "a@example.com", ["b@example.com"])]
        assert mail.get_connection(fail_silently=True).send_messages(messages) == 1
        with pytest.raises(smtpsend.RecipientsRefused):
            mail.get_connection().send_messages(messages)
    assert [parsed(m)["Subject"] for m in server.messages] == ["good"]


def test_an_unreachable_server(caplog):
    with override_settings(EMAIL_BACKEND=BACKEND, EMAIL_HOST="127.0.0.1", EMAIL_PORT=closed_port(),
                           EMAIL_TIMEOUT=5):
        with pytest.raises(smtpsend.AllServersFailed):
            mail.send_mail("x", "y", "a@example.com", ["b@example.com"])
        assert mail.send_mail("x", "y", "a@example.com", ["b@example.com"], fail_silently=True) == 0


def test_refused_recipients_are_logged_and_the_others_get_it(caplog):
    refusing = {"RCPT nobody@example.com": (550, "5.1.1 no such user")}
    with CaptureServer(responses=refusing) as server, settings_for(server):
        with caplog.at_level(logging.WARNING, logger="smtpsend.django"):
            assert mail.send_mail("Hi", "x", "a@example.com", ["b@example.com", "nobody@example.com"]) == 1
    assert server.messages[0].envelope.recipients == ["b@example.com"]
    [record] = [r for r in caplog.records if r.name == "smtpsend.django"]
    assert record.levelno == logging.WARNING
    assert "nobody@example.com: 550 5.1.1 no such user" in record.getMessage()


def test_a_header_injection_is_refused_not_sent(server):
    with settings_for(server):
        with pytest.raises(ValueError):
            mail.EmailMessage("x", "y", "a@example.com", ["b@example.com"],
                              headers={"X-Note": "hi\r\nBcc: victim@example.com"}).send()
    assert server.messages == []


# ---------------------------------------------------------------- the settings mapping

def test_email_use_tls_means_starttls_required(server_tls, client_tls):
    with CaptureServer(tls_context=server_tls, users={"app": SENTINEL}) as server, \
            override_settings(EMAIL_BACKEND=BACKEND, EMAIL_HOST="localhost", EMAIL_PORT=server.port,
                              EMAIL_USE_TLS=True, EMAIL_HOST_USER="app", EMAIL_HOST_PASSWORD=SENTINEL,
                              SMTPSEND={"ssl_context": client_tls}):
        backend = mail.get_connection()
        assert backend.send_messages([mail.EmailMessage("x", "y", "a@example.com", ["b@example.com"])]) == 1
        assert_no_secret(backend)
        assert SENTINEL not in repr(backend) + repr(backend.transport)
    assert "STARTTLS" in [c.upper() for c in server.commands]
    assert server.messages[0].authenticated_as == "app"


def test_email_use_tls_fails_without_starttls(server, client_tls):
    with settings_for(server, EMAIL_USE_TLS=True, SMTPSEND={"ssl_context": client_tls}):
        with pytest.raises(smtpsend.AllServersFailed) as info:
            mail.send_mail("x", "y", "a@example.com", ["b@example.com"])
    assert isinstance(info.value.attempts[0].error, smtpsend.TLSRequired)
    assert server.messages == []


def test_without_email_use_tls_no_starttls_is_tried(server_tls):
    # Django's own backend speaks plaintext then; so does this one (a local
    # relay with a self-signed certificate keeps working)
    with CaptureServer(tls_context=server_tls) as server, settings_for(server):
        assert mail.send_mail("x", "y", "a@example.com", ["b@example.com"]) == 1
    assert "STARTTLS" not in [c.upper() for c in server.commands]


def test_email_use_ssl_is_implicit_tls(server_tls, client_tls):
    with CaptureServer(tls_context=server_tls, tlsimport=True) as server, \
            override_settings(EMAIL_BACKEND=BACKEND, EMAIL_HOST="localhost", EMAIL_PORT=server.port,
                              EMAIL_USE_SSL=True, SMTPSEND={"ssl_context": client_tls}):
        assert mail.send_mail("x", "y", "a@example.com", ["b@example.com"]) == 1
    assert len(server.messages) == 1


def test_a_url_in_smtpsend_servers_keeps_its_own_port_and_tls(server_tls, client_tls):
    """SMTPSEND["servers"] URLs: the URL's port and scheme count, not
    EMAIL_PORT (which is for plain host names); smtps:// is implicit TLS."""
    with CaptureServer(tls_context=server_tls, tlsimport=True) as server, \
            override_settings(EMAIL_BACKEND=BACKEND, EMAIL_PORT=1,
                              SMTPSEND={"servers": [f"smtps://localhost:{server.port}"],
                                        "ssl_context": client_tls}):
        backend = mail.get_connection()
        assert backend.ports == [None]
        assert mail.send_mail("x", "y", "a@example.com", ["b@example.com"]) == 1
    assert len(server.messages) == 1
    with override_settings(EMAIL_BACKEND=BACKEND, EMAIL_PORT=2525,
                           SMTPSEND={"servers": ["smtps://mail.example.com", "relay.example.com"]}):
        assert mail.get_connection().ports == [None, 2525]


def test_one_server_given_as_a_string_is_one_server_not_its_characters(server):
    """SMTPSEND["servers"] as one string was taken apart into characters
    (list("mail.example.com")); it is one server, as for Transport."""
    with override_settings(EMAIL_BACKEND=BACKEND, EMAIL_PORT=1, SMTPSEND={"servers": f"127.0.0.1:{server.port}"}):
        backend = mail.get_connection()
        assert backend.servers == [f"127.0.0.1:{server.port}"] and backend.ports == [1]
        assert mail.send_mail("x", "y", "a@example.com", ["b@example.com"]) == 1
    assert len(server.messages) == 1
    with override_settings(EMAIL_BACKEND=BACKEND, SMTPSEND={"servers": 7}):
        with pytest.raises(TypeError, match=r"SMTPSEND\['servers'\] takes one item or a list"):
            mail.get_connection()


def test_email_ssl_certfile_is_the_client_certificate(ca, tmp_path):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED          # no certificate, no session
    client_cert = ca.issue_cert("client.example")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    client_cert.cert_chain_pems[0].write_to_path(str(certfile))
    client_cert.private_key_pem.write_to_path(str(keyfile))

    def trusting():
        context = ssl.create_default_context()
        ca.configure_trust(context)
        return context

    with CaptureServer(tls_context=server_context) as server:
        common = dict(EMAIL_BACKEND=BACKEND, EMAIL_HOST="localhost", EMAIL_PORT=server.port, EMAIL_USE_TLS=True)
        with override_settings(**common, SMTPSEND={"ssl_context": trusting()}):
            with pytest.raises(smtpsend.AllServersFailed):
                mail.send_mail("x", "y", "a@example.com", ["b@example.com"])
        with override_settings(**common, EMAIL_SSL_CERTFILE=str(certfile), EMAIL_SSL_KEYFILE=str(keyfile),
                               SMTPSEND={"ssl_context": trusting()}):
            assert mail.send_mail("x", "y", "a@example.com", ["b@example.com"]) == 1
    assert len(server.messages) == 1


def test_plaintext_credentials_need_an_explicit_policy():
    with CaptureServer(users={"app": SENTINEL}) as server:
        common = dict(EMAIL_BACKEND=BACKEND, EMAIL_HOST="127.0.0.1", EMAIL_PORT=server.port,
                      EMAIL_HOST_USER="app", EMAIL_HOST_PASSWORD=SENTINEL)
        with override_settings(**common):
            with pytest.raises(smtpsend.AllServersFailed) as info:
                mail.send_mail("x", "y", "a@example.com", ["b@example.com"])
            assert isinstance(info.value.attempts[0].error, smtpsend.TLSRequired)
        with override_settings(**common, SMTPSEND={"tlspolicy": "insecure"}):
            assert mail.send_mail("x", "y", "a@example.com", ["b@example.com"]) == 1
    assert server.messages[0].authenticated_as == "app"


def test_smtpsend_servers_fail_over(server):
    servers = [f"127.0.0.1:{closed_port()}", f"127.0.0.1:{server.port}"]
    with override_settings(EMAIL_BACKEND=BACKEND, EMAIL_TIMEOUT=5,
                           SMTPSEND={"servers": servers, "max_connections": 2}):
        assert mail.get_connection().servers == servers
        assert mail.send_mail("x", "y", "a@example.com", ["b@example.com"]) == 1
    assert len(server.messages) == 1


def test_smtpsend_per_message_options_and_atleastone(server):
    refusing = {"RCPT nobody@example.com": (550, "5.1.1 no such user")}
    with CaptureServer(responses=refusing) as strict, settings_for(strict, SMTPSEND={"atleastone": False}):
        with pytest.raises(smtpsend.RecipientsRefused):
            mail.send_mail("x", "y", "a@example.com", ["b@example.com", "nobody@example.com"])
    with settings_for(server, SMTPSEND={"envid": "QQ314159", "ret": "HDRS"}):
        assert mail.send_mail("x", "y", "a@example.com", ["b@example.com"]) == 1
    assert set(server.messages[0].esmtp_params) >= {"ENVID=QQ314159", "RET=HDRS"}


def test_get_connection_takes_djangos_arguments(server):
    with override_settings(EMAIL_BACKEND=BACKEND):
        backend = mail.get_connection(BACKEND, host="127.0.0.1", port=server.port, username="", password="",
                                      use_tls=False, use_ssl=False, timeout=5, fail_silently=False)
        assert (backend.servers, backend.ports) == (["127.0.0.1"], [server.port])
        assert backend.send_messages([mail.EmailMessage("x", "y", "a@example.com", ["b@example.com"])]) == 1
    assert len(server.messages) == 1


def test_bad_configurations_are_refused():
    with override_settings(EMAIL_USE_TLS=True, EMAIL_USE_SSL=True):
        with pytest.raises(ValueError, match="mutually exclusive"):
            EmailBackend()
    with override_settings(SMTPSEND={"max_connection": 2}):
        with pytest.raises(ImproperlyConfigured, match="'max_connection'"):
            EmailBackend()
    with override_settings(SMTPSEND=["servers"]):
        with pytest.raises(ImproperlyConfigured):
            EmailBackend()
    with override_settings(EMAIL_SSL_KEYFILE="key.pem"):
        with pytest.raises(ImproperlyConfigured):
            EmailBackend()


# ---------------------------------------------------------------- the conversion

def test_non_ascii_addresses_and_the_charset(server):
    message = mail.EmailMessage("Prüfung", "Grüße, Jörg\n", "Jörg Müller <joerg@bücher.example>",
                                ["Zoë <zoe@example.com>"])
    message.encoding = "iso-8859-1"
    with settings_for(server):
        assert message.send() == 1
    [received] = server.messages
    top = parsed(received)
    assert top["From"].addresses[0].display_name == "Jörg Müller"
    assert top["From"].addresses[0].domain == "xn--bcher-kva.example"   # an ASCII header, as Django writes
    assert top["To"].addresses[0].display_name == "Zoë"
    assert top.get_content_charset() == "iso-8859-1"
    assert top.get_content().replace("\r\n", "\n") == "Grüße, Jörg\n"
    assert received.envelope.originator in ("joerg@bücher.example", "joerg@xn--bcher-kva.example")


def test_text_the_charset_cannot_carry_goes_as_utf8():
    message = mail.EmailMessage("x", "price: 5 €", "a@example.com", ["b@example.com"])
    message.encoding = "iso-8859-1"
    part = to_part(message).part
    assert part.getproperty("params")["charset"] == "utf-8"
    assert part.getbody(decode=True) == "price: 5 €"


def test_html_content_subtype_and_mixed_subtype():
    message = mail.EmailMessage("x", "<p>hi</p>", "a@example.com", ["b@example.com"])
    message.content_subtype = "html"
    message.mixed_subtype = "related"
    image = MIMEImage(PNG, "png")
    image.add_header("Content-ID", "<logo>")
    message.attach(image)
    part, originator, recipients = to_part(message)
    assert part.getproperty("content") == "multipart/related"
    html, png = part.getproperty("parts")
    assert html.getproperty("content") == "text/html" and png.getheader("Content-ID") == ["<logo>"]
    assert (originator, recipients) == ("a@example.com", ["b@example.com"])


def test_message_rfc822_attachment_from_an_email_message():
    inner = mail.EmailMessage("Inner", "inside", "x@example.com", ["y@example.com"], bcc=["z@example.com"])
    outer = mail.EmailMessage("Outer", "see attached", "a@example.com", ["b@example.com"])
    outer.attach("inner.eml", inner, "message/rfc822")
    top = email.message_from_bytes(to_part(outer).part.buildmessage(), policy=email.policy.default)
    _, attached = top.iter_parts()
    assert attached.get_content_type() == "message/rfc822"
    enclosed = attached.get_content()
    assert enclosed["Subject"] == "Inner" and enclosed["Bcc"] is None


def test_a_subclass_that_builds_its_own_message_is_sent_as_built(server):
    class Stamped(mail.EmailMessage):
        def message(self):
            msg = super().message()
            msg["X-Stamped"] = "yes"
            return msg

    with settings_for(server):
        assert Stamped("x", "y", "a@example.com", ["b@example.com"], bcc=["h@example.com"]).send() == 1
    [received] = server.messages
    assert parsed(received)["X-Stamped"] == "yes"
    assert received.envelope.recipients == ["b@example.com", "h@example.com"]
    assert b"h@example.com" not in received.data


def test_smtpsend_dkim_from_a_dict_of_signer_arguments(server):
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    dkim = {"domain": "example.com", "selector": "s2026", "key": pem, "algorithm": "ed25519-sha256"}
    with settings_for(server, SMTPSEND={"dkim": dkim}):
        assert mail.send_mail("Signed", "x", "a@example.com", ["b@example.com"]) == 1
    signature = parsed(server.messages[0])["DKIM-Signature"]
    assert "d=example.com" in signature and "s=s2026" in signature and "a=ed25519-sha256" in signature


def test_a_non_ascii_local_part_goes_with_smtputf8(server):
    # Django's own backend writes such a local part as an RFC 2047 word, which
    # is no address; smtpsend sends it as UTF-8 where SMTPUTF8 is offered (RFC 6531)
    with settings_for(server):
        assert mail.send_mail("x", "y", "a@example.com", ["jörg@bücher.example"]) == 1
    [received] = server.messages
    assert received.envelope.recipients == ["jörg@bücher.example"]
    assert "SMTPUTF8" in received.esmtp_params
    assert "\r\nTo: jörg@bücher.example\r\n" in received.data.decode("utf-8")   # RFC 6532 header


def test_attachment_triples_set_by_hand_get_a_guessed_type():
    message = mail.EmailMessage("x", "", "a@example.com", ["b@example.com"])
    message.attachments = [("report.csv", "a,b\n", None), (None, b"\x00\x01", "application/octet-stream")]
    part = to_part(message).part
    assert part.getproperty("content") == "multipart/mixed"
    csv, blob = part.getproperty("parts")                 # no body part: the body is empty, as in Django
    assert csv.getproperty("content") == "text/csv" and csv.getproperty("params")["name"] == "report.csv"
    assert blob.getheader("Content-Disposition") == [] and blob.getbody(decode=True) == b"\x00\x01"
