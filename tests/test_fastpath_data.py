"""The fast paths of the send path (round 4): a message that is sent costs
less CPU, and nothing else about it changes.

- ``iter_part`` writes a clean parsed message whose header block is, in its
  buffer, exactly its fields and the empty line, as the added fields plus
  the buffer's bytes (``_serialize._FAST``): checked against the general
  path forced on, over the shared corpus (as stored and with CRLF line
  breaks) and over generated header blocks (stray lines, folding, a missing
  empty line, mbox lines, LF and bare CR);
- ``MessageData`` looks at a message of one chunk directly: checked against
  the same bytes given in many chunks, which take the general loops;
- ``formatdate()`` is cached per second (``_date._CACHE_NOW``): checked
  against the uncached computation across second boundaries and DST changes
  (a patched clock and zone), and on the real clock.
"""

from __future__ import annotations

import calendar
import os
import pathlib
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import pytest
from hypothesis import given, settings, strategies as st

import mimecompose
import smtpsend._envelope
from mimecompose import _date, _serialize, formatdate
from smtpsend import transmitted
from smtpsend._data import MessageData

CORPUS = pathlib.Path(__file__).resolve().parent.parent / ".." / "shared" / "corpus" / "messages"
FIXED = {"Date": "Tue, 01 Dec 2026 12:00:00 +0000", "Message-ID": "<fixed@example.com>"}
ADD = [("Date", "Tue, 01 Dec 2026 12:00:00 +0000"), ("Message-ID", "<fixed@example.com>")]


