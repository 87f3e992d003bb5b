"""The fast paths of reading replies, each against a straightforward version.

The reply parser splits a chunk once and remembers enhanced status codes;
transport_errors is a class, not a generator; a Deadline formats its
message only when it runs out; SyncConnection sets the socket's timeout
only when it changes. Each must behave exactly as the plain way does:
the plain ways are written out here as references.
"""

import pathlib
import re
import socket
import ssl
import threading
import types
from contextlib import contextmanager

import pytest
from hypothesis import given, settings, strategies as st

import smtpsend
import smtpsend._driver
from smtpsend import _reply
from smtpsend._driver import Deadline, Read, Send, StartTLS
from smtpsend._errors import RemoteProtocolError
from smtpsend._reply import MAX_LINE, MAX_LINES, EnhancedStatus, Reply, ReplyBuffer, ReplyParser
from smtpsend._sockets import _mapped, transport_errors
from smtpsend._sync import SyncConnection


# ---------------------------------------------------------------- the reference parser

# RFC 3463 section 2 / RFC 2034: the status starts the text, then whitespace or the end
REFERENCE_STATUS = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?=\s|$)")


class ReferenceParser:
    """One line at a time: find the line feed, check, take the line."""

    def __init__(self):
        self.buffer = bytearray()
        self.lines = []
        self.code = None

    @property
    def pending(self):
        return bool(self.buffer) or bool(self.lines)

    def feed(self, data):
        self.buffer += data
        out = []
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > MAX_LINE:
                    raise RemoteProtocolError(f"reply line longer than {MAX_LINE} octets")
                return out
            if end > MAX_LINE:
                raise RemoteProtocolError(f"reply line longer than {MAX_LINE} octets")
            raw = bytes(self.buffer[:end])
            del self.buffer[:end + 1]
            while raw.endswith(b"\r"):
                raw = raw[:-1]
            reply = self.line(raw)
            if reply is not None:
                out.append(reply)

    def line(self, raw):
        head = raw[:3]
        if len(head) != 3 or not all(48 <= c <= 57 for c in head) or head[0] > ord("5") or head[0] < ord("1") \
                or (len(raw) > 3 and raw[3] not in (0x20, 0x2D)):
            raise RemoteProtocolError(f"malformed reply line {raw[:80]!r}")
        code = int(head)
        if self.code is not None and self.code != code:
            raise RemoteProtocolError(f"reply code changed from {self.code} to {code} mid-reply")
        self.code = code
        self.lines.append(raw[4:].decode("utf-8", "replace"))
        if len(self.lines) > MAX_LINES:
            raise RemoteProtocolError(f"reply longer than {MAX_LINES} lines")
        if raw[3:4] == b"-":
            return None
        lines, self.lines, self.code = tuple(self.lines), [], None
        return Reply(code, lines, reference_status(lines[0], code))


def reference_status(text, code):
    m = REFERENCE_STATUS.match(text)
    if m is None or int(m.group(1)) != code // 100:
        return None
    return EnhancedStatus(int(m.group(1)), int(m.group(2)), int(m.group(3)))


def outcome(parser, chunk):
    """What feeding ``chunk`` gives: ("ok", replies) or ("error", type, message)."""
    try:
        return ("ok", parser.feed(chunk))
    except Exception as exc:   # noqa: BLE001 -- compared, whatever it is
        return ("error", type(exc), str(exc))


def described(reply):
    """Everything a reply shows, its status's parts included."""
    status = reply.status
    parts = None if status is None else (type(status), str(status), repr(status), status.klass,
                                         status.subject, status.detail)
    return reply, reply.code, reply.lines, parts


def compare(chunks):
    """Feed both parsers the same chunks, and after an error go on feeding:
    every outcome, and what each holds, is the same."""
    ours, reference = ReplyParser(), ReferenceParser()
    for chunk in chunks:
        got, expected = outcome(ours, chunk), outcome(reference, chunk)
        if got[0] == "ok" and expected[0] == "ok":
            assert [described(r) for r in got[1]] == [described(r) for r in expected[1]]
        else:
            assert got == expected
        assert ours.pending == reference.pending


# ---------------------------------------------------------------- reply lines to feed them

STATUS_TEXTS = ["2.1.0", "5.7.1", "4.01.000", "2.999.999", "5.1000.1", "2.1.0567", "2.1.05", "6.1.1",
                "2.1", "2.1.0.1", "2.1.0:", "x2.1.0", "", "Ok", "\u0662.1.0"]
