"""The fast path of iter_addresses (simple ASCII mailbox lists) against the
general parser: the records must be equal field for field, in the same order,
for every input; and the common shapes must actually take the fast path.

Inputs: hypothesis strings built near the fast path's shapes and just outside
them, the shared header vectors and the address headers of the shared corpus
(both next to the repository, skipped when absent), and explicit cases.
"""

from __future__ import annotations

import os
import re
from typing import Iterator
from unittest import mock

import pytest
from hypothesis import assume, example, given, settings, strategies as st

import mimecompose
from mimecompose import Address, _address, iter_addresses, parseaddress
from mimecompose._address import _FAST_LIST, _fast_patterns, _iter_addresses_general

import vectors

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared")
CORPUS = os.path.join(SHARED, "corpus", "messages")


def both(text: str) -> list[Address]:
    """The records of ``text``; fails when the public function and the general
    parser disagree in any field, in order or in number."""
    got = list(iter_addresses(text))
    want = list(_iter_addresses_general(text))
    assert got == want, text
    assert all(type(a) is Address for a in got)
    return got


def fast(text: str) -> bool:
    """Whether ``text`` takes the fast path: iter_addresses never calls the general parser."""
    calls: list[str] = []

    def general(text: str) -> Iterator[Address]:
        calls.append(text)
        return _iter_addresses_general(text)

    with mock.patch.object(_address, "_iter_addresses_general", general):
        list(iter_addresses(text))
    return not calls


# --------------------------------------------------------------- strategies

ATEXT = "abcxyzABCXYZ0129!#$%&'*+-/=?^_`{|}~"
atom = st.text(ATEXT, min_size=1, max_size=6)
dot_atom = st.lists(atom, min_size=1, max_size=4).map(".".join)
addr_spec = st.builds(lambda local, domain: f"{local}@{domain}", dot_atom, dot_atom)
# an unquoted name: atoms and dots with single spaces, starting with an atom
name_word = st.text(ATEXT + ".", min_size=1, max_size=6)
plain_name = st.builds(lambda first, rest: " ".join([first, *rest]),
                       st.builds(str.__add__, atom, st.text(ATEXT + ".", max_size=4)),
                       st.lists(name_word, max_size=3))
quoted_name = st.text("".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\'),
                      min_size=1, max_size=12).map(lambda t: f'"{t}"')
spaces = st.text(" ", max_size=2)


@st.composite
def simple_mailbox(draw: st.DrawFn) -> str:
    """One list element of a shape the fast path takes."""
    address = draw(addr_spec)
    shape = draw(st.sampled_from(["bare", "angle", "plain", "quoted"]))
    if shape == "bare":
        return address
    if shape == "angle":
        return f"<{address}>"
    name = draw(plain_name if shape == "plain" else quoted_name)
    return f"{name}{draw(spaces)}<{address}>"


@st.composite
def simple_list(draw: st.DrawFn) -> str:
    """A list of simple mailboxes, "," between them, spaces around."""
    boxes = draw(st.lists(simple_mailbox(), min_size=1, max_size=4))
    text = ",".join(f"{draw(spaces)}{box}{draw(spaces)}" for box in boxes)
    assume("=?" not in text)  # "=" and "?" are atext, but "=?" may open an encoded word
    return text


# what takes an input just outside the fast path, or far outside it
NEAR_MISSES = ["\\", '"', "  ", "\t", ",", ".", "=?", "(c)",  # the first 8 drawn more often
               "(", ")", "=?utf-8?q?a?=", "..", "@", "<", ">", "<>", ",,", ";", ":", "[", "]", "[1.2.3.4]",
               "\r\n ", "\r\n", "\n", "\r", " ", "\x00", "\x01", "\x7f", "é", "\u00a0", "\udcff",
               '""', "\\\"", "x:", "a@b"]


ODD = "\"\\()<>@,;:.[] \t\r\n=?\x00\x7fé"
odd_word = st.builds(lambda a, odd, b: a + odd + b, st.text(ATEXT[:8], max_size=3),
                     st.one_of(st.sampled_from(NEAR_MISSES[:4]), st.sampled_from([*ODD, "=?", "\\\"", '""'])),
                     st.text(ATEXT[:8], max_size=3))
near_word = st.one_of(atom, atom, name_word, atom, odd_word)  # mostly clean: one flaw at a time
near_plain_name = st.lists(near_word, min_size=1, max_size=3).flatmap(
    lambda words: st.lists(st.sampled_from([" ", "  ", "\t", "", "."]), min_size=len(words) - 1,
                           max_size=len(words) - 1).map(
        lambda gaps: "".join(w + g for w, g in zip(words, [*gaps, ""]))))
near_quoted_name = st.lists(st.one_of(atom, st.just(" "), odd_word), max_size=3).map(lambda t: '"' + "".join(t) + '"')
near_separator = st.one_of(st.sampled_from([",", ", ", " , "]),
                           st.sampled_from([",,", ", ,", ";", "\t,", ",\r\n ", " ", ""]))
near_end = st.one_of(st.sampled_from(["", " "]), st.sampled_from([",", " ,", "\t", "\r\n", "\r\n "]))


