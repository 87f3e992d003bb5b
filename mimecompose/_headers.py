"""Header fields: an ordered, case-insensitive multi-map that refuses header
injection, and the formatter that writes fields on the wire.

Output rules (RFC 5322 section 2.1.1 and 2.2.3, RFC 2047):

- lines are folded at white space to at most 78 characters where possible;
  a folded line is never split inside an encoded word or an address;
- non-ASCII text in unstructured fields is RFC 2047 encoded, only the
  words that need it, with the shorter of Q and B;
- in address fields only the display names (and comments) are encoded;
  the addresses themselves are written as they are (RFC 6532 allows UTF-8).

Fields read from a message keep their raw bytes and are written back
unchanged unless the caller replaces them.
"""

from __future__ import annotations

import re

from ._address import parseaddress
from ._codecs import encode_words, field_decode
from ._errors import HeaderInjectionError, MimeError

__all__ = ["ADDRESS_FIELDS", "Field", "Headers", "check_value", "format_field",
           "parse_content_type", "parse_field_block"]

# Fields whose value is an address list (RFC 5322 section 3.6.2, 3.6.3, 3.6.6).
ADDRESS_FIELDS = frozenset({
    "from", "sender", "reply-to", "to", "cc", "bcc",
    "resent-from", "resent-sender", "resent-to", "resent-cc", "resent-bcc",
    "disposition-notification-to", "mail-followup-to", "mail-reply-to",
})

# Fields with RFC 2045 parameters: folded between parameters, never re-encoded.
PARAMETER_FIELDS = frozenset({"content-type", "content-disposition"})

_NAME_RE = re.compile(r"[!-9;-~]+")  # RFC 5322 section 3.6.8 ftext
_MAX_LINE = 78  # RFC 5322 section 2.1.1: SHOULD; 998 is the hard limit


