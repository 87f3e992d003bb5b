"""The fast paths of the parser and the codecs (issue 16) read exactly what
the general code reads, and skip the work they were made to skip.

Each fast path is checked two ways: against the general reader on inputs
that take it and inputs that leave it (folded fields, lines of only white
space, mbox lines, comments, backslashes, bare CRs), and by counting what
it no longer does (Field objects made, copies, Content-Type worked out).
"""

from __future__ import annotations

import random
import re

import pytest

import mimecompose
from mimecompose import _codecs, _headers, _part
from mimecompose._codecs import LineBreakNormalizer, decode_body
from mimecompose._headers import Field, parse_content_type, raw_value, read_field_block
from mimecompose._part import ParsedBuffer


# ---------------------------------------------------------------- the line-break census

@pytest.mark.parametrize("data, crlf, bare_cr", [
    (b"a\r\nb\r\n", True, False),
    (b"a\nb\n", False, False),
    (b"a\r\nb\n", False, False),
    (b"a\rb\r\n", False, True),
    (b"a\n\rb", False, True),          # as many CRs as LFs, but neither pair is CRLF
    (b"\r", False, True),
    (b"no line break", True, False),
    (b"", True, False),
])
def test_buffer_counts_line_breaks(data: bytes, crlf: bool, bare_cr: bool) -> None:
    buf = ParsedBuffer(data)
    assert (buf.crlf, buf.bare_cr) == (crlf, bare_cr)


def test_boundary_found_after_lf_crlf_and_bare_cr() -> None:
    for brk in (b"\r\n", b"\n", b"\r"):
        raw = brk.join([b"Content-Type: multipart/mixed; boundary=XY", b"", b"--XY", b"", b"one",
                        b"--XY", b"", b"two", b"--XY--", b""])
        part = mimecompose.initialize(string=raw)
        assert [p.getbody() for p in part.getproperty("parts")] == [b"one", b"two"], brk


# ---------------------------------------------------------------- the header block

def _line_by_line(data: bytes) -> list[tuple[str, bytes]]:
    """The fields a reader going line by line finds (the rules of read_field_block)."""
    fields: list[tuple[str, bytes]] = []
    for line in data.splitlines(keepends=True):
        if line in (b"\r\n", b"\n", b"\r"):
            break
        if line[:1] in (b" ", b"\t"):
            name, raw = fields[-1]
            fields[-1] = (name, raw + line)
        else:
            fields.append((line.split(b":", 1)[0].rstrip(b" \t").decode(), line))
    return fields


@pytest.mark.parametrize("header", [
    b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nbody",
    b"Subject: one\r\n two\r\n\tthree\r\nX-A: b\r\n\r\n",
    b"Subject: one\n \n two\nX-B: c\n\n",                  # a line of only white space: folding
    b"Received: from x\r by y\rX-C: d\r\r",                  # bare CR line breaks
    b"X-Empty:\r\nX-Sp :  v\r\n\r\n",
    b"A: 1\r\nB: 2\r\nC: 3",                                 # no empty line, no final line break
])
def test_field_block_reads_what_the_line_reader_reads(header: bytes) -> None:
    block = read_field_block(header)
    assert [(f.name, f.raw) for f in block.fields] == _line_by_line(header)


def test_field_block_notes_white_space_lines_and_mbox_lines() -> None:
    block = read_field_block(b"Subject: a\r\n \r\n b\r\nFrom x@y Mon Jan 1\r\nTo: c@d\r\n\r\n")
    assert [f.name for f in block.fields] == ["Subject", "To"]
    assert block.fields[0].value == "a  b"   # unfolding removes the line breaks only
    assert len(block.stray) == 2 and "white space" in block.stray[0] and "mbox" in block.stray[1]


def test_field_block_stops_at_a_delimiter_line() -> None:
    data = b"A: 1\r\n--b\r\nB: 2\r\n"
    block = read_field_block(data, stop=lambda pos: data.startswith(b"--b", pos))
    assert [f.name for f in block.fields] == ["A"] and data[block.end:].startswith(b"--b")


