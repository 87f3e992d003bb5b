"""Replies, EHLO extensions, SASL vectors and dot-stuffing."""

import base64
import re

import pytest
from hypothesis import given, strategies as st

import smtpsend
from smtpsend._data import DotStuffer, data_blocks
from smtpsend._extensions import Extensions
from smtpsend._reply import MAX_LINE, MAX_LINES, EnhancedStatus, Reply, ReplyParser
from smtpsend._sasl import (CramMD5, DigestMD5, Login, OAuthBearer, Plain, SASLFailure, ScramSHA1,
                            ScramSHA256, XOAuth2, choose, saslprep)


# ---------------------------------------------------------------- replies

def test_multiline_reply_with_enhanced_status():
    [reply] = ReplyParser().feed(b"250-mx.example\r\n250-PIPELINING\r\n250 2.0.0 OK\r\n")
    assert reply.code == 250 and reply.lines == ("mx.example", "PIPELINING", "2.0.0 OK")
    assert reply.status is None  # only the first line's status counts
    [reply] = ReplyParser().feed(b"550 5.1.1 <x@y>: unknown\r\n")
    assert reply.status == EnhancedStatus(5, 1, 1) and str(reply.status) == "5.1.1"
    [reply] = ReplyParser().feed(b"550 2.1.1 mismatched class\r\n")
    assert reply.status is None


@pytest.mark.parametrize("bad", [b"abc\r\n", b"25\r\n", b"250xhello\r\n", b"650 no\r\n",
                                 b"250-a\r\n251 b\r\n"])
def test_malformed_replies(bad):
    with pytest.raises(smtpsend.RemoteProtocolError):
        ReplyParser().feed(bad)


def test_caps_on_line_length_and_reply_length():
    with pytest.raises(smtpsend.RemoteProtocolError):
        ReplyParser().feed(b"250 " + b"x" * (MAX_LINE + 10))
    parser = ReplyParser()
    with pytest.raises(smtpsend.RemoteProtocolError):
        for _ in range(MAX_LINES + 2):
            parser.feed(b"250-endless\r\n")


def _format(code, lines):
    return b"".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{l}\r\n".encode()
                    for i, l in enumerate(lines))


line_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=60)
replies = st.lists(st.tuples(st.integers(200, 599), st.lists(line_text, min_size=1, max_size=4)),
                   min_size=1, max_size=5)


@given(replies, st.data())
def test_parse_format_round_trip_in_random_chunks(items, data):
    wire = b"".join(_format(code, lines) for code, lines in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    parser = ReplyParser()
    got = []
    pos = 0
    for cut in cuts + [len(wire)]:
        got.extend(parser.feed(wire[pos:cut]))
        pos = cut
    assert [(r.code, list(r.lines)) for r in got] == [(c, l) for c, l in items]
    assert not parser.pending


@given(st.binary(max_size=300))
def test_parser_raises_only_protocol_errors(data):
    try:
        ReplyParser().feed(data)
    except smtpsend.RemoteProtocolError:
        pass


# ---------------------------------------------------------------- extensions

def test_extensions_from_ehlo():
    reply = Reply(250, ("mx.example greets you", "PIPELINING", "SIZE 10485760", "AUTH PLAIN LOGIN",
                        "AUTH=CRAM-MD5", "8bitmime", "X-WEIRD?", ""))
    ext = Extensions.from_reply(reply)
    assert "PIPELINING" in ext and "8BITMIME" in ext and "pipelining" in ext
    assert ext.size == 10485760
    assert ext.auth == ["PLAIN", "LOGIN", "CRAM-MD5"]
    assert ext.domain == "mx.example"
    assert Extensions.from_reply(Reply(250, ("x", "SIZE"))).size is None
    assert Extensions.from_reply(Reply(250, ("x", "SIZE 0"))).size is None


# ---------------------------------------------------------------- SASL test vectors

def test_scram_sha1_rfc5802_vector():
    m = ScramSHA1("user", "pencil", cnonce="fyko+d2lbbFgONRv9qkxdawL")
    assert m.start() == b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
    assert m.respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096") == \
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    assert m.respond(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=") == b""
    m.finish()


