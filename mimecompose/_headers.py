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
from typing import Callable, NamedTuple

from ._address import Address, parseaddress
from ._codecs import encode_words, field_decode
from ._errors import HeaderInjectionError, MimeError

__all__ = ["ADDRESS_FIELDS", "Field", "FieldBlock", "Headers", "check_name", "check_value", "checkheader",
           "format_field",
           "parse_content_type", "parse_field_block", "raw_value", "read_field_block"]

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


def checkheader(name: str, value: str) -> None:
    """Check a header field as ``header=`` and :meth:`Part.setheader` do
    before they take it.

    Raises MimeError for a name that is not a field name (RFC 5322 section
    3.6.8: printable ASCII, no ":" or space) or a value that is not a str;
    HeaderInjectionError (a MimeError) for CR, LF or NUL in either. A value
    that passes can still be refused when the field is written, if its
    written form would hold a control character that cannot be encoded
    there (in an address or a MIME parameter).
    """
    check_name(name)
    check_value(name, value)


# unfolding (RFC 5322 section 2.2.3): a line break before white space, and
# the one ending the field; CRLF, LF and a bare CR are line breaks alike
# (each alternative starts with one character, so the regex engine skips to
# the next CR or LF instead of trying every position: several times faster)
_UNFOLD = re.compile(r"\r(?=\n?[ \t])|\n(?=[ \t])|\r\n?\Z|\n\Z")


def raw_value(raw: bytes) -> str:
    """The unfolded text of a field as read (name, colon, body and line
    breaks): UTF-8, else Latin-1; raises nothing."""
    body = raw[raw.index(b":") + 1:]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    value = text.strip(" \t\r\n")
    if "\n" in value or "\r" in value:   # folded: unfold (a one-line field only loses its line break)
        value = _UNFOLD.sub("", text).strip(" \t\r\n")
    return value


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
            assert self.raw is not None   # a field has a value, raw bytes, or both
            self._value = raw_value(self.raw)
        return self._value

    def tobytes(self) -> bytes:
        return self.raw if self.raw is not None else format_field(self.name, self.value)


