"""Regression tests, one per known attack class on mail software."""

import datetime
import ipaddress
import socket
import ssl
import threading
import tracemalloc

import pytest

import mimecompose
import smtpsend
from smtpsend import pop3
from smtpsend.testing import CaptureServer

from conftest import SENTINEL
from faults import FaultServer

FROM_TO = [("From", "a@example.com"), ("To", "b@example.com")]


def part(body="hello", **kwargs):
    return mimecompose.compose(body, header=FROM_TO, **kwargs)


# ---------------------------------------------------------------- header injection (CVE-2024-6923 class)

EVIL = "x\r\nBcc: victim@example.org"


@pytest.mark.parametrize("build", [
    lambda: mimecompose.initialize("text/plain", string="b", header=[("Subject", EVIL)]),
    lambda: mimecompose.initialize("text/plain", string="b").setheader("Subject", EVIL),
    lambda: mimecompose.initialize("text/plain", string="b").setheader("To", mimecompose.formataddress(EVIL, "a@x.org")),
    lambda: mimecompose.initialize("application/pdf", string=b"%PDF", filename="a.pdf\r\nX-Evil: 1"),
    lambda: mimecompose.initialize("text/plain", string="b", params={"format": "flowed\r\nX-Evil: 1"}),
    lambda: mimecompose.initialize("text/plain", string="b", header=[("X-Evil\r\nBcc", "v@x.org")]),
    lambda: smtpsend.transmitted(part(), header=[("Subject", EVIL)]),
], ids=["header=", "setheader", "display name", "filename", "parameter", "field name", "sendmessage header="])
def test_header_injection_refused(build):
    with pytest.raises(ValueError):
        build()


def test_folding_never_creates_a_new_field():
    long_value = "word " * 200 + "Bcc: victim@example.org"
    data = mimecompose.initialize("text/plain", string="b", header=[("Subject", long_value)]).buildmessage()
    fields = [line for line in data.split(b"\r\n\r\n")[0].split(b"\r\n") if not line[:1] in (b" ", b"\t")]
    assert [f.split(b":")[0] for f in fields] == [b"Subject", b"MIME-Version", b"Content-Type"]


# ---------------------------------------------------------------- command injection (bpo-43124 class)

@pytest.mark.parametrize("kwargs", [
    dict(originator="a@example.com>\r\nRCPT TO:<victim@example.org"),
    dict(recipients=["b@example.com>\r\nDATA"]),
    dict(client="client.example\r\nMAIL FROM:<x@y>"),
    dict(envid="id\r\nRSET"),
    dict(mail_auth="a@x\r\nRSET"),
    dict(notify="SUCCESS\r\nRSET"),
])
def test_command_injection_refused_before_connecting(kwargs):
    with CaptureServer() as server:
        with pytest.raises(ValueError):
            smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port], **kwargs)
        assert server.commands == []


def test_orcpt_and_auth_identities_are_encoded_not_injected():
    with CaptureServer(users={"u\r\nRSET": "pw"}) as server:
        smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port],
                             orcpt={"b@example.com": "x\r\nRSET"}, username="u\r\nRSET", password="pw",
                             tlspolicy="insecure", mechanisms=["PLAIN"])
        assert not any(c.startswith("RSET") for c in server.commands)
        assert server.messages[0].rcpt_params["b@example.com"][0] == "ORCPT=rfc822;x+0D+0ARSET"
        assert server.messages[0].authenticated_as == "u\r\nRSET"   # inside base64: harmless


def test_pop3_command_injection():
    with CaptureServer() as server:   # any listener: the check happens before anything is sent
        box = pop3.POP3(socket.create_connection(("127.0.0.1", server.port)), "localhost", timeout=2,
                        ssl_context=None, logfile=None)
        with pytest.raises(ValueError):
            box.dele("1\r\nQUIT")
        with pytest.raises(ValueError):
            box._command("USER a\r\nPASS b")
        box.close()


# ---------------------------------------------------------------- STARTTLS response injection (CVE-2011-0411 class)

def test_starttls_response_injection_discarded(server_tls, client_tls):
    lines = []
    with FaultServer("starttls", "inject", tls_context=server_tls) as server:
        smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                             debug=lines.append, timeout=5)
        assert len(server.delivered) == 1
    assert not any("injected" in line for line in lines)
    after_tls = lines[lines.index("> STARTTLS"):]
    assert "> EHLO localhost" in after_tls and "< 250-fault.localhost" in after_tls


