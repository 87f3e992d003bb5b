"""parseaddress / formataddress: tcllib's examples, RFC 5322 corners, round trips."""

import email.utils

import pytest
from hypothesis import given, strategies as st

from mimecompose import Address, HeaderInjectionError, formataddress, parseaddress
from mimecompose import strategies as mst


def one(text):
    [addr] = parseaddress(text)
    return addr


def test_quoted_phrase_kept_as_written():
    a = one('"Doe, John" <john@example.com>')
    assert (a.address, a.local, a.domain) == ("john@example.com", "john", "example.com")
    assert a.phrase == '"Doe, John"'
    assert a.friendly == "Doe, John"
    assert a.proper == '"Doe, John" <john@example.com>'
    assert a.error is None


def test_comment_gives_friendly():
    a = one("john@example.com (John Doe)")
    assert a.comment == "(John Doe)"
    assert a.friendly == "John Doe"
    assert a.phrase == ""
    assert a.proper == "john@example.com"


def test_group_set_on_every_member():
    members = parseaddress("Team: a@x.org, b@y.org;")
    assert [m.address for m in members] == ["a@x.org", "b@y.org"]
    assert [m.group for m in members] == ["Team", "Team"]


def test_empty_group_yields_one_record():
    [a] = parseaddress("Undisclosed recipients:;")
    assert a.address == "" and a.group == "Undisclosed recipients" and a.error is None


def test_route():
    a = one("<@relay.net:joe@example.com>")
    assert a.route == "@relay.net:" and a.address == "joe@example.com"


def test_obsolete_phrase_with_dot_accepted():
    # tcllib refuses this ("expecting at-sign"); RFC 5322 obs-phrase allows it and real mail has it
    a = one("J. Smith <js@x.org>")
    assert a.error is None and a.friendly == "J. Smith" and a.address == "js@x.org"


def test_encoded_phrase_decoded_in_friendly_only():
    a = one("=?ISO-8859-1?Q?Patrik_F=E4ltstr=F6m?= <paf@nada.kth.se>")
    assert a.phrase == "=?ISO-8859-1?Q?Patrik_F=E4ltstr=F6m?="
    assert a.friendly == "Patrik Fältström"


def test_quoted_local_part_domain_literal_and_idn():
    a, b, c = parseaddress('"john doe"@x.org, x@[192.0.2.1], jörg@bücher.example')
    assert a.local == '"john doe"' and a.friendly == "john doe"
    assert b.domain == "[192.0.2.1]"
    assert (c.local, c.domain) == ("jörg", "bücher.example")


def test_comments_anywhere_and_empty_elements():
    addrs = parseaddress("(lead) a@x.org (trail), , b@y.org,")
    assert [x.address for x in addrs] == ["a@x.org", "b@y.org"]
    assert addrs[0].comment == "(lead) (trail)"


def test_null_path():
    a = one("<>")
    assert a.address == "" and a.error is None


@pytest.mark.parametrize("text,fragment", [
    ("bob", "at-sign"),
    ("A <a@x", "'>'"),
    ('"unterminated', "unterminated"),
    ("a@", "domain"),
    ("a..b@x", "expecting"),
    ("a@x..y", "domain"),
    ("John Doe john@x.org", "expecting at-sign"),
])
def test_errors_reported_not_raised(text, fragment):
    addrs = parseaddress(text)
    assert addrs and addrs[0].error and fragment in addrs[0].error


def test_error_does_not_hide_other_addresses():
    addrs = parseaddress("ok@x.org, broken, fine@y.org")
    assert [a.error is None for a in addrs] == [True, False, True]
    assert addrs[2].address == "fine@y.org"


def test_records_are_frozen():
    a = one("a@x.org")
    assert isinstance(a, Address)
    with pytest.raises(Exception):
        a.address = "b@y"


@given(st.text(max_size=200))
def test_never_raises(text):
    for a in parseaddress(text):
        assert isinstance(a.address, str)
        assert a.error is None or isinstance(a.error, str)


@given(mst.mailboxes(ascii_only=False))
def test_format_parse_round_trip(pair):
    name, addr = pair
    a = one(formataddress(name, addr))
    assert a.error is None
    assert a.address == addr
    assert a.friendly == (name or addr.split("@")[0])


@given(mst.address_lists())
def test_address_lists_round_trip(pair):
    text, expected = pair
    got = [a.address for a in parseaddress(text) if a.address]
    assert got == expected


@given(mst.mailboxes())
def test_agrees_with_email_utils(pair):
    name, addr = pair
    text = formataddress(name, addr)
    assert email.utils.parseaddr(text)[1] == one(text).address


def test_formataddress_quotes_and_refuses_injection():
    assert formataddress("Doe, John", "j@x") == '"Doe, John" <j@x>'
    assert formataddress('say "hi"', "j@x") == '"say \\"hi\\"" <j@x>'
    assert formataddress("", "j@x") == "j@x"
    with pytest.raises(HeaderInjectionError):
        formataddress("x\r\nBcc: evil@x", "j@x")
    with pytest.raises(ValueError):
        formataddress("x", "j@x\n")