def _corpus(limit: int = 300) -> list[pathlib.Path]:
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file()) if CORPUS.is_dir() else []
    return files[::max(1, len(files) // limit)]


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _both(monkeypatch: pytest.MonkeyPatch, make: Callable[[], Any]) -> tuple[Any, Any]:
    """``make()`` with the fast path, then with the general path forced on;
    an exception is compared by type and text."""
    results = []
    for fast in (True, False):
        monkeypatch.setattr(_serialize, "_FAST", fast)
        try:
            results.append(make())
        except Exception as exc:   # the same error both ways is part of the contract
            results.append((type(exc), str(exc)))
    monkeypatch.setattr(_serialize, "_FAST", True)
    return results[0], results[1]


class _Counting:
    """Wraps _serialize._header_as_read: how often it let the fast path in."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken = 0
        real = _serialize._header_as_read

        def counted(part: Any, fields: Any) -> bool:
            ok = real(part, fields)
            self.taken += ok
            return ok

        monkeypatch.setattr(_serialize, "_header_as_read", counted)


def _attempt(make: Callable[[], Any]) -> Any:
    try:
        return make()
    except Exception as exc:   # the same error both ways is part of the contract
        return (type(exc), str(exc))


def _sent(raw: bytes) -> tuple[Any, ...]:
    """What the sender makes of ``raw``: the transmitted bytes, and the
    measured MessageData of the parsed message with the usual add/omit."""
    sent = _attempt(lambda: transmitted(raw, originator="a@example.com", recipients=["b@example.com"],
                                        header=FIXED))
    part = mimecompose.initialize(string=raw)

    def measured() -> tuple[Any, ...]:
        md = MessageData.from_part(part, ADD, frozenset({"bcc", "resent-bcc"}))
        return (md.size, md.head, md.eightbit, md.header_utf8, md.binary, b"".join(md.chunks()),
                b"".join(md.seven_bit().chunks()))

    return (sent, _attempt(measured), part.parsed, [(d.kind, d.detail) for d in part.defects])


# ---------------------------------------------------------------- iter_part: the corpus

@pytest.mark.skipif(not _corpus(), reason="the shared corpus (../shared/corpus/messages) is not there")
def test_corpus_sent_bytes_are_the_general_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    # a message with a Resent- block gets Resent-Date and Resent-Message-ID
    # stamped, which header= does not fix: fixed here instead
    monkeypatch.setattr(smtpsend._envelope, "formatdate", lambda: FIXED["Date"])
    monkeypatch.setattr(smtpsend._envelope, "_message_id", lambda client: FIXED["Message-ID"])
    counting = _Counting(monkeypatch)
    for path in _corpus():
        stored = path.read_bytes()
        for raw in (stored, _crlf(stored)):
            fast, general = _both(monkeypatch, lambda: _sent(raw))
            assert fast == general, path.name
    assert counting.taken > 100   # the corpus in CRLF form takes the fast path


@pytest.mark.skipif(not _corpus(), reason="the shared corpus (../shared/corpus/messages) is not there")
def test_corpus_iterbytes_with_options_is_the_general_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    for path in _corpus(100):
        raw = _crlf(path.read_bytes())
        part = mimecompose.initialize(string=raw)
        names = [name for name, _v in part.fields(decode=False)][:1]
        for options in ({"add": ADD}, {"add": ADD, "omit": names}, {"add": ADD, "seven_bit": True},
                        {"add": [("MIME-Version", "1.0")], "omit": ["X-Not-There"]}):
            fast, general = _both(monkeypatch, lambda: b"".join(part.iterbytes(**options)))
            assert fast == general, (path.name, options)


# ---------------------------------------------------------------- iter_part: header blocks

_OPTIONS: list[dict[str, Any]] = [{"add": ADD}, {"add": ADD, "omit": ["bcc"]}, {"add": ADD, "seven_bit": True}]


@pytest.mark.parametrize("raw, fast", [
    (b"From: a@example.com\r\nTo: b@example.com\r\n\r\nHello\r\n", True),
    (b"Subject: one\r\n two\r\n \r\n three\r\nX: y\r\n\r\nbody", True),   # folding, a white-space line
    (b"From: a@example.com\r\n\r\n", True),                               # an empty body
    (b" x\r\nFrom: a@example.com\r\n\r\nbody\r\n", False),                # a stray line: skipped
    (b"From: a@example.com\r\nFrom x@y Mon\r\nTo: b@example.com\r\n\r\nbody\r\n", False),   # mbox line
    (b"From: a@example.com\r\nTo: b@example.com", False),                 # no empty line, no line break
    (b"From: a@example.com\r\nTo: b@example.com\r\n", False),             # no empty line
    (b"From: a@example.com\r\nnot a field\r\nbody\r\n", False),           # the body starts at once
    (b"From: a@example.com\nTo: b@example.com\n\nbody\n", False),         # LF line breaks
    (b"From: a@example.com\r\n\r\nbody\rmore\r\n", False),                # a bare CR
    (b"From x@y Mon Jan  1 00:00:00 2026\r\nFrom: a@example.com\r\n\r\nbody\r\n", True),   # unixfrom
    (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b--\r\n", True),
    (b"Bcc: c@example.com\r\nTo: b@example.com\r\n\r\nbody\r\n", True),   # omitted: general path
])
def test_header_block_shapes(monkeypatch: pytest.MonkeyPatch, raw: bytes, fast: bool) -> None:
    part = mimecompose.initialize(string=raw)
    assert _serialize._header_as_read(part, part._headers.fields) is fast
    for options in _OPTIONS:
        got, want = _both(monkeypatch, lambda: b"".join(part.iterbytes(**options)))
        assert got == want, options
    fast_sent, general_sent = _both(monkeypatch, lambda: _sent(raw))
    assert fast_sent == general_sent


_LINE = st.sampled_from([b"From: a@example.com", b"To: b@example.com", b"Subject: hi", b" folded",
                         b"\tfolded", b" ", b"From x@y Mon", b"not a field", b"Bcc: c@example.com",
                         b"--b", b"X-Empty:", b"Content-Type: text/plain; charset=utf-8", b""])
_BREAK = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"])


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.tuples(_LINE, _BREAK), max_size=8), body=st.sampled_from([b"", b"x\r\n", b"a\r\n.b"]))
def test_generated_headers_are_sent_as_the_general_path_sends_them(lines: list[tuple[bytes, bytes]],
                                                                    body: bytes) -> None:
    raw = b"".join(line + brk for line, brk in lines) + body
    part = mimecompose.initialize(string=raw)
    results = []
    for fast in (True, False):
        _serialize._FAST = fast
        try:
            results.append([b"".join(part.iterbytes(add=ADD, omit=["bcc"])), b"".join(part.iterbytes(add=ADD))])
        finally:
            _serialize._FAST = True
    assert results[0] == results[1]


def test_a_parsed_file_and_a_changed_part_take_the_general_path(tmp_path: pathlib.Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    raw = b"From: a@example.com\r\nTo: b@example.com\r\n\r\nHello\r\n"
    path = tmp_path / "m.eml"
    path.write_bytes(raw)
    counting = _Counting(monkeypatch)
    from_file = mimecompose.initialize(file=path)
    changed = mimecompose.initialize(string=raw)
    changed.setheader("Subject", "new")
    for part in (from_file, changed):
        got, want = _both(monkeypatch, lambda: b"".join(part.iterbytes(add=ADD)))
        assert got == want
    assert counting.taken == 0
    # a file changed since it was parsed: the same error, after the header, both ways
    path.write_bytes(raw.replace(b"Hello", b"Bye!!"))
    os.utime(path, ns=(1, 1))
    for fast in (True, False):
        monkeypatch.setattr(_serialize, "_FAST", fast)
        chunks = from_file.iterbytes(add=ADD)
        assert next(chunks).startswith(b"Date: ")
        with pytest.raises(mimecompose.MimeError, match="changed since it was parsed"):
            list(chunks)


def test_a_closed_buffer_takes_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b--\r\n"
    part = mimecompose.initialize(string=raw)
    part.getproperty("parts")[0].finalize()   # closes the buffer the whole tree shares
    for fast in (True, False):
        monkeypatch.setattr(_serialize, "_FAST", fast)
        chunks = part.iterbytes(add=ADD)
        assert next(chunks).startswith(b"Date: ")   # the header is written, then the body fails
        with pytest.raises(mimecompose.MimeError, match="finalized"):
            list(chunks)


def test_the_fast_path_writes_one_chunk_for_a_small_message(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = b"From: a@example.com\r\nTo: b@example.com\r\n\r\nHello\r\n"
    part = mimecompose.initialize(string=raw)
    assert list(part.iterbytes(add=ADD)) == [b"Date: Tue, 01 Dec 2026 12:00:00 +0000\r\n"
                                             b"Message-ID: <fixed@example.com>\r\n" + raw]
    monkeypatch.setattr(_serialize, "_FAST", False)
    assert len(list(part.iterbytes(add=ADD))) == 2


def test_an_add_value_refused_by_the_formatter_is_refused_by_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    part = mimecompose.initialize(string=b"From: a@example.com\r\n\r\nx\r\n")
    fast, general = _both(monkeypatch, lambda: b"".join(part.iterbytes(add=[("Content-Disposition", "a; b=\x01")])))
    assert fast == general and fast[0] is mimecompose.HeaderInjectionError


# ---------------------------------------------------------------- MessageData: one chunk

@pytest.mark.parametrize("message", [
    b"",
    b"Subject: hi\r\n\r\nbody\r\n",
    b"Subject: hi\r\n\r\nbody without a final line break",
    "Subject: h\u00e9\r\n\r\nbody\r\n".encode(),                 # UTF-8 in the header
    "Subject: hi\r\n\r\nb\u00f6dy\r\n".encode(),                 # 8-bit body only
    b"Subject: hi\r\nX: " + b"y" * 70000 + b"\r\n\r\nbody\r\n",  # more than HEAD, no empty line in the head
    b"Subject: hi\r\n\r\n" + "\u00e9".encode() * 40000 + b"\r\n",
    b"no header at all, one line",
])
@pytest.mark.parametrize("crlf", [False, True])
def test_one_chunk_is_measured_as_many_chunks_are(message: bytes, crlf: bool) -> None:
    one = MessageData(lambda: [message], crlf=crlf)
    # 1-octet chunks: more than HEAD octets are never joined, so the general loops run
    step = 1 if len(message) > 65536 else max(1, len(message) // 7)
    many = MessageData(lambda: [message[i:i + step] for i in range(0, len(message), step)], crlf=crlf)
    if len(message) > 65536:
        assert many._kept is not None and len(many._kept) > 1   # the general loops did run
    for md in (one, many):
        assert b"".join(md.chunks()) == b"".join(many.chunks())
    assert (one.size, one.head, one.eightbit, one.header_utf8, one.signature) == \
        (many.size, many.head, many.eightbit, many.header_utf8, many.signature)
    assert one.header_utf8 == ("\u00e9".encode() in message.split(b"\r\n\r\n")[0][:65536])
    assert one.eightbit == (not message.isascii())


def test_no_signers_is_no_signature() -> None:
    empty: list[tuple[()] | list[Any]] = [(), []]
    for dkim in empty:
        md = MessageData(lambda: [b"Subject: hi\r\n\r\nbody\r\n"], dkim=dkim)
        assert md.signature == b"" and md.head == b"Subject: hi\r\n\r\nbody\r\n" and md.size == 21


# ---------------------------------------------------------------- formatdate(): per second

def _uncached(second: int) -> str:
    """What formatdate writes for that second, worked out another way: the
    instant as UTC, converted to the local zone (no naive local time)."""
    return formatdate(datetime.fromtimestamp(second, timezone.utc).astimezone())


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], None]]:
    """Set the clock formatdate() reads (time.time_ns) to a given instant;
    the zone is restored afterwards."""
    now = [0]
    monkeypatch.setattr(_date, "_now_cache", (-1, None, ""))
    monkeypatch.setattr(time, "time_ns", lambda: now[0])

    def set_time(seconds: float) -> None:
        now[0] = int(seconds * 1_000_000_000)

    yield set_time
    monkeypatch.undo()
    time.tzset()
    _date._now_cache = (-1, None, "")


def _zone(monkeypatch: pytest.MonkeyPatch, tz: str) -> None:
    monkeypatch.setenv("TZ", tz)
    time.tzset()


def test_cached_formatdate_across_a_second_boundary(clock: Callable[[float], None]) -> None:
    base = calendar.timegm((2026, 12, 1, 12, 0, 59, 0, 0, 0))
    for at in (base + 0.0, base + 0.5, base + 0.999999999, base + 1.0, base + 1.25, base + 2.0):
        clock(at)
        assert formatdate() == _uncached(int(at)), at


def test_cached_formatdate_computes_once_per_second(clock: Callable[[float], None],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[datetime] = []
    real = _date._format

    def counted(dt: datetime) -> str:
        made.append(dt)
        return real(dt)

    monkeypatch.setattr(_date, "_format", counted)
    base = calendar.timegm((2026, 12, 1, 12, 0, 0, 0, 0, 0))
    for at in (base, base + 0.1, base + 0.9, base + 1.0, base + 1.5):
        clock(at)
        formatdate()
    assert len(made) == 2


@pytest.mark.parametrize("tz", ["CET-1CEST,M3.5.0,M10.5.0/3", "EST5EDT,M3.2.0,M11.1.0", "UTC0",
                                "<+0530>-5:30", "<-0330>3:30"])
def test_cached_formatdate_across_dst_changes(clock: Callable[[float], None], monkeypatch: pytest.MonkeyPatch,
                                              tz: str) -> None:
    _zone(monkeypatch, tz)
    # the 2026 changes of both rules above (UTC), and a plain day
    changes = [(2026, 3, 29, 1, 0, 0), (2026, 10, 25, 1, 0, 0), (2026, 3, 8, 7, 0, 0),
               (2026, 11, 1, 6, 0, 0), (2026, 7, 1, 0, 0, 0)]
    offsets = set()
    for change in changes:
        at = calendar.timegm(change + (0, 0, 0))
        for second in (at - 3601, at - 1, at, at + 1, at + 3600):
            clock(second + 0.5)
            text = formatdate()
            assert text == _uncached(second), (tz, second)
            offsets.add(text[-5:])
    if tz.startswith("CET"):
        assert offsets == {"+0100", "+0200"}   # the test did cross the changes
    if tz.startswith("EST"):
        assert offsets == {"-0500", "-0400"}


def test_cached_formatdate_sees_a_new_zone_in_the_same_second(clock: Callable[[float], None],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    clock(calendar.timegm((2026, 7, 1, 12, 0, 0, 0, 0, 0)) + 0.2)
    _zone(monkeypatch, "UTC0")
    assert formatdate() == "Wed, 01 Jul 2026 12:00:00 +0000"
    _zone(monkeypatch, "CET-1CEST,M3.5.0,M10.5.0/3")
    assert formatdate() == "Wed, 01 Jul 2026 14:00:00 +0200"
    _zone(monkeypatch, "<-0330>3:30")
    assert formatdate() == "Wed, 01 Jul 2026 08:30:00 -0330"


def test_cached_formatdate_is_the_uncached_one_on_the_real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    checked = 0
    for _ in range(200):
        before = time.time_ns() // 1_000_000_000
        cached = formatdate()
        monkeypatch.setattr(_date, "_CACHE_NOW", False)
        uncached = formatdate()
        monkeypatch.setattr(_date, "_CACHE_NOW", True)
        if time.time_ns() // 1_000_000_000 == before:   # no second boundary in between
            assert cached == uncached
            checked += 1
    assert checked


def test_cached_formatdate_from_many_threads(clock: Callable[[float], None]) -> None:
    base = calendar.timegm((2026, 12, 1, 12, 0, 0, 0, 0, 0))
    clock(base)
    seen: list[str] = []

    def run() -> None:
        seen.extend(formatdate() for _ in range(200))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(seen) == {_uncached(base)}


def test_formatdate_of_a_given_date_is_not_cached(clock: Callable[[float], None]) -> None:
    clock(calendar.timegm((2026, 12, 1, 12, 0, 0, 0, 0, 0)))
    formatdate()
    dt = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert formatdate(dt) == "Thu, 02 Jan 2020 03:04:05 +0000"


# ---------------------------------------------------------------- format_field: one short line

_NAME_CHARS = st.sampled_from(["A", "z", "-", "0", ":", " ", "\x01", "\x7f", "\t", "\u00e9", "\ud800"])
_VALUE_CHARS = st.sampled_from(["a", " ", "\t", "=", "?", "<", "@", ";", "\x01", "\x1f", "\x7f", "\u00e9"])


@settings(max_examples=500, deadline=None)
@given(name=st.text(_NAME_CHARS, min_size=1, max_size=12), value=st.text(_VALUE_CHARS, max_size=70))
def test_a_short_field_is_written_as_the_checked_writer_writes_it(name: str, value: str) -> None:
    from mimecompose import _headers
    stripped = value.strip(" \t")
    short = stripped.isascii() and len(name) + len(stripped) + 2 <= 78 and "=?" not in stripped \
        and not _headers._CONTROL.search(stripped)
    got = _attempt(lambda: _headers.format_field(name, value))
    if short:   # the general path of this branch: the one line through _checked
        assert got == _attempt(lambda: _headers._checked(name, [f"{name}: {stripped}"]))
    if isinstance(got, bytes):
        assert got.endswith(b"\r\n") and b"\r\n" not in got[:-2].replace(b"\r\n ", b"").replace(b"\r\n\t", b"")
