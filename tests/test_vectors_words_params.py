"""Other projects' RFC 2047 and RFC 2231 test vectors, run against our decoders.

The vectors live in the shared folder beside the repository (``../shared/vectors``,
see its README): ``word_decode``, ``field_decode``, ``word_encode`` and ``params``.
Every vector must agree with what we do, except the ones in DELIBERATE: there
the source follows its own policy and we follow the RFC (or the RFC leaves the
case open and we document our choice). Each entry is keyed by the vector's input
and says why in one line. An entry whose disagreement has gone away fails too,
so the list stays true. Run as a script, this file prints the counts and every
disagreement not in the list.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

import mimecompose
from mimecompose import MimeError, field_decode, word_decode, word_encode

import vectors

KINDS = ("word_decode", "field_decode", "word_encode", "params")
_TOKEN = r"[!#$%&'*+\-.0-9A-Za-z^_`{|}~]+"
_MEDIA_TYPE = re.compile(f"{_TOKEN}(?:/{_TOKEN})?")   # Go's media type: a token, or type/subtype


_text = vectors.text   # a vector's string (invalid UTF-8 as surrogate escapes)
VECTORS = vectors.load(KINDS)


# ---------------------------------------------------------------- running one vector

def _walk(part: mimecompose.Part) -> list[mimecompose.Part]:
    """Parts in the email package's walk() order (depth first, containers first)."""
    out = [part]
    for child in part.getproperty().get("parts", ()):
        out.extend(_walk(child))
    return out


def _params_of(value: str) -> tuple[dict[str, str], list[str]]:
    """Parameters of a field value, read by moving it into a Content-Type (README)."""
    raw = b"Content-Type: " + value.encode("utf-8", "surrogateescape") + b"\r\n\r\n"
    part = mimecompose.initialize(string=raw)
    return part.getproperty("params"), [d.kind for d in part.defects]


def _field_value(part: mimecompose.Part, field: str) -> str | None:
    values = part.getheader(field, decode=False)
    return values[0] if values else None


def _message_part(vector: dict[str, Any]) -> mimecompose.Part:
    raw = vector["input"]["raw_message"].encode("utf-8", "surrogateescape")
    index: int = vector["input"]["part"]
    return _walk(mimecompose.initialize(string=raw))[index]


def key(vector: dict[str, Any]) -> str:
    """What DELIBERATE is keyed by: the vector's input (for a whole message, the field read)."""
    kind, given = vector["kind"], vector["input"]
    if kind in ("word_decode", "field_decode"):
        return f"{kind} {_text(given)}"
    if kind == "word_encode":
        return f"{kind} {given['charset']}|{given['method']}|{_text(given['text'])}"
    if "header" in given:
        return f"{kind} {given.get('field', 'Content-Type')}: {given['header']}"
    value = _field_value(_message_part(vector), given["field"])
    if "param" in vector["expect"]:
        return f"{kind} {given['field']}: {value} | {vector['expect']['param']}"
    return f"{kind} {given['field']}: {value}"


