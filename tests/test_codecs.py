"""RFC 2047 words, RFC 2231 parameters, and the streaming body encoders."""

import base64
import binascii
import email
import email.policy
import re

import pytest
from hypothesis import given, strategies as st

from mimecompose import MimeError, field_decode, word_decode, word_encode
from mimecompose._codecs import (Base64Encoder, LineBreakNormalizer, QuotedPrintableEncoder,
                                 decode_body, decode_rfc2231, encode_rfc2231, mime_charset)


# ---------------------------------------------------------------- RFC 2047: tcllib's vectors

def test_word_encode_q_vector():
    assert word_encode("iso8859-1", "quoted-printable", "Test de contrôle effectué") == \
        "=?ISO-8859-1?Q?Test_de_contr=F4le_effectu=E9?="


def test_word_encode_b_vector():
    assert word_encode("iso8859-1", "base64", "Test de contrôle effectué") == \
        "=?ISO-8859-1?B?VGVzdCBkZSBjb250cvRsZSBlZmZlY3R16Q==?="


def test_field_decode_vector():
    assert field_decode("=?ISO-8859-1?Q?Patrik_F=E4ltstr=F6m?= <paf@nada.kth.se>") == \
        "Patrik Fältström <paf@nada.kth.se>"


def test_adjacent_words_join_without_whitespace():
    assert field_decode("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)") == "(ab)"
    assert field_decode("=?ISO-8859-1?Q?a?=\r\n =?ISO-8859-1?Q?b?=") == "ab"
    # white space between a word and plain text is kept
    assert field_decode("=?ISO-8859-1?Q?a?= b") == "a b"


def test_word_decode_names_method_and_charset():
    assert word_decode("=?ISO-8859-1?Q?a_b?=") == ("iso-8859-1", "quoted-printable", "a b")
    assert word_decode("=?utf-8?b?w6k=?=") == ("utf-8", "base64", "é")
    assert word_decode("=?utf-8*en?q?x?=") == ("utf-8", "quoted-printable", "x")


def test_word_decode_rejects_non_words():
    for bad in ["plain", "=?utf-8?x?abc?=", "=?no-such-charset?q?a?="]:
        with pytest.raises(MimeError):
            word_decode(bad)


def test_split_character_across_words_is_rejoined():
    data = "é".encode()
    words = f"=?utf-8?b?{base64.b64encode(data[:1]).decode()}?= =?utf-8?b?{base64.b64encode(data[1:]).decode()}?="
    assert field_decode(words) == "é"


def test_undecodable_word_left_alone():
    assert field_decode("=?bogus-cs?q?x?= y") == "=?bogus-cs?q?x?= y"


def test_word_encode_errors():
    with pytest.raises(MimeError):
        word_encode("utf-8", "x-uu", "a")
    with pytest.raises(MimeError):
        word_encode("no-such-charset", "q", "a")
    with pytest.raises(MimeError):
        word_encode("us-ascii", "q", "é")
    with pytest.raises(MimeError):
        word_encode("utf-8", "b", "é", maxlength=12)


@given(st.text(), st.sampled_from(["q", "b", "quoted-printable", "base64"]),
       st.sampled_from(["utf-8", "iso-2022-jp", "utf-16"]), st.integers(36, 100))
def test_word_encode_round_trip(text, method, charset, maxlength):
    if charset == "iso-2022-jp":
        # ISO-2022-JP carries JIS text; ESC and other controls are not text in it
        text = "".join(c for c in text if c.isprintable())
        try:
            text.encode("iso2022_jp")
        except UnicodeEncodeError:
            return
    words = word_encode(charset, method, text, maxlength)
    assert all(len(w) <= min(maxlength, 75) for w in words.split(" "))
    assert field_decode(words) == text


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_encoded_words_read_by_email_package(text):
    words = word_encode("utf-8", "q", text) if text else ""
    if not text:
        return
    msg = email.message_from_bytes(b"Subject: " + words.encode() + b"\r\n\r\n", policy=email.policy.default)
    assert msg["Subject"] == text


def test_mime_charset_names():
    assert mime_charset("iso8859-1") == "ISO-8859-1"
    assert mime_charset("latin-1") == "ISO-8859-1"
    assert mime_charset("cp1252") == "WINDOWS-1252"
    assert mime_charset("utf8") == "UTF-8"
    with pytest.raises(MimeError):
        mime_charset("klingon")
    for odd in ("utf-8\x00", "x" * 100, "\n"):   # found by fuzzing: NUL made codecs.lookup raise
        with pytest.raises(MimeError):
            mime_charset(odd)
    assert field_decode("=?utf\x00-8?q?a?=") == "=?utf\x00-8?q?a?="


