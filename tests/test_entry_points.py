"""Every public entry point that takes text, given what it cannot take.

Text that cannot be written as UTF-8 -- a lone surrogate, which
``os.environ``, ``sys.argv`` and ``surrogateescape`` decoding hand out --
gets a typed error (MimeError, UsageError) or a result, never the codec's
own UnicodeEncodeError. Another type where text belongs (None, a number,
bytes, a list) gets a TypeError or one of the tree's errors, never an
AttributeError or KeyError from deep inside.

Hypothesis's text strategies leave surrogates out unless asked, so these
tests ask: each string mixes ordinary characters with code points from
U+D800-U+DFFF.
"""

from __future__ import annotations

import email.message
import re
from typing import Any, Callable

import pytest
from hypothesis import given, settings, strategies as st

import mimecompose
import smtpsend
from mimecompose import MimeError

TYPED = (MimeError, smtpsend.UsageError, smtpsend.SMTPError)
RAW = b"From: a@example.com\r\nTo: b@example.com\r\n\r\nx\r\n"

_surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
unwritable = st.lists(st.one_of(st.characters(), _surrogate), min_size=1, max_size=24).map("".join).filter(
    lambda s: any("\ud800" <= c <= "\udfff" for c in s))


def _built() -> mimecompose.Part:
    return mimecompose.initialize("text/plain", string="x")


def _set_and_build(name: str, value: str) -> bytes:
    part = _built()
    part.setheader(name, value)
    return part.buildmessage()


