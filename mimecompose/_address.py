"""RFC 5322 address lists: ``parseaddress`` reads them into :class:`Address`
records with tcllib's fields, ``formataddress`` writes one mailbox.

Parsing is lenient the way real mail needs (obsolete phrases such as
``J. Smith``, routes, empty list elements, comments anywhere, UTF-8 per
RFC 6532) and never raises: a malformed address comes back with ``error``
set and the others in the list are still parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from ._codecs import field_decode
from ._errors import HeaderInjectionError

__all__ = ["Address", "formataddress", "parseaddress"]


@dataclass(frozen=True)
class Address:
    """One parsed mailbox (tcllib ``mime::parseaddress`` fields).

    - ``address``: ``local@domain`` as written, without the route;
      ``""`` for the record of an empty group.
    - ``local``, ``domain``: the two halves (quotes kept on a quoted local part).
    - ``phrase``: the display name exactly as written, quotes kept.
    - ``comment``: the comments, parentheses kept (``"(John Doe)"``).
    - ``friendly``: a readable name: the decoded display name without
      quotes, else the comment's text, else the local part.
    - ``group``: the group name, on every member of a group, else ``""``.
    - ``route``: an obsolete source route (``"@relay.net:"``), else ``""``.
    - ``proper``: ``phrase <address>``, or just the address.
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
    kind: str  # atom, qstring, comment, dliteral, or the special character itself
    text: str
    start: int
    end: int


_SPECIALS = "()<>[]:;@\\,.\""
_ATOM_RE = re.compile(r"[^\s()<>\[\]:;@\\,.\"\x00-\x1f\x7f]+")
_WS_RE = re.compile(r"[ \t\r\n]+")


class _SyntaxError(Exception):
    pass


def _scan_delimited(text: str, i: int, close: str, nest: str | None = None) -> int:
    """Return the index just past the delimiter that closes the one at ``i``."""
    depth = 1
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if nest and c == nest:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise _SyntaxError(f"unterminated {text[i]!r}")


def _tokenize(text: str) -> list[_Tok]:
    toks = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i = _WS_RE.match(text, i).end()
        elif c == '"':
            j = _scan_delimited(text, i, '"')
            toks.append(_Tok("qstring", text[i:j], i, j))
            i = j
        elif c == "(":
            j = _scan_delimited(text, i, ")", "(")
            toks.append(_Tok("comment", text[i:j], i, j))
            i = j
        elif c == "[":
            j = _scan_delimited(text, i, "]")
            toks.append(_Tok("dliteral", text[i:j], i, j))
            i = j
        elif c in _SPECIALS:
            toks.append(_Tok(c, c, i, i + 1))
            i += 1
        else:
            m = _ATOM_RE.match(text, i)
            if not m:
                toks.append(_Tok("bad", c, i, i + 1))
                i += 1
            else:
                toks.append(_Tok("atom", m.group(0), i, m.end()))
                i = m.end()
    return toks


def _unquote(qstring: str) -> str:
    return re.sub(r"\\(.)", r"\1", qstring[1:-1], flags=re.S)


def _display(text: str, toks: list[_Tok]) -> str:
    """The readable form of a phrase: quotes removed, encoded words decoded."""
    out = []
    prev_end = None
    for tok in toks:
        if tok.kind == "comment":
            continue
        if prev_end is not None and tok.start > prev_end:
            out.append(" ")
        out.append(_unquote(tok.text) if tok.kind == "qstring" else tok.text)
        prev_end = tok.end
    return field_decode("".join(out))


def _comment_text(comment: str) -> str:
    return field_decode(_unquote(comment).strip())


def _parse_addr_spec(toks: list[_Tok]) -> tuple[str, str]:
    """Parse ``local@domain`` from non-comment tokens; returns (local, domain)."""
    i = 0
    local = []
    expect_word = True
    while i < len(toks) and toks[i].kind != "@":
        tok = toks[i]
        if expect_word and tok.kind in ("atom", "qstring"):
            expect_word = False
        elif not expect_word and tok.kind == ".":
            expect_word = True
        elif tok.kind == "." and not local:
            raise _SyntaxError("local-part starts with a dot")
        else:
            raise _SyntaxError(f"expecting at-sign after local-part (found {tok.text})")
        local.append(tok.text)
        i += 1
    if not local:
        raise _SyntaxError("missing local-part")
    if i == len(toks):
        raise _SyntaxError("missing at-sign and domain")
    if expect_word:
        raise _SyntaxError("local-part ends with a dot")
    i += 1
    domain = []
    expect_word = True
    while i < len(toks):
        tok = toks[i]
        if expect_word and tok.kind == "atom":
            expect_word = False
        elif expect_word and tok.kind == "dliteral" and not domain:
            expect_word = False
        elif not expect_word and tok.kind == "." and toks[i - 1].kind == "atom":
            expect_word = True
        else:
            raise _SyntaxError(f"unexpected {tok.text!r} in domain")
        domain.append(tok.text)
        i += 1
    if not domain or expect_word:
        raise _SyntaxError("missing or incomplete domain")
    return "".join(local), "".join(domain)