def test_pop3_stls_response_injection_discarded(server_tls, client_tls):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        conn.sendall(b"+OK ready\r\n")
        f = conn.makefile("rb")
        f.readline()                                   # CAPA
        conn.sendall(b"+OK\r\nSTLS\r\n.\r\n")
        f.readline()                                   # STLS
        conn.sendall(b"+OK begin TLS\r\n+OK injected before TLS\r\n")
        tls = server_tls.wrap_socket(conn, server_side=True)
        g = tls.makefile("rb")
        g.readline()                                   # NOOP
        tls.sendall(b"+OK real answer\r\n")
        g.readline()
        tls.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    box = pop3.connect("localhost", port=listener.getsockname()[1], ssl_context=client_tls, timeout=5)
    assert box.noop() == "real answer"
    box.close()
    thread.join(5)
    listener.close()


# ---------------------------------------------------------------- SMTP smuggling (CVE-2023-51764 class)

@pytest.mark.parametrize("trick", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r\n.\r\r\n"])
def test_smuggled_end_of_data_never_reaches_the_wire(trick):
    raw = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\nbefore" + trick +
           b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nsmuggled\r\n.\r\nafter\r\n")
    for extensions in (["PIPELINING"], ["PIPELINING", "CHUNKING"]):
        with CaptureServer(extensions=extensions) as server:
            smtpsend.sendmessage(raw, servers=["localhost"], ports=[server.port])
            assert len(server.messages) == 1
            data = server.messages[0].data
            assert b"smuggled" in data and data.rstrip().endswith(b"after")
            assert not any(c.startswith("MAIL FROM:<evil") for c in server.commands)
            assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")


# ---------------------------------------------------------------- STARTTLS stripping

@pytest.mark.parametrize("responses", [{}, {"STARTTLS": (454, "4.7.0 TLS not available")}],
                         ids=["not offered", "454"])
def test_stripping_no_credentials_no_data(responses, server_tls, client_tls):
    # a server that does not offer STARTTLS, and one that answers 454 to it
    tls = server_tls if responses else None
    with CaptureServer(tls_context=tls, users={"u": SENTINEL}, responses=responses) as server:
        for kwargs in (dict(tlspolicy="secure"), dict(username="u", password=SENTINEL)):
            with pytest.raises(smtpsend.AllServersFailed) as info:
                smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port],
                                     ssl_context=client_tls, **kwargs)
            assert isinstance(info.value.attempts[0].error, smtpsend.TLSRequired)
        assert not any(c.startswith(("AUTH", "MAIL", "RCPT", "DATA", "BDAT")) for c in server.commands)
        assert server.messages == []


# ---------------------------------------------------------------- certificate problems

def _self_signed_context():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    import tempfile, os
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "c.pem"), "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(folder, "c.pem"))
    return context


def _context(ca, *names, **dates):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, **dates).configure_cert(context)
    return context


@pytest.mark.parametrize("problem", ["expired", "wrong host", "self-signed", "untrusted CA"])
def test_certificate_problems_refused(problem, ca, client_tls):
    import trustme
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
    contexts = {
        "expired": lambda: _context(ca, "localhost", not_before=past - datetime.timedelta(days=30), not_after=past),
        "wrong host": lambda: _context(ca, "mail.other.example"),
        "self-signed": _self_signed_context,
        "untrusted CA": lambda: _context(trustme.CA(), "localhost"),
    }
    with CaptureServer(tls_context=contexts[problem]()) as server:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port], ssl_context=client_tls)
        error = info.value.attempts[0].error
        assert isinstance(error, smtpsend.TLSError) and "certificate" in str(error)
        assert server.messages == [] and not any(c.startswith("MAIL") for c in server.commands)


# ---------------------------------------------------------------- secrets