AFTER_STATUS = [" Ok", "", " ", "\tOk", "\x0bOk", "\x1cOk", "\x85Ok", "\u2028x", "\u00a0Ok", "\u3000x", "x",
                ": queued as X", "\r", "\rtext"]


@st.composite
def reply_lines(draw):
    """One line as a server might send it -- or should not: any code,
    separator, text and ending, long or not, UTF-8 or not."""
    code = draw(st.sampled_from([b"250", b"220", b"550", b"451", b"354", b"199", b"500", b"600", b"099",
                                 b"25", b"2x0", b"", b"abc", b"\xd9\xa2\xd9\xa5\xd9\xa0"]))
    separator = draw(st.sampled_from([b" ", b"-", b"", b"x", b"\t", b"\r"]))
    kind = draw(st.sampled_from(["status", "binary", "long"]))
    if kind == "status":
        text = (draw(st.sampled_from(STATUS_TEXTS)) + draw(st.sampled_from(AFTER_STATUS))).encode("utf-8")
        text += draw(st.sampled_from([b"", b" more words", b"\xff\xfe", b"\xc3"]))
    elif kind == "binary":
        text = draw(st.binary(max_size=30)).replace(b"\n", b"")
    else:
        length = MAX_LINE - 4 + draw(st.integers(-3, 3))
        text = b"y" * length
    ending = draw(st.sampled_from([b"\r\n", b"\n", b"\r\r\n", b"\n\r"]))
    return code + separator + text + ending


@st.composite
def streams(draw):
    """Reply lines, sometimes one repeated into a very long reply, then
    maybe a last line without its line feed."""
    parts = []
    for line in draw(st.lists(reply_lines(), max_size=12)):
        repeat = draw(st.sampled_from([1, 1, 1, 2, MAX_LINES - 1, MAX_LINES, MAX_LINES + 1]))
        if repeat > 2 and len(line) < 100:
            line = b"250-" + line[4:] if line[3:4] in (b" ", b"-") else line
            parts.append(line * repeat + b"250 end\r\n")
        else:
            parts.append(line * min(repeat, 2))
    parts.append(draw(st.sampled_from([b"", b"250 2.0.0 no end", b"25", b"250-", b"z" * (MAX_LINE + 1)])))
    return b"".join(parts)


def chunked(data, draw):
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=10))))
    edges = [0] + cuts + [len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


@settings(max_examples=300, deadline=None)
@given(streams(), st.data())
def test_the_parser_agrees_with_the_line_at_a_time_reference(data, draw):
    compare(chunked(data, draw.draw))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200), st.data())
def test_the_parser_agrees_on_any_bytes(data, draw):
    compare(chunked(data, draw.draw))


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_the_parser_agrees_in_every_small_chunking(chunk):
    data = (b"220 mx.example ESMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
            b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: queued as 4Xk\r\n"
            b"550 5.1.1 <a@b>: unknown\n451 4.3.0 later\r\r\n354 go on\r\n221 2.0.0 Bye\r\n"
            b"250-first\r\n251 second\r\n250 after\r\n")
    compare([data[i:i + chunk] for i in range(0, len(data), chunk)])


def test_the_parser_agrees_on_the_shared_corpus_replies():
    """Reply lines quoted in the shared corpus (bounces, notes), where it is
    next to the repository."""
    root = pathlib.Path(__file__).resolve().parent.parent.parent / "shared"
    if not root.is_dir():
        pytest.skip("the shared corpus is absent")
    found = []
    for path in sorted(root.rglob("*"))[:5000]:
        if path.is_file() and path.stat().st_size < 1_000_000:
            found.extend(re.findall(rb"(?m)^[1-5][0-9][0-9][ -][^\r\n]*\r?\n", path.read_bytes()))
    if not found:
        pytest.skip("no SMTP reply lines in the shared corpus")
    data = b"".join(found)
    for size in (1, 7, 4096):
        compare([data[i:i + size] for i in range(0, len(data), size)])


# ---------------------------------------------------------------- the status cache

status_texts = st.one_of(
    st.text(max_size=20),
    st.builds(lambda a, b: a + b, st.sampled_from(STATUS_TEXTS), st.sampled_from(AFTER_STATUS)),
    st.builds(lambda a, b, c, tail: f"{a}.{b}.{c}{tail}", st.integers(0, 7), st.integers(0, 1200),
              st.integers(0, 1200), st.text(max_size=4)))