def check_name(name: str) -> None:
    """Raise MimeError unless ``name`` is a valid field name."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        if isinstance(name, str) and any(c in name for c in "\r\n\x00"):
            raise HeaderInjectionError(f"CR, LF or NUL in header name {name!r}")
        raise MimeError(f"invalid header name {name!r}: printable ASCII without ':' or space")


def check_value(name: str, value: str) -> None:
    """Raise HeaderInjectionError if ``value`` carries CR, LF or NUL.

    Callers never fold values themselves; the formatter does (this closes
    the header-injection class of CVE-2024-6923).
    """
    if not isinstance(value, str):
        raise MimeError(f"header {name} value must be str, not {type(value).__name__}")
    if "\r" in value or "\n" in value or "\x00" in value:
        raise HeaderInjectionError(f"CR, LF or NUL in the value of header {name}: {value!r}")


class Field:
    """One header field. ``raw`` holds the bytes as read (None when set by
    the caller); ``value`` is the unfolded text."""

    __slots__ = ("name", "_value", "raw", "lname")

    def __init__(self, name: str, value: str | None = None, raw: bytes | None = None) -> None:
        self.name = name
        self.lname = name.lower()
        self._value = value
        self.raw = raw

    @property
    def value(self) -> str:
        if self._value is None:
            data = self.raw
            colon = data.index(b":")
            body = data[colon + 1:]
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = body.decode("latin-1")
            self._value = re.sub(r"\r?\n(?=[ \t])|\r?\n$", "", text).strip(" \t\r\n")
        return self._value

    def tobytes(self) -> bytes:
        return self.raw if self.raw is not None else format_field(self.name, self.value)


class Headers:
    """Ordered header fields with case-insensitive lookup."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: list[Field] = []

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [f.value for f in self.fields if f.lname == lname]

    def get(self, name: str) -> str | None:
        lname = name.lower()
        for f in self.fields:
            if f.lname == lname:
                return f.value
        return None

    def __contains__(self, name: str) -> bool:
        lname = name.lower()
        return any(f.lname == lname for f in self.fields)

    def add(self, name: str, value: str) -> None:
        check_name(name)
        check_value(name, value)
        self.fields.append(Field(name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every field ``name`` by one, at the place of the first."""
        check_name(name)
        check_value(name, value)
        lname = name.lower()
        new = Field(name, value)
        out = []
        placed = False
        for f in self.fields:
            if f.lname == lname:
                if not placed:
                    out.append(new)
                    placed = True
            else:
                out.append(f)
        if not placed:
            out.append(new)
        self.fields = out

    def remove(self, name: str) -> None:
        lname = name.lower()
        self.fields = [f for f in self.fields if f.lname != lname]

    def copy(self) -> "Headers":
        h = Headers()
        h.fields = list(self.fields)
        return h


# ------------------------------------------------------------ formatting

_WORD_SPLIT = re.compile(r"([ \t]+)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _needs_encoding(word: str) -> bool:
    return (not word.isascii()) or "=?" in word or len(word) > 900 or bool(_CONTROL.search(word))


def _unstructured_pieces(value: str, wordlength: int = 75) -> list[str]:
    """Split an unstructured value into foldable pieces, encoding as needed.

    Every piece but the first starts with the white space before it, which is
    where a line may be folded. Adjacent words that need encoding are encoded
    together, white space included, because white space between two encoded
    words disappears when they are decoded (RFC 2047 section 6.2).
    """
    tokens = _WORD_SPLIT.split(value)
    # tokens: word, ws, word, ws, ..., word (words may be "")
    pieces: list[str] = []
    i = 0
    while i < len(tokens):
        ws = tokens[i - 1] if i else ""
        word = tokens[i]
        if word and _needs_encoding(word):
            j = i
            while j + 2 < len(tokens) and tokens[j + 2] and _needs_encoding(tokens[j + 2]):
                j += 2
            run = "".join(tokens[i:j + 1])
            words = encode_words(run, wordlength).split(" ")
            pieces.append(ws + words[0])
            pieces.extend(" " + w for w in words[1:])
            i = j + 2
        else:
            if word or ws:
                pieces.append(ws + word)
            i += 2
    return pieces


def _phrase(text: str) -> str:
    """A display name for output: encoded words when not ASCII."""
    return encode_words(text, 66) if _needs_encoding(text) else text


def _address_pieces(value: str) -> list[str] | None:
    """Pieces for an address list, or None when it does not parse."""
    addrs = parseaddress(value)
    if not addrs or any(a.error for a in addrs):
        return None
    items: list[str] = []
    i = 0
    while i < len(addrs):
        a = addrs[i]
        if a.group:
            members = []
            while i < len(addrs) and addrs[i].group == a.group:
                if addrs[i].address:
                    members.append(_mailbox_text(addrs[i]))
                i += 1
            items.append(f"{_phrase(a.group)}: {', '.join(members)};")
            continue
        items.append(_mailbox_text(a))
        i += 1
    pieces: list[str] = []
    for n, item in enumerate(items):
        # fold between addresses; inside one only when it cannot fit a line
        words = item.split(" ") if len(item) > _MAX_LINE - 8 else [item]
        if n < len(items) - 1:
            words[-1] += ","
        pieces.append((" " if n else "") + words[0])
        pieces.extend(" " + w for w in words[1:])
    return pieces


def _mailbox_text(a) -> str:
    if a.phrase:
        display = a.phrase if a.phrase.isascii() else _phrase(a.friendly)
    else:
        display = ""
    comment = a.comment
    if comment and not comment.isascii():
        comment = "(" + encode_words(field_decode(comment[1:-1])) + ")"
    if not a.address:
        text = f"{display} <>" if display else "<>"
    elif display or a.route:
        text = f"{display} <{a.route}{a.address}>".lstrip()
    else:
        text = a.address
    return f"{text} {comment}" if comment else text


def _param_pieces(value: str) -> list[str]:
    segments = value.split("; ")
    return [("" if n == 0 else " ") + seg + (";" if n < len(segments) - 1 else "")
            for n, seg in enumerate(segments)]


def format_field(name: str, value: str) -> bytes:
    """Write one field as bytes: encoded as needed, folded, ending in CRLF.

    Raises HeaderInjectionError for CR, LF or NUL in the value.
    """
    check_value(name, value)
    value = value.strip(" \t")
    if value.isascii() and len(name) + len(value) + 2 <= _MAX_LINE and "=?" not in value \
            and not _CONTROL.search(value):
        return f"{name}: {value}\r\n".encode("ascii")
    pieces = None
    lname = name.lower()
    if lname in ADDRESS_FIELDS:
        pieces = _address_pieces(value)
    elif lname in PARAMETER_FIELDS and value.isascii():
        # already RFC 2231 / RFC 2047 encoded by the builder: fold only
        pieces = _param_pieces(value)
    if pieces is None:
        # the first encoded word must fit on the line after "Name: "
        pieces = _unstructured_pieces(value, max(40, min(75, _MAX_LINE - 2 - len(name))))
    lines: list[str] = []
    line = name + ":"
    for n, piece in enumerate(pieces):
        if n == 0 and not piece[:1].isspace():
            piece = " " + piece
        if len(line) + len(piece) > _MAX_LINE and line != name + ":" and piece[:1] in " \t":
            lines.append(line)
            line = piece
        else:
            line += piece
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


# ------------------------------------------------------------ parameters

_PARAM_RE = re.compile(r'\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)', re.S)


def parse_content_type(value: str) -> tuple[str, list[tuple[str, str, bool]], bool]:
    """Split ``type/subtype; a=b`` into the lower-cased main value, the raw
    parameters ``(name, value, was_quoted)``, and whether the main value
    was well formed."""
    main, _, rest = value.partition(";")
    main = main.strip().lower()
    ok = bool(re.fullmatch(r"[!#$%&'*+\-.0-9a-z^_`{|}~]+/[!#$%&'*+\-.0-9a-z^_`{|}~]+", main))
    pairs = []
    pos = 0
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if not m:
            nxt = rest.find(";", pos)
            if nxt == -1:
                break
            pos = nxt + 1
            continue
        pname, pvalue = m.group(1).lower(), m.group(2)
        quoted = pvalue.startswith('"')
        if quoted:
            pvalue = re.sub(r"\\(.)", r"\1", pvalue[1:-1] if pvalue.endswith('"') and len(pvalue) > 1
                            else pvalue[1:], flags=re.S)
        else:
            pvalue = pvalue.strip()
        pairs.append((pname, pvalue, quoted))
        pos = m.end()
        nxt = rest.find(";", pos)
        if nxt == -1:
            break
        pos = nxt + 1
    return main, pairs, ok


# ------------------------------------------------------------ parsing

_FIELD_NAME_RE = re.compile(rb"([!-9;-~]+)[ \t]*:")


def parse_field_block(data: bytes) -> tuple[list[Field], int, str | None]:
    """Split the header lines at the start of ``data`` into fields.

    Returns ``(fields, consumed, problem)``: ``consumed`` is how many bytes
    belong to the header block (the blank separator line not included);
    ``problem`` names the first malformed line, where the header block was
    taken to end (as the ``email`` package does).
    """
    fields: list[Field] = []
    pos = 0
    n = len(data)
    current: list[bytes] | None = None
    name = ""
    problem = None
    while pos < n:
        eol = data.find(b"\n", pos)
        end = n if eol == -1 else eol + 1
        line = data[pos:end]
        if line in (b"\r\n", b"\n"):
            break
        first = line[:1]
        if first in (b" ", b"\t") and current is not None:
            current.append(line)
        else:
            m = _FIELD_NAME_RE.match(line)
            if not m:
                problem = f"line {line[:40]!r} is not a header field"
                break
            if current is not None:
                fields.append(Field(name, raw=b"".join(current)))
            name = m.group(1).decode("ascii")
            current = [line]
        pos = end
    if current is not None:
        fields.append(Field(name, raw=b"".join(current)))
    return fields, pos, problem
