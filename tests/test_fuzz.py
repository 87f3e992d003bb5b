"""A bounded fuzz of every parser (tests/fuzz/fuzz.py runs the long one):
only the documented exceptions may escape, and round trips hold."""

import sys
import os

import pytest
from hypothesis import given, settings, strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fuzz"))
from targets import TARGETS  # noqa: E402

SEEDS = {
    "pop3_sasl": [b"\x00" + b'{"status":"401"}' + b"\n\x04\n\x00r=abc,s=c2FsdA==,i=4096\n\x03",
                  b"\x06not base64\n\x05"],
    "server_url": [b"smtps://u%40x:p%3Aw@[::1]:2525?tlspolicy=secure&timeout=10&mechanisms=PLAIN",
                   b"lmtp+unix:///run/dovecot/lmtp?timeout=2", b"smtp+starttls://h.example:587/"],
    "reply_parser": [b"250-a\r\n250 b\r\n", b"220 x\n", b"5"],
    "ehlo_parser": [b"mx\nPIPELINING\nSIZE 10\nAUTH=LOGIN PLAIN"],
    "address_parser": [b'"a, b" <c@d>, G: e@f, (x) g@h;', b"<@r:a@b>"],
    "date_parser": [b"Mon, 23 Nov 2026 04:10:05 +0200 (CET)", b"Sat Mar 24 21:23:03 EDT 2007",
                    b"Fri 21 Nov 97 \r 4:12:06 PM +05-30 (x (y))", b"1 Jan 2000 00:00 Eastern Daylight Time"],
    "header_parser": [b"Subject: =?utf-8?q?x?=\r\nContent-Type: text/plain; name*0*=utf-8''%C3; name*1=x\r\n\r\n"],
    "encoded_words": [b"=?utf-8?b?w6k=?= =?iso-8859-1?q?a_b?="],
    "mime_parser": [b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
                    b"Subject: a\rBcc: b\r\n \r\nFrom x\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                    b"--b\rContent-Type: message/rfc822\r\n\r\nX: y\r--b\r\n--b--"],
    "pop3_responses": [b"+OK <1@x>\r\n+OK 1 2\r\n+OK\r\n1 2\r\n.\r\n+OK\r\n..a\r\n.\r\n",
                       b"+OK\r\n+OK 1 2\r\n+OK\r\n" + b"1 2\r\n" * 40 + b".\r\n+OK\r\n" + b"x" * 300 + b"\r\n.\r\n"],
    "content_type_params": [b"text/plain; charset=us-ascii (Plain text); (c) name*0*=utf-8''%C3%A9; "
                            b"name*1=\"x y\"; format=flowed"],
    "sasl_challenges": [b"\x00r=XYZ,s=QSXCR+Q6sek8bf92,i=4096\n\x00v=AAAA\n\x00"
                        b'nonce="n",qop="auth",charset=utf-8\n\x00rspauth=0\n~Password:\n\x05'],
    "body_decoding": [b"aGVsbG8=\r\n=41 b  \r\nbegin 644 x\r\n#86)C\r\n`\r\nend\r\n"],
    "cli_config": [b'defaults\n\ttls on\naccount a\nhost "h x"\nport 587\nauth plain\n'
                   b'account b : a\nfrom b@example.com\ntimeout off\ndsn_return headers\n'],
    "pipelined_replies": [b"250 2.1.0 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 2.0.0 queued\r\n221 bye\r\n",
                          b"250 ok\r\n421 4.3.2 closing\r\n", b"250 x\r\n250 2.1.0\r\n250 2.1.5\r\n554 no\r\n221 x\r\n"],
    "transmitted_message": [b"From: a@x.org\r\nTo: b@y.org\r\nBcc: c@z.org\r\nSubject: s\rBCC : d@z.org\r\n"
                            b"Resent-From: f@x.org\nResent-Bcc: e@z.org\n\nbody\rline\n"],
    "dkim_signature": [b"From: a@example.com\r\nSubject:  folded\r\n\t value \r\nFrom: b@example.com\r\n\r\n"
                       b"line  with \t space \r\n\r\n \r\n\n\r\n"],
}


def inputs(name):
    seeds = SEEDS[name]
    mutated = st.tuples(st.sampled_from(seeds), st.binary(max_size=20), st.integers(0, 200)).map(
        lambda t: t[0][:t[2]] + t[1] + t[0][t[2]:])
    return st.one_of(st.binary(max_size=400), mutated)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target(name):
    target = TARGETS[name]

    @settings(max_examples=150, deadline=None, database=None)
    @given(inputs(name))
    def run(data):
        target(data)

    run()