@given(status_texts, st.integers(100, 599))
def test_the_remembered_status_is_what_parse_gives(text, code):
    for _ in range(2):   # new, then remembered
        got, expected = _reply._status(text, code), EnhancedStatus.parse(text, code)
        assert got == expected and type(got) is type(expected)
        if got is not None:
            assert (got.klass, got.subject, got.detail, repr(got)) == \
                (expected.klass, expected.subject, expected.detail, repr(expected))


def test_the_status_cache_is_bounded():
    for n in range(3 * _reply._STATUSES_MAX):
        ReplyParser().feed(f"250 2.{n % 1000}.{n // 1000} Ok\r\n550 x{n} no\r\n".encode())
    ReplyParser().feed(b"250 " + b"2" * 1000 + b" Ok\r\n")
    assert all(len(known) <= _reply._STATUSES_MAX for known in _reply._STATUSES)
    assert all(len(token) <= _reply._TOKEN_MAX for known in _reply._STATUSES for token in known)


def test_a_remembered_status_is_one_object_and_a_plain_str_value():
    [first] = ReplyParser().feed(b"250 2.1.5 Ok\r\n")
    [second] = ReplyParser().feed(b"250 2.1.5 recipient <a@b> ok\r\n")
    assert first.status is second.status
    assert first.status == "2.1.5" and first.status == EnhancedStatus(2, 1, 5)
    [other_class] = ReplyParser().feed(b"550 2.1.5 mismatched\r\n")
    assert other_class.status is None


# ---------------------------------------------------------------- the caps on large input

def test_a_megabyte_line_is_refused_without_being_held():
    parser = ReplyParser()
    fed = 0
    with pytest.raises(RemoteProtocolError, match="reply line longer than 4096 octets"):
        for _ in range(1024):
            parser.feed(b"250 " + b"x" * 1020)
            fed += 1
    assert fed == MAX_LINE // 1024   # refused as soon as the line passed the cap
    with pytest.raises(RemoteProtocolError, match="reply line longer than 4096 octets"):
        ReplyParser().feed(b"250-ok\r\n" + b"x" * 1_000_000 + b"\r\n")


def test_a_megabyte_reply_is_refused_at_the_line_cap():
    with pytest.raises(RemoteProtocolError, match=f"reply longer than {MAX_LINES} lines"):
        ReplyParser().feed(b"250-more\r\n" * 120_000)


def test_a_megabyte_of_replies_in_small_chunks_is_parsed():
    """Linear: 130,000 replies fed 7 bytes at a time merely must finish."""
    data = b"250 2.0.0 Ok\r\n" * 75_000
    parser = ReplyParser()
    count = 0
    for i in range(0, len(data), 7):
        count += len(parser.feed(data[i:i + 7]))
    assert count == 75_000 and not parser.pending


def test_lines_are_checked_once_however_they_are_chunked(monkeypatch):
    """The work is per line, not per chunk times the lines held: each line
    goes through the line check once, in one chunk or byte by byte."""
    calls = []
    original = ReplyParser._line
    monkeypatch.setattr(ReplyParser, "_line", lambda self, raw: calls.append(raw) or original(self, raw))
    data = b"250-" + b"x" * 4000 + b"\r\n" + b"250-a\r\n" * 100 + b"250 end\r\n"
    ReplyParser().feed(data)
    whole = len(calls)
    parser = ReplyParser()
    for i in range(len(data)):
        parser.feed(data[i:i + 1])
    assert whole == 102 and len(calls) == 2 * whole