@st.composite
def near_list(draw: st.DrawFn) -> str:
    """Mailboxes with names, separators and ends just outside the fast path."""
    boxes = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.one_of(near_plain_name, near_quoted_name, plain_name, quoted_name, st.just("")))
        address = draw(st.one_of(addr_spec, addr_spec, addr_spec, st.builds(str.__add__, addr_spec, odd_word),
                                 st.builds(str.__add__, odd_word, addr_spec)))
        boxes.append(f"{name}{draw(spaces)}<{address}>" if name or draw(st.booleans()) else address)
    text = boxes[0] + "".join(draw(near_separator) + box for box in boxes[1:])
    return draw(near_end) + text + draw(near_end)


@st.composite
def near_miss(draw: st.DrawFn) -> str:
    """A simple list with a few pieces of NEAR_MISSES inserted anywhere."""
    text = draw(simple_list())
    for _ in range(draw(st.integers(1, 3))):
        # mostly next to the structure (spaces, quotes, dots, "@", "<", ","), where a flaw matters
        edges = [i for i, c in enumerate(text) if not c.isalnum()] + [0, len(text)]
        at = draw(st.one_of(st.sampled_from(edges), st.sampled_from(edges).map(lambda i: i + 1),
                            st.integers(0, len(text))))
        text = text[:at] + draw(st.one_of(st.sampled_from(NEAR_MISSES[:8]), st.sampled_from(NEAR_MISSES))) \
            + text[at:]
    return text


# ------------------------------------------------------------ differential

@given(simple_list())
def test_simple_lists_take_the_fast_path_and_agree(text: str) -> None:
    assert fast(text), text
    both(text)


@settings(max_examples=300)  # cheap; flaws in the right place are rare
@given(near_miss())
@example('"" <a@b.c>')          # an empty quoted name: friendly falls back to the local part
@example("a@b.c,")              # a trailing comma
@example("a.@b.c")              # a local part ending with a dot
@example(".J <a@b.c>")          # a name starting with a dot is an error
def test_near_misses_agree(text: str) -> None:
    both(text)


@settings(max_examples=300)  # cheap; flaws in the right place are rare
@given(near_list())
def test_near_lists_agree(text: str) -> None:
    both(text)


@settings(max_examples=300)  # cheap; flaws in the right place are rare
@given(st.text(ATEXT[:6] + "@.<> ,\"\\()=?\t\r\n:;é", max_size=40))
def test_any_text_of_these_characters_agrees(text: str) -> None:
    both(text)


EXPLICIT = [
    # (text, takes the fast path)
    ("user@example.com", True),
    ("<user@example.com>", True),
    ("Name Words <user@example.com>", True),
    ('"Quoted, Name" <user@example.com>', True),
    ("a@b.example, c@d.example", True),
    ("  a@b.example ,c@d.example  ", True),
    ("J. R. Smith <j.smith@mail.example.org>", True),
    ("J.R.Smith. <js@x.org>", True),
    ("Name<a@b.c>", True),
    ('"a@b.c, <x>; (y): z" <real@example.com>', True),
    ("o'brien+tag@example.com", True),
    ("x@y, Bob <b@c>, \"Carol\" <c@d.e>, <d@e.f>", True),
    ("", False),
    ("   ", False),
    (",", False),
    ("a@b.c,", False),
    ("a@b.c,,d@e.f", False),
    ("Name  Words <a@b.c>", False),              # two spaces in the name
    ("Name\tWords <a@b.c>", False),
    ("a@b.c,\td@e.f", False),                  # tabs go the general way (same records, not proven here)
    ("Name <a@b.c> ", True),
    ("< a@b.c>", False),
    ('"" <a@b.c>', False),
    ('"a\\"b" <a@b.c>', False),
    ('"a\\b" <a@b.c>', False),
    ('"a\\" <a@b.c>', False),
    ('"a" b <a@b.c>', False),
    ('"john doe"@example.com', False),
    ("a@[127.0.0.1]", False),
    ("a@b.c (comment)", False),
    ("=?utf-8?q?J=C3=B6rg?= <j@x.org>", False),
    ("=? <j@x.org>", False),
    ("Team: a@b.c, d@e.f;", False),
    ("<@relay.net:a@b.c>", False),
    ("a@b.c\r\n , d@e.f", False),
    ("Jörg <j@x.org>", False),
    (".J <a@b.c>", False),
    ("a..b@c.d", False),
    (".a@c.d", False),
    ("a@c.d.", False),
    ("a@b.c d@e.f", False),
    ("<a@b.c", False),
    ("<>", False),
]


@pytest.mark.parametrize("text,is_fast", EXPLICIT)
def test_explicit_cases(text: str, is_fast: bool) -> None:
    assert fast(text) is is_fast
    both(text)