def test_scram_sha256_rfc7677_vector():
    m = ScramSHA256("user", "pencil", cnonce="rOprNGfwEbeRWgbNEkqO")
    assert m.start() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert m.respond(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") \
        == b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
           b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    assert m.respond(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=") == b""
    m.finish()


@pytest.mark.parametrize("server_first", [
    b"r=someoneelse,s=QSXCR+Q6sek8bf92,i=4096",          # nonce not ours
    b"r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=99999999",   # iteration bomb
    b"r=fyko+d2lbbFgONRv9qkxdawLx,s=!!!,i=4096",
    b"e=other-error",
])
def test_scram_refuses_bad_servers(server_first):
    m = ScramSHA1("user", "pencil", cnonce="fyko+d2lbbFgONRv9qkxdawL")
    m.start()
    with pytest.raises(SASLFailure):
        m.respond(server_first)


def test_scram_finish_requires_server_signature():
    m = ScramSHA1("user", "pencil", cnonce="fyko+d2lbbFgONRv9qkxdawL")
    m.start()
    m.respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
    with pytest.raises(SASLFailure):
        m.finish()


def test_scram_plus_binds_the_channel():
    m = ScramSHA256("user", "pencil", cnonce="abc", channel_binding=b"\x01\x02")
    assert m.start().startswith(b"y,,")   # could bind, server offered no -PLUS
    [plus] = [x for x in choose(["SCRAM-SHA-256-PLUS"], "user", "pencil", None, "h", b"\x01\x02")]
    assert plus.start().startswith(b"p=tls-unique,,")
    final = plus.respond(b"r=" + plus._cnonce.encode() + b"srv,s=QSXCR+Q6sek8bf92,i=4096")
    cbind = base64.b64decode(re.search(rb"c=([^,]+)", final).group(1))
    assert cbind == b"p=tls-unique,,\x01\x02"


def test_digest_md5_rfc2831_vector():
    m = DigestMD5("chris", "secret", host="elwood.innosoft.com", cnonce="OA6MHXh6VqTrRk", service="imap")
    out = m.respond(b'realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,charset=utf-8')
    assert b"response=d388dad90d4bbd760a152321f2143af7" in out
    assert b'digest-uri="imap/elwood.innosoft.com"' in out
    with pytest.raises(SASLFailure):
        DigestMD5("chris", "secret", host="elwood.innosoft.com", cnonce="OA6MHXh6VqTrRk",
                  service="imap").finish()
    assert m.respond(b"rspauth=ea40f60335c427b5527b84dbabcdfffd") == b""
    m.finish()


def test_digest_md5_wrong_rspauth():
    m = DigestMD5("chris", "secret", host="h", cnonce="c")
    m.respond(b'nonce="n",qop="auth"')
    with pytest.raises(SASLFailure):
        m.respond(b"rspauth=00000000000000000000000000000000")


def test_cram_md5_rfc2195_vector():
    m = CramMD5("tim", "tanstaaftanstaaf")
    assert m.respond(b"<1896.697170952@postoffice.reston.mci.net>") == b"tim b913a602c7eda7a495b4e6e7334d3890"


def test_plain_login_and_tokens():
    assert Plain("jörg", "pässword").start() == "\0jörg\0pässword".encode()
    login = Login("u", "p")
    assert login.start() is None
    assert [login.respond(b"Username:"), login.respond(b"Password:")] == [b"u", b"p"]
    with pytest.raises(SASLFailure):
        login.respond(b"More?")
    assert XOAuth2("u@x", token="tok").start() == b"user=u@x\x01auth=Bearer tok\x01\x01"
    assert OAuthBearer("u@x", token="tok").start() == b"n,a=u@x,\x01auth=Bearer tok\x01\x01"


def test_choose_orders_strongest_first_and_needs_the_right_secret():
    offered = ["LOGIN", "PLAIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "XOAUTH2"]
    names = [m.name for m in choose(offered, "u", "p", None, "h", None)]
    assert names == ["SCRAM-SHA-256", "SCRAM-SHA-1", "DIGEST-MD5", "CRAM-MD5", "PLAIN", "LOGIN"]
    assert [m.name for m in choose(offered, "u", None, "tok", "h", None)] == ["XOAUTH2"]


def test_secrets_not_in_repr():
    for cls in (Plain, Login, CramMD5, DigestMD5, ScramSHA256):
        assert "hunter2" not in repr(cls("u", "hunter2"))


def test_saslprep():
    assert saslprep("I\u00adX") == "IX"            # soft hyphen mapped to nothing
    assert saslprep("user") == "user"
    assert saslprep("\u2168") == "IX"              # NFKC
    assert saslprep("a\u00a0b") == "a b"           # non-ASCII space
    for bad in ("\u0007", "\u0627\u0031"):
        with pytest.raises(SASLFailure):
            saslprep(bad)


# ---------------------------------------------------------------- dot-stuffing

def unstuff(wire: bytes) -> bytes:
    assert wire.endswith(b"\r\n.\r\n")
    body = wire[:-3]
    lines = body.split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


@given(st.binary(max_size=500).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"\r\n")), st.data())
def test_dot_stuffing_round_trip_across_chunks(body, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=6)))
    chunks = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
    wire = b"".join(data_blocks(chunks))
    assert wire.count(b"\r\n.\r\n") == 1 or (wire == b".\r\n" and body == b"")
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", wire) is None
    expected = body if body.endswith(b"\r\n") or not body else body + b"\r\n"
    if body:
        assert unstuff(wire) == expected


@given(st.binary(max_size=300), st.data())
def test_any_bytes_give_clean_data(body, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=6)))
    chunks = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
    wire = b"".join(data_blocks(chunks))
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", wire) is None
    # the only line that is a lone "." is the terminator
    assert wire.split(b"\r\n").count(b".") == 1
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"


def test_final_dot_in_the_same_block_as_the_end():
    blocks = list(data_blocks([b"x" * 100000, b"tail\r\n"], trailer=b"QUIT\r\n"))
    assert blocks[-1].endswith(b"tail\r\n.\r\nQUIT\r\n")
    stuffer = DotStuffer()
    assert stuffer.feed(b".") + stuffer.feed(b"\r\n.x") + stuffer.finish() == b"..\r\n..x\r\n.\r\n"