def test_reply_buffer_still_hands_out_replies_in_order():
    buffer = ReplyBuffer()
    buffer.feed(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n25")
    assert buffer.have(2) and not buffer.have(3)
    buffer.feed(b"0 2.0.0 Ok\r\n")
    assert [str(r.status) for r in buffer.take(3)] == ["2.1.0", "2.1.5", "2.0.0"]
    assert buffer.closed_message() == "connection closed by the server"


# ---------------------------------------------------------------- transport_errors

@contextmanager
def reference_transport_errors(during, *, timeout=0.0, host="", port=0, deadline=None):
    """transport_errors as a generator, the plain way."""
    try:
        yield
    except smtpsend.SMTPError:
        raise
    except (OSError, UnicodeError) as exc:
        if isinstance(exc, UnicodeError) and during != "resolve":
            raise
        error = _mapped(exc, during, timeout, host, port, deadline)
        if isinstance(exc, TimeoutError) or during == "resolve":
            raise error from None
        raise error from exc


RAISED = [
    lambda: TimeoutError(), lambda: socket.timeout("timed out"), lambda: socket.gaierror(-2, "unknown name"),
    lambda: ConnectionRefusedError(111, "Connection refused"), lambda: ConnectionResetError(104, "reset"),
    lambda: BrokenPipeError(32, "Broken pipe"), lambda: OSError("no errno"), lambda: OSError(5, "I/O"),
    lambda: ssl.SSLError(1, "bad record mac"), lambda: ssl.SSLZeroReturnError(6, "closed"),
    lambda: ssl.SSLCertVerificationError(1, "certificate verify failed"), lambda: UnicodeError("label"),
    lambda: smtpsend.TransportError("ours"), lambda: smtpsend.Timeout("ours too"),
    lambda: RemoteProtocolError("malformed"), lambda: ValueError("not ours"), lambda: KeyError("k"),
    lambda: StopIteration(3), lambda: KeyboardInterrupt(),
]


def raised_by(manager, make):
    exc = make()
    try:
        with manager:
            raise exc
    except BaseException as error:   # noqa: BLE001 -- compared, whatever it is
        return exc, error
    return exc, None


@pytest.mark.parametrize("during", ["resolve", "connect", "send", "read", "handshake"])
@pytest.mark.parametrize("where", [dict(timeout=3, host="192.0.2.1", port=25), dict(host="/run/lmtp"),
                                   dict(deadline=Deadline(0.0, "no greeting"))], ids=["tcp", "unix", "deadline"])
def test_transport_errors_raises_what_the_generator_raised(during, where):
    for make in RAISED:
        exc, got = raised_by(transport_errors(during, **where), make)
        exc2, expected = raised_by(reference_transport_errors(during, **where), make)
        if expected is exc2:
            assert got is exc
            continue
        assert (type(got), str(got), getattr(got, "reason", None)) == \
            (type(expected), str(expected), getattr(expected, "reason", None))
        assert (got.__cause__ is exc) == (expected.__cause__ is exc2)
        assert (got.__context__ is exc) == (expected.__context__ is exc2)
        assert got.__suppress_context__ == expected.__suppress_context__


def test_transport_errors_without_an_error_returns_the_block_value():
    with transport_errors("read") as entered:
        value = 1
    assert entered is None and value == 1


# ---------------------------------------------------------------- Deadline

@pytest.mark.parametrize("seconds,what", [(0.0, "no reply"), (0, "no greeting"), (2.5, "no complete response"),
                                          (300.0, "no reply"), (-1, "x")])
def test_a_deadline_says_what_it_was_when_it_runs_out(clock, seconds, what):
    deadline = Deadline(seconds, what)
    clock.now += max(seconds, 0)
    with pytest.raises(smtpsend.Timeout) as info:
        deadline.remaining()
    assert str(info.value) == f"{what} within {seconds} s"
    assert str(deadline.expired()) == str(info.value)


# ---------------------------------------------------------------- SyncConnection's timeouts

class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


class ScriptedSocket:
    """A socket that answers recv from a script, each answer taking
    ``step`` seconds of a fake clock; it records every settimeout."""

    def __init__(self, clock, answers, step=0.0, timeout=30.0):
        self.clock, self.answers, self.step = clock, list(answers), step
        self.timeouts = []
        self.timeout = timeout
        self.sent = []

    def gettimeout(self):
        return self.timeout

    def settimeout(self, seconds):
        self.timeouts.append(seconds)
        self.timeout = seconds

    def sendall(self, data):
        self.sent.append(bytes(data))

    def recv(self, size):
        self.clock.now += self.step
        return self.answers.pop(0)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(smtpsend._driver, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    return clock


def test_the_timeout_is_set_only_when_it_changes(clock):
    sock = ScriptedSocket(clock, [b"250 2.1.0 Ok\r\n", b"250 2.0.0 Ok\r\n", b"250 Ok\r\n"])
    connection = SyncConnection(sock, "mx.example", None)
    connection.perform(Send(b"MAIL FROM:<a@b>\r\n", 300.0))
    assert connection.perform(Read(1, 300.0))[0].status == "2.1.0"
    connection.perform(Send(b"DATA\r\n", 300.0))
    connection.perform(Read(1, 300.0))
    connection.perform(Send([b"x\r\n", b".\r\n"], 180.0))
    connection.perform(Read(1, 120.0))
    assert sock.timeouts == [300.0, 180.0, 120.0]
    assert sock.sent == [b"MAIL FROM:<a@b>\r\n", b"DATA\r\n", b"x\r\n", b".\r\n"]


def test_a_trickling_reply_still_ends_at_the_deadline(clock):
    """Each further wait is what is left of the deadline, and when none is
    left the read times out without waiting again."""
    sock = ScriptedSocket(clock, [b"2", b"5", b"0", b" Ok\r\n"], step=4.0)
    connection = SyncConnection(sock, "mx.example", None)
    with pytest.raises(smtpsend.Timeout, match=r"^no reply within 10\.0 s"):
        connection.perform(Read(1, 10.0))
    assert sock.timeouts == [10.0, 6.0, 2.0]
    assert sock.answers == [b" Ok\r\n"]


def test_a_read_with_no_time_times_out_before_waiting(clock):
    sock = ScriptedSocket(clock, [b"250 Ok\r\n"])
    connection = SyncConnection(sock, "mx.example", None)
    with pytest.raises(smtpsend.Timeout, match="no reply within 0 s"):
        connection.perform(Read(1, 0))
    assert sock.timeouts == [] and sock.answers == [b"250 Ok\r\n"]


def test_the_timeouts_on_a_real_socket_pair():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(5.0)
        connection = SyncConnection(ours, "localhost", None)
        connection.perform(Send(b"NOOP\r\n", 5.0))
        assert theirs.recv(100) == b"NOOP\r\n" and ours.gettimeout() == 5.0
        theirs.sendall(b"250 2.0.0 Ok\r\n")
        [reply] = connection.perform(Read(1, 7.0))
        assert reply.status == "2.0.0" and ours.gettimeout() == 7.0
        connection.perform(Send(b"QUIT\r\n", 2.0))
        assert ours.gettimeout() == 2.0


def _drain(sock, into, total, reply=None):
    """Read ``total`` bytes from ``sock`` in small reads, then send ``reply``."""
    while len(into) < total:
        data = sock.recv(4096)
        if not data:
            break
        into += data
    if reply:
        sock.sendall(reply)


def test_a_server_that_reads_nothing_times_the_send_out():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        connection = SyncConnection(ours, "localhost", None)
        with pytest.raises(smtpsend.Timeout, match=r"^server did not take data for 0\.2 s"):
            connection.perform(Send(b"x" * (8 << 20), 0.2))   # more than the socket buffers hold


def test_a_block_larger_than_the_socket_buffers_goes_out_whole_as_the_server_reads():
    block = bytes(range(256)) * (16 << 10)   # 4 MiB
    ours, theirs = socket.socketpair()
    got = bytearray()
    with ours, theirs:
        connection = SyncConnection(ours, "localhost", None)
        reader = threading.Thread(target=_drain, args=(theirs, got, len(block), b"250 2.0.0 Ok\r\n"))
        reader.start()
        connection.perform(Send([block, b".\r\n"], 30.0))
        reader.join(30)
        [reply] = connection.perform(Read(1, 30.0))
    assert bytes(got[:len(block)]) == block and reply.code == 250


def test_after_starttls_a_large_block_goes_out_whole_and_the_reply_is_read(server_tls, client_tls):
    block = bytes(range(256)) * (16 << 10)   # 4 MiB, many TLS records
    ours, theirs = socket.socketpair()
    got = bytearray()

    def server():
        tls = server_tls.wrap_socket(theirs, server_side=True)
        _drain(tls, got, len(block), b"250 2.0.0 Ok: queued\r\n" * 2)
        tls.recv(100)   # until the client closes
    with ours, theirs:
        ours.settimeout(30)
        connection = SyncConnection(ours, "localhost", client_tls)
        thread = threading.Thread(target=server)
        thread.start()
        assert connection.perform(StartTLS(30.0)).version
        connection.perform(Send([block], 30.0))
        assert [r.code for r in connection.perform(Read(2, 30.0))] == [250, 250]
        connection.close()
        thread.join(30)
    assert bytes(got) == block