def check(vector: dict[str, Any]) -> str | None:
    """None when we agree with the vector, else what differs."""
    kind, given, expect = vector["kind"], vector["input"], vector["expect"]
    if kind == "word_decode":
        try:
            charset, _method, text = word_decode(_text(given))
        except MimeError as exc:
            return None if not expect["valid"] else f"MimeError {exc}"
        if not expect["valid"]:
            return f"decoded to {text!r}, source says invalid"
        if text != expect["text"]:
            return f"text {text!r}, source {expect['text']!r}"
        if "charset" in expect and charset != expect["charset"].lower():
            return f"charset {charset!r}, source {expect['charset']!r}"
        return None
    if kind == "field_decode":
        text = field_decode(_text(given))
        return None if text == expect["text"] else f"{text!r}, source {expect['text']!r}"
    if kind == "word_encode":
        text = _text(given["text"])
        out = word_encode(given["charset"], given["method"], text)
        limit = expect.get("max_word", 75)
        if any(len(w) > limit for w in out.split(" ")):
            return f"a word over {limit} characters: {out!r}"
        if field_decode(out) != text:
            return f"{out!r} decodes to {field_decode(out)!r}"
        if expect.get("source_output") == "" and out != "":
            return f"{out!r} for empty text"
        return None
    # params
    if "header" in given:
        params, defects = _params_of(given["header"])
    else:
        part = _message_part(vector)
        field = given["field"].lower()
        if field == "content-type":
            params, defects = part.getproperty("params"), [d.kind for d in part.defects]
        else:
            value = _field_value(part, field)
            params, defects = _params_of(value) if value is not None else ({}, [])
            fallback = expect.get("fallback_param")
            if fallback and expect["param"] not in params and fallback in part.getproperty("params"):
                params = {expect["param"]: part.getproperty("params")[fallback]}
    if expect.get("valid") is False:
        # the source refuses the field: we read it leniently and record why it is
        # wrong, in the parameters unless the media type itself is what is wrong
        main = given.get("header", "").split(";", 1)[0].strip()
        wanted = "invalid-parameter" if _MEDIA_TYPE.fullmatch(main) else "invalid-content-type"
        return None if wanted in defects else f"no {wanted} defect; params {params!r}"
    if "params" in expect:
        if params != expect["params"]:
            return f"{params!r}, source {expect['params']!r}"
        if "order" in expect and list(params) != expect["order"]:
            return f"order {list(params)!r}, source {expect['order']!r}"
        return None
    got = params.get(expect["param"])
    want = expect["value"]
    if expect.get("lower") and got is not None:
        got = got.lower()
    return None if got == want else f"{expect['param']}={got!r}, source {want!r}"


def not_applicable(vector: dict[str, Any]) -> str | None:
    """Why a vector cannot be run at all (README: n/a), or None."""
    if vector["kind"] == "word_encode" and isinstance(vector["input"]["text"], dict):
        return "text is raw non-UTF-8 bytes; word_encode takes text"
    return None


# ---------------------------------------------------------------- deliberate disagreements