ENTRY_POINTS: dict[str, Callable[[str], Any]] = {
    "initialize(string=) parses text": lambda s: mimecompose.initialize(string=s).buildmessage(),
    "initialize(string=) as a body": lambda s: mimecompose.initialize("text/plain", string=s).buildmessage(),
    "initialize(params=)": lambda s: mimecompose.initialize("text/plain", string="x",
                                                             params={"format": s}).buildmessage(),
    "initialize(params=name)": lambda s: mimecompose.initialize("text/plain", string="x",
                                                                 params={"name": s}).buildmessage(),
    "initialize(filename=)": lambda s: mimecompose.initialize("text/plain", string="x", filename=s).buildmessage(),
    "initialize(header=)": lambda s: mimecompose.initialize("text/plain", string="x",
                                                             header=[("Subject", s)]).buildmessage(),
    "setheader Subject": lambda s: _set_and_build("Subject", s),
    "setheader To": lambda s: _set_and_build("To", s),
    "setheader Comments": lambda s: _set_and_build("Comments", s),
    "setheader with the text as the name": lambda s: _set_and_build(s, "v"),
    "getheader": lambda s: _built().getheader(s),
    "parseaddress": mimecompose.parseaddress,
    "iter_addresses": lambda s: list(mimecompose.iter_addresses(s)),
    "formataddress (name)": lambda s: mimecompose.formataddress(s, "a@example.com"),
    "formataddress (address)": lambda s: mimecompose.formataddress("N", s),
    "word_encode": lambda s: mimecompose.word_encode("utf-8", "q", s),
    "word_decode": mimecompose.word_decode,
    "field_decode": mimecompose.field_decode,
    "checkheader": lambda s: mimecompose.checkheader("Subject", s),
    "multipart with the text in a part": lambda s: mimecompose.initialize(
        "multipart/mixed", parts=[mimecompose.initialize("text/plain", string=s)]).buildmessage(),
    "envelope(originator=)": lambda s: smtpsend.envelope(RAW, originator=s),
    "envelope(recipients=)": lambda s: smtpsend.envelope(RAW, recipients=[s]),
    "envelope(header=)": lambda s: smtpsend.envelope(RAW, header=[("To", s)]),
    "transmitted(header=)": lambda s: smtpsend.transmitted(RAW, header=[("Subject", s)]),
    "transmitted(client=)": lambda s: smtpsend.transmitted(RAW, client=s),
    "transmitted(text)": smtpsend.transmitted,
    "transmitted(a part from the text)": lambda s: smtpsend.transmitted(
        mimecompose.initialize("text/plain", string="x", header=[("From", s), ("To", "b@example.com")])),
    "parse_url": smtpsend.parse_url,
    "parse_url (host)": lambda s: smtpsend.parse_url("smtp://" + s),
    "Transport(servers=)": lambda s: smtpsend.Transport(servers=[s]),
    "Transport(client=)": lambda s: smtpsend.Transport(servers=["localhost"], client=s),
    "Transport(mechanisms=)": lambda s: smtpsend.Transport(servers=["localhost"], mechanisms=s),
    "Transport(username=, password=)": lambda s: smtpsend.Transport(servers=["localhost"], username=s,
                                                                    password=s),
    "Delivery(envid=)": lambda s: smtpsend.Delivery(envid=s),
    "Delivery(notify=)": lambda s: smtpsend.Delivery(notify=s),
    "Delivery(mail_auth=)": lambda s: smtpsend.Delivery(mail_auth=s),
    "Delivery(orcpt=)": lambda s: smtpsend.Delivery(orcpt={"a@example.com": s}),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@settings(max_examples=40, deadline=None)
@given(text=unwritable)
def test_unwritable_text_is_a_typed_error_or_a_result(entry: str, text: str) -> None:
    try:
        ENTRY_POINTS[entry](text)
    except TYPED:
        pass


@pytest.mark.parametrize("call", [
    lambda: mimecompose.initialize("text/plain", string="x", params={"format": "a\ud800"}).buildmessage(),
    lambda: mimecompose.initialize("text/plain", string="x", params={"name": "a\ud800"}).buildmessage(),
    lambda: mimecompose.initialize("text/plain", string="x", filename="caf\u00e9 \udcff"),
    lambda: mimecompose.initialize(string="From: a@b\r\n\r\n\ud800"),
    lambda: smtpsend.transmitted("From: a@example.com\r\nTo: b@example.com\r\n\r\n\ud800\r\n"),
])
def test_the_paths_that_let_the_codec_error_out_now_say_why(call: Callable[[], Any]) -> None:
    """RFC 2231 parameters, RFC 2047 words (the legacy name=) and a message
    given as text each met the surrogate in an encoder of their own."""
    with pytest.raises(MimeError, match="surrogates not allowed"):
        call()


def test_surrogate_escapes_of_undecodable_bytes_still_parse_as_those_bytes() -> None:
    """``surrogateescape``'s U+DC80-U+DCFF stand for bytes, and a message
    given as text keeps them: only other surrogates are refused."""
    text = "From: a@example.com\r\nSubject: caf\udce9\r\n\r\nbody\r\n"
    part = mimecompose.initialize(string=text)
    assert b"caf\xe9" in part.buildmessage()


def test_an_email_message_that_python_accepted_is_sent_or_refused_with_a_typed_error() -> None:
    message = email.message.EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message.set_content("caf\u00e9")
    envelope, data = smtpsend.transmitted(message)
    assert envelope.recipients == ["b@example.com"] and data.endswith(b"\r\n")


WRONG_TYPES = [None, 7, 1.5, b"a@example.com", ["a@example.com"], {"a": 1}, object()]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_another_type_where_text_belongs_is_a_type_error_or_a_typed_one(entry: str) -> None:
    for value in WRONG_TYPES:
        try:
            ENTRY_POINTS[entry](value)
        except (TypeError, *TYPED):
            pass


@pytest.mark.parametrize("call,what", [
    (lambda: mimecompose.parseaddress(7), "parseaddress"),
    (lambda: list(mimecompose.iter_addresses({"a": 1})), "iter_addresses"),
    (lambda: mimecompose.word_decode(None), "word_decode"),
    (lambda: mimecompose.word_encode("utf-8", "q", 7), "word_encode"),
    (lambda: mimecompose.word_encode(None, "q", "x"), "word_encode(charset=)"),
    (lambda: mimecompose.word_encode("utf-8", 7, "x"), "word_encode(method=)"),
    (lambda: mimecompose.initialize("text/plain", string="x").getheader(7), "getheader"),
    (lambda: smtpsend.Transport(servers=["localhost"], client=b"host"), "client="),
])
def test_the_entry_points_that_failed_deep_inside_name_what_they_take(call: Callable[[], Any], what: str) -> None:
    with pytest.raises(TypeError, match=f"{re.escape(what)}.* takes a str, not an? "):
        call()


@pytest.mark.parametrize("call,what", [
    (lambda: mimecompose.initialize(7, string="x"), "canonical="),
    (lambda: mimecompose.initialize("text/plain", string="x", encoding=7), "encoding="),
    (lambda: mimecompose.initialize("text/plain", string="x", disposition=7), "disposition="),
    (lambda: mimecompose.initialize("text/plain", string="x", params="format=flowed"), "params="),
    (lambda: mimecompose.initialize("text/plain", string="x", params=["ab"]), "params="),
    (lambda: mimecompose.initialize("text/plain", string="x").copymessage(None), "copymessage()"),
    (lambda: mimecompose.formatdate("Mon, 23 Nov 2026 04:10:05 +0000"), "formatdate()"),
])
def test_other_arguments_of_the_wrong_type_are_type_errors_naming_them(call: Callable[[], Any], what: str) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(what)} (takes|items are)"):
        call()


def test_copymessage_refuses_a_non_file_before_writing_anything() -> None:
    class NoWrite:
        write = None
    with pytest.raises(TypeError):
        mimecompose.initialize("text/plain", string="x").copymessage(NoWrite())


def test_params_as_pairs_still_work_as_a_mapping_does() -> None:
    pairs = mimecompose.initialize("text/plain", string="x", params=[("format", "flowed")])
    mapping = mimecompose.initialize("text/plain", string="x", params={"format": "flowed"})
    assert pairs.buildmessage() == mapping.buildmessage()
    assert b"format=flowed" in pairs.buildmessage()


