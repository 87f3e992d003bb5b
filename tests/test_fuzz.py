"""A bounded fuzz of every parser (tests/fuzz/fuzz.py runs the long one):
only the documented exceptions may escape, and round trips hold."""

import sys
import os

import pytest
from hypothesis import given, settings, strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fuzz"))
from targets import TARGETS  # noqa: E402

SEEDS = {
    "reply_parser": [b"250-a\r\n250 b\r\n", b"220 x\n", b"5"],
    "ehlo_parser": [b"mx\nPIPELINING\nSIZE 10\nAUTH=LOGIN PLAIN"],
    "address_parser": [b'"a, b" <c@d>, G: e@f, (x) g@h;', b"<@r:a@b>"],
    "header_parser": [b"Subject: =?utf-8?q?x?=\r\nContent-Type: text/plain; name*0*=utf-8''%C3; name*1=x\r\n\r\n"],
    "encoded_words": [b"=?utf-8?b?w6k=?= =?iso-8859-1?q?a_b?="],
    "mime_parser": [b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n"],
    "pop3_responses": [b"+OK <1@x>\r\n+OK 1 2\r\n+OK\r\n1 2\r\n.\r\n+OK\r\n..a\r\n.\r\n"],
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