def test_field_block_fast_path_matches_the_line_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(16)
    pieces = [b"A", b"x-y", b":", b" ", b"\t", b"\r\n", b"\n", b"\r", b"v", b"From ", b"--"]
    blocks = [b"".join(rnd.choice(pieces) for _ in range(rnd.randrange(30))) for _ in range(3000)]

    def stop(pos: int) -> bool:
        return pos % 3 == 0

    fast = [read_field_block(data, 0, None, stop) for data in blocks]
    no_bare_cr = [data for data in blocks if not ParsedBuffer(data).bare_cr]
    fast_lf = [read_field_block(data, 0, None, stop, bare_cr=False) for data in no_bare_cr]
    assert len(no_bare_cr) > 1000
    never = re.compile(rb"(?!)")
    monkeypatch.setattr(_headers, "_FIELD_RUN", never)   # every line read on its own
    monkeypatch.setattr(_headers, "_FIELD_RUN_LF", never)
    assert fast == [read_field_block(data, 0, None, stop) for data in blocks]
    assert fast_lf == [read_field_block(data, 0, None, stop) for data in no_bare_cr]


# ---------------------------------------------------------------- headers made Fields lazily

def test_parsing_makes_no_field_objects_until_they_are_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []

    class Counting(Field):
        __slots__ = ()

        def __init__(self, name: str, value: str | None = None, raw: bytes | None = None) -> None:
            made.append(name)
            super().__init__(name, value, raw)

    monkeypatch.setattr(_headers, "Field", Counting)
    raw = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n"
           b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nX-Inner: 1\r\n\r\nbody\r\n--q--\r\n")
    part = mimecompose.initialize(string=raw)
    assert made == []
    assert part.getheader("Subject") == ["s"]
    assert made == ["From", "To", "Subject", "Content-Type"]
    assert part.getproperty("parts")[0].fields() == [("X-Inner", "1")]
    assert part.buildmessage() == raw


def test_parsed_fields_can_be_changed_before_they_were_read() -> None:
    part = mimecompose.initialize(string=b"Subject: a\r\nX-Keep: k\r\n\r\nbody\r\n")
    part.setheader("Subject", "b")
    assert part.fields() == [("Subject", "b"), ("X-Keep", "k")]


def test_getheader_works_out_content_type_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    part = mimecompose.initialize("text/plain", string="hello", header=[("Subject", "s")])
    calls: list[int] = []
    original = _part.PartData._mime_fields

    def counted(self: _part.PartData) -> list[Field]:
        calls.append(1)
        return original(self)

    monkeypatch.setattr(_part.PartData, "_mime_fields", counted)
    assert part.getheader("Subject") == ["s"]
    assert calls == []
    assert part.getheader("Content-Type") == ["text/plain; charset=utf-8"]
    assert calls == [1]


@pytest.mark.parametrize("raw", [
    b"X: plain\r\n", b"X:\tfolded\r\n more\r\n", b"X: a\n\tb\n", b"X: a\r b\r", b"X:  \r\n", b"X: v  \r\n",
    b"X: one\r\n\r\n", "X: Grüße\r\n".encode(), "X: Gr\xfc\xdfe\r\n".encode("latin-1"),
])
def test_raw_value_unfolds_only_what_is_folded(raw: bytes) -> None:
    body = raw.split(b":", 1)[1]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    # RFC 5322 section 2.2.3 unfolding, written the plain way: every line
    # break before white space, and the one at the end
    unfold = re.compile(r"(?:\r\n?|\n)(?=[ \t])|(?:\r\n?|\n)\Z")
    assert raw_value(raw) == unfold.sub("", text).strip(" \t\r\n")


def test_unfold_pattern_is_the_plain_one() -> None:
    plain = re.compile(r"(?:\r\n?|\n)(?=[ \t])|(?:\r\n?|\n)\Z")
    rnd = random.Random(5322)
    for _ in range(20000):
        text = "".join(rnd.choice(["a", " ", "\t", "\r", "\n", "\r\n"]) for _ in range(rnd.randrange(12)))
        assert _headers._UNFOLD.sub("", text) == plain.sub("", text), repr(text)


# ---------------------------------------------------------------- Content-Type

@pytest.mark.parametrize("value, expected", [
    ("text/plain", ("text/plain", [], True)),
    ('Text/HTML; Charset="UTF-8"', ("text/html", [("charset", "UTF-8", True)], True)),
    ("multipart/mixed;\tboundary=abc; x=y;", ("multipart/mixed", [("boundary", "abc", False), ("x", "y", False)],
                                              True)),
    ("text/plain ; name = a.txt", ("text/plain", [("name", "a.txt", False)], True)),
])
def test_simple_content_types(value: str, expected: tuple[str, list[tuple[str, str, bool]], bool]) -> None:
    problems: list[str] = []
    assert parse_content_type(value, problems) == expected
    assert problems == []


