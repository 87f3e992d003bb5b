"""RFC 5322 address lists: ``parseaddress`` reads them into :class:`Address`
records with tcllib's fields, ``formataddress`` writes one mailbox.

Parsing is lenient the way real mail needs (obsolete phrases such as
``J. Smith``, routes, empty list elements, comments anywhere, UTF-8 per
RFC 6532) and never raises: a malformed address comes back with ``error``
set, salvaged as a reader would show it, and the others in the list are
still parsed.

The parser streams: the lexer yields one token at a time, and only the
tokens of the list element being read are held, so time and memory are
linear in the input (the records returned are the only thing that grows).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from itertools import chain
from typing import Iterator, NamedTuple

from ._codecs import field_decode
from ._errors import HeaderInjectionError, MimeError
from .args import require_str

__all__ = ["Address", "formataddress", "parseaddress"]


@dataclass(frozen=True, slots=True)
class Address:
    """One parsed mailbox (tcllib ``mime::parseaddress`` fields).

    - ``address``: ``local@domain`` as written (unfolded), without the route;
      ``""`` for the record of an empty group and for ``<>``.
    - ``local``, ``domain``: the two halves (quotes kept on a quoted local part).
    - ``phrase``: the display name exactly as written, quotes kept.
    - ``comment``: the comments, parentheses kept (``"(John Doe)"``).
    - ``friendly``: a readable name: the display name without quotes (encoded
      words outside quotes decoded), else the comment's text, else the local part.
    - ``group``: the group name (decoded), on every member of a group, else ``""``.
    - ``route``: an obsolete source route (``"@relay.net:"``), else ``""``.
    - ``proper``: ``phrase <address>``, or just the address; for a record in
      error, the text as written.
    - ``error``: ``None`` when the address parsed, else what is wrong.
    """

    address: str
    local: str = ""
    domain: str = ""
    phrase: str = ""
    comment: str = ""
    friendly: str = ""
    group: str = ""
    route: str = ""
    proper: str = ""
    error: str | None = None


class _Tok(NamedTuple):
    kind: str  # atom, qstring, comment, dliteral, bad, or the special character itself
    start: int
    end: int
    problem: str = ""  # what is wrong with this token ("" when nothing)


class _Bad(Exception):
    """A syntax error inside one mailbox."""


# atext plus UTF-8 (RFC 6532 3.2): everything but specials, blanks and controls
_ATOM_RE = re.compile(r"[^ \t()<>\[\]:;@\\,.\"\x00-\x1f\x7f]+")
_WS_RE = re.compile(r"[ \t]+")
# where a quoted string, a comment or a domain literal needs a look
_QS_STOP = re.compile(r'["\\\x00\r\n]')
_COMMENT_STOP = re.compile(r"[()\\\x00\r\n]")
_DLITERAL_STOP = re.compile(r"[\[\]\\\x00\r\n]")
# RFC 5322 2.2.3: unfolding removes a CRLF that is followed by WSP (a lone LF
# too, as in messages stored with Unix line ends)
_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_ESCAPE_RE = re.compile(r"\\(.)", re.S)
_SPECIALS = "<>:;@,."
_CRLF = "CR or LF outside folding (RFC 5322 3.2.2)"


def _scan(text: str, i: int, stop: re.Pattern[str], what: str) -> tuple[int, str]:
    """Scan a quoted string, comment or domain literal opened at ``i``.

    Returns the index just past its end and the first problem found ("" if
    none). Comments nest; a quoted-pair escapes one character. Unterminated,
    it runs to the end of the text.
    """
    close = {"quoted string": '"', "comment": ")", "domain literal": "]"}[what]
    problem = ""
    depth = 1
    j = i + 1
    while True:
        m = stop.search(text, j)
        if m is None:
            return len(text), f"unterminated {text[i]!r}"  # the gravest problem
        j = m.end()
        c = m.group()
        if c == "\\":
            quoted = text[j:j + 1]
            if quoted in ("\r", "\n", "\x00"):
                # obs-qp (RFC 5322 4.1) allows a quoted CR, LF or NUL, but
                # they never reach an Address field: a CR, LF or NUL is never
                # safe to pass on (the project's header injection rule)
                problem = problem or (_CRLF if quoted != "\x00" else f"NUL in a {what}")
            j += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j, problem
        elif c == "(":
            depth += 1
        elif c in "\r\n":
            problem = problem or _CRLF
        elif c == "\x00":
            # RFC 5322 3.2.4 (qtext), 3.2.2 (ctext), 3.4.1 (dtext): no NUL
            problem = problem or f"NUL in a {what}"
        elif c == "[":
            problem = problem or "'[' inside a domain literal (RFC 5322 3.4.1)"


def _lex(text: str) -> Iterator[_Tok]:
    """Yield the tokens of an (unfolded) address list, one at a time."""
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == " " or c == "\t":
            i = _WS_RE.match(text, i).end()  # type: ignore[union-attr]
            continue
        m = _ATOM_RE.match(text, i)
        if m:
            yield _Tok("atom", i, m.end())
            i = m.end()
        elif c in _SPECIALS:
            yield _Tok(c, i, i + 1)
            i += 1
        elif c == '"':
            j, problem = _scan(text, i, _QS_STOP, "quoted string")
            yield _Tok("qstring", i, j, problem)
            i = j
        elif c == "(":
            j, problem = _scan(text, i, _COMMENT_STOP, "comment")
            yield _Tok("comment", i, j, problem)
            i = j
        elif c == "[":
            j, problem = _scan(text, i, _DLITERAL_STOP, "domain literal")
            yield _Tok("dliteral", i, j, problem)
            i = j
        else:
            problem = _CRLF if c in "\r\n" else f"illegal character {c!r}"
            yield _Tok("bad", i, i + 1, problem)
            i += 1


def _text(s: str, tok: _Tok) -> str:
    return s[tok.start:tok.end]


def _unquote(s: str, tok: _Tok) -> str:
    """The content of a quoted string or comment, quoted-pairs resolved."""
    inner = s[tok.start + 1:tok.end - 1] if not tok.problem.startswith("unterminated") \
        else s[tok.start + 1:tok.end]
    return _ESCAPE_RE.sub(r"\1", inner) if "\\" in inner else inner


def _display(s: str, toks: list[_Tok]) -> str:
    """The readable form of a phrase: quotes removed, comments dropped, and
    encoded words decoded only outside quoted strings (RFC 2047 section 5(3))."""
    out: list[str] = []
    run: list[str] = []  # unquoted words, decoded together (RFC 2047 section 6.2)
    prev_end = -1
    for tok in toks:
        if tok.kind == "comment":
            continue
        if prev_end >= 0 and tok.start > prev_end:
            (run or out).append(" ")
        if tok.kind == "qstring":
            if run:
                out.append(field_decode("".join(run)))
                run = []
            out.append(_unquote(s, tok))
        else:
            run.append(_text(s, tok))
        prev_end = tok.end
    if run:
        out.append(field_decode("".join(run)))
    return "".join(out)


def _phrase_problem(s: str, words: list[_Tok]) -> str:
    """What keeps ``words`` from being an RFC 5322 phrase, or ""."""
    if not words:
        return ""
    if words[0].kind == ".":
        return "display name starts with '.' (RFC 5322 4.1: obs-phrase starts with a word)"
    for tok in words:
        if tok.kind not in ("atom", "qstring", "."):
            return f"unexpected {_text(s, tok)!r} in display name"
    return ""


def _domain(s: str, toks: list[_Tok]) -> str:
    """A domain from non-comment tokens: dot-atom, obs-domain or one domain literal."""
    if len(toks) == 1 and toks[0].kind == "dliteral":
        return _text(s, toks[0])
    parts = []
    expect_word = True
    for tok in toks:
        if expect_word and tok.kind == "atom":
            expect_word = False
        elif not expect_word and tok.kind == ".":
            expect_word = True
        else:
            raise _Bad(f"unexpected {_text(s, tok)!r} in domain")
        parts.append(_text(s, tok))
    if not parts or expect_word:
        raise _Bad("missing or incomplete domain")
    return "".join(parts)


def _addr_spec(s: str, toks: list[_Tok]) -> tuple[str, str]:
    """Parse ``local@domain`` from non-comment tokens; returns (local, domain)."""
    local: list[str] = []
    expect_word = True
    i = 0
    while i < len(toks) and toks[i].kind != "@":
        tok = toks[i]
        if expect_word and tok.kind in ("atom", "qstring"):
            expect_word = False
        elif not expect_word and tok.kind == ".":
            expect_word = True
        elif tok.kind == "." and not local:
            raise _Bad("local-part starts with a dot")
        else:
            raise _Bad(f"expecting at-sign after local-part (found {_text(s, tok)})")
        local.append(_text(s, tok))
        i += 1
    if not local:
        raise _Bad("missing local-part")
    if i == len(toks):
        raise _Bad("missing at-sign and domain")
    if expect_word:
        raise _Bad("local-part ends with a dot")
    return "".join(local), _domain(s, toks[i + 1:])


def _route(s: str, inner: list[_Tok]) -> tuple[str, list[_Tok], str]:
    """Split an obsolete route off an angle-addr's tokens (RFC 5322 4.4).

    obs-route = obs-domain-list ":", with obs-domain-list = *(CFWS / ",")
    "@" domain *("," [CFWS] ["@" domain]). Returns (route, the rest, problem).
    """
    if not inner or inner[0].kind not in ("@", ","):
        return "", inner, ""
    colon = next((k for k, t in enumerate(inner) if t.kind == ":"), -1)
    if colon < 0:
        return "", inner, ""
    problem = ""
    element: list[_Tok] = []
    seen = False
    for tok in inner[:colon] + [_Tok(",", 0, 0)]:
        if tok.kind != ",":
            element.append(tok)
            continue
        if element:
            seen = True
            try:
                if element[0].kind != "@":
                    raise _Bad("not '@' domain")
                _domain(s, element[1:])
            except _Bad:
                shown = s[element[0].start:element[-1].end]
                problem = problem or f"bad route element {shown!r} (RFC 5322 4.4)"
            element = []
    if not seen:
        problem = "empty route (RFC 5322 4.4)"
    route = "".join(_text(s, t) for t in inner[:colon + 1])
    return route, inner[colon + 1:], problem


def _comment_text(s: str, toks: list[_Tok]) -> str:
    """The readable text of the first comment (RFC 2047 5(2): encoded words allowed)."""
    first = next(t for t in toks if t.kind == "comment")
    return field_decode(_unquote(s, first).strip())


def _local_text(local: str) -> str:
    """A local part as a reader shows it: a quoted one without its quotes."""
    if len(local) > 1 and local[0] == '"' and local[-1] == '"':
        return _ESCAPE_RE.sub(r"\1", local[1:-1])
    return local


def _split_at(raw: str) -> tuple[str, str]:
    local, at, domain = raw.rpartition("@")
    return (local, domain) if at else (raw, "")


def _mailbox(s: str, toks: list[_Tok], group: str, group_problem: str,
             domains: dict[str, str]) -> Address:
    """One list element (a mailbox) as an Address record (``domains``: the
    domains seen so far, so that equal ones share one str)."""
    words = [t for t in toks if t.kind != "comment"]
    comments = [_text(s, t) for t in toks if t.kind == "comment"]
    comment = " ".join(comments)
    raw = s[toks[0].start:toks[-1].end]
    problem = next((t.problem for t in toks if t.problem), "") or group_problem
    if not problem and _SURROGATE_RE.search(s, toks[0].start, toks[-1].end):
        problem = "not valid UTF-8 (RFC 6532 3.2)"
    lt = next((k for k, t in enumerate(words) if t.kind == "<"), -1)
    if lt < 0:
        try:
            local, domain = _addr_spec(s, words)
        except _Bad as exc:
            problem = problem or str(exc)
            guess = "" if "@" in raw else "".join(
                _text(s, t) for t in words if t.kind in ("atom", "qstring", "."))
            return Address(raw, local=guess, comment=comment, friendly=raw, group=group,
                           proper=raw, error=problem)
        domain = domains.setdefault(domain, domain)
        address = f"{local}@{domain}"
        friendly = _comment_text(s, toks) if comments else _local_text(local)
        if problem:
            return Address(address, local, domain, "", comment, friendly, group, "", raw, problem)
        return Address(address, local, domain, "", comment, friendly, group, "", address)

    # name-addr: [display-name] "<" [route] addr-spec ">"
    gt = next((k for k in range(lt + 1, len(words)) if words[k].kind == ">"), -1)
    if gt < 0:
        problem = problem or "missing '>'"
        inner = words[lt + 1:]
    else:
        inner = words[lt + 1:gt]
        if gt != len(words) - 1:
            problem = problem or f"unexpected {_text(s, words[gt + 1])!r} after '>'"
    phrase_words = words[:lt]
    problem = problem or _phrase_problem(s, phrase_words)
    phrase = s[phrase_words[0].start:phrase_words[-1].end] if phrase_words else ""
    friendly = _display(s, [t for t in toks if t.end <= words[lt].start]) if phrase else ""
    route, inner, route_problem = _route(s, inner)
    problem = problem or route_problem
    if not inner and not route:
        # "<>" is the null reverse-path (RFC 5321 section 4.5.5)
        proper = f"{phrase} <>" if phrase else "<>"
        return Address("", phrase=phrase, comment=comment, friendly=friendly, group=group,
                       proper=raw if problem else proper, error=problem or None)
    try:
        local, domain = _addr_spec(s, inner)
        domain = domains.setdefault(domain, domain)
        address = f"{local}@{domain}"
    except _Bad as exc:
        # salvage as a reader does: what is inside the brackets is the address
        problem = problem or str(exc)
        address = s[inner[0].start:inner[-1].end] if inner else ""
        local, domain = _split_at(address)
    if not friendly:
        friendly = _comment_text(s, toks) if comments else _local_text(local)
    if problem:
        return Address(address, local, domain, phrase, comment, friendly, group, route, raw, problem)
    proper = f"{phrase} <{address}>" if phrase else address
    return Address(address, local, domain, phrase, comment, friendly, group, route, proper)


def _unfold(text: str) -> str:
    return _FOLD_RE.sub("", text) if "\n" in text else text


def parseaddress(text: str) -> list[Address]:
    """Parse an address list (a To/Cc/From value) into :class:`Address` records.

    Groups (``Team: a@x, b@y;``) yield one record per member, each with
    ``group`` set; an empty group (``Undisclosed recipients:;``) yields one
    record with ``address == ""``; a group missing its closing ``;`` is
    accepted. Folding (CRLF followed by white space) is removed first
    (RFC 5322 2.2.3). Errors are reported per address in ``error``; a
    malformed mailbox is salvaged the way a reader shows it (in
    ``Alert@Paxil <x@example.com>`` the address is ``x@example.com``, the
    display name ``Alert@Paxil``). This function never raises for any
    string input, and is linear in time and memory.
    """
    if not require_str(text, "parseaddress()").strip():
        return []
    return list(iter_addresses(text))


_END = _Tok("end", 0, 0)


# The fast path of iter_addresses: a list of simple mailboxes, each
# ``local@domain``, ``<local@domain>``, ``Display Name <local@domain>`` or
# ``"Quoted Name" <local@domain>``, separated by "," with optional spaces, in
# printable ASCII. Local part and domain are dot-atoms (RFC 5322 3.2.3); the
# name is atoms and dots with single spaces, starting with an atom (obs-phrase,
# RFC 5322 4.1), or one non-empty quoted string without quoted-pairs. Why the
# records are exactly the general path's: such text has no folding, comments,
# groups, routes, quoted-pairs, non-ASCII or token problems; an unquoted name
# with single spaces is what _display rebuilds from its tokens, and without "=?"
# (checked by the caller) field_decode leaves it unchanged; a quoted name's
# friendly form is its content, and it is never empty (an empty one would fall
# back to the local part). Every element is atomic and every quantifier
# possessive, so matching is linear; a list element matches in one way only.
_FAST_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~"


def _fast_patterns(possessive: bool) -> tuple[str, str]:
    """The fast path's element and list patterns, with possessive
    quantifiers and atomic groups or without them. Python 3.10 has
    neither and reads the pattern without: it stays linear because each
    element can match in one way only (what a failed element gives back
    cannot start another), which a test of 1 MB near-misses checks on
    the form without them on every version."""
    p, atomic = ("+", "?>") if possessive else ("", "?:")
    dot_atom = rf"[{_FAST_ATEXT}]+{p}(?:\.[{_FAST_ATEXT}]+{p})*{p}"
    addr = rf"{dot_atom}@{dot_atom}"
    name = (rf"[{_FAST_ATEXT}][{_FAST_ATEXT}.]*{p}(?: [{_FAST_ATEXT}.]+{p})*{p}"
            rf'|"[ !#-\[\]-~]+{p}"')  # a quoted string: printable ASCII but '"' and '\'
    # the spaces before "<" are the name's when there is one, else the
    # element's leading ones: never split two ways (2**n tries without possessives)
    item = (rf" *{p}(?:(?:(?P<name>{name}) *{p})?{p}<(?P<angle>{addr})>"
            rf"|(?P<bare>{addr})) *{p}(?:,(?!\Z)|\Z)")
    return item, rf"({atomic}{item})+{p}"


_ITEM_PATTERN, _LIST_PATTERN = _fast_patterns(sys.version_info >= (3, 11))
_FAST_ITEM = re.compile(_ITEM_PATTERN)
_FAST_LIST = re.compile(_LIST_PATTERN)


def _iter_simple(text: str) -> Iterator[Address]:
    """The records of a list that ``_FAST_LIST`` matches in full (see above)."""
    domains: dict[str, str] = {}
    for m in _FAST_ITEM.finditer(text):
        address = m["angle"] or m["bare"]
        local, _, domain = address.partition("@")
        domain = domains.setdefault(domain, domain)
        name = m["name"]
        if name:
            friendly = name[1:-1] if name[0] == '"' else name
            yield Address(address, local, domain, name, "", friendly, "", "", f"{name} <{address}>")
        else:
            yield Address(address, local, domain, "", "", local, "", "", address)


def iter_addresses(text: str) -> Iterator[Address]:
    """Yield the records :func:`parseaddress` returns, one at a time.

    Only the tokens of the list element being read are held, so a caller
    that keeps only, say, the addresses needs memory for those alone.
    """
    if type(text) is str and "=?" not in text and _FAST_LIST.fullmatch(text):
        return _iter_simple(text)
    return _iter_addresses_general(text)


def _iter_addresses_general(text: str) -> Iterator[Address]:
    """:func:`iter_addresses` for any text: the streaming parser."""
    s = _unfold(require_str(text, "iter_addresses()"))
    group: str | None = None  # the name, while inside a group
    group_problem = ""
    members = 0
    element: list[_Tok] = []
    depth = 0  # angle brackets open in this element
    addr_seen = False  # a "<" or "@" in this element: a ":" is no group
    domains: dict[str, str] = {}  # one str per distinct domain, shared by the records
    for tok in chain(_lex(s), (_END,)):
        kind = tok.kind
        if depth == 0 or kind == "end":
            if kind in (",", "end") or (kind == ";" and group is not None):
                if any(t.kind != "comment" or t.problem for t in element):
                    yield _mailbox(s, element, group or "", group_problem, domains)
                    members += 1
                element = []
                depth = 0
                addr_seen = False
                # RFC 5322 3.4: a group ends with ";" -- accepted missing, as readers do
                if group is not None and kind != ",":
                    if not members:
                        yield Address("", group=group, error=group_problem or None)
                    group = None
                    group_problem = ""
                continue
            if kind == ":" and group is None and not addr_seen \
                    and any(t.kind != "comment" for t in element):
                words = [t for t in element if t.kind != "comment"]
                group_problem = next((t.problem for t in element if t.problem), "") \
                    or _phrase_problem(s, words)
                group = _display(s, element)
                members = 0
                element = []
                continue
        if kind == "<":
            depth += 1
            addr_seen = True
        elif kind == ">":
            depth = max(0, depth - 1)
        elif kind == "@":
            addr_seen = True
        element.append(tok)


_ATEXT_WORDS = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\x80-\U0010ffff]+"
                          r"(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\x80-\U0010ffff]+)*")


def formataddress(name: str, address: str) -> str:
    """Format one mailbox: ``name <address>``, quoting ``name`` as needed.

    ``address`` must be one addr-spec (``local@domain``, RFC 5322 3.4.1: a
    dot-atom or quoted-string local part, a dot-atom domain or a domain
    literal), written without comments or white space. Non-ASCII names are
    kept as text; the header serialiser encodes them (RFC 2047) when the
    message is built. The result parses back as exactly that one mailbox.

    Raises HeaderInjectionError (a MimeError, a ValueError) for CR, LF or NUL
    in either argument, MimeError for an address that is not a single
    addr-spec or text that is not valid Unicode (lone surrogates).
    """
    for value in (name, address):
        if any(c in value for c in "\r\n\x00"):
            raise HeaderInjectionError("CR, LF and NUL are not allowed in an address")
        if _SURROGATE_RE.search(value):
            raise MimeError("an address or display name that is not valid Unicode (RFC 6532)")
    toks = list(_lex(address))
    problem = next((t.problem for t in toks if t.problem), "")
    if not problem and any(t.kind == "comment" for t in toks):
        problem = "a comment"
    if not problem:
        try:
            local, domain = _addr_spec(address, toks)
            if f"{local}@{domain}" != address:
                problem = "white space"
        except _Bad as exc:
            problem = str(exc)
    if problem:
        raise MimeError(f"not a single addr-spec ({problem}): {address!r}")
    if not name:
        return address
    if not _ATEXT_WORDS.fullmatch(name) or "=?" in name:
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"