def test_secrets_never_in_traces_logs_errors_or_reprs(server_tls, client_tls, no_secret_in_logs):
    lines, monitored = [], []
    with CaptureServer(tls_context=server_tls, users={"user": "other"}) as server:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                                 username="user", password=SENTINEL, debug=True)
        with pytest.raises(smtpsend.AllServersFailed) as info2:
            smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                                 username="user", password=SENTINEL, debug=lines.append,
                                 monitor=lambda d, l: monitored.append(l))
    texts = [str(info.value), repr(info.value), repr(info.value.attempts), str(info2.value),
             *lines, *monitored, *no_secret_in_logs.messages]
    assert no_secret_in_logs.messages, "debug=True logged nothing"
    assert not any(SENTINEL in t for t in texts)
    import base64
    encoded = base64.b64encode(b"\0user\0" + SENTINEL.encode()).decode()
    assert not any(encoded in t for t in texts)
    from smtpsend._sasl import MECHANISMS
    assert all(SENTINEL not in repr(m("user", SENTINEL, SENTINEL)) for m in MECHANISMS)


def test_pop3_log_never_shows_the_password(tmp_path):
    from servers import Conversation
    log = tmp_path / "pop.log"
    script = [("S", b"+OK ready <1.2@x>\r\n"), ("C", b"USER u\r\n"), ("S", b"+OK\r\n"),
              ("C", f"PASS {SENTINEL}\r\n".encode()), ("S", b"-ERR no\r\n"),
              ("C", b"APOP u "), ("CLOSE",)]
    with Conversation(script[:-1] + [("CLOSE",)]) as server:
        box = pop3.connect("127.0.0.1", port=server.port, usetls=False, tlspolicy="insecure", logfile=str(log), timeout=2)
        with pytest.raises(smtpsend.SMTPError) as info:
            box.login("u", SENTINEL)
        box.close()
    assert SENTINEL not in log.read_text() and SENTINEL not in str(info.value)


# ---------------------------------------------------------------- resource limits

@pytest.mark.parametrize("fault", ["endless", "overlong"])
def test_endless_replies_use_bounded_memory(fault):
    tracemalloc.start()
    try:
        with FaultServer("ehlo", fault) as server:
            with pytest.raises(smtpsend.AllServersFailed) as info:
                smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port], timeout=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(info.value.attempts[0].error, smtpsend.RemoteProtocolError)
    assert peak < 8 << 20


def test_pop3_endless_response_is_capped():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        conn.sendall(b"+OK ready\r\n")
        f = conn.makefile("rb")
        f.readline()
        conn.sendall(b"+OK\r\n.\r\n")     # CAPA: nothing
        f.readline()                       # RETR 1
        conn.sendall(b"+OK endless\r\n")
        try:
            while True:
                conn.sendall(b"line of an endless message\r\n" * 1000)
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    box = pop3.connect("127.0.0.1", port=listener.getsockname()[1], timeout=5)
    box.max_octets = 1 << 20
    with pytest.raises(smtpsend.RemoteProtocolError, match="longer than"):
        box.retr(1)
    box.close()
    thread.join(5)
    listener.close()


# ---------------------------------------------------------------- Bcc disclosure (issue 11, item 9)

def test_bcc_is_disclosed_by_no_path():
    """A Bcc or Resent-Bcc field reaches no recipient, however it comes in:
    the part, header=, a raw message, an email.message.Message, Client.data."""
    import email.message
    hidden = "blind@example.org"
    as_email = email.message.EmailMessage()
    for name, value in FROM_TO + [("Bcc", hidden)]:
        as_email[name] = value
    as_email.set_content("x")
    sources = [
        (mimecompose.compose("x", header=FROM_TO + [("Bcc", hidden)]), {}),
        (part(), {"header": [("Bcc", hidden)]}),
        (part(), {"header": {"Resent-From": "f@example.com", "Resent-To": "n@example.com", "Resent-Bcc": ""}}),
        (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\rBcc: " + hidden.encode() + b"\r\n\r\nx", {}),
        (as_email, {}),
    ]
    with CaptureServer() as server:
        for message, options in sources:
            smtpsend.sendmessage(message, servers=["localhost"], ports=[server.port], **options)
        with smtpsend.connect("localhost", port=server.port) as client:
            client.mail("a@example.com")
            client.rcpt("b@example.com")
            assert client.data(mimecompose.compose("x", header=FROM_TO + [("Bcc", hidden)])).code == 250
        assert len(server.messages) == len(sources) + 1
        for received in server.messages:
            head = received.data.split(b"\r\n\r\n", 1)[0].lower()
            assert b"bcc" not in head and hidden.encode() not in received.data


def test_email_message_header_injection_is_a_usage_error():
    import email.message
    message = email.message.Message()
    message["From"], message["To"] = "a@example.com", "b@example.com"
    message["Subject"] = EVIL
    message.set_payload("x")
    with pytest.raises(smtpsend.UsageError):
        smtpsend.sendmessage(message, servers=["localhost"], ports=[9])


# ---------------------------------------------------------------- decoded-value injection (issue 11)

def _transmitted_fields(data: bytes) -> list[bytes]:
    """Field names a receiver reads: every CR, LF or CRLF taken as a line break."""
    head = data.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":", 1)[0].lower() for line in __import__("re").split(rb"\r\n|\r|\n", head)
            if line and line[:1] not in (b" ", b"\t")]


