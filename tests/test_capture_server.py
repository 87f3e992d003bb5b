"""smtpsend.testing.CaptureServer as a hostile client meets it: the end of
DATA, bare LF, every bound (line, message, recipients, clients, idle time,
what is kept in memory), strict command parsing, escaping for terminals,
and a clean stop with clients still connected."""

import asyncio
import base64
import io
import inspect
import json
import re
import socket
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

import mimecompose
import smtpsend
from smtpsend import testing
from smtpsend.testing import CaptureServer, printable


class Client:
    """A raw SMTP client: send lines, read replies as (code, text)."""

    def __init__(self, server, greeting=True):
        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.file = self.sock.makefile("rb")
        if greeting:
            assert self.reply()[0] == 220

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self):
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("closed")
            lines.append(line.decode())
            if line[3:4] != b"-":
                return int(line[:3]), "".join(lines)

    def command(self, line: bytes):
        self.send(line + b"\r\n")
        return self.reply()

    def transaction(self, body: bytes, sender=b"a@example.com", rcpt=b"b@example.com"):
        """MAIL, RCPT, DATA, the body as given, and the reply to it."""
        assert self.command(b"MAIL FROM:<" + sender + b">")[0] == 250
        assert self.command(b"RCPT TO:<" + rcpt + b">")[0] == 250
        assert self.command(b"DATA")[0] == 354
        self.send(body)
        return self.reply()

    def close(self):
        self.file.close()
        self.sock.close()


@pytest.fixture
def server():
    with CaptureServer() as s:
        yield s


# ---------------------------------------------------------------- the end of DATA (SMTP smuggling)


@pytest.mark.parametrize("fake_end", [b"\n.\r\n", b"\n.\n", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r"])
def test_data_ends_only_at_crlf_dot_crlf(server, fake_end):
    smuggled = b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: forged\r\n\r\n"
    client = Client(server)
    body = b"Subject: real\r\n\r\nhello" + fake_end + smuggled
    code, text = client.transaction(body + b"\r\n.\r\n")
    assert code == 250, text
    assert client.command(b"NOOP")[0] == 250     # in step: nothing else was answered
    client.close()
    [message] = server.messages
    # everything after the fake end is content (a dot opening a CRLF line is unstuffed)
    assert message.data == (body + b"\r\n").replace(b"\r\n.", b"\r\n")
    assert not any("evil" in c for c in server.commands)


def test_bare_lf_is_content_and_a_dot_after_it_is_not_unstuffed(server):
    client = Client(server)
    assert client.transaction(b"a\n..b\r\n..c\r\n.\r\n")[0] == 250
    client.close()
    assert server.messages[0].data == b"a\n..b\r\n.c\r\n"   # only a CRLF line's dot is stuffing


def test_bare_lf_refused_like_postfix():
    with CaptureServer(bare_lf="refuse") as server:
        client = Client(server)
        code, text = client.transaction(b"Subject: x\r\n\r\nbare\nlf\r\n.\r\n")
        assert code == 550 and "5.5.2" in text
        assert client.transaction(b"Subject: x\r\n\r\nclean\r\n.\r\n")[0] == 250
        assert client.command(b"NOOP")[0] == 250
        client.send(b"NOOP\n")                              # a command ending in a bare LF
        code, text = client.reply()
        assert code == 550 and "bare <LF>" in text
        client.close()
        assert [m.data for m in server.messages] == [b"Subject: x\r\n\r\nclean\r\n"]
    with pytest.raises(ValueError):
        CaptureServer(bare_lf="normalize")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n.", b"\r\n..", b".\r\n"]), max_size=30),
       st.integers(2, 9))
def test_read_data_matches_the_rfc_model_in_any_chunking(pieces, read_size):
    """read_data against a model written from RFC 5321 2.3.8 and 4.5.2:
    the message is everything before the first <CRLF>.<CRLF> (the DATA
    line's CRLF counting as the first), split into CRLF lines, each
    line's leading dot removed; what follows stays unread. Fed in blocks
    of 2-9 octets (READ shrunk to match; the code needs READ >= 2), so
    lines cross every boundary and long lines are taken in pieces."""
    stream = b"".join(pieces) + b"\r\n.\r\nNEXT\r\n"
    framed = b"\r\n" + stream
    end = framed.find(b"\r\n.\r\n")
    content = framed[2:end + 2]
    lines = content.split(b"\r\n")[:-1]
    expected = b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)
    expected_bare_lf = any(b"\n" in line for line in lines)
    rest = framed[end + 5:]

    class Writer:
        def write(self, data):
            pass

        async def drain(self):
            pass

    async def run():
        reader = asyncio.StreamReader()
        for i in range(0, len(stream), read_size):
            reader.feed_data(stream[i:i + read_size])
        reader.feed_eof()
        dialogue = testing._Dialogue(CaptureServer(), reader, Writer())
        bare_lf = await dialogue.read_data()
        return bytes(dialogue.data), bare_lf, bytes(dialogue.buffer) + await reader.read()

    old = testing.READ
    testing.READ = read_size
    try:
        got = asyncio.run(run())
    finally:
        testing.READ = old
    assert got == (expected, expected_bare_lf, rest)