DELIBERATE: dict[str, str] = {
    # angus:6
    'params Content-Type: application/x-stuff;\n\ttitle*0*=us-ascii\'en\'This%20is%20even%20more%20;\n\ttitle*1*=%2A%2A%2Afun%2A%2A%2A;\n\ttitle*3="isn\'t it!"':
        'RFC 2231 3 forbids gaps but leaves reading them open: we join the sections there are, with a defect',
    # angus:7
    'params Content-Type: application/x-stuff;\n\ttitle*0*=us-ascii\'en\'This%20is%20even%20more%20;\n\ttitle*1*=%2A%2A%2Afun%2A%2A%2A;\n\ttitle*3*="isn\'t it!"':
        'RFC 2231 3 forbids gaps but leaves reading them open: we join the sections there are, with a defect',
    # angus:8
    "params Content-Type: application/x-stuff; title*3*=us-ascii'en'isn't%20it!":
        'RFC 2231 3: sections start at 0; we still join what is there under the base name, with a defect',
    # angus:9
    "params Content-Type: application/x-stuff; title*3*=unknown'en'isn't%20it!":
        'RFC 2231 3: sections start at 0; we still join what is there under the base name, with a defect',
    # cpython:7
    'params x-header: foo=§ne; b§r=two; baz=three':
        "raw 8-bit text keeps the character the header's decoding gave it; CPython turns it into U+FFFD",
    # cpython:8
    'params x-header: foo=§ne; b§r=two; baz=three | foo':
        "the field's first item is its main value, not a parameter (RFC 2045 5.1; RFC 3464 2.2 for DSN fields)",
    # cpython:9
    'params x-header: foo=§ne; b§r=two; baz=three | b§r':
        "raw 8-bit text keeps the character the header's decoding gave it; CPython turns it into U+FFFD",
    # cpython:10
    "params content-type: text/plain; charset=us-ascii; title*=us-ascii'en'This%20is%20not%20f§n | title":
        "raw 8-bit text keeps the character the header's decoding gave it; CPython turns it into U+FFFD",
    # cpython:11
    'params content-type: text/plain; charset=ascii | charset':
        "the field says charset=ascii; CPython's answer comes from its own charset lookup, not the field",
    # cpython:58
    'params reporting-mta: None | dns':
        "the field's first item is its main value, not a parameter (RFC 2045 5.1; RFC 3464 2.2 for DSN fields)",
    # cpython:60
    'params original-recipient: None':
        "the field's first item is its main value, not a parameter (RFC 2045 5.1; RFC 3464 2.2 for DSN fields)",
    # cpython:61
    'params final-recipient: None | rfc822':
        "the field's first item is its main value, not a parameter (RFC 2045 5.1; RFC 3464 2.2 for DSN fields)",
    # cpython:63
    'params content-type: blarg; baz; boo | baz':
        'RFC 2045 5.1: parameter := attribute "=" value; a bare word is no parameter (dropped, with a defect)',
    # cpython:64
    'params content-disposition: blarg; filename | filename':
        'RFC 2045 5.1: parameter := attribute "=" value; a bare word is no parameter (dropped, with a defect)',
    # cpython:93
    'params x-header: foo; bar="one"; baz=two | foo':
        "the field's first item is its main value, not a parameter (RFC 2045 5.1; RFC 3464 2.2 for DSN fields)",
    # cpython:192
    "params content-type: text/plain; charset*=ascii''utf-8%E2%80%9D | charset":
        "params hold the charset as written; CPython's get_content_charset drops a non-ASCII name",
    # cpython:195
    "params content-type: text/plain; charset*=bogus''utf-8%E2%80%9D | charset":
        "params hold the charset as written; CPython's get_content_charset drops an unknown name",
    # cpython:207
    'params content-disposition: inline;\tfilename*0="\'\'This%20is%20even%20more%20";\tfilename*1*="%2A%2A%2Afun%2A%2A%2A%20";\tfilename*2="is it not.pdf" | filename':
        "RFC 2231 4.1: only an extended (*0*) first section carries charset'language'; *0= is literal text",
    # cpython:213
    'params content-type: application/x-foo;\tname*0="us-ascii\'en-us\'My";\tname*1*=" Document";\tname*2*=" For You" | name':
        "RFC 2231 4.1: only an extended (*0*) first section carries charset'language'; *0= is literal text",
    # cpython:318
    'params Content-Type: blarg; baz; boo':
        'RFC 2045 5.1: parameter := attribute "=" value; a bare word is no parameter (dropped, with a defect)',
    # cpython:329
    'params Content-Type: foo\udca7/bar; b\udca7r=two; baz=thr\udca7e':
        "raw 8-bit text keeps the character the header's decoding gave it; CPython turns it into U+FFFD",
    # cpython:330
    "params Content-Type: text/plain; charset=us-ascii; title*=us-ascii'en'This%20is%20not%20f\udca7n":
        "raw 8-bit text keeps the character the header's decoding gave it; CPython turns it into U+FFFD",
    # cpython:349
    'params Content-Type: application/x-foo;\tname*0=us-ascii\'en-us\'My;\tname*1*=" Document";\tname*2*=" For You"':
        "RFC 2231 4.1: only an extended (*0*) first section carries charset'language'; *0= is literal text",
    # cpython:403
    'word_decode =?unknown-8bit?q?=A4?=':
        'unknown charset: word_decode raises MimeError, field_decode shows the word as written (RFC 2047 6.2)',
    # cpython:406
    'word_decode =?unknown-8bit?q?=C2?=':
        'unknown charset: word_decode raises MimeError, field_decode shows the word as written (RFC 2047 6.2)',
    # cpython:447
    'word_decode =?us-ascii?q?this is a test?=':
        'RFC 2047 2: an encoded word holds no white space; this one is malformed and left as written',
    # cpython:485
    'word_decode =?utf-8?b?abcde?=':
        'RFC 2047 6.3: an impossible base64 length; we drop the stray character, CPython shows the text',
    # cpython:495
    'word_decode =?us-ascii?q?=20\udcacfoo?=':
        "we return U+FFFD for an octet the charset cannot read, never a lone surrogate (CPython's round-trip policy)",
    # cpython:501
    'word_decode =?utf-8\udce2\udc80\udc9d?q?foo=ACbar?=':
        'unknown charset: word_decode raises MimeError, field_decode shows the word as written (RFC 2047 6.2)',
    # cpython:506
    'word_decode =?unknown-8bit?q?foo=ACbar?=':
        'unknown charset: word_decode raises MimeError, field_decode shows the word as written (RFC 2047 6.2)',
    # cpython:507
    'word_decode =?foobar?q?foo=ACbar?=':
        'unknown charset: word_decode raises MimeError, field_decode shows the word as written (RFC 2047 6.2)',
    # go:TestDecodeWord#7
    'word_decode =?UTF-8?Q?A=B?=':
        'RFC 2047 6.3 leaves malformed words to the reader: we decode them, keeping an "=" that starts no escape',
    # go:TestDecodeWord#8
    'word_decode =?UTF-8?Q?=A?=':
        'RFC 2047 6.3 leaves malformed words to the reader: we decode them, keeping an "=" that starts no escape',
    # go:TestDecodeHeader#8
    'field_decode =?UTF-8?Q?A=B?=':
        'RFC 2047 6.3 leaves malformed words to the reader: we decode them, keeping an "=" that starts no escape',
    # go:TestDecodeHeader#9
    'field_decode =?UTF-8?Q?=A?=':
        'RFC 2047 6.3 leaves malformed words to the reader: we decode them, keeping an "=" that starts no escape',
    # go:TestCharsetDecoder#3
    'field_decode =?utf-8?Q?=?=':
        'RFC 2047 6.3 leaves malformed words to the reader: we decode them, keeping an "=" that starts no escape',
    # go:TestCharsetDecoder#4
    'field_decode =?utf-8?Q?=A?=':
        'RFC 2047 6.3 leaves malformed words to the reader: we decode them, keeping an "=" that starts no escape',
    # go:TestParseMediaType#15
    'params Content-Type: attachment; filename="f\\oo.html"':
        'RFC 822 3.4.4 (RFC 2045 5.1): a backslash in a quoted string quotes the next character; Go keeps it',
    # go:TestParseMediaType#28
    'params Content-Type: attachment; filename="foo-%\\41.html"':
        'RFC 822 3.4.4 (RFC 2045 5.1): a backslash in a quoted string quotes the next character; Go keeps it',
    # go:TestParseMediaType#55
    "params Content-Type: attachment; filename*=''foo-%c3%a4-%e2%82%ac.html":
        'RFC 2231 4: the charset may be empty; we read UTF-8 (Go drops the parameter)',
    # go:TestParseMediaType#60
    'params Content-Type: attachment; filename*="foo%20bar.html"':
        'read leniently, with an invalid-parameter defect, as CPython reads it; Go drops the parameter',
    # go:TestParseMediaType#61
    "params Content-Type: attachment; filename*=UTF-8'foo-%c3%a4.html":
        'read leniently, with an invalid-parameter defect, as CPython reads it; Go drops the parameter',
    # go:TestParseMediaType#62
    "params Content-Type: attachment; filename*=UTF-8''foo%":
        'read leniently, with an invalid-parameter defect, as CPython reads it; Go drops the parameter',
    # go:TestParseMediaType#63
    "params Content-Type: attachment; filename*=UTF-8''f%oo.html":
        'read leniently, with an invalid-parameter defect, as CPython reads it; Go drops the parameter',
    # go:TestParseMediaType#68
    'params Content-Type: attachment; filename*0="foo"; filename*2="bar"':
        'RFC 2231 3 forbids gaps but leaves reading them open: we join the sections there are, with a defect',
    # go:TestParseMediaType#69
    'params Content-Type: attachment; filename*1="foo."; filename*2="html"':
        'RFC 2231 3: sections start at 0; we still join what is there under the base name, with a defect',
    # go:TestParseMediaType#73
    "params Content-Type: attachment; filename*0*=ISO-8859-15''euro-sign%3d%a4; filename*=ISO-8859-1''currency-sign%3d%a4":
        'two section 0s (name* and name*0*): the first is used, with a defect; Go drops both',
    # go:TestParseMediaType#77
    'params Content-Type: form-data; name="file"; filename="C:\\dev\\go\\robots.txt"':
        'RFC 822 3.4.4 (RFC 2045 5.1): a backslash in a quoted string quotes the next character; Go keeps it',
    # go:TestParseMediaType#78
    'params Content-Type: form-data; name="file"; filename="C:\\新建文件夹\\中文第二次测试.mp4"':
        'RFC 822 3.4.4 (RFC 2045 5.1): a backslash in a quoted string quotes the next character; Go keeps it',
    # libmime:11
    'word_decode =?UTF-8?Q?= C3=B5?=':
        'RFC 2047 2: an encoded word holds no white space; this one is malformed and left as written',
    # libmime:12
    'word_decode =?UTF-8?Q?=C3=\n B5?=':
        'RFC 2047 2: an encoded word holds no white space; this one is malformed and left as written',
    # libmime:25
    'field_decode =?utf-8?Q?=D0=B3=D0=BE=D1=81_?==?utf-8?Q?(=D0=BF=D0=B5=D1=80=D0=B5=\r\n D0=B4=D0=B0=D0=B9_=D0=BA=D0=BE=D0?=\r\n =?utf-8?Q?=BC=D1=83_=D0=BD=D0=B0=D0=B4=D0=BE_=D1=82=D0=BE=D0=B6=D0=B5?=':
        'RFC 2047 2: an encoded word holds no white space; this one is malformed and left as written',
    # libmime:35
    'params Content-Type: i=1; mx.microsoft.com 1; spf=fail (sender ip is 52.138.216.130) smtp.rcpttodomain=recipient.com smtp.mailfrom=sender.com; dmarc=fail (p=reject sp=reject pct=100) action=oreject header.from=sender.com; dkim=none (message not signed); arc=none (0)':
        'not a parameter list (an Authentication-Results value); comments are removed per RFC 2045 5.1',
    # libmime:37
    'params Content-Type: text/plain; charset=utf-8; flag':
        'RFC 2045 5.1: parameter := attribute "=" value; a bare word is no parameter (dropped, with a defect)',
}