DECODED_EVIL = [
    ("To", "=?utf-8?q?Team=0AFrom=3A_ceo=40bank=2Eexample=0AX-Ignore=3A?=: b@example.com;"),
    ("To", "=?utf-8?b?VGVhbQ1CY2M6IHNweUBleGFtcGxlLm9yZw==?=: b@example.com;"),     # CR
    ("To", '"=?utf-8?q?T=0AFrom=3A_x=40example=2Enet?=": b@example.com;'),            # quoted group name
    ("Cc", "=?utf-8?q?T=0ABcc=3A_spy=40example=2Eorg?= <c@example.com>, G: b@example.com;"),
    ("To", "=?utf-8?q?Bob=0D=0ABcc=3A_spy=40example=2Eorg=C3=A9?= <b@example.com>"),
    ("To", "b@example.com (=?utf-8?q?x=0ABcc=3A_spy=40example=2Eorg_=C3=A9?=)"),
    ("Subject", "=?utf-8?q?hi=0D=0ABcc=3A_spy=40example=2Eorg?="),
]


@pytest.mark.parametrize("name,value", DECODED_EVIL)
def test_decoded_value_injection_creates_no_field(name, value):
    header = [("From", "a@example.com")] + ([("To", "b@example.com")] if name != "To" else []) + [(name, value)]
    built = [
        mimecompose.initialize("text/plain", string="b", header=header).buildmessage(),
        mimecompose.compose("b", header=header).buildmessage(),
        mimecompose.initialize(string=b"From: a@example.com\r\nTo: b@example.com\r\n\r\nb\r\n",
                               header=[(name, value)]).buildmessage(),
        smtpsend.transmitted(part(), header=[(name, value)])[1],
    ]
    for data in built:
        fields = _transmitted_fields(data)
        assert b"bcc" not in fields and fields.count(b"from") == 1 and b"x-ignore" not in fields
    with CaptureServer() as server:
        smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port], header=[(name, value)])
        fields = _transmitted_fields(server.messages[0].data)
        assert b"bcc" not in fields and fields.count(b"from") == 1
        assert "spy@example.org" not in server.messages[0].envelope.recipients


# ---------------------------------------------------------------- bare CR: parsed == transmitted (issue 11)

def test_bare_cr_header_smuggling_is_seen_by_the_application():
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hello\rBcc: spy@example.org\r\n\r\nbody\r\n"
    parsed = mimecompose.initialize(string=raw)
    assert parsed.getheader("Bcc") == ["spy@example.org"]          # the application sees the Bcc ...
    envelope, data = smtpsend.transmitted(raw)
    assert "spy@example.org" in envelope.recipients                  # ... so does the envelope,
    assert b"bcc" not in _transmitted_fields(data)                     # and it is not transmitted
    assert b"Subject: hello\r\n" in data


def test_bare_cr_boundary_smuggling_is_seen_by_the_scanner():
    raw = (b"From: a@example.com\r\nTo: b@example.com\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
           b"--B\r\n\r\nharmless\r--B\rContent-Type: application/x-msdownload\r\r"
           b"MZ payload\r\n--B--\r\n")
    scanned = [p.getproperty("content") for p in mimecompose.initialize(string=raw).getproperty("parts")]
    assert scanned == ["text/plain", "application/x-msdownload"]     # the scanner sees the attachment
    _envelope, data = smtpsend.transmitted(raw)
    received = mimecompose.initialize(string=data)
    assert [p.getproperty("content") for p in received.getproperty("parts")] == scanned
    import email
    import email.policy
    theirs = email.message_from_bytes(data, policy=email.policy.default)
    assert [m.get_content_type() for m in theirs.iter_parts()] == scanned


# ---------------------------------------------------------------- size desync: the message changes while sent (issue 11)