# ---------------------------------------------------------------- RFC 2231

def _parse_segments(segments):
    pairs = []
    for seg in segments:
        name, _, value = seg.partition("=")
        quoted = value.startswith('"')
        if quoted:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        pairs.append((name.lower(), value, quoted))
    return pairs


def test_rfc2231_non_ascii():
    assert encode_rfc2231("filename", "Bericht März.pdf") == ["filename*=utf-8''Bericht%20M%C3%A4rz.pdf"]


def test_rfc2231_continuations_never_split_a_character():
    segs = encode_rfc2231("filename", "Ä" * 80)
    assert len(segs) > 1
    for seg in segs[1:]:
        assert not re.match(r"filename\*\d+\*=%[89AB]", seg), seg


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=300))
def test_rfc2231_round_trip(value):
    segments = encode_rfc2231("filename", value)
    assert all(len(s) <= 80 for s in segments)
    assert decode_rfc2231(_parse_segments(segments)) == {"filename": value}


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=200)
       .filter(lambda v: v == v.strip()))
def test_rfc2231_read_by_email_package(value):
    # (the email package strips white space around file names, so none here)
    header = "attachment; " + "; ".join(encode_rfc2231("filename", value, quote=True))
    msg = email.message_from_string(f"Content-Disposition: {header}\n\n", policy=email.policy.default)
    assert msg.get_filename() == value


# ---------------------------------------------------------------- body encoders

def _feed(encoder, data, cuts):
    out = []
    pos = 0
    for cut in sorted(cuts):
        out.append(encoder.feed(data[pos:cut]))
        pos = cut
    out.append(encoder.feed(data[pos:]))
    out.append(encoder.flush())
    return b"".join(out)


chunked = st.binary(max_size=3000).flatmap(
    lambda d: st.tuples(st.just(d), st.lists(st.integers(0, len(d)), max_size=6)))


@given(chunked)
def test_base64_stream(args):
    data, cuts = args
    out = _feed(Base64Encoder(), data, cuts)
    assert base64.b64decode(out) == data
    lines = out.split(b"\r\n")
    assert all(len(line) <= 76 for line in lines)
    assert all(len(line) == 76 for line in lines[:-1])
    assert b"\n" not in out.replace(b"\r\n", b"")


@given(chunked, st.booleans())
def test_quoted_printable_stream(args, text):
    data, cuts = args
    out = _feed(QuotedPrintableEncoder(text=text), data, cuts)
    assert all(len(line) <= 76 for line in out.split(b"\r\n"))
    assert out.replace(b"\r\n", b"").find(b"\n") == -1 and b"\r" not in out.replace(b"\r\n", b"")
    assert all(32 <= b < 127 or b == 9 for b in out.replace(b"\r\n", b""))
    for line in out.split(b"\r\n"):
        assert not line.endswith((b" ", b"\t"))
        assert line != b"."
    decoded = binascii.a2b_qp(out)
    if text:
        canonical = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        assert decoded == canonical
    else:
        assert decoded == data


def test_quoted_printable_long_line_without_newline():
    data = b"=" * 100000 + b"x" * 70000
    out = _feed(QuotedPrintableEncoder(), data, [1, 40000, 99999])
    assert binascii.a2b_qp(out) == data
    assert max(len(line) for line in out.split(b"\r\n")) <= 76


def test_quoted_printable_lone_dot_and_trailing_space():
    # tcllib lost a newline before a lone "." line; we encode the dot instead
    out = _feed(QuotedPrintableEncoder(), b"a.\n.\nb  \n", [])
    assert out == b"a.\r\n=2E\r\nb =20\r\n"


@given(chunked, st.sampled_from([b"\r\n", b"\n"]))
def test_line_break_normalizer(args, newline):
    data, cuts = args
    out = _feed(LineBreakNormalizer(newline), data, cuts)
    expected = re.sub(rb"\r\n|\r|\n", newline, data)
    assert out == expected


def test_decode_body_lenient():
    assert decode_body(b"aGVsbG8=\r\n", "base64") == (b"hello", None)
    data, problem = decode_body(b"aGVsbG8", "base64")
    assert data == b"hello" and problem
    assert decode_body(b"a=3Db=\r\nc  \r\n", "quoted-printable") == (b"a=bc\r\n", None)
    data, problem = decode_body(b"xyz", "x-uuencode")
    assert data == b"xyz" and "unknown" in problem