@pytest.mark.skipif(not VECTORS, reason="shared vectors not found beside the repository (../shared/vectors)")
@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["id"])
def test_vector(vector: dict[str, Any]) -> None:
    reason = not_applicable(vector)
    if reason:
        pytest.skip(reason)
    difference = check(vector)
    k = key(vector)
    if k in DELIBERATE:
        assert difference is not None, f"{vector['id']} now agrees: remove it from DELIBERATE"
    else:
        assert difference is None, f"{vector['id']} {k!r}: {difference}"


@pytest.mark.skipif(not VECTORS, reason="shared vectors not found beside the repository (../shared/vectors)")
def test_every_deliberate_entry_names_a_vector() -> None:
    keys = {key(v) for v in VECTORS}
    assert set(DELIBERATE) <= keys


if __name__ == "__main__":
    import collections
    counts: collections.Counter[str] = collections.Counter()
    for v in VECTORS:
        if not_applicable(v):
            counts["n/a"] += 1
            continue
        try:
            diff = check(v)
        except Exception as exc:  # noqa: BLE001 - a report of crashes
            diff = f"CRASH {type(exc).__name__}: {exc}"
            counts["crash"] += 1
        k = key(v)
        if diff is None:
            counts["agree" if k not in DELIBERATE else "deliberate-but-agrees"] += 1
        else:
            counts["deliberate" if k in DELIBERATE else "disagree"] += 1
            if k not in DELIBERATE:
                print(f"{v['id']}: {k!r}\n    {diff}")
    print(dict(counts))
