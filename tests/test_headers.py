"""Header output: injection refused, RFC 2047 only where needed, folding."""

import email
import email.policy
import re

import pytest
from hypothesis import given, strategies as st

import mimecompose
from mimecompose import HeaderInjectionError, MimeError
from mimecompose import strategies as mst
from mimecompose._headers import format_field


def lines_of(field: bytes):
    assert field.endswith(b"\r\n")
    return field[:-2].split(b"\r\n")


def reparse(name, field: bytes):
    msg = email.message_from_bytes(field + b"\r\n", policy=email.policy.default)
    return str(msg[name])


@pytest.mark.parametrize("value", ["a\r\nBcc: x@y", "a\nb", "a\rb", "a\x00b"])
def test_injection_refused(value):
    part = mimecompose.initialize("text/plain", string="x")
    with pytest.raises(HeaderInjectionError):
        part.setheader("Subject", value)
    with pytest.raises(HeaderInjectionError):
        mimecompose.initialize("text/plain", string="x", header=[("Subject", value)])
    with pytest.raises(HeaderInjectionError):
        mimecompose.initialize("text/plain", string="x", filename=value)
    with pytest.raises(HeaderInjectionError):
        mimecompose.initialize("text/plain", string="x", params={"format": value})


@pytest.mark.parametrize("name", ["Sub ject", "Subject:", "", "Sübject", "X\r\nY"])
def test_bad_names_refused(name):
    part = mimecompose.initialize("text/plain", string="x")
    with pytest.raises(MimeError):
        part.setheader(name, "v")


def test_ascii_short_untouched():
    assert format_field("Subject", "Hello world") == b"Subject: Hello world\r\n"


def test_only_non_ascii_words_encoded():
    out = format_field("Subject", "Invoice für März 2026")
    assert out.startswith(b"Subject: Invoice =?UTF-8?")
    assert out.rstrip().endswith(b" 2026")
    assert reparse("Subject", out) == "Invoice für März 2026"


def test_text_that_looks_encoded_is_protected():
    out = format_field("Subject", "literally =?utf-8?q?x?= here")
    assert reparse("Subject", out) == "literally =?utf-8?q?x?= here"


def test_folding_at_78_without_splitting_words():
    value = " ".join(["word%02d" % i for i in range(40)])
    out = format_field("Subject", value)
    for line in lines_of(out):
        assert len(line) <= 78
    assert reparse("Subject", out) == value


def test_long_non_ascii_folds_between_encoded_words():
    value = "Überweisung " * 20
    out = format_field("Subject", value.strip())
    for line in lines_of(out):
        assert len(line) <= 78
        # no encoded word split across lines
        assert len(re.findall(rb"=\?UTF-8\?[QB]\?[^?]*\?=", line)) == line.count(b"=?UTF-8?")
    assert reparse("Subject", out) == value.strip()


def test_address_header_encodes_only_display_names():
    out = format_field("To", "Jörg Müller <jörg@example.com>, \"Doe, John\" <john@example.com>")
    assert "<jörg@example.com>".encode() in out  # address left alone (RFC 6532)
    assert b'"Doe, John" <john@example.com>' in out
    assert b"=?UTF-8?" in out
    # (read as text: the email package's bytes parser mangles UTF-8 header bytes)
    msg = email.message_from_string(out.decode() + "\r\n", policy=email.policy.default)
    names = [(a.display_name, a.addr_spec) for a in msg["To"].addresses]
    assert names == [("Jörg Müller", "jörg@example.com"), ("Doe, John", "john@example.com")]


def test_address_folding_between_addresses():
    value = ", ".join(f"Person Number{i} <person{i}@example.com>" for i in range(12))
    out = format_field("Cc", value)
    for line in lines_of(out):
        assert len(line) <= 78
    msg = email.message_from_bytes(out + b"\r\n", policy=email.policy.default)
    assert [a.addr_spec for a in msg["Cc"].addresses] == [f"person{i}@example.com" for i in range(12)]


def test_group_kept():
    out = format_field("To", "Team Ä: a@x.org, b@y.org;")
    msg = email.message_from_bytes(out + b"\r\n", policy=email.policy.default)
    [group] = msg["To"].groups
    assert group.display_name == "Team Ä"
    assert [a.addr_spec for a in group.addresses] == ["a@x.org", "b@y.org"]


def test_unparseable_address_falls_back_to_text():
    out = format_field("To", "not an address ü")
    assert reparse("To", out).replace('"', "") in ("not an address ü",)


@given(mst.header_texts())
def test_unstructured_round_trip_through_email(value):
    out = format_field("Subject", value)
    for line in lines_of(out):
        assert len(line) <= 998
    assert b"\r" not in out[:-2].replace(b"\r\n", b"") and b"\n" not in out[:-2].replace(b"\r\n", b"")
    assert mimecompose.field_decode(" ".join(
        part.decode().strip() for part in out[len("Subject:"):].split(b"\r\n") if part)) == value.strip() \
        or reparse("Subject", out) == value.strip()