RAW_TO = b"From: a@example.com\r\nTo: b@example.com\r\n\r\nx\r\n"


@pytest.mark.parametrize("call", [
    lambda: smtpsend.connect("127.0.0.1", port=70000),
    lambda: smtpsend.connect("[::1]", port=70000),
    lambda: smtpsend.connect("127.0.0.1", port=2 ** 70),
])
def test_a_port_out_of_range_is_refused_not_wrapped(call: Callable[[], Any]) -> None:
    """The resolver takes port 70000 as 70000 - 65536 = 4464: connect()
    would have reached another service. It checks the range, as
    sendmessage's ports= always did."""
    with pytest.raises(smtpsend.UsageError, match="out of range"):
        call()


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), 1e300, 0, -1, True])
@pytest.mark.parametrize("send", [
    lambda **o: smtpsend.sendmessage(RAW_TO, servers=["127.0.0.1:1"], **o),
    lambda **o: smtpsend.connect("127.0.0.1", port=1, **o),
    lambda **o: smtpsend.Transport(servers=["127.0.0.1"], **o),
])
@pytest.mark.parametrize("name", ["timeout", "maxsecs"])
def test_a_wait_no_socket_takes_is_a_usage_error_before_connecting(send: Callable[..., Any], name: str,
                                                                   seconds: float) -> None:
    """NaN, infinity and numbers past threading.TIMEOUT_MAX used to reach
    the socket (ValueError, OverflowError); now they are refused with the
    other bad options."""
    with pytest.raises(smtpsend.UsageError, match="must be positive numbers of seconds"):
        send(**{name: seconds})


@pytest.mark.parametrize("servers", [[None], [7], ["mail.example.com", 1.5]])
def test_a_server_entry_that_is_none_or_a_number_is_a_type_error(servers: list[Any]) -> None:
    """Not the host "None" or "7" (which resolves to 0.0.0.7)."""
    with pytest.raises(TypeError, match="servers= entries are host names"):
        smtpsend.Transport(servers=servers)


def test_an_ipaddress_server_entry_is_its_text() -> None:
    import ipaddress
    transport = smtpsend.Transport(servers=[ipaddress.ip_address("127.0.0.1")])
    assert "127.0.0.1" in repr(transport)


def test_one_esmtp_parameter_given_as_a_string_is_one_parameter() -> None:
    """Client.mail(params="SIZE=10") sent "MAIL FROM:<a> S I Z E = 1 0"."""
    from smtpsend.testing import CaptureServer
    with CaptureServer() as server:
        with smtpsend.connect("127.0.0.1", port=server.port) as client:
            client.mail("a@example.com", params="SIZE=10")
            client.rcpt("b@example.com", params="NOTIFY=NEVER")
            client.rset()
            client.mail("a@example.com", params=["SIZE=10", "BODY=8BITMIME"])
        sent = list(server.commands)
    assert "MAIL FROM:<a@example.com> SIZE=10" in sent and "RCPT TO:<b@example.com> NOTIFY=NEVER" in sent
    assert "MAIL FROM:<a@example.com> SIZE=10 BODY=8BITMIME" in sent


def test_one_message_where_a_list_of_them_belongs_says_so() -> None:
    """sendmessages(b"...") iterated the bytes and refused "a int"; a Part
    was "not iterable"; parts=part the same."""
    from smtpsend.testing import CaptureServer
    one = mimecompose.initialize("text/plain", string="x", header=[("From", "a@example.com"),
                                                                   ("To", "b@example.com")])
    with CaptureServer() as server:
        with smtpsend.connect("127.0.0.1", port=server.port) as client:
            for message in (RAW_TO, one, one.buildmessage().decode()):
                with pytest.raises(TypeError, match=r"sendmessages\(\) takes a list of messages"):
                    client.sendmessages(message)
            assert client.sendmessages([RAW_TO, one]) == [[], []]
    with pytest.raises(MimeError, match="parts= takes a list of Part objects"):
        mimecompose.initialize("multipart/mixed", parts=one)


def test_a_logging_mailhost_port_that_is_not_a_number_is_named() -> None:
    import smtpsend.logging
    with pytest.raises(ValueError, match="mailhost's port must be a number, not 'smtp'"):
        smtpsend.logging.SMTPHandler(("localhost", "smtp"), "a@example.com", "b@example.com", "s")


def test_a_dsn_ret_that_is_not_text_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="ret= takes a str"):
        smtpsend.Delivery(ret=7)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["cert-\ud800.pem", "cert\x00.pem"])
def test_an_smime_certificate_path_no_file_system_takes_is_a_mime_error(path: str) -> None:
    from mimecompose import smime
    with pytest.raises(MimeError, match="not a usable path"):
        smime.sign(mimecompose.initialize("text/plain", string="x"), certificate=path, key=b"x")