class Headers:
    """Ordered header fields with case-insensitive lookup.

    Fields read from a message are kept as the ``(raw, name)`` pairs
    :func:`read_field_block` split them into, and become :class:`Field`
    objects only when they are first asked for: a parse reads every field
    of every part, a reader often one or two.
    """

    __slots__ = ("_fields", "_unread")

    def __init__(self) -> None:
        self._fields: list[Field] = []
        self._unread: list[tuple[bytes, bytes]] | None = None

    @property
    def fields(self) -> list[Field]:
        """The fields in order (the list itself: changing it changes the header)."""
        if self._unread is not None:
            self._fields = [Field(name.decode("ascii"), None, raw) for raw, name in self._unread]
            self._unread = None
        return self._fields

    @fields.setter
    def fields(self, fields: list[Field]) -> None:
        self._fields = fields
        self._unread = None

    def read(self, pairs: list[tuple[bytes, bytes]]) -> None:
        """Hold fields as read: ``(raw, name)`` pairs (FieldBlock.pairs)."""
        self._fields = []
        self._unread = pairs

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
        """Append a field. Raises what format_field raises: a value that
        cannot be written safely is refused here, not when it is sent."""
        check_name(name)
        format_field(name, value)
        self.fields.append(Field(name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every field ``name`` by one, at the place of the first.
        Raises what add() raises."""
        check_name(name)
        format_field(name, value)
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
# What may not be written raw in a field: the C0 controls but TAB (CR and LF
# among them), and DEL. Text that holds one -- also after RFC 2047 or RFC
# 2231 decoding, which is where a value that passed check_value can get
# one -- is written as encoded words, or refused (RFC 5322 section 2.2:
# a field body is printable characters and WSP; CR LF only in folding).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# A display name or group name that needs no quoting: atoms separated by
# single spaces (RFC 5322 section 3.2.3 atext, ASCII).
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")


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
    """A display name or group name from its decoded text, for output: RFC
    2047 encoded words when not ASCII or holding a control character, a
    quoted-string when it is not plain atoms (so that a decoded ``:``,
    ``,`` or ``<`` cannot end the name and start an address), else as it is."""
    if _needs_encoding(text):
        return encode_words(text, 66)
    if _ATOMS.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _address_pieces(value: str) -> list[str] | None:
    """Pieces for an address list, or None when it does not parse."""
    addrs = parseaddress(value)
    if not addrs and value.startswith("(") and value.endswith(")"):
        # only a comment: its text is encoded inside the parentheses, as a
        # mailbox's comment is -- encoded words standing alone would read
        # as an address (RFC 2047 section 5(2) allows them in a comment)
        return ["(" + encode_words(field_decode(value[1:-1])) + ")"]
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


def _mailbox_text(a: Address) -> str:
    """One mailbox for output. The display name and comment as written when
    they are printable ASCII, else re-encoded from their decoded text."""
    if a.phrase:
        plain = a.phrase.isascii() and not _CONTROL.search(a.phrase)
        display = a.phrase if plain else _phrase(a.friendly)
    else:
        display = ""
    comment = a.comment
    if comment and (not comment.isascii() or _CONTROL.search(comment)):
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

    Raises HeaderInjectionError for CR, LF or NUL in the value, and for a
    value whose written form would still hold a control character (one
    that cannot be encoded: in an address or a MIME parameter); MimeError
    for text that cannot be written as UTF-8 (lone surrogates).
    """
    check_value(name, value)
    value = value.strip(" \t")
    if value.isascii() and len(name) + len(value) + 2 <= _MAX_LINE and "=?" not in value \
            and not _CONTROL.search(value):
        line = f"{name}: {value}"
        if name.isascii() and not _CONTROL.search(name):
            # what _checked() does with this one line: nothing to refuse
            # (no control character in it, no continuation line), ASCII to encode
            return (line + "\r\n").encode("ascii")
        return _checked(name, [line])
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
    return _checked(name, lines)


def _checked(name: str, lines: list[str]) -> bytes:
    """The field's lines as bytes, after the check every written field gets.

    The last step before the wire, after all decoding and re-encoding: the
    only line breaks are the ones the folder puts between ``lines`` (CRLF
    before white space, RFC 5322 section 2.2.3) and the final CRLF; no line
    holds CR, LF, NUL or another control character; no continuation line is
    empty or only white space (readers end the header there). Whatever path
    a value took, a field written here can never become two.
    """
    for n, line in enumerate(lines):
        bad = _CONTROL.search(line)
        if bad is not None:
            raise HeaderInjectionError(f"header {name}: control character {bad.group()!r} in the "
                                       f"written field {line[:60]!r} (it cannot be encoded there)")
        if n and (line[:1] not in (" ", "\t") or not line.strip(" \t")):
            raise HeaderInjectionError(f"header {name}: folded line {line[:60]!r} would start a new field")
    try:
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MimeError(f"header {name}: {exc.reason} in the value") from None


# ------------------------------------------------------------ parameters

# RFC 2045 section 5.1: token, quoted-string, and (RFC 822 3.4.3) comments.
_PT_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Za-z^_`{|}~]+")
_PT_NAME = re.compile(r'[^\s=;"()]+')            # a parameter name, leniently
_PT_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)("?)', re.S)
_PT_PLAIN = re.compile(r"[^;(]*")                 # an unquoted value up to ";" or a comment
_PT_BLANKS = re.compile(r"[ \t\r\n]*")
_PT_PAREN = re.compile(r"\\.|[()]", re.S)
_PT_PAIR = re.compile(r"\\(.)", re.S)

# The shape nearly every Content-Type has: type/subtype and parameters whose
# values are tokens or quoted strings without a backslash, no comments.
# parse_content_type reads it with these two patterns; anything else goes
# through the general reader.
_TK = r"[!#$%&'*+\-.0-9A-Za-z^_`{|}~]+"
_WS = r"[ \t\r\n]*"
_PT_SIMPLE_PARAM = rf';{_WS}({_TK}){_WS}={_WS}(?:({_TK})|"([^"\\]*)"){_WS}'
_PT_SIMPLE = re.compile(rf"{_WS}({_TK}){_WS}/{_WS}({_TK}){_WS}((?:{_PT_SIMPLE_PARAM})*)(?:;{_WS})?")
_PT_SIMPLE_PARAMS = re.compile(_PT_SIMPLE_PARAM)


def parse_content_type(value: str, problems: list[str] | None = None
                       ) -> tuple[str, list[tuple[str, str, bool]], bool]:
    """Split ``type/subtype; a=b`` into the lower-cased main value, the raw
    parameters ``(name, value, was_quoted)``, and whether the main value
    was well formed.

    Comments (RFC 2045 section 5.1 allows them, nested as in RFC 822 3.4.3)
    are removed wherever they stand between the parts, never kept in a value
    nor hiding a parameter: ``text/plain; charset=us-ascii (Plain text)``
    gives charset ``us-ascii``. Leniently, an unquoted value runs to the next
    ``;`` (``name=file name.txt``), and text after a closing quote with no
    ``;`` starts a new parameter. What breaks the RFC 2045 syntax (a
    parameter without ``=``, a value that is neither a token nor a quoted
    string, an unclosed quote or comment, an empty parameter) is described
    in ``problems`` when given. Raises nothing; linear in ``len(value)``.
    """
    simple = _PT_SIMPLE.fullmatch(value)
    if simple is not None:
        return (f"{simple.group(1)}/{simple.group(2)}".lower(),
                [(name.lower(), token or quoted, not token)
                 for name, token, quoted in _PT_SIMPLE_PARAMS.findall(simple.group(3))],
                True)

    def note(problem: str) -> None:
        if problems is not None and len(problems) < 20:   # a bounded account of a hostile header
            problems.append(problem)

    n = len(value)
    closes: dict[int, int] = {}   # where the comment opening at each "(" ends
    if "(" in value:
        opened: list[int] = []
        for paren in _PT_PAREN.finditer(value):
            if paren.group() == "(":
                opened.append(paren.start())
            elif paren.group() == ")" and opened:
                closes[opened.pop()] = paren.end()

    def run_end(pattern: re.Pattern[str], pos: int) -> int:
        """Where the (possibly empty) run of ``pattern`` from ``pos`` ends."""
        m = pattern.match(value, pos)
        return m.end() if m else pos

    def cfws(pos: int) -> int:
        """Skip white space and comments."""
        while True:
            pos = run_end(_PT_BLANKS, pos)
            if pos >= n or value[pos] != "(":
                return pos
            if pos not in closes:
                note("unclosed comment")
                return pos
            pos = closes[pos]

    def next_parameter(pos: int) -> int:
        nxt = value.find(";", pos)
        return n if nxt == -1 else nxt + 1

    # the main value: type "/" subtype, comments allowed around each part
    main, ok, pos = "", False, n
    top = _PT_TOKEN.match(value, cfws(0))
    if top:
        slash = cfws(top.end())
        sub = _PT_TOKEN.match(value, cfws(slash + 1)) if value.startswith("/", slash) else None
        after = cfws(sub.end()) if sub else n
        if sub and (after >= n or value[after] == ";"):
            main, ok, pos = f"{top.group()}/{sub.group()}".lower(), True, after + 1
    if not ok:
        nxt = value.find(";")
        main = (value if nxt == -1 else value[:nxt]).strip().lower()
        pos = n if nxt == -1 else nxt + 1

    pairs: list[tuple[str, str, bool]] = []
    while True:
        pos = cfws(pos)
        if pos >= n:
            break
        if value[pos] == ";":
            note("empty parameter")
            pos += 1
            continue
        name = _PT_NAME.match(value, pos)
        if not name:
            note(f"unexpected {value[pos]!r} where a parameter should start")
            pos = next_parameter(pos + 1)
            continue
        pname = name.group().lower()
        if not _PT_TOKEN.fullmatch(pname):
            note(f"parameter name {pname[:40]!r} is not a token")
        pos = cfws(name.end())
        if pos >= n or value[pos] != "=":
            note(f"parameter {pname[:40]!r} has no value")
            pos = next_parameter(pos)
            continue
        pos = cfws(pos + 1)
        if pos < n and value[pos] == '"':
            q = _PT_QUOTED.match(value, pos)
            if q is None:   # cannot happen: the pattern matches from any quote
                break
            if not q.group(2):
                note(f"parameter {pname[:40]!r}: unclosed quoted string")
            pairs.append((pname, _PT_PAIR.sub(r"\1", q.group(1)), True))
            pos = cfws(q.end())
            if pos < n and value[pos] == ";":
                pos += 1
            elif pos < n:
                note(f"parameter {pname[:40]!r}: text after the quoted string")
            continue
        # an unquoted value, up to the ";"; a comment in it separates tokens
        # (RFC 822 3.4.3), so it reads as a space; an unclosed "(" is kept
        start = pos
        bare: list[str] = []
        while True:
            end = run_end(_PT_PLAIN, pos)
            bare.append(value[pos:end])
            pos = end
            if pos >= n or value[pos] != "(":
                break
            bare.append(" " if pos in closes else "(")
            pos = closes.get(pos, pos + 1)
        token = "".join(bare).strip(" \t\r\n")
        if _PT_TOKEN.fullmatch(token):
            pairs.append((pname, token, False))
        else:
            raw = value[start:pos].strip(" \t\r\n")
            note(f"parameter {pname[:40]!r}: value is neither a token nor a quoted string")
            pairs.append((pname, raw, False))
        pos += 1   # the ";"
    return main, pairs, ok


# ------------------------------------------------------------ parsing

_FIELD_NAME_RE = re.compile(rb"([!-9;-~]+)[ \t]*:")
# A whole field: its name line and the continuation lines that hold more
# than white space, each with its line break (CRLF, LF or a bare CR).
# _FIELD_RUN takes as many such fields as follow each other (none starting
# with "-", which may be a MIME delimiter), and _FIELDS splits the run into
# (raw, name) pairs; both in C. What they leave (a line of only white space,
# a stray line, the empty line) is read line by line.
_FIELD = rb"([!-9;-~]+)[ \t]*:[^\r\n]*(?:(?:\r\n?|\n)[ \t]+[^ \t\r\n][^\r\n]*)*(?:\r\n?|\n)?"
_FIELDS = re.compile(rb"(" + _FIELD + rb")")
_FIELD_RUN = re.compile(rb"(?:(?!-)" + _FIELD + rb")+")
# The same where no CR stands alone (every line ends in LF or CRLF): ".*"
# runs to the LF about twice as fast as a character class does.
_FIELD_LF = rb"([!-9;-~]+)[ \t]*:.*(?:\n[ \t]+[^ \t\r\n].*)*\n?"
_FIELDS_LF = re.compile(rb"(" + _FIELD_LF + rb")")
_FIELD_RUN_LF = re.compile(rb"(?:(?!-)" + _FIELD_LF + rb")+")
_LINE_BREAK = re.compile(rb"[\r\n]")


class FieldBlock(NamedTuple):
    """A header block as :func:`read_field_block` found it."""

    pairs: list[tuple[bytes, bytes]]   # each field as read (name, colon, body, line breaks), and its name
    end: int            # where the block ends: its empty line, a line that is no field, or the stop line
    separator: int      # the length of the empty line at ``end`` (0: there is none)
    problem: str | None  # why the block ended at a line that is not a field
    stray: list[str]    # the stray lines skipped (and other oddities), described

    @property
    def fields(self) -> list[Field]:
        """The fields as Field objects."""
        return [Field(name.decode("ascii"), None, raw) for raw, name in self.pairs]


def read_field_block(data: bytes, start: int = 0, end: int | None = None,
                     stop: Callable[[int], bool] | None = None, bare_cr: bool = True) -> FieldBlock:
    """Read the header fields at ``data[start:end]``.

    A line ends at CRLF, LF or a bare CR (see mimecompose._parse). The block
    ends at the first empty line (RFC 5322 section 2.2), at the first line
    that is not a field (``problem`` says which; it starts the body, as in
    the email package), or at a line starting with ``--`` for which
    ``stop(offset)`` is true (a MIME delimiter).

    Stray lines are skipped and reading goes on, as mail readers do: a line
    that starts with white space before any field, and an mbox ``From ``
    line among the fields (RFC 5322 section 3.6: a header is fields only).
    A line of only white space inside a field is obsolete folding (RFC 5322
    section 4.2) and stays in the field. Each is described in ``stray``.
    Stray lines that no field follows are not skipped: when no field is
    found at all, or only a non-field line or the end follows them, they
    are the start of the body. ``bare_cr=False`` tells that every CR in
    ``data`` is followed by LF (ParsedBuffer.bare_cr), which lets fields
    be found faster. Linear in the length of the block; raises nothing.
    """
    if end is None:
        end = len(data)
    run_pattern, fields_pattern = (_FIELD_RUN, _FIELDS) if bare_cr else (_FIELD_RUN_LF, _FIELDS_LF)
    pairs: list[tuple[bytes, bytes]] = []
    stray: list[tuple[int, str]] = []
    trailing: int | None = None      # where the stray lines after the last field line began
    current: list[bytes] | None = None
    name = b""
    problem = None
    separator = 0
    pos = start
    while pos < end:
        run = run_pattern.match(data, pos, end)
        if run is not None:
            # the common case: whole fields with their folded lines at once;
            # the last one stays open for the folding lines read below
            if current is not None:
                pairs.append((b"".join(current), name))
            *complete, (last, name) = fields_pattern.findall(data, pos, run.end())
            pairs.extend(complete)
            current = [last]
            trailing = None
            pos = run.end()
            continue
        m = _LINE_BREAK.search(data, pos, end)
        if m is None:
            eol = nxt = end
        else:
            eol = m.start()
            nxt = eol + 2 if data[eol:eol + 2] == b"\r\n" else eol + 1
        if eol == pos:
            separator = nxt - pos
            break
        if stop is not None and data[pos:pos + 2] == b"--" and stop(pos):
            break
        line = data[pos:nxt]
        first = line[:1]
        if first in (b" ", b"\t"):
            if current is not None:
                current.append(line)
                trailing = None
                if not line.strip(b" \t\r\n"):
                    stray.append((pos, f"a line of only white space in {name.decode('ascii')}: read as folding "
                                       "(RFC 5322 section 4.2)"))
            else:
                stray.append((pos, f"line {line[:40]!r} before the first field: skipped"))
                trailing = pos if trailing is None else trailing
        else:
            fm = _FIELD_NAME_RE.match(line)
            if fm:
                if current is not None:
                    pairs.append((b"".join(current), name))
                name = fm.group(1)
                current = [line]
                trailing = None
            elif line.startswith(b"From "):
                stray.append((pos, f"mbox envelope line {line[:40]!r} in the header: skipped"))
                trailing = pos if trailing is None else trailing
            else:
                problem = f"line {line[:40]!r} is not a header field"
                break
        pos = nxt
    if current is not None:
        pairs.append((b"".join(current), name))
    if trailing is not None and (not pairs or not separator):
        # only a body line or the end follows: the stray lines begin the body
        brk = _LINE_BREAK.search(data, trailing, end)
        problem = f"line {data[trailing:brk.end() if brk else end][:40]!r} is not a header field"
        kept = [note for at, note in stray if at < trailing]
        return FieldBlock(pairs, trailing, 0, problem, kept)
    return FieldBlock(pairs, pos, separator, problem, [note for _at, note in stray])


def parse_field_block(data: bytes) -> tuple[list[Field], int, str | None]:
    """Split the header lines at the start of ``data`` into fields.

    Returns ``(fields, consumed, problem)``: ``consumed`` is how many bytes
    belong to the header block (the blank separator line not included);
    ``problem`` names the first malformed line, where the header block was
    taken to end (as the ``email`` package does). See read_field_block.
    """
    block = read_field_block(data)
    return block.fields, block.end, block.problem
