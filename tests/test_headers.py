"""Header output: injection refused, RFC 2047 only where needed, folding."""

import email
import email.policy
import re

import pytest
from hypothesis import given

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
