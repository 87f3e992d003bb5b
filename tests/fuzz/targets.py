"""Fuzz targets: each takes bytes and may raise only the documented errors.

Shared by tests/test_fuzz.py (a bounded run in the normal suite) and
tests/fuzz/fuzz.py (a long run that reports how many inputs it tried).
"""

from __future__ import annotations

import socket

import mimecompose
import smtpsend
from mimecompose._codecs import decode_rfc2231, field_decode, word_decode
from mimecompose._headers import parse_content_type, parse_field_block
from smtpsend import pop3
from smtpsend._extensions import Extensions
from smtpsend._reply import Reply, ReplyParser


def reply_parser(data: bytes) -> None:
    """Whole, then split in two: the same replies, or RemoteProtocolError."""
    try:
        whole = ReplyParser().feed(data)
    except smtpsend.RemoteProtocolError:
        return
    cut = len(data) // 2
    parser = ReplyParser()
    assert parser.feed(data[:cut]) + parser.feed(data[cut:]) == whole


def ehlo_parser(data: bytes) -> None:
    lines = tuple(data.decode("utf-8", "replace").split("\n")) or ("",)
    ext = Extensions.from_reply(Reply(250, lines))
    ext.size, ext.auth, "PIPELINING" in ext


def address_parser(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for addr in mimecompose.parseaddress(text):
        assert isinstance(addr.address, str)
        if addr.error is None and addr.address and addr.phrase == "" and not addr.comment and not addr.route:
            again = mimecompose.parseaddress(mimecompose.formataddress("", addr.address))
            assert again[0].address == addr.address


def header_parser(data: bytes) -> None:
    fields, used, _problem = parse_field_block(data)
    assert 0 <= used <= len(data)
    for field in fields:
        field_decode(field.value)
        if field.lname == "content-type":
            main, pairs, _ok = parse_content_type(field.value)
            decode_rfc2231(pairs)


def encoded_words(data: bytes) -> None:
    text = data.decode("latin-1")
    field_decode(text)
    try:
        word_decode(text)
    except mimecompose.MimeError:
        pass


def mime_parser(data: bytes) -> None:
    part = mimecompose.initialize(string=data)
    stack = [part]
    while stack:
        p = stack.pop()
        p.getheader()
        props = p.getproperty()
        stack.extend(props.get("parts", ()))
        if "size" in props:
            p.getbody(decode=True)
    part.buildmessage()


def pop3_responses(data: bytes) -> None:
    """A POP3 server that sends ``data`` as its whole side of the conversation."""
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(data[:60000])
        theirs.shutdown(socket.SHUT_WR)
        box = pop3.POP3(ours, "localhost", timeout=2, ssl_context=None, logfile=None)
        box.max_octets = 1 << 16
        try:
            box._greet()
            box.stat()
            box.list()
            box.retr(1, raw=True)
        except smtpsend.SMTPError:
            pass
    finally:
        ours.close()
        theirs.close()


TARGETS = {f.__name__: f for f in (reply_parser, ehlo_parser, address_parser, header_parser, encoded_words,
                                   mime_parser, pop3_responses)}