def _change(path, how):
    data = path.read_bytes()
    if how == "grow":        # octets past the BDAT size would be read as commands
        path.write_bytes(data + b"\r\nRSET\r\nMAIL FROM:<evil@x.org>\r\nRCPT TO:<victim@x.org>\r\nBDAT 5 LAST\r\n" * 40)
    elif how == "shrink":
        path.write_bytes(data[:len(data) // 2])
    else:                    # the same size, other octets
        path.write_bytes(data[::-1])


@pytest.mark.parametrize("how", ["grow", "shrink", "rewrite"])
@pytest.mark.parametrize("extensions,atleastone", [
    (["PIPELINING", "CHUNKING", "SIZE 1000000"], True), (["PIPELINING", "CHUNKING"], False),
    (["CHUNKING"], True), (["PIPELINING", "SIZE 1000000"], True), ([], False)],
    ids=["bdat-last-pipelined", "bdat-then-last", "bdat-alone", "data-pipelined", "data-alone"])
def test_a_message_changed_while_sent_is_never_delivered(monkeypatch, tmp_path, how, extensions, atleastone):
    import smtpsend._data
    monkeypatch.setattr(smtpsend._data, "_KEEP", 4096)     # as over 4 MiB: serialised again to be sent
    path = tmp_path / "disk.log"
    path.write_bytes(b"".join(b"%06d disk ok\r\n" % n for n in range(20000)))
    message = mimecompose.compose("log attached", attachments=[str(path)], header=FROM_TO)

    def events(event):
        if event.name == "mail":
            _change(path, how)
    with CaptureServer(extensions=extensions) as server:
        with pytest.raises(ValueError, match="changed|grew"):
            smtpsend.sendmessage(message, servers=["127.0.0.1"], ports=[server.port], atleastone=atleastone,
                                 events=events, timeout=5)
    assert server.messages == []
    verbs = [c.split()[0].upper() for c in server.commands]
    assert set(verbs) <= {"EHLO", "MAIL", "RCPT", "DATA", "BDAT"} and verbs.count("MAIL") == 1, server.commands
    assert not any("evil" in c or "victim" in c for c in server.commands)


# ---------------------------------------------------------------- SMTP smuggling, receiving side (issue 11, item 14)

@pytest.mark.parametrize("bare_lf", ["accept", "refuse"])
@pytest.mark.parametrize("trick", [b"\n.\r\n", b"\n.\n", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r\n.\r\r\n"])
def test_capture_server_never_ends_data_at_a_smuggled_dot(trick, bare_lf):
    """A hostile client's fake end of data never starts a second
    transaction in the capture server (CVE-2023-51764 class, the receiver
    half): DATA ends at <CRLF>.<CRLF> only; with bare_lf="refuse" a
    message holding a bare LF is refused whole, as Postfix's
    smtpd_forbid_bare_newline does."""
    with CaptureServer(bare_lf=bare_lf) as server:
        with socket.create_connection((server.host, server.port), timeout=10) as conn:
            replies = conn.makefile("rb")

            def reply():
                while True:
                    line = replies.readline()
                    if line[3:4] != b"-":
                        return line

            assert reply().startswith(b"220")
            for command in (b"EHLO x", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>", b"DATA"):
                conn.sendall(command + b"\r\n")
                reply()
            conn.sendall(b"Subject: s\r\n\r\nbefore" + trick + b"MAIL FROM:<evil@example.org>\r\n"
                         b"RCPT TO:<victim@example.org>\r\nDATA\r\nsmuggled\r\n.\r\n")
            final = reply()
            conn.sendall(b"NOOP\r\n")
            assert reply().startswith(b"250")          # one reply to the message, then in step again
    assert not any("evil" in c or "victim" in c for c in server.commands)
    if bare_lf == "refuse" and b"\n" in trick.replace(b"\r\n", b""):
        assert final.startswith(b"550 5.5.2") and server.messages == []
    else:
        assert final.startswith(b"250")
        [message] = server.messages
        assert message.envelope.recipients == ["b@example.com"] and b"smuggled" in message.data


# ---------------------------------------------------------------- recipient injection through formataddress (issue 11, item 17)

@pytest.mark.parametrize("address", ["bob@example.com>, evil@example.org, <z@example.com",
                                     "bob@example.com, evil@example.org", "bob@example.com (x), evil@example.org",
                                     "Evil <evil@example.org>", "bob@example.com;evil@example.org"])
def test_formataddress_never_writes_a_second_recipient(address):
    """A caller's address that is not one addr-spec is refused, so the To
    built from it can never carry a recipient the caller did not name."""
    with pytest.raises(mimecompose.MimeError):
        mimecompose.formataddress("Bob", address)


# ---------------------------------------------------------------- CR/LF/NUL through a parsed address (issue 12)

@pytest.mark.parametrize("text", ['"a\r\nBcc: evil@example.org"@example.com', "a@example.com\r\nBcc: evil@example.org",
                                  '"x\\\r\nBcc: evil@example.org" <a@example.com>', "a@[1.2.3.4\rBcc: evil]",
                                  '"\x00" <a@example.com>', "(c\nBcc: evil@example.org) a@example.com"])
def test_parsed_address_without_error_never_holds_cr_lf_nul(text):
    """What RFC 5322 2.2.3 does not unfold is an error; a record without
    error carries no CR, LF or NUL in any field (folding is removed)."""
    for addr in mimecompose.parseaddress(text):
        fields = (addr.address, addr.local, addr.domain, addr.phrase, addr.comment, addr.friendly, addr.route)
        assert addr.error or not any(c in f for f in fields for c in "\r\n\x00"), addr
        assert addr.error, addr


# ---------------------------------------------------------------- the secret in no form, anywhere (issue 14)

@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_no_object_or_error_of_a_login_shows_the_secret_even_in_base64(mechanism, server_tls, client_tls):
    """After a login, and after a refused one, the Client and the error
    show the password neither as text nor as the base64 that went on the
    wire (conftest.find_secret walks vars(), slots, exception links)."""
    from conftest import assert_no_secret
    with CaptureServer(tls_context=server_tls, users={"user": SENTINEL}) as server:
        with smtpsend.connect("localhost", port=server.port, ssl_context=client_tls, username="user",
                              password=SENTINEL, mechanisms=[mechanism]) as smtp:
            assert_no_secret(smtp, what=f"the Client after {mechanism}")
            smtp.login("user", SENTINEL)
            assert_no_secret(smtp, what=f"the Client after a second {mechanism}")
    with CaptureServer(tls_context=server_tls, users={"user": "another"}) as server:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(b"From: a@example.com\r\nTo: b@example.com\r\n\r\nx\r\n", servers=["localhost"],
                                 ports=[server.port], ssl_context=client_tls, username="user", password=SENTINEL,
                                 mechanisms=[mechanism])
    assert isinstance(info.value.attempts[0].error, smtpsend.AuthenticationError)
    assert_no_secret(info.value, what=f"the error of a refused {mechanism}")


# ---------------------------------------------------------------- server URLs (issue 18)

@pytest.mark.parametrize("url", [
    "smtp://u%0D%0AMAIL%20FROM:<x>@{host}",               # CR LF in the user name, encoded
    "smtp://u:p%0AQUIT@{host}",                            # LF in the password
    "smtp://u:p%00@{host}",                                # NUL in the password
    "smtp://{host}?mechanisms=PLAIN%0D%0ARSET",            # CR LF in an option
    "smtp://{host}?timeout=1%0D%0A",
    "smtp://{host}\r\nRSET",                               # as they are
])
def test_a_url_cannot_inject_commands(url):
    """CR, LF and NUL in a server URL, percent-encoded or not, are refused
    before anything connects: no byte of them reaches a server."""
    with CaptureServer(users={"u": "p"}) as server:
        entry = url.format(host=f"127.0.0.1:{server.port}")
        with pytest.raises(smtpsend.UsageError, match="control character"):
            smtpsend.sendmessage(b"From: a@example.com\r\nTo: b@example.com\r\n\r\nx\r\n", servers=[entry])
        with pytest.raises(smtpsend.UsageError, match="control character"):
            smtpsend.connect(entry)
        assert server.commands == [] and server.messages == []


def test_lmtp_unix_socket_path_cannot_smuggle_commands():
    # a servers= entry that is a Unix socket's path reaches no socket call with CR, LF or NUL in it
    part = mimecompose.compose("x", header={"From": "a@x.org", "To": "b@y.org"})
    for path in ("/run/lmtp\r\nRCPT TO:<evil@x.org>", "/run/lmtp\nx", "/run/\0lmtp"):
        with pytest.raises(smtpsend.UsageError):
            smtpsend.sendmessage(part, servers=[path], protocol="lmtp")
