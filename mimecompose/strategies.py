"""Hypothesis strategies for mail: addresses, address headers and part trees.

Import this module only in tests (it needs ``hypothesis``)::

    from hypothesis import given
    from mimecompose import strategies as mst

    @given(mst.part_trees())
    def test_my_code(part): ...

``mailboxes()`` yields ``(display_name, address)`` pairs, ``address_lists()``
the header text of a list together with the addresses in it, and
``part_trees()`` built :class:`~mimecompose.Part` trees mixing text, binary
leaves, multiparts and encoded headers.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from ._address import formataddress
from ._initialize import initialize
from ._serialize import Part

__all__ = ["address_lists", "addresses", "display_names", "header_texts", "mailboxes",
           "part_trees", "text_bodies"]

_ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
_LABEL = "abcdefghijklmnopqrstuvwxyz0123456789"


def _dot_atoms(alphabet: str, max_parts: int = 3) -> SearchStrategy[str]:
    atom = st.text(alphabet, min_size=1, max_size=10)
    return st.lists(atom, min_size=1, max_size=max_parts).map(".".join)


def addresses(ascii_only: bool = True) -> SearchStrategy[str]:
    """``local@domain`` addresses (dot-atom local parts, hostname domains)."""
    local = _dot_atoms(_ATEXT)
    label = st.text(_LABEL, min_size=1, max_size=10)
    domain = st.lists(label, min_size=2, max_size=3).map(".".join)
    if not ascii_only:
        local = st.one_of(local, st.text("äöüßéçñøжд", min_size=1, max_size=6))
    return st.builds(lambda l, d: f"{l}@{d}", local, domain)


def display_names() -> SearchStrategy[str]:
    """Display names: ASCII words, punctuation that needs quoting, non-ASCII."""
    word = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF,
                                 blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
                                 blacklist_characters='\\"'),
                   min_size=1, max_size=8)
    return st.lists(word, min_size=1, max_size=4).map(" ".join).filter(
        lambda s: "=?" not in s and "?=" not in s)


def mailboxes(ascii_only: bool = True) -> SearchStrategy[tuple[str, str]]:
    """``(display_name, address)`` pairs; the name may be empty."""
    return st.tuples(st.one_of(st.just(""), display_names()), addresses(ascii_only))


def address_lists(ascii_only: bool = True, max_size: int = 5) -> SearchStrategy[tuple[str, list[str]]]:
    """``(header_text, [address, ...])``: an address list as a header value
    (with groups now and then) and the addresses it holds, in order."""

    def render(items: list[tuple[str, Any]]) -> tuple[str, list[str]]:
        texts: list[str] = []
        found: list[str] = []
        for kind, payload in items:
            if kind == "mailbox":
                name, addr = payload
                texts.append(formataddress(name, addr))
                found.append(addr)
            else:
                gname, members = payload
                inner = ", ".join(formataddress(n, a) for n, a in members)
                texts.append(f"{gname}: {inner};")
                found.extend(a for _, a in members)
        return ", ".join(texts), found

    group_name = st.text("abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=12).map(str.strip).filter(bool)
    item = st.one_of(
        st.tuples(st.just("mailbox"), mailboxes(ascii_only)),
        st.tuples(st.just("group"), st.tuples(group_name, st.lists(mailboxes(ascii_only), max_size=3))),
    )
    return st.lists(item, min_size=1, max_size=max_size).map(render)


def header_texts() -> SearchStrategy[str]:
    """Unstructured header text (Subject-like), non-ASCII and long ones included."""
    return st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=120).map(
        lambda s: " ".join(s.split()))


def text_bodies() -> SearchStrategy[str]:
    """Text content: any characters, any line breaks, long lines now and then."""
    return st.one_of(
        st.text(st.characters(blacklist_categories=["Cs"]), max_size=300),
        st.text("ab .=\t\r\n", max_size=300),
        st.builds(lambda n, c: c * n, st.integers(0, 1200), st.sampled_from("xé. ")),
    )


def _leaves() -> SearchStrategy[Part]:
    text = st.builds(
        lambda body, sub, charset: initialize(f"text/{sub}", string=body, params={"charset": charset}),
        text_bodies(), st.sampled_from(["plain", "html"]), st.just("utf-8"))
    binary = st.builds(
        lambda data, name: initialize("application/octet-stream", string=data,
                                      disposition="attachment", filename=name),
        st.binary(max_size=400), st.one_of(st.just("data.bin"), display_names()))
    return st.one_of(text, binary)


def part_trees(max_leaves: int = 8) -> SearchStrategy[Part]:
    """Built Part trees: leaves under multipart/mixed, alternative and
    related, now and then a message/rfc822, with a Subject and To on top."""

    def extend(children: SearchStrategy[Part]) -> SearchStrategy[Part]:
        multipart = st.builds(
            lambda sub, parts: initialize(f"multipart/{sub}", parts=parts),
            st.sampled_from(["mixed", "alternative", "related"]),
            st.lists(children, min_size=1, max_size=3))
        message = st.builds(lambda inner: initialize("message/rfc822", parts=[inner]), children)
        return st.one_of(multipart, message)

    tree = st.recursive(_leaves(), extend, max_leaves=max_leaves)

    def top(part: Part, subject: str, to: tuple[str, list[str]]) -> Part:
        if subject:
            part.setheader("Subject", subject)
        part.setheader("To", to[0])
        return part

    return st.builds(top, tree, header_texts(), address_lists())