CONTENT_TYPES = [
    'text/plain; charset="a\\"b"', "text/plain; charset=us-ascii (Plain)", "text/plain;; a=b",
    "text/plain; a", 'text/plain; a="open', "text/plain; name=file name.txt", "text (c)/plain",
    "text/plain; a=b c=d", "/plain", "text/", "", "text/plain", 'Text/HTML; Charset="UTF-8"',
    "multipart/mixed;\tboundary=abc; x=y;", "text/plain ; name = a.txt", 'a/b; c="d e"; f=g',
    "a/b;\r\n c=d", 'a/b; c=""', "a/b; C*0=x; c*1=y", "a/b;", "a/b ; ; ",
]


def test_content_type_fast_path_matches_the_general_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(2231)
    pieces = ["text", "/", "plain", ";", " ", "\t", "=", '"', "\\", "(", ")", "a", "B", "\r\n", "é", "*0*"]
    values = CONTENT_TYPES + ["".join(rnd.choice(pieces) for _ in range(rnd.randrange(16))) for _ in range(5000)]

    def read_all() -> list[tuple[tuple[str, list[tuple[str, str, bool]], bool], list[str]]]:
        out = []
        for value in values:
            problems: list[str] = []
            out.append((parse_content_type(value, problems), problems))
        return out

    fast = read_all()
    assert any(_headers._PT_SIMPLE.fullmatch(v) for v in values)
    monkeypatch.setattr(_headers, "_PT_SIMPLE", re.compile("(?!)"))   # the general reader for all
    assert fast == read_all()


def test_simple_content_type_pattern_is_linear() -> None:
    # a long value that almost has the simple shape fails it and must fail fast
    value = "text/plain" + "; a=b" * 50_000 + " x"
    assert _headers._PT_SIMPLE.fullmatch(value) is None
    main, pairs, ok = parse_content_type(value)
    assert main == "text/plain" and len(pairs) == 50_000


# ---------------------------------------------------------------- body codecs

def test_base64_body_ignores_what_is_not_base64() -> None:
    assert decode_body(b"aGVs\r\nbG8=\r\n", "base64") == (b"hello", None)
    assert decode_body(b"aG*V s\tbG\x00 8=", "base64") == (b"hello", None)
    content, problem = decode_body(b"aGVsbG8=\r\n-- \r\nfooter\r\n", "base64")
    assert content == b"hello" and problem is not None and "padding" in problem


@pytest.mark.parametrize("data, expected", [
    (b"a=3Db\r\n", b"a=b\r\n"),
    (b"trailing   \r\nnext\t\n", b"trailing\r\nnext\n"),
    (b"end  ", b"end"),
    (b"soft=\r\nbreak", b"softbreak"),
    (b"no blanks at line ends", b"no blanks at line ends"),
])
def test_quoted_printable_body(data: bytes, expected: bytes) -> None:
    assert decode_body(data, "quoted-printable") == (expected, None)


def test_normalizer_passes_crlf_data_through_uncopied() -> None:
    block = b"line one\r\nline two\r\n" * 1000
    normalizer = LineBreakNormalizer()
    assert normalizer.feed(block) is block
    assert LineBreakNormalizer().feed(b"a\nb\r\n") == b"a\r\nb\r\n"
    assert LineBreakNormalizer().feed(b"a\n\rb") == b"a\r\n\r\nb"


def test_normalizer_matches_replace_on_random_chunks() -> None:
    rnd = random.Random(2045)
    for _ in range(3000):
        data = bytes(rnd.choice(b"a\r\n") for _ in range(rnd.randrange(20)))
        cuts = sorted(rnd.sample(range(len(data) + 1), min(3, len(data) + 1)))
        normalizer = LineBreakNormalizer()
        out, prev = b"", 0
        for cut in cuts + [len(data)]:
            out += normalizer.feed(data[prev:cut])
            prev = cut
        out += normalizer.flush()
        assert out == data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def test_all_crlf() -> None:
    assert _codecs._all_crlf(b"a\r\nb\r\n") and _codecs._all_crlf(b"plain")
    assert not _codecs._all_crlf(b"a\nb\r") and not _codecs._all_crlf(b"a\n\rb")