@given(mst.address_lists(ascii_only=False))
def test_address_lists_survive_formatting(pair):
    value, expected = pair
    out = format_field("To", value)
    text = out.decode("utf-8")[len("To:"):].replace("\r\n", "")
    got = [a.address for a in mimecompose.parseaddress(mimecompose.field_decode(text)) if a.address] \
        if "=?" not in text else [a.address for a in mimecompose.parseaddress(text) if a.address]
    assert got == expected
    assert all(len(line) <= 998 for line in lines_of(out))


def test_getheader_decodes_and_lists_every_value():
    part = mimecompose.initialize("text/plain", string="x", header=[("Received", "a"), ("Received", "b")])
    part.setheader("Subject", "Grüße")
    assert part.getheader("received") == ["a", "b"]
    assert part.getheader("Subject") == ["Grüße"]
    assert part.getheader("X-Missing") == []
    parsed = mimecompose.initialize(string=part.buildmessage())
    assert parsed.getheader("SUBJECT") == ["Grüße"]


# ---------------------------------------------------------------- decoded-value injection (issue 11)

import base64  # noqa: E402

from hypothesis import settings, strategies as st  # noqa: E402

from mimecompose import initialize  # noqa: E402

# text that becomes dangerous only once decoded: line breaks, NUL, other C0
# controls, and the specials that end a phrase and start an address
_DECODED = st.text(st.sampled_from(list("aZ9 _.:;,<>@\"()\\=?\t\r\n\x00\x01\x0b\x0c\x1b\x7féЖ€")), max_size=24)
_RAW = st.text(st.sampled_from(list("aZ9 .:;,<>@\"()\\=?\t\x01\x1b\x7fé")), max_size=12)


def _word(text: str, method: str) -> str:
    data = text.encode("utf-8")
    if method == "q":
        return "=?utf-8?q?" + "".join(f"={b:02X}" for b in data) + "?="
    return "=?utf-8?b?" + base64.b64encode(data).decode() + "?="


_WORDS = st.builds(_word, _DECODED, st.sampled_from("qb"))
_SHAPES = st.sampled_from([
    "{0}", "{0} <a@example.com>", "{0}: b@example.com;", "{0}:;", "a@example.com ({0})",
    '"{0}" <c@example.org>', "{0} {1} <a@example.com>, {1}: b@example.org, c@example.net;",
    "{1} {0}", "x {0} y {1} z",
])
_VALUES = st.builds(lambda shape, a, b: shape.format(a, b), _SHAPES,
                    st.one_of(_WORDS, _RAW), st.one_of(_WORDS, _RAW))


def _written_fields(data: bytes) -> list[bytes]:
    """The field names of a serialised header block, checking every line."""
    head = data.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    for line in lines:
        assert b"\r" not in line and b"\n" not in line and b"\x00" not in line
        assert not re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", line), line
    return [line.split(b":", 1)[0] for line in lines if line[:1] not in (b" ", b"\t")]


def _addresses(text: str) -> list[str]:
    return [a.address for a in mimecompose.parseaddress(text) if a.address]


def test_issue_example_group_name_is_encoded_not_written_raw():
    evil = "=?utf-8?q?Team=0AFrom=3A_ceo=40bank=2Eexample=0AX-Ignore=3A?=: bob@example.com;"
    for make in (lambda: initialize("text/plain", string="x", header=[("To", evil)]),
                 lambda: mimecompose.compose("x", header=[("To", evil)])):
        data = make().buildmessage()
        assert b"\nFrom:" not in data and b"\nX-Ignore" not in data
        assert _written_fields(data)[0] == b"To"
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert msg.get_all("From") is None
        [group] = msg["To"].groups
        assert [a.addr_spec for a in group.addresses] == ["bob@example.com"]
    part = initialize("text/plain", string="x")
    part.setheader("To", evil)
    assert _written_fields(part.buildmessage()) == [b"To", b"MIME-Version", b"Content-Type"]


def test_decoded_specials_cannot_add_a_recipient():
    # the group name decodes to "Team: evil@x.org," -- written raw, a reader
    # would see evil@x.org as a member
    value = "=?utf-8?q?Team=3A_evil=40x=2Eorg=2C?=: bob@example.com;"
    out = format_field("To", value)
    assert _addresses(out.decode()[3:].replace("\r\n", "")) == ["bob@example.com"]
    msg = email.message_from_bytes(out + b"\r\n", policy=email.policy.default)
    assert [a.addr_spec for a in msg["To"].addresses] == ["bob@example.com"]