def test_records_of_the_common_shapes() -> None:
    # written out from the Address contract (docs/mimecompose.md), not from a run
    assert list(iter_addresses('J. Smith <js@x.org>, "Doe, J" <jd@x.org>, <a@b.c>, d@e.f')) == [
        Address("js@x.org", "js", "x.org", "J. Smith", "", "J. Smith", "", "", "J. Smith <js@x.org>"),
        Address("jd@x.org", "jd", "x.org", '"Doe, J"', "", "Doe, J", "", "", '"Doe, J" <jd@x.org>'),
        Address("a@b.c", "a", "b.c", "", "", "a", "", "", "a@b.c"),
        Address("d@e.f", "d", "e.f", "", "", "d", "", "", "d@e.f"),
    ]


def test_equal_domains_share_one_string() -> None:
    a, b = iter_addresses("x@example.org, y@example.org")
    assert a.domain is b.domain


def test_non_str_input_still_fails_as_before() -> None:
    for value in (None, b"a@b.c"):
        with pytest.raises(TypeError):
            list(iter_addresses(value))  # type: ignore[arg-type]


# ------------------------------------------------- the fast path is taken

def _no_general(text: str) -> Iterator[Address]:
    raise AssertionError(f"the general parser ran for {text!r}")


def _no_fast(text: str) -> Iterator[Address]:
    raise AssertionError(f"the fast path ran for {text!r}")


@pytest.mark.parametrize("text", [t for t, is_fast in EXPLICIT if is_fast])
def test_common_shapes_never_reach_the_general_parser(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    want = list(_iter_addresses_general(text))
    monkeypatch.setattr(_address, "_iter_addresses_general", _no_general)
    assert list(mimecompose.iter_addresses(text)) == want
    assert parseaddress(text) == want


@pytest.mark.parametrize("text", [t for t, is_fast in EXPLICIT if not is_fast])
def test_other_shapes_never_reach_the_fast_path(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    want = list(_iter_addresses_general(text))
    monkeypatch.setattr(_address, "_iter_simple", _no_fast)
    assert list(mimecompose.iter_addresses(text)) == want


# ------------------------------------------------------------- linearity

LARGE = {  # 1 MB each
    "a list taken": "Bob Smith <bob@example.com>, " * 40_000 + "x@y.z",
    "refused at its last character": "Bob Smith <bob@example.com>, " * 40_000 + "x@y.z,",
    "a name that never meets its '<'": "a " * 500_000,
    "a local part that never meets its '@'": "a." * 500_000,
    "an unterminated quoted name": '"' + "a, " * 350_000,
    "addresses that never close": "<a@b.c" * 175_000,
    # spaces before a "<" with no name: one way to read them, or 2**n (Python 3.10 has no possessives)
    "unnamed angle addresses refused at the end": "<a@b.c>, " * 110_000 + "<",
    "spaced unnamed angle addresses refused at the end": " <a@b.c>  ,  " * 80_000 + "<",
    "a mixed list refused at the end": 'x@y, "Q" <a@b>, N <c@d>, ' * 40_000 + "@",
}


@pytest.mark.parametrize("text", LARGE.values(), ids=LARGE.keys())
def test_the_match_is_linear(text: str) -> None:
    # a backtracking (quadratic) match of 1 MB would take hours: it must merely finish
    _FAST_LIST.fullmatch(text)


@pytest.mark.parametrize("text", LARGE.values(), ids=LARGE.keys())
def test_the_match_is_linear_without_possessives_too(text: str) -> None:
    """The pattern as Python 3.10 reads it -- no possessive quantifiers, no
    atomic groups -- is linear by its shape alone: run here on this
    version's engine too, so that a change making an element match two
    ways (spaces before "<" read by two quantifiers: 2**n tries) fails
    on every version."""
    _, plain = _fast_patterns(possessive=False)
    assert "(?>" not in plain
    assert (re.compile(plain).fullmatch(text) is not None) == (_FAST_LIST.fullmatch(text) is not None)


# ---------------------------------------------------------- shared inputs

def _vector_inputs() -> list[str]:
    if not vectors.present():
        pytest.skip(vectors.ABSENT)
    return [vectors.text(v["input"]) for v in vectors.load(("address", "addr_spec"))]


def test_every_address_vector_agrees() -> None:
    inputs = _vector_inputs()
    for text in inputs:
        both(text)
    assert any(fast(t) for t in inputs), "no vector takes the fast path: the test would miss it"


_ADDRESS_FIELDS = re.compile(rb"(?im)^(from|sender|reply-to|to|cc|bcc|resent-from|resent-to|resent-cc):"
                             rb"(.*(?:\r?\n[ \t].*)*)")


def test_address_headers_of_the_corpus_agree() -> None:
    if not os.path.isdir(CORPUS):
        pytest.skip("the shared corpus (../shared/corpus/messages next to the repository) is absent")
    seen = taken = 0
    for folder, _dirs, files in os.walk(CORPUS):
        for name in files:
            with open(os.path.join(folder, name), "rb") as fh:
                head = re.split(rb"\r?\n\r?\n", fh.read(65536), maxsplit=1)[0]
            for m in _ADDRESS_FIELDS.finditer(head):
                text = m.group(2).decode("utf-8", "surrogateescape").strip(" \r")
                both(text)
                seen += 1
                taken += fast(text)
    assert seen and taken, (seen, taken)