def _mailbox(text: str, toks: list[_Tok], group: str) -> Address:
    comments = [t.text for t in toks if t.kind == "comment"]
    comment = " ".join(comments)
    words = [t for t in toks if t.kind != "comment"]
    phrase = route = ""
    phrase_toks: list[_Tok] = []
    raw = text[toks[0].start:toks[-1].end].strip() if toks else ""
    try:
        bad = next((t for t in words if t.kind == "bad"), None)
        if bad:
            raise _SyntaxError(f"illegal character {bad.text!r}")
        kinds = [t.kind for t in words]
        if "<" in kinds:
            lt = kinds.index("<")
            if ">" not in kinds[lt:]:
                raise _SyntaxError("missing '>'")
            gt = lt + kinds[lt:].index(">")
            if gt != len(words) - 1:
                raise _SyntaxError(f"unexpected {words[gt + 1].text!r} after '>'")
            phrase_toks = [t for t in toks if t.end <= words[lt].start]
            for t in words[:lt]:
                if t.kind not in ("atom", "qstring", "."):
                    raise _SyntaxError(f"unexpected {t.text!r} in display name")
            if words[:lt]:
                phrase = text[words[0].start:words[lt - 1].end]
            inner = words[lt + 1:gt]
            ikinds = [t.kind for t in inner]
            if ":" in ikinds and ikinds and ikinds[0] == "@":
                colon = ikinds.index(":")
                route = "".join(t.text for t in inner[:colon + 1])
                inner = inner[colon + 1:]
            if not inner:
                # "<>" is the null reverse-path (RFC 5321 section 4.5.5)
                return Address("", phrase=phrase, comment=comment,
                               friendly=_display(text, phrase_toks) if phrase else "",
                               group=group, route=route, proper="<>")
            local, domain = _parse_addr_spec(inner)
        else:
            local, domain = _parse_addr_spec(words)
    except _SyntaxError as exc:
        local_guess = "".join(t.text for t in words if t.kind in ("atom", "qstring", "."))
        return Address(raw, phrase=phrase, comment=comment, friendly=raw, group=group,
                       route=route, proper=raw, error=str(exc),
                       local=local_guess if "@" not in raw else "")
    address = f"{local}@{domain}"
    if phrase:
        friendly = _display(text, phrase_toks)
    elif comments:
        friendly = _comment_text(comments[0])
    else:
        friendly = _unquote(local) if local.startswith('"') else local
    proper = f"{phrase} <{address}>" if phrase else address
    return Address(address, local, domain, phrase, comment, friendly, group, route, proper)


def _split_top(toks: list[_Tok], sep: str) -> list[list[_Tok]]:
    """Split tokens at ``sep`` where not inside angle brackets."""
    items: list[list[_Tok]] = [[]]
    depth = 0
    for tok in toks:
        if tok.kind == "<":
            depth += 1
        elif tok.kind == ">":
            depth = max(0, depth - 1)
        if tok.kind == sep and depth == 0:
            items.append([])
        else:
            items[-1].append(tok)
    return items


def parseaddress(text: str) -> list[Address]:
    """Parse an address list (a To/Cc/From value) into :class:`Address` records.

    Groups (``Team: a@x, b@y;``) yield one record per member, each with
    ``group`` set; an empty group (``Undisclosed recipients:;``) yields one
    record with ``address == ""``. Errors are reported per address in
    ``error``; this function never raises for any string input.
    """
    if not text or not text.strip():
        return []
    try:
        toks = _tokenize(text)
    except _SyntaxError as exc:
        return [Address(text.strip(), friendly=text.strip(), proper=text.strip(), error=str(exc))]
    results: list[Address] = []
    i = 0
    n = len(toks)
    while i < n:
        # find this element's extent: a group (phrase ":" ... ";") or a mailbox up to ","
        j = i
        depth = 0
        is_group = False
        while j < n:
            kind = toks[j].kind
            if kind == "<":
                depth += 1
            elif kind == ">":
                depth = max(0, depth - 1)
            elif depth == 0 and kind == ",":
                break
            elif depth == 0 and kind == ":" and not any(t.kind in "<@" for t in toks[i:j]):
                is_group = True
                break
            j += 1
        if is_group:
            name_toks = toks[i:j]
            name = _display(text, name_toks)
            k = j + 1
            while k < n and toks[k].kind != ";":
                k += 1
            members = [m for m in _split_top(toks[j + 1:k], ",")
                       if any(t.kind != "comment" for t in m)]
            if not members:
                results.append(Address("", group=name, friendly="", proper=""))
            for member in members:
                results.append(_mailbox(text, member, name))
            i = k + 1
            if k >= n:
                # RFC 5322 section 3.4: a group ends with ";" -- accept, as readers do
                pass
            continue
        element = toks[i:j]
        if any(t.kind != "comment" for t in element):
            results.append(_mailbox(text, element, ""))
        i = j + 1
    return results


_ATEXT_WORDS = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\x80-\U0010ffff]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\x80-\U0010ffff]+)*")


def formataddress(name: str, address: str) -> str:
    """Format one mailbox: ``name <address>``, quoting ``name`` as needed.

    Non-ASCII names are kept as text; the header serialiser encodes them
    (RFC 2047) when the message is built. Raises ValueError for CR, LF or
    NUL in either argument (HeaderInjectionError).
    """
    for value in (name, address):
        if any(c in value for c in "\r\n\x00"):
            raise HeaderInjectionError("CR, LF and NUL are not allowed in an address")
    if not name:
        return address
    if not _ATEXT_WORDS.fullmatch(name) or "=?" in name:
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"