@pytest.mark.parametrize("value", [
    "=?utf-8?q?a=0Db?= <x@example.com>",             # display name, written as read: encoded
    "=?utf-8?q?a=0A=C3=A4?= <x@example.com>",        # non-ASCII: re-encoded from the decoded text
    '"a\x1bb" <x@example.com>',                       # ESC in a quoted display name
    "x@example.com (a\x01b)",                         # control in a comment
    "x@example.com (=?utf-8?q?=0A=C3=A4?=)",
    '"Team\x7f": x@example.com;',                     # DEL in a quoted group name
])
def test_controls_in_names_and_comments_are_encoded(value):
    out = format_field("To", value)
    _written_fields(out + b"\r\n")
    assert _addresses(out.decode()[3:].replace("\r\n", "")) == ["x@example.com"]


@pytest.mark.parametrize("value", ['"a\x1b"@example.com', "x@[1.2.3.\x01]"])
def test_controls_that_cannot_be_encoded_are_refused_when_set(value):
    part = initialize("text/plain", string="x")
    with pytest.raises(HeaderInjectionError):
        part.setheader("To", value)
    with pytest.raises(HeaderInjectionError):
        initialize("text/plain", string="x", header=[("Cc", value)])
    with pytest.raises(HeaderInjectionError):
        part.setheader("Content-Disposition", f'attachment; filename="{value}"')


def test_filename_controls_are_encoded_in_both_parameters():
    part = initialize("application/octet-stream", string=b"x", filename="a\x1bb\x0b.txt")
    data = part.buildmessage()
    _written_fields(data)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_filename() == "a\x1bb\x0b.txt"
    assert initialize(string=data).getproperty("params")["name"] == "a\x1bb\x0b.txt"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["To", "Cc", "From", "Reply-To", "Resent-To", "Subject", "Comments",
                        "X-Note", "Content-Disposition", "Content-ID"]), _VALUES)
def test_no_value_that_passes_setheader_writes_a_second_field(name, value):
    part = initialize("text/plain", string="x")
    try:
        part.setheader(name, value)
    except HeaderInjectionError:
        return   # refused (a control where no encoded word can stand): fine
    data = part.buildmessage()
    expected = [name.encode(), b"MIME-Version", b"Content-Type"]
    assert _written_fields(data) == expected
    assert [n for n, _v in initialize(string=data).getheader()] == [n.decode() for n in expected]
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    assert [k.lower() for k in msg.keys()] == [n.decode().lower() for n in expected]
    if name.lower() in mimecompose._headers.ADDRESS_FIELDS and not any(
            a.error for a in mimecompose.parseaddress(value)):
        written = data.split(b"\r\n\r\n")[0].split(b"\r\nMIME-Version")[0].decode()
        assert _addresses(written[len(name) + 1:].replace("\r\n", "")) == _addresses(value)


@settings(max_examples=200, deadline=None)
@given(_VALUES, st.sampled_from(["params", "filename", "compose"]))
def test_no_parameter_or_filename_writes_a_second_field(value, how):
    try:
        if how == "params":
            part = initialize("text/plain", string="x", params={"format": value})
        elif how == "filename":
            part = initialize("application/octet-stream", string=b"x", filename=value)
        else:
            part = mimecompose.compose("x", attachments=[(value or "f", b"data")])
    except HeaderInjectionError:
        return
    data = part.buildmessage()
    names = _written_fields(data)
    assert names.count(b"Content-Type") == 1 and len(names) == len(set(names))
    parsed = initialize(string=data)
    leaf = parsed if how != "compose" else parsed.getproperty("parts")[1]
    params = leaf.getproperty("params")
    if "=?" not in value:   # (readers decode encoded words in quoted parameter values)
        assert params["format" if how == "params" else "name"] == (value or "f" if how == "compose" else value)


@pytest.mark.parametrize("name", ["Subject", "To", "Content-Type", "X-Long"])
@pytest.mark.parametrize("value", ["\ud800", "caf\u00e9 \udcff", "x" * 100 + "\ud800", "a@b, \ud800 <c@d>",
                                   "text/plain; name=\ud800"])
def test_a_lone_surrogate_is_a_mime_error_on_every_path(name, value):
    """Text that cannot be written as UTF-8 is refused with MimeError,
    whichever encoder (address, parameter, RFC 2047 word) meets it first
    -- never the codec's own UnicodeEncodeError."""
    with pytest.raises(MimeError, match="surrogates not allowed"):
        format_field(name, value)
    if name == "Content-Type":   # set through canonical= and params=, not setheader
        return
    part = mimecompose.initialize("text/plain", string="x")
    with pytest.raises(MimeError, match="surrogates not allowed"):
        part.setheader(name, value)
        part.buildmessage()


@given(st.sampled_from(["Subject", "To", "Content-Disposition", "X-Any"]), st.text(max_size=200))
def test_format_field_raises_only_mime_errors(name, value):
    try:
        field = format_field(name, value)
    except MimeError:
        return
    assert field.endswith(b"\r\n") and b"\n" not in field[:-2].replace(b"\r\n ", b"").replace(b"\r\n\t", b"")
