"""smtpsend.pop3: scripted conversations for every command and error path,
then the real thing against Dovecot (and Postfix to put mail there)."""

import base64
import hashlib
import hmac
import inspect
import io
import logging
import re
import socket
import threading
import time
import tracemalloc
import uuid

import pytest

import mimecompose
import smtpsend
from smtpsend import pop3
from smtpsend._secret import Secret

from conftest import SENTINEL, find_secret
from servers import Conversation, Forwarder

GREETING = b"+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n"
NO_STLS = [("C", b"CAPA\r\n"), ("S", b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n")]


def open_box(server, **kwargs):
    return pop3.connect("127.0.0.1", port=server.port, timeout=5, **kwargs)


def test_apop_digest_rfc1939_example():
    script = [("S", GREETING), *NO_STLS,
              ("C", b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"), ("S", b"+OK maildrop has 1 message\r\n"),
              ("C", b"QUIT\r\n"), ("S", b"+OK bye\r\n")]
    with Conversation(script) as server:
        with open_box(server, tlspolicy="insecure") as box:   # a digest in plaintext: only when told
            assert box.timestamp == "<1896.697170952@dbc.mtview.ca.us>"
            assert box.apop("mrose", "tanstaaf") == "maildrop has 1 message"


@pytest.mark.parametrize("how", ["login", "apop", "auth"])
def test_no_credentials_of_any_kind_in_plaintext_by_default(how):
    # STLS stripped (not offered): no password, no APOP digest, no SASL exchange (CRAM-MD5 over a
    # challenge the man in the middle chose) goes out -- the next command the server sees is NOOP
    caps = b"+OK\r\nUSER\r\nSASL CRAM-MD5 PLAIN\r\n.\r\n"
    script = [("S", GREETING), ("C", b"CAPA\r\n"), ("S", caps),
              ("C", b"NOOP\r\n"), ("S", b"+OK\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server)
        with pytest.raises(smtpsend.TLSRequired, match="insecure"):
            {"login": lambda: box.login("u", "secret"), "apop": lambda: box.apop("u", "secret"),
             "auth": lambda: box.auth("u", "secret", mechanism="CRAM-MD5")}[how]()
        box.noop()
        box.close()


def test_sasl_in_plaintext_with_opt_in():
    challenge = b"<1.2@pop.example>"
    answer = b"u " + hmac.new(b"pw", challenge, "md5").hexdigest().encode()
    caps = [("C", b"CAPA\r\n"), ("S", b"+OK\r\nSASL CRAM-MD5\r\n.\r\n")]
    script = [("S", b"+OK ready\r\n"), *caps, *caps, ("C", b"AUTH CRAM-MD5\r\n"), ("S", b"+ " + base64.b64encode(challenge) + b"\r\n"),
              ("C", base64.b64encode(answer) + b"\r\n"), ("S", b"+OK in\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server, tlspolicy="insecure")
        assert box.auth("u", "pw") == "in"
        box.close()


@pytest.mark.parametrize("user,password,named", [
    ("u", "pw\n", "password"), ("u", "pw\r\nDELE 1", "password"), ("u", "p\0w", "password"),
    ("u\r\nDELE 1", "pw", "user name"), ("u", "pw\udcff", "password"),
])
@pytest.mark.parametrize("how", ["login", "apop"])
def test_bad_credentials_named_never_shown(how, user, password, named):
    with Conversation([("S", GREETING), ("C", b"NOOP\r\n"), ("S", b"+OK\r\n"), ("CLOSE",)]) as server:
        box = open_box(server, usetls=False, tlspolicy="insecure")
        with pytest.raises(smtpsend.UsageError) as info:
            getattr(box, how)(user, password)
        error = info.value
        assert named in str(error)
        for shown in (str(error), repr(error), repr(error.args), repr(error.__context__),
                      repr(error.__cause__)):
            assert "pw" not in shown and "DELE" not in shown
        box.noop()   # nothing was sent before the refusal
        box.close()


def test_user_pass_with_opt_in_and_apop_fallback(tmp_path):
    log = tmp_path / "pop.log"
    digest = hashlib.md5(b"<1896.697170952@dbc.mtview.ca.us>pw").hexdigest().encode()
    script = [("S", GREETING), ("C", b"USER u\r\n"), ("S", b"+OK\r\n"), ("C", b"PASS pw\r\n"),
              ("S", b"-ERR [AUTH] Authentication failed.\r\n"),
              ("C", b"APOP u " + digest + b"\r\n"), ("S", b"+OK logged in\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server, usetls=False, tlspolicy="insecure", logfile=str(log))
        assert box.login("u", "pw") == "logged in"
        box.close()
    text = log.read_text()
    assert "PASS ***" in text and "pw" not in text.replace("APOP", "")
    assert digest.decode() not in text


def test_login_failure_lists_each_method():
    script = [("S", b"+OK ready\r\n"), ("C", b"USER u\r\n"), ("S", b"+OK\r\n"), ("C", b"PASS pw\r\n"),
              ("S", b"-ERR [AUTH] Authentication failed.\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server, usetls=False, tlspolicy="insecure")
        with pytest.raises(pop3.AuthenticationFailed) as info:
            box.login("u", "pw")
        assert [m for m, _ in info.value.errors] == ["USER/PASS"]
        assert isinstance(info.value, pop3.POP3Error) and not isinstance(info.value, smtpsend.SMTPError)
        box.close()


def test_netrc_credentials(tmp_path, monkeypatch):
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login fromnetrc password netrcpw\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    script = [("S", b"+OK ready\r\n"), ("C", b"USER fromnetrc\r\n"), ("S", b"+OK\r\n"),
              ("C", b"PASS netrcpw\r\n"), ("S", b"+OK\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server, usetls=False, tlspolicy="insecure")
        box.login()
        box.close()


MESSAGE = b"Subject: hi\r\n\r\n..dot-stuffed line\r\nbody\r\n"


def test_mailbox_commands():
    script = [("S", b"+OK ready\r\n"), *NO_STLS,
              ("C", b"STAT\r\n"), ("S", b"+OK 2 320\r\n"),
              ("C", b"LIST\r\n"), ("S", b"+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"),
              ("C", b"LIST 2\r\n"), ("S", b"+OK 2 200\r\n"),
              ("C", b"UIDL\r\n"), ("S", b"+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n"),
              ("C", b"UIDL 1\r\n"), ("S", b"+OK 1 whqtswO00WBw418f9t5JxYwZ\r\n"),
              ("C", b"RETR 1\r\n"), ("S", b"+OK 120 octets\r\n" + MESSAGE + b".\r\n"),
              ("C", b"RETR 1\r\n"), ("S", b"+OK 120 octets\r\n" + MESSAGE + b".\r\n"),
              ("C", b"RETR 1\r\n"), ("S", b"+OK 120 octets\r\n" + MESSAGE + b".\r\n"),
              ("C", b"TOP 1 0\r\n"), ("S", b"+OK\r\nSubject: hi\r\n\r\n.\r\n"),
              ("C", b"LAST\r\n"), ("S", b"-ERR Unknown command: LAST\r\n"),
              ("C", b"NOOP\r\n"), ("S", b"+OK\r\n"),
              ("C", b"DELE 1\r\n"), ("S", b"+OK marked\r\n"),
              ("C", b"DELE 1\r\n"), ("S", b"-ERR message 1 already deleted\r\n"),
              ("C", b"RSET\r\n"), ("S", b"+OK\r\n"),
              ("C", b"QUIT\r\n"), ("S", b"+OK bye\r\n")]
    with Conversation(script) as server:
        with open_box(server) as box:
            assert box.stat() == (2, 320)
            assert box.list() == {1: 120, 2: 200}
            assert box.list(2) == 200
            assert box.uidl() == {1: "whqtswO00WBw418f9t5JxYwZ", 2: "QhdPYR:00WBw1Ph7x7"}
            assert box.uidl(1) == "whqtswO00WBw418f9t5JxYwZ"
            assert box.retr_bytes(1) == b"Subject: hi\r\n\r\n.dot-stuffed line\r\nbody\r\n"
            part = box.retr(1)
            assert part.getheader("Subject") == ["hi"] and part.getbody() == b".dot-stuffed line\r\nbody\r\n"
            sink = io.BytesIO()
            assert box.retr_to(1, sink) == len(sink.getvalue())
            assert box.headers(1).getheader("Subject") == ["hi"]
            with pytest.raises(pop3.ErrResponse) as info:
                box.last()
            assert info.value.text == "Unknown command: LAST" and info.value.command == "LAST"
            box.noop()
            box.dele(1)
            with pytest.raises(pop3.ErrResponse):
                box.dele(1)
            box.rset()


@pytest.mark.parametrize("reply,error", [
    (b"HELLO\r\n", smtpsend.RemoteProtocolError),
    (b"+OK 2\r\n", smtpsend.RemoteProtocolError),
])
def test_malformed_responses(reply, error):
    script = [("S", b"+OK ready\r\n"), *NO_STLS, ("C", b"STAT\r\n"), ("S", reply), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server)
        with pytest.raises(error):
            box.stat()
        box.close()


def test_truncated_multiline_and_silence():
    script = [("S", b"+OK ready\r\n"), *NO_STLS, ("C", b"RETR 1\r\n"), ("S", b"+OK\r\nSubject: x\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server)
        with pytest.raises(smtpsend.TransportError):
            box.retr(1)
        box.close()
    with Conversation([("S", b"+OK ready\r\n"), *NO_STLS, ("C", b"NOOP\r\n"), ("HOLD", 1)]) as server:
        box = pop3.connect("127.0.0.1", port=server.port, timeout=0.3)
        with pytest.raises(smtpsend.Timeout):
            box.noop()
        box.close()


def test_error_exit_closes_without_quit():
    script = [("S", b"+OK ready\r\n"), *NO_STLS, ("C", b"DELE 1\r\n"), ("S", b"+OK\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        with pytest.raises(RuntimeError):
            with open_box(server) as box:
                box.dele(1)
                raise RuntimeError("script failed: keep the mail")


def test_stls_required_but_absent():
    with Conversation([("S", b"+OK ready\r\n"), *NO_STLS, ("CLOSE",)]) as server:
        with pytest.raises(smtpsend.TLSRequired):
            open_box(server, tlspolicy="secure")


def test_injection_refused():
    with Conversation([("S", b"+OK ready\r\n"), *NO_STLS, ("CLOSE",)]) as server:
        box = open_box(server)
        with pytest.raises(ValueError):
            box.apop("u\r\nDELE 1", "x")
        box.close()


def test_wrong_arguments_are_refused_before_anything_is_sent():
    """A file with no write(), an unusable timeout and a user name that is
    not text are refused before the command goes out, so the connection
    stays in step: the NOOP after them gets its own reply."""
    script = [("S", GREETING), *NO_STLS, ("C", b"NOOP\r\n"), ("S", b"+OK\r\n"),
              ("C", b"QUIT\r\n"), ("S", b"+OK bye\r\n")]
    with Conversation(script) as server:
        with open_box(server) as box:
            with pytest.raises(TypeError, match="retr_to"):
                box.retr_to(1, None)
            with pytest.raises(smtpsend.UsageError, match="timeout="):
                box.retr_bytes(1, timeout=float("nan"))
            with pytest.raises(TypeError, match="the user name must be a str"):
                box.apop(["alice"], "pw")
            assert box.noop() == ""


@pytest.mark.parametrize("options,message", [
    (dict(port=70000), "port 70000 out of range"),
    (dict(port=1, timeout=float("nan")), "timeout="),
    (dict(port=1, timeout=1e300), "timeout="),
    (dict(port=1, timeout=0), "timeout="),
])
def test_connect_options_no_socket_takes_are_usage_errors(options, message):
    with pytest.raises(smtpsend.UsageError, match=message):
        pop3.connect("127.0.0.1", usetls=False, **options)


# ---------------------------------------------------------------- against Dovecot


def deliver(rig, to="alice@example.test", body="Hello from the rig\n", **fields):
    """Send a message through Postfix; returns its unique Subject."""
    marker = f"rig-{uuid.uuid4().hex[:12]}"
    header = [("From", "bob@example.test"), ("To", to), ("Subject", marker), *fields.items()]
    smtpsend.sendmessage(mimecompose.compose(body, header=header), servers=["localhost"],
                         ports=[rig.ports["smtp"]], ssl_context=rig.context)
    assert rig.queue_empty()
    return marker


def find(box, marker):
    for n in box.list():
        if marker in box.top(n, 0).decode("utf-8", "replace"):
            return n
    raise AssertionError(f"{marker} not in the mailbox")


@pytest.fixture
def alice(rig):
    box = pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context, timeout=10)
    box.login("alice@example.test", "alice-pw")
    yield box
    box.close()


def test_dovecot_stls_retrieve_byte_for_byte(rig):
    marker = deliver(rig, body="Grüße\n.lone dot below\n.\nend\n")
    with pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context) as box:
        assert box.tls
        box.login("alice@example.test", "alice-pw")
        n = find(box, marker)
        raw = box.retr_bytes(n)
        part = box.retr(n)
        assert part.getbody(decode=True).replace("\r\n", "\n") == "Grüße\n.lone dot below\n.\nend\n"
        assert len(raw) == box.list(n)
        box.dele(n)


def test_dovecot_pop3s_apop_uidl_top(rig):
    marker = deliver(rig, body="".join(f"line {i}\n" for i in range(10)))
    with pop3.connect("localhost", port=rig.ports["pop3s"], tlsimport=True, ssl_context=rig.context) as box:
        assert box.timestamp and box.tls
        box.apop("alice@example.test", "alice-pw")
        n = find(box, marker)
        uid = box.uidl(n)
        assert re.fullmatch(r"[0-9a-f]{16}", uid) and box.uidl()[n] == uid
        top = box.top(n, 3)
        body = top.split(b"\r\n\r\n", 1)[1]
        assert body == b"line 0\r\nline 1\r\nline 2\r\n"
        box.dele(n)


def test_dovecot_dele_quit_removes_and_rset_keeps(rig):
    marker = deliver(rig)
    with pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context) as box:
        box.login("alice@example.test", "alice-pw")
        n = find(box, marker)
        box.dele(n)
        box.rset()
    with pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context) as box:
        box.login("alice@example.test", "alice-pw")
        n = find(box, marker)       # still there after RSET
        box.dele(n)
    with pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context) as box:
        box.login("alice@example.test", "alice-pw")
        with pytest.raises(AssertionError):
            find(box, marker)       # gone after DELE + QUIT


@pytest.mark.parametrize("user", ["alice@example.test", "carol@example.test", "jörg@example.test"])
def test_dovecot_sasl_each_user(rig, user):
    password = rig.users[user][0]
    with pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context) as box:
        box.auth(user, password)
        assert box.stat()[0] >= 0


def test_dovecot_wrong_password(rig):
    with pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context) as box:
        with pytest.raises(pop3.AuthenticationFailed) as info:
            box.login("alice@example.test", "wrong")
        assert "Authentication failed" in str(info.value)


def test_dovecot_wrong_host_name(rig):
    with Forwarder(rig.ports["pop3s"]) as wrong:
        with pytest.raises(smtpsend.TLSError, match="certificate"):
            pop3.connect(wrong.host, port=wrong.port, tlsimport=True, ssl_context=rig.context, timeout=5)


# ---------------------------------------------------------------- the POP3 fault matrix: every command x fault

COMMANDS = {   # method call, the command line it sends, a good multi-line answer (or None)
    "stat": (lambda b: b.stat(), b"STAT\r\n"),
    "list": (lambda b: b.list(), b"LIST\r\n"),
    "uidl": (lambda b: b.uidl(), b"UIDL\r\n"),
    "retr": (lambda b: b.retr(1), b"RETR 1\r\n"),
    "top": (lambda b: b.top(1, 2), b"TOP 1 2\r\n"),
    "dele": (lambda b: b.dele(1), b"DELE 1\r\n"),
    "rset": (lambda b: b.rset(), b"RSET\r\n"),
    "noop": (lambda b: b.noop(), b"NOOP\r\n"),
    "last": (lambda b: b.last(), b"LAST\r\n"),
    "apop": (lambda b: b.apop("u", "p"), b"APOP u "),
}
FAULTS = {   # what the server does instead of answering, and the error that must come out
    "-ERR": ([("S", b"-ERR [SYS/TEMP] no can do\r\n")], pop3.ErrResponse),
    "disconnect": ([("CLOSE",)], smtpsend.TransportError),
    "silence": ([("HOLD", 1.5)], smtpsend.Timeout),
    "garbage": ([("S", b"* not a POP3 status\r\n")], smtpsend.RemoteProtocolError),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_pop3_fault_matrix(command, fault):
    call, line = COMMANDS[command]
    steps, error = FAULTS[fault]
    script = [("S", b"+OK ready <1.2@x>\r\n"), *NO_STLS, ("C", line)] + steps
    with Conversation(script) as server:
        box = pop3.connect("127.0.0.1", port=server.port, timeout=0.5, tlspolicy="insecure")
        with pytest.raises(error) as info:
            call(box)
        if fault == "-ERR":
            assert info.value.text == "[SYS/TEMP] no can do"
        box.close()


@pytest.mark.parametrize("command", ["list", "uidl", "retr", "top"])
def test_pop3_multiline_cut_off(command):
    call, line = COMMANDS[command]
    script = [("S", b"+OK ready\r\n"), *NO_STLS, ("C", line), ("S", b"+OK\r\n1 2\r\nSubject"), ("CLOSE",)]
    with Conversation(script) as server:
        box = pop3.connect("127.0.0.1", port=server.port, timeout=2)
        with pytest.raises(smtpsend.TransportError):
            call(box)
        box.close()


# ---------------------------------------------------------------- bounds: deadline, line length, memory


class Streamer:
    """A POP3 server for one connection: greeting, an empty CAPA, then
    ``answer(conn)`` sends the response to the first command. It stops
    when the client hangs up, or after 10 s (a client that never gives up
    then sees the connection close, not a Timeout)."""

    def __init__(self, answer):
        self.answer = answer
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(10)
            f = conn.makefile("rb")
            conn.sendall(b"+OK ready\r\n")
            f.readline()
            conn.sendall(b"+OK\r\n.\r\n")
            f.readline()
            try:
                self.answer(conn)
            except OSError:
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(15)
        self.listener.close()


def trickle(conn):
    """One short line every 20 ms: each line arrives long before any
    per-line timeout, the whole response never does."""
    conn.sendall(b"+OK here it comes\r\n")
    end = time.monotonic() + 10
    while time.monotonic() < end:
        conn.sendall(b"x\r\n")
        time.sleep(0.02)


@pytest.mark.parametrize("where", ["connect", "retr"])
def test_one_deadline_for_the_whole_response(where):
    with Streamer(trickle) as server:
        if where == "connect":
            box = pop3.connect("127.0.0.1", port=server.port, timeout=0.5)
            call = lambda: box.retr_to(1, io.BytesIO())   # noqa: E731 - unbounded memory: only time stops it
        else:
            box = pop3.connect("127.0.0.1", port=server.port, timeout=30)
            call = lambda: box.retr_bytes(1, timeout=0.5)   # noqa: E731
        with pytest.raises(smtpsend.Timeout, match="no complete response"):
            call()
        box.close()


@pytest.mark.parametrize("length,ok", [(pop3.MAX_LINE, True), (pop3.MAX_LINE + 1, False),
                                       (2 * pop3.MAX_LINE - 100, False)])
def test_line_cap_is_max_line(length, ok):
    line = b"X-Long: " + b"a" * (length - 10) + b"\r\n"
    assert len(line) == length

    def answer(conn):
        conn.sendall(b"+OK\r\n" + line + b".\r\n")
        conn.recv(100)

    with Streamer(answer) as server:
        box = pop3.connect("127.0.0.1", port=server.port, timeout=5)
        if ok:
            assert box.top(1, 0) == line
        else:
            with pytest.raises(smtpsend.RemoteProtocolError, match="line longer than"):
                box.top(1, 0)
        box.close()


def test_memory_of_a_response_of_short_lines_is_its_size():
    payload = b"x\r\n" * (1 << 18)        # 768 KiB in 262,144 lines
    response = b"+OK\r\n" + payload + b".\r\n"

    def answer(conn):
        conn.sendall(response)
        conn.recv(100)

    with Streamer(answer) as server:
        box = pop3.connect("127.0.0.1", port=server.port, timeout=60)
        tracemalloc.start()
        try:
            data = box.retr_bytes(1)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        box.close()
    assert data == payload
    assert peak < 1.5 * len(payload) + (256 << 10)   # a list of one bytes object per line: 12x


def test_listing_cap_counts_entries_not_only_octets():
    entries = b"".join(b"%d 1\r\n" % n for n in range(1, 200001))   # 1.6 MB, 200,000 dict entries

    def answer(conn):
        conn.sendall(b"+OK\r\n" + entries + b".\r\n")
        conn.recv(100)

    with Streamer(answer) as server:
        box = pop3.connect("127.0.0.1", port=server.port, timeout=60)
        box.max_octets = 8 << 20
        with pytest.raises(smtpsend.RemoteProtocolError, match="longer than"):
            box.list()
        with pytest.raises(smtpsend.TransportError):   # the rest of that response was not read: closed
            box.noop()


# ---------------------------------------------------------------- the error tree, the shared machinery

def test_err_response_and_failed_login_are_pop3_errors_not_smtp_errors():
    script = [("S", b"+OK ready\r\n"), *NO_STLS, ("C", b"NOOP\r\n"), ("S", b"-ERR not now\r\n"),
              ("C", b"USER u\r\n"), ("S", b"-ERR who\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server, tlspolicy="insecure")
        with pytest.raises(pop3.POP3Error) as err:
            box.noop()
        with pytest.raises(pop3.POP3Error) as failed:
            box.login("u", "pw")
        box.close()
    assert isinstance(err.value, pop3.ErrResponse) and err.value.text == "not now"
    assert isinstance(failed.value, pop3.AuthenticationFailed)
    for error in (err.value, failed.value):
        assert not isinstance(error, smtpsend.SMTPError)
        assert not isinstance(error, ConnectionError)


def test_quit_refused_at_the_end_of_a_with_block_only_closes():
    script = [("S", b"+OK ready\r\n"), *NO_STLS, ("C", b"QUIT\r\n"), ("S", b"-ERR cannot commit\r\n")]
    with Conversation(script) as server:
        with open_box(server) as box:
            pass   # leaving the block sends QUIT; its -ERR (now not an SMTPError) must not escape
    with pytest.raises(OSError):
        box._sock.recv(1)   # closed


def test_connection_failures_are_the_shared_transport_errors():
    """The connection's failures are mapped by smtpsend._sockets.transport_errors:
    the same classes, messages and reasons as on the SMTP side."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]   # bound, never listening: refused
        with pytest.raises(smtpsend.TransportError) as refused:
            pop3.connect("127.0.0.1", port=port, timeout=2)
    assert refused.value.reason == "refused" and isinstance(refused.value, ConnectionError)
    assert not isinstance(refused.value, pop3.POP3Error)
    with Conversation([("S", b"+OK plaintext where TLS was expected\r\n"), ("CLOSE",)]) as server:
        with pytest.raises(smtpsend.TLSError) as plaintext:
            pop3.connect("127.0.0.1", port=server.port, tlsimport=True, timeout=2)
    assert plaintext.value.reason == "plaintext"
    with Conversation([("S", b"+OK ready\r\n"), *NO_STLS, ("C", b"NOOP\r\n"), ("CLOSE",)]) as server:
        box = open_box(server)
        with pytest.raises(smtpsend.TransportError, match="connection closed by the server"):
            box.noop()
        box.close()


def _frames(tb):
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def test_the_password_is_held_as_a_secret():
    """Neither vars() of a POP3 object nor the locals of login() (what an
    error tracker records with a traceback) hold the password as text."""
    script = [("S", GREETING), ("C", b"USER u\r\n"), ("S", b"+OK\r\n"),
              ("C", f"PASS {SENTINEL}\r\n".encode()), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server, usetls=False, tlspolicy="insecure")
        with pytest.raises(smtpsend.TransportError) as info:
            box.login("u", SENTINEL)
        box.close()
    assert not find_secret(box)
    login = [f for f in _frames(info.value.__traceback__) if f.f_code.co_name == "login"]
    assert login and not find_secret(dict(login[0].f_locals))
    assert any(isinstance(v, Secret) for v in login[0].f_locals.values())


def test_a_secret_is_accepted_as_the_password():
    digest = hashlib.md5(GREETING[GREETING.index(b"<"):GREETING.index(b">") + 1] + b"pw").hexdigest()
    script = [("S", GREETING), ("C", b"USER u\r\n"), ("S", b"+OK\r\n"), ("C", b"PASS pw\r\n"),
              ("S", b"-ERR no\r\n"), ("C", f"APOP u {digest}\r\n".encode()), ("S", b"+OK in\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server, usetls=False, tlspolicy="insecure")
        assert box.login("u", Secret("pw")) == "in"
        box.close()
    with Conversation([("S", GREETING), ("CLOSE",)]) as server:
        box = open_box(server, usetls=False, tlspolicy="insecure")
        with pytest.raises(smtpsend.UsageError, match="must be a str"):
            box.login("u", b"pw")
        box.close()


def test_transcript_goes_to_the_smtpsend_logger_redacted(caplog):
    digest = hashlib.md5(b"<1896.697170952@dbc.mtview.ca.us>" + SENTINEL.encode()).hexdigest()
    script = [("S", GREETING), ("C", b"USER u\r\n"), ("S", b"+OK\r\n"),
              ("C", f"PASS {SENTINEL}\r\n".encode()), ("S", b"-ERR no\r\n"),
              ("C", f"APOP u {digest}\r\n".encode()), ("S", b"+OK in\r\n"), ("CLOSE",)]
    with caplog.at_level(logging.DEBUG, logger="smtpsend"):
        with Conversation(script) as server:
            box = open_box(server, usetls=False, tlspolicy="insecure")
            box.login("u", SENTINEL)
            box.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "smtpsend" and r.levelno == logging.DEBUG]
    assert lines == ["S: " + GREETING.decode().strip(), "C: USER u", "S: +OK", "C: PASS ***", "S: -ERR no",
                     "C: APOP u ***", "S: +OK in"]
    assert not any(SENTINEL in line or digest in line for line in lines)


def test_logfile_is_a_handler_of_its_own_connection(tmp_path):
    """logfile= gets its connection's lines whatever the logger's level, and
    only its connection's; close() closes the file."""
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    logger = logging.getLogger("smtpsend")
    old = logger.level
    logger.setLevel(logging.WARNING)   # the logger itself takes no DEBUG records
    try:
        with Conversation([("S", b"+OK first\r\n"), ("CLOSE",)]) as one, \
                Conversation([("S", b"+OK second\r\n"), ("CLOSE",)]) as two:
            boxes = [pop3.connect("127.0.0.1", port=s.port, usetls=False, logfile=str(log), timeout=2)
                     for s, log in zip((one, two), logs)]
            for box in boxes:
                box.close()
    finally:
        logger.setLevel(old)
    assert logs[0].read_text() == "S: +OK first\n" and logs[1].read_text() == "S: +OK second\n"
    assert all(box._handler.stream is None for box in boxes)   # closed with the connection


# ---------------------------------------------------------------- one type per method, one spelling per concept

def test_retr_returns_one_type_per_method_and_the_old_forms_warn():
    body = b"Subject: hi\r\n\r\nbody\r\n"
    retr = [("C", b"RETR 1\r\n"), ("S", b"+OK\r\n" + body + b".\r\n")]
    script = [("S", b"+OK ready\r\n"), *NO_STLS, *retr * 4, ("C", b"QUIT\r\n"), ("S", b"+OK\r\n")]
    with Conversation(script) as server:
        with open_box(server) as box:
            assert isinstance(box.retr(1), mimecompose.Part)
            assert box.retr_bytes(1) == body
            with pytest.warns(DeprecationWarning, match=r"retr\(n, raw=True\) is deprecated: use retr_bytes"):
                assert box.retr(1, raw=True) == body
            sink = io.BytesIO()
            with pytest.warns(DeprecationWarning, match=r"use retr_to\(n, fileobj\)"):
                assert box.retr(1, fileobj=sink) == len(body)
            assert sink.getvalue() == body


def test_pop3_connect_spells_tls_as_sendmessage_does_and_the_old_tls_argument_warns():
    params = inspect.signature(pop3.connect).parameters
    assert all(p.kind is p.KEYWORD_ONLY for p in list(params.values())[1:])
    assert {"tlsimport", "usetls"} <= set(params)
    plain = [("S", b"+OK ready\r\n"), ("C", b"NOOP\r\n"), ("S", b"+OK\r\n"), ("CLOSE",)]
    with Conversation(plain) as server:   # usetls=False: no CAPA, no STLS
        pop3.connect("127.0.0.1", port=server.port, usetls=False, timeout=5).noop()
    with Conversation(plain) as server:
        with pytest.warns(DeprecationWarning, match=r"tls='none' is deprecated, use usetls=False"):
            pop3.connect("127.0.0.1", port=server.port, tls="none", timeout=5).noop()
    with Conversation(plain[:1] + [("CLOSE",)]) as server:
        with pytest.warns(DeprecationWarning, match="pass port= by keyword"):
            pop3.connect("127.0.0.1", server.port, usetls=False, timeout=5).close()
    with pytest.raises(smtpsend.UsageError, match="contradict"):
        pop3.connect("127.0.0.1", port=1, tlsimport=True, usetls=False)
    with pytest.raises(smtpsend.UsageError, match="contradict"):
        pop3.connect("127.0.0.1", port=1, usetls=False, tlspolicy="secure")
    with pytest.raises(TypeError, match="give only those"):
        pop3.connect("127.0.0.1", port=1, tls="implicit", tlsimport=True)


def test_tlsimport_none_is_implicit_tls_on_port_995_only(monkeypatch):
    # no POP3S server here: look at what connect() would do on port 995 by the handshake it attempts
    seen = []

    def fake_connection(address, timeout):
        seen.append(address)
        raise OSError(111, "Connection refused")
    monkeypatch.setattr(socket, "create_connection", fake_connection)
    for port in (None, 995):
        with pytest.raises(smtpsend.TransportError) as info:
            pop3.connect("127.0.0.1", port=port, tlsimport=True if port is None else None)
        assert info.value.hint.endswith("(110 is POP3 with STLS, 995 POP3 over implicit TLS)")
    assert seen == [("127.0.0.1", 995), ("127.0.0.1", 995)]


def test_pop3_errors_get_pop3_hints_not_smtp_ones():
    with Conversation([("S", b"+OK plaintext where TLS was expected\r\n"), ("CLOSE",)]) as server:
        with pytest.raises(smtpsend.TLSError) as plaintext:
            pop3.connect("127.0.0.1", port=server.port, tlsimport=True, timeout=2)
    assert plaintext.value.hint.startswith("this port speaks plain POP3")
    script = [("S", GREETING), ("C", b"CAPA\r\n"), ("S", b"+OK\r\nUSER\r\n.\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        with pytest.raises(smtpsend.TLSRequired) as required:
            pop3.connect("127.0.0.1", port=server.port, tlspolicy="secure", timeout=2)
    assert "port 995, tlsimport=True" in required.value.hint and "465" not in str(required.value)
    script = [("S", b"+OK ready\r\n"), *NO_STLS, ("C", b"STAT\r\n"), ("S", b"+OK many\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server)
        with pytest.raises(smtpsend.RemoteProtocolError) as malformed:
            box.stat()
        box.close()
    assert malformed.value.hint is None and "hint" not in str(malformed.value)


# ---------------------------------------------------------------- the login loop SMTP uses

def test_sasl_stops_after_credentials_refused():
    # RFC 3206 [AUTH]: the credentials were refused -- no weaker mechanism is offered them
    caps = [("C", b"CAPA\r\n"), ("S", b"+OK\r\nSASL CRAM-MD5 PLAIN LOGIN\r\n.\r\n")]
    script = [("S", b"+OK ready\r\n"), *caps, *caps, ("C", b"AUTH CRAM-MD5\r\n"),
              ("S", b"+ " + base64.b64encode(b"<1.2@pop>") + b"\r\n"),
              ("C", base64.b64encode(b"u " + hmac.new(b"pw", b"<1.2@pop>", "md5").hexdigest().encode()) + b"\r\n"),
              ("S", b"-ERR [AUTH] Authentication failed.\r\n"), ("C", b"NOOP\r\n"), ("S", b"+OK\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server, tlspolicy="insecure")
        with pytest.raises(pop3.AuthenticationFailed) as info:
            box.auth("u", "pw")
        assert [name for name, _ in info.value.errors] == ["CRAM-MD5"]
        box.noop()   # the next command: not AUTH PLAIN
        box.close()


def test_sasl_moves_on_after_a_mechanism_failure_and_cancels_a_malformed_challenge():
    caps = [("C", b"CAPA\r\n"), ("S", b"+OK\r\nSASL CRAM-MD5 PLAIN\r\n.\r\n")]
    script = [("S", b"+OK ready\r\n"), *caps, *caps, ("C", b"AUTH CRAM-MD5\r\n"), ("S", b"+ not-base64!\r\n"),
              ("C", b"*\r\n"), ("S", b"-ERR cancelled\r\n"),
              ("C", b"AUTH PLAIN " + base64.b64encode(b"\0u\0pw") + b"\r\n"), ("S", b"+OK in\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = open_box(server, tlspolicy="insecure")
        assert box.auth("u", "pw") == "in"
        box.close()


def test_sasl_offers_no_weaker_mechanism_after_an_impostor():
    # SCRAM: the server's signature does not match -- it may not be the real server
    first = {}

    def answer(line):
        client_first = base64.b64decode(line.split()[-1])[3:].decode()
        nonce = dict(f.split("=", 1) for f in client_first.split(","))["r"]
        return b"+ " + base64.b64encode(f"r={nonce}srv,s={base64.b64encode(b'salt').decode()},i=4096".encode())
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve():
            conn, _ = listener.accept()
            f = conn.makefile("rwb")
            f.write(b"+OK ready\r\n")
            f.flush()
            for _ in range(2):
                assert f.readline() == b"CAPA\r\n"
                f.write(b"+OK\r\nSASL SCRAM-SHA-256 PLAIN\r\n.\r\n")
                f.flush()
            f.write(answer(f.readline().strip()) + b"\r\n")
            f.flush()
            f.readline()   # the client-final-message
            f.write(b"+ " + base64.b64encode(b"v=" + base64.b64encode(b"not the signature")) + b"\r\n")
            f.flush()
            assert f.readline() == b"*\r\n"
            f.write(b"-ERR cancelled\r\n")
            f.flush()
            first["next"] = f.readline()   # NOOP, not AUTH PLAIN
            f.write(b"+OK\r\n")
            f.flush()
            conn.close()
        thread = threading.Thread(target=serve)
        thread.start()
        box = pop3.connect("127.0.0.1", port=listener.getsockname()[1], tlspolicy="insecure", timeout=5)
        with pytest.raises(pop3.AuthenticationFailed, match="signature") as info:
            box.auth("u", "pw")
        box.noop()
        box.close()
        thread.join(5)
    assert [name for name, _ in info.value.errors] == ["SCRAM-SHA-256"]
    assert first["next"] == b"NOOP\r\n"


def test_debug_is_spelt_as_for_sendmessage():
    # a callable gets the protocol lines (credentials redacted), not the notes
    lines = []
    script = [("S", b"+OK ready\r\n"), ("C", b"USER u\r\n"), ("S", b"+OK\r\n"), ("C", b"PASS " + SENTINEL.encode() + b"\r\n"),
              ("S", b"+OK in\r\n"), ("CLOSE",)]
    with Conversation(script) as server:
        box = pop3.connect("127.0.0.1", port=server.port, usetls=False, tlspolicy="insecure", timeout=5,
                           debug=lines.append)
        box.login("u", SENTINEL)
        box.close()
    assert lines == ["S: +OK ready", "C: USER u", "S: +OK", "C: PASS ***", "S: +OK in"]