def test_huge_lines_arrive_whole_in_linear_time(server):
    # 8 MiB with a 4 MiB line and one starting with a dot: would take minutes if each read rescanned
    line = b"x" * (4 << 20)
    body = b"Subject: big\r\n\r\n" + line + b"\r\n." + line + b"\r\n"
    client = Client(server)
    assert client.transaction(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")[0] == 250
    client.close()
    assert server.messages[0].data == body


# ---------------------------------------------------------------- bounds


def test_long_command_line_refused_and_the_session_goes_on():
    with CaptureServer(max_line=1000) as server:
        client = Client(server)
        code, text = client.command(b"NOOP " + b"x" * 5000)
        assert code == 500 and "line too long" in text
        code, text = client.command(b"NOOP " + b"x" * 3000000)   # the rest of a long line is dropped
        assert code == 500
        assert client.command(b"NOOP")[0] == 250
        client.close()


@pytest.mark.parametrize("via", ["DATA", "BDAT"])
def test_message_size_limit(via):
    with CaptureServer(max_message_size=1000) as server:
        client = Client(server)
        for size, want in ((3000, 552), (900, 250)):
            body = b"Subject: s\r\n\r\n" + b"y" * (size - 16) + b"\r\n"
            if via == "DATA":
                code, text = client.transaction(body + b".\r\n")
            else:
                assert client.command(b"MAIL FROM:<a@example.com>")[0] == 250
                assert client.command(b"RCPT TO:<b@example.com>")[0] == 250
                half = len(body) // 2
                client.send(b"BDAT %d\r\n" % half + body[:half])
                first, _ = client.reply()
                assert first == (552 if size > 1000 else 250)
                client.send(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
                code, text = client.reply()
            assert code == want, text
        assert client.command(b"NOOP")[0] == 250
        client.close()
        assert [len(m.data) for m in server.messages] == [900]
    assert CaptureServer(extensions=["SIZE 5000"]).max_message_size == 5000


def test_what_all_clients_hold_while_receiving_is_bounded():
    with CaptureServer(max_receiving=1000) as server:
        client = Client(server)
        code, text = client.transaction(b"z" * 1500 + b"\r\n.\r\n")
        assert code == 452 and "4.3.1" in text
        assert client.transaction(b"z" * 500 + b"\r\n.\r\n")[0] == 250    # the budget was given back
        assert client.command(b"MAIL FROM:<a@example.com>")[0] == 250
        assert client.command(b"RCPT TO:<b@example.com>")[0] == 250
        client.send(b"BDAT 600\r\n" + b"w" * 600)
        assert client.reply()[0] == 250          # held now: 600 of the 1000
        other = Client(server)
        code, text = other.transaction(b"v" * 500 + b"\r\n.\r\n")
        assert code == 452                       # the budget is shared by all clients
        other.close()
    assert server._receiving == 0                # stop() with the chunk unfinished gave it back


def test_recipients_per_transaction_are_bounded():
    with CaptureServer(max_recipients=3) as server:
        client = Client(server)
        assert client.command(b"MAIL FROM:<a@example.com>")[0] == 250
        codes = [client.command(b"RCPT TO:<r%d@example.com>" % n)[0] for n in range(5)]
        assert codes == [250, 250, 250, 452, 452]
        client.close()


def test_messages_and_commands_are_ring_buffers():
    seen = []
    with CaptureServer(keep=3, keep_commands=10, on_message=seen.append) as server:
        client = Client(server)
        for n in range(6):
            assert client.transaction(b"Subject: %d\r\n\r\n.\r\n" % n)[0] == 250
        for _ in range(50):
            client.command(b"NOOP")
        client.close()
        assert [m.data for m in server.messages] == [b"Subject: %d\r\n\r\n" % n for n in (3, 4, 5)]
        assert server.received == 6 and len(seen) == 6       # on_message saw them all
        assert server.commands == ["NOOP"] * 10
    with CaptureServer(keep_octets=2500) as server:
        client = Client(server)
        for n in range(5):
            assert client.transaction(b"x" * 1000 + b"\r\n.\r\n")[0] == 250
        client.close()
        assert len(server.messages) == 2 and server.received == 5
    with CaptureServer(keep=0) as server:
        client = Client(server)
        assert client.transaction(b"x\r\n.\r\n")[0] == 250
        client.close()
        assert server.messages == [] and server.received == 1


def test_idle_client_is_told_and_disconnected():
    with CaptureServer(idle_timeout=0.3) as server:
        client = Client(server)
        code, text = client.reply()       # nothing sent: the server speaks first, then closes
        assert code == 421 and "4.4.2" in text
        assert client.file.readline() == b""
        client.close()


def test_too_many_clients():
    with CaptureServer(max_clients=1) as server:
        first = Client(server)
        second = Client(server, greeting=False)
        code, text = second.reply()
        assert code == 421 and "4.3.2" in text
        assert first.command(b"NOOP")[0] == 250
        first.close()
        second.close()


# ---------------------------------------------------------------- commands parsed strictly


@pytest.mark.parametrize("arg", ["\u00b2", "\u00b2 LAST", "1 LAST x", "-1", "1" * 21, "", "1 last last", "\uff11"])
def test_bdat_argument_parsed_strictly(server, arg):
    client = Client(server)
    assert client.command(b"MAIL FROM:<a@example.com>")[0] == 250
    assert client.command(b"RCPT TO:<b@example.com>")[0] == 250
    code, text = client.command(b"BDAT " + arg.encode())
    assert code == 501, text
    assert client.command(b"NOOP")[0] == 250     # the handler lives on
    client.close()


def test_vrfy_nested_mail_and_sequence(server):
    client = Client(server)
    assert client.command(b"VRFY bob@example.com")[0] == 252     # RFC 5321 4.5.1, 3.5.3
    assert client.command(b"VRFY")[0] == 501
    assert client.command(b"DATA")[0] == 503                      # no MAIL yet
    assert client.command(b"MAIL FROM:<a@example.com>")[0] == 250
    code, text = client.command(b"MAIL FROM:<b@example.com>")
    assert code == 503 and "nested" in text                      # RFC 5321 4.1.4
    assert client.command(b"RCPT TO:<c@example.com>")[0] == 250
    client.send(b"BDAT 3\r\nabc")
    assert client.reply()[0] == 250
    assert client.command(b"DATA")[0] == 503                      # RFC 3030 section 3: not after BDAT
    assert client.command(b"RSET")[0] == 250
    assert client.command(b"MAIL FROM:<b@example.com>")[0] == 250
    assert client.command(b"EHLO again")[0] == 250               # EHLO ends the transaction too
    assert client.command(b"MAIL FROM:<b@example.com>")[0] == 250
    client.close()
    assert server.messages == []


def test_cram_md5_with_a_non_ascii_digest_is_refused_not_a_crash():
    with CaptureServer(users={"u": "pw"}) as server:
        client = Client(server)
        assert client.command(b"AUTH CRAM-MD5")[0] == 334
        code, _ = client.command(base64.b64encode("u d\u00e9f".encode()))
        assert code == 535
        assert client.command(b"NOOP")[0] == 250
        client.close()


def test_on_message_failure_is_451_and_nothing_kept():
    def broken(captured):
        raise OSError("disk full")

    with CaptureServer(on_message=broken) as server:
        client = Client(server)
        code, text = client.transaction(b"x\r\n.\r\n")
        assert code == 451
        client.close()
        assert server.messages == [] and server.received == 0


def test_port_in_use_raises_oserror_at_once():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(OSError):
            CaptureServer(port=taken.getsockname()[1]).start()


# ---------------------------------------------------------------- printing what clients sent


def test_printable_escapes_terminal_controls():
    text = "Subject: \x1b]0;owned\x07\x1b[2J\r\x9b31m gr\u00fc\u00df \u202eevil\ttab\nnext"
    shown = printable(text)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", shown)
    assert shown == ("Subject: \\x1b]0;owned\\x07\\x1b[2J\\x0d\\x9b31m gr\u00fc\u00df \\u202eevil\ttab\nnext")


def test_display_escapes_envelope_and_body(server):
    client = Client(server)
    assert client.transaction(b"Subject: \x1b[31mred\r\n\r\nbody\x1b[0m\r\n.\r\n",
                              sender=b"a\x1b[2J@example.com")[0] == 250
    client.close()
    shown = server.messages[0].display()
    assert "\x1b" not in shown and "\\x1b[2J" in shown
    assert shown.startswith("--- message from <a\\x1b[2J@example.com> to <b@example.com> (")
    assert shown.endswith("body\\x1b[0m\n\n")
    assert "\r" not in shown
    assert server.messages[0].display(body=False).count("\n") == 1


# ---------------------------------------------------------------- TLS and users (what smtpsend serve passes)


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit"])
def test_tls_and_users_options(server_tls, client_tls, implicit):
    part = mimecompose.compose("x", header=[("From", "a@example.com"), ("To", "b@example.com")])
    with CaptureServer(tls_context=server_tls, tlsimport=implicit, users={"u": "pw"}) as server:
        smtpsend.sendmessage(part, servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                             tlsimport=implicit, username="u", password="pw", timeout=10)
        assert server.messages[0].authenticated_as == "u"
    with pytest.raises(ValueError, match="tlsimport=True needs a tls_context"):
        CaptureServer(tlsimport=True)


def test_serve_tls_implicit_is_the_deprecated_spelling_of_tlsimport():
    from smtpsend import cli
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["serve", "--port", "0", "--tls-implicit"], stdout=out, stderr=err) == 64
    assert "--tls-implicit is deprecated, use --tlsimport" in err.getvalue()
    assert "--tls-key and --tlsimport need --tls-cert" in err.getvalue()   # and it means --tlsimport


def test_implicit_tls_is_the_deprecated_name_of_tlsimport(server_tls):
    with pytest.warns(DeprecationWarning, match="implicit_tls= is deprecated, use tlsimport="):
        server = CaptureServer(tls_context=server_tls, implicit_tls=True)
    assert server.tlsimport is True
    with pytest.warns(DeprecationWarning, match="use .tlsimport"):
        assert server.implicit_tls is True
    with pytest.raises(TypeError, match="give only tlsimport="):
        CaptureServer(tls_context=server_tls, implicit_tls=True, tlsimport=True)


def test_options_after_extensions_are_keyword_only_and_the_old_positions_deprecated(server_tls):
    assert [p.kind for p in list(inspect.signature(CaptureServer).parameters.values())[1:]] == \
        [inspect.Parameter.KEYWORD_ONLY] * (len(inspect.signature(CaptureServer).parameters) - 1)
    with pytest.warns(DeprecationWarning, match="pass users=, tls_context= by keyword"):
        server = CaptureServer(["PIPELINING"], {"u": "pw"}, server_tls)
    assert (server.extensions, server.users, server.tls_context) == (["PIPELINING"], {"u": "pw"}, server_tls)
    with pytest.raises(TypeError, match="multiple values for argument 'users'"):
        CaptureServer(["PIPELINING"], {"u": "pw"}, users={})
    with pytest.raises(TypeError, match="positional"):
        CaptureServer(*range(10))


def _auth(mechanism: str, initial: bytes) -> str:
    return f"AUTH {mechanism} {base64.b64encode(initial).decode()}\r\n"


@pytest.mark.parametrize("mechanism,right,wrong,answer,status", [
    ("XOAUTH2", b"user=u\x01auth=Bearer tok\x01\x01", b"user=u\x01auth=Bearer old\x01\x01", b"", "401"),
    ("OAUTHBEARER", b"n,a=u,\x01auth=Bearer tok\x01\x01", b"n,a=u,\x01auth=Bearer old\x01\x01", b"\x01",
     "invalid_token"),
])
def test_bearer_tokens_and_the_providers_error_for_a_wrong_one(mechanism, right, wrong, answer, status):
    with CaptureServer(tokens={"u": "tok"}) as server, socket.create_connection((server.host, server.port), 5) as s:
        f = s.makefile("rwb")

        def say(line: str) -> bytes:
            f.write(line.encode())
            f.flush()
            return f.readline()
        f.readline()
        f.write(b"EHLO c\r\n")
        f.flush()
        ehlo = [f.readline() for _ in range(len(server.extensions) + 2)]
        assert ehlo[-1] == b"250 AUTH OAUTHBEARER XOAUTH2\r\n"
        challenge = say(_auth(mechanism, wrong))
        assert challenge.startswith(b"334 ")
        assert json.loads(base64.b64decode(challenge[4:])) == {"status": status, "schemes": "bearer"}
        assert say(base64.b64encode(answer).decode() + "\r\n").startswith(b"535 5.7.8")
        assert say(_auth(mechanism, right)).startswith(b"235 ")
        assert say(_auth(mechanism, b"garbage")).startswith(b"501 ")   # malformed: not a crash


# ---------------------------------------------------------------- stopping


STOP_SCRIPT = r"""
import socket, ssl, sys
from smtpsend.testing import CaptureServer
server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
server_side.load_cert_chain(sys.argv[1])
server = CaptureServer(tls_context=server_side).start()

def connect():
    c = socket.create_connection((server.host, server.port), timeout=10)
    f = c.makefile("rb")
    f.readline()
    return c, f

def until(f, code):
    while not f.readline().startswith(code):
        pass

idle, _ = connect()
idle.sendall(b"MAIL FROM:<a@exa")                     # half a command
sending, f = connect()
sending.sendall(b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
until(f, b"354")
sending.sendall(b"half a message")                    # half a message
tls, f = connect()
tls.sendall(b"STARTTLS\r\n")
until(f, b"220")
tls = ssl.create_default_context(cafile=sys.argv[2]).wrap_socket(tls, server_hostname="localhost")
tls.sendall(b"NOOP\r\n")
tls.recv(100)                                         # a TLS session, open
server.stop()
print([c.recv(100) for c in (idle, sending, tls)], flush=True)
"""


def test_stop_with_clients_connected_is_clean(ca, tmp_path):
    """stop() closes every client connection (plain, in the middle of a
    message, TLS) and lets each handler end: nothing on stderr, where
    asyncio logs a cancelled client handler."""
    pem, ca_pem = tmp_path / "server.pem", tmp_path / "ca.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    result = subprocess.run([sys.executable, "-c", STOP_SCRIPT, str(pem), str(ca_pem)],
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    assert result.stdout.strip() == b"[b'', b'', b'']"     # each connection closed by the server


def test_one_extension_given_as_a_string_is_one_extension_not_its_characters():
    with CaptureServer("PIPELINING") as server:
        with smtpsend.connect("127.0.0.1", port=server.port) as client:
            extensions = client.ehlo()
            assert "PIPELINING" in extensions and "P" not in extensions


@pytest.mark.parametrize("options,error", [
    (dict(port=70000), ValueError), (dict(port=-1), ValueError), (dict(max_clients=0), ValueError),
    (dict(keep=-1), ValueError), (dict(max_line=True), ValueError), (dict(idle_timeout=float("nan")), ValueError),
    (dict(users="alice"), TypeError), (dict(responses=[("MAIL", (550, "no"))]), TypeError),
])
def test_options_no_server_can_run_with_are_refused_when_it_is_made(options, error):
    with pytest.raises(error):
        CaptureServer(**options)
