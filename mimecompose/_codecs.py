"""Codecs: charsets, RFC 2047 encoded words, RFC 2231 parameters, and the
streaming line-break, base64 and quoted-printable encoders used by the serialiser.

Every encoder here is incremental (``feed(bytes) -> bytes`` then ``flush() ->
bytes``) so that a body of any size goes through in bounded memory.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import urllib.parse

from ._errors import MimeError

__all__ = [
    "Base64Encoder",
    "LineBreakNormalizer",
    "QuotedPrintableEncoder",
    "decode_body",
    "decode_rfc2231",
    "encode_rfc2231",
    "encode_words",
    "field_decode",
    "mime_charset",
    "python_codec",
    "word_decode",
    "word_encode",
]

# ---------------------------------------------------------------- charsets

# MIME names (IANA preferred) for the Python codecs people actually use.
_MIME_NAMES = {
    "ascii": "US-ASCII",
    "utf-8": "UTF-8",
    "latin-1": "ISO-8859-1",
    "iso8859-1": "ISO-8859-1",
    "shift_jis": "Shift_JIS",
    "euc_jp": "EUC-JP",
    "iso2022_jp": "ISO-2022-JP",
    "euc_kr": "EUC-KR",
    "gb2312": "GB2312",
    "gbk": "GBK",
    "gb18030": "GB18030",
    "big5": "Big5",
    "koi8-r": "KOI8-R",
    "koi8-u": "KOI8-U",
    "utf-16": "UTF-16",
    "utf-7": "UTF-7",
}


def python_codec(charset: str) -> str | None:
    """Return the Python codec name for a MIME charset, or None if unknown."""
    name = charset.strip().strip('"').lower()
    if name in ("", "unknown-8bit", "x-unknown"):
        return None
    if name.startswith("x-") and name not in ("x-mac-roman",):
        name = name[2:]
    if not name.isprintable() or len(name) > 64:
        return None
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def mime_charset(charset: str) -> str:
    """Return the name to write in a header for ``charset`` (``iso8859-1`` ->
    ``ISO-8859-1``). Raises MimeError for a charset Python does not know."""
    codec = python_codec(charset)
    if codec is None:
        raise MimeError(f"unknown charset {charset!r}")
    if codec in _MIME_NAMES:
        return _MIME_NAMES[codec]
    m = re.fullmatch(r"iso8859-(\d+)", codec)
    if m:
        return f"ISO-8859-{m.group(1)}"
    m = re.fullmatch(r"cp(125\d)", codec)
    if m:
        return f"WINDOWS-{m.group(1)}"
    return codec.upper()


def _is_stateful(codec: str) -> bool:
    return "2022" in codec or codec in ("utf-7", "hz", "utf-16", "utf-32")


# ------------------------------------------------------------ RFC 2047

# RFC 2047 section 5 (3): in a phrase only these may appear unencoded in a Q word.
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_TABLE = [chr(b) if b in _Q_SAFE else f"={b:02X}" for b in range(256)]
_Q_TABLE[0x20] = "_"

_METHODS = {
    "q": "Q",
    "quoted-printable": "Q",
    "b": "B",
    "base64": "B",
}


def _q_encode(data: bytes) -> str:
    return "".join([_Q_TABLE[b] for b in data])


def _q_len(data: bytes) -> int:
    return sum(1 if b in _Q_SAFE or b == 0x20 else 3 for b in data)


def _b_len(nbytes: int) -> int:
    return 4 * ((nbytes + 2) // 3)


def word_encode(charset: str, method: str, text: str, maxlength: int = 66) -> str:
    """Encode ``text`` as RFC 2047 encoded words.

    ``method`` is ``"quoted-printable"`` or ``"base64"`` (``"q"``/``"b"`` too).
    Returns the words separated by single spaces, each at most ``maxlength``
    characters and never over 75 (RFC 2047 section 2). A character is never
    split between two words. Raises MimeError for an unknown method or
    charset, a text the charset cannot encode, or a ``maxlength`` too small
    for one character.
    """
    m = _METHODS.get(method.lower())
    if m is None:
        raise MimeError(f"unknown encoding method {method!r}: use quoted-printable or base64")
    codec = python_codec(charset)
    if codec is None:
        raise MimeError(f"unknown charset {charset!r}")
    label = mime_charset(charset)
    room = min(maxlength, 75) - len(label) - 7  # "=?" label "?" m "?" ... "?="
    try:
        text.encode(codec)
    except UnicodeEncodeError as exc:
        raise MimeError(f"text cannot be encoded in {charset}: {exc.reason}") from None
    words = []
    for chunk in _split_chunks(text, codec, m, room):
        payload = _q_encode(chunk) if m == "Q" else base64.b64encode(chunk).decode("ascii")
        words.append(f"=?{label}?{m}?{payload}?=")
    return " ".join(words)


def _split_chunks(text: str, codec: str, method: str, room: int) -> list[bytes]:
    """Split ``text`` into the longest runs whose encoding fits ``room``."""
    if not text:
        return [b""]
    size = _q_len if method == "Q" else (lambda data: _b_len(len(data)))
    chunks: list[bytes] = []
    start = 0
    stateful = _is_stateful(codec)
    while start < len(text):
        end = start
        best = b""
        if stateful:
            # Escape sequences depend on the whole run: encode every candidate.
            while end < len(text):
                candidate = text[start:end + 1].encode(codec)
                if size(candidate) > room:
                    break
                best, end = candidate, end + 1
        else:
            parts: list[bytes] = []
            nbytes = qlen = 0
            while end < len(text):
                piece = text[end].encode(codec)
                if method == "Q":
                    grown = qlen + _q_len(piece)
                else:
                    grown = _b_len(nbytes + len(piece))
                if grown > room:
                    break
                parts.append(piece)
                nbytes += len(piece)
                qlen = grown
                end += 1
            best = b"".join(parts)
        if end == start:
            raise MimeError(f"maxlength too small to hold one encoded character of {text!r}")
        chunks.append(best)
        start = end
    return chunks


def encode_words(text: str, maxlength: int = 75) -> str:
    """Encode ``text`` in UTF-8 encoded words with the shorter of Q and B."""
    data = text.encode("utf-8")
    method = "q" if _q_len(data) <= _b_len(len(data)) else "b"
    return word_encode("utf-8", method, text, maxlength)


_WORD_RE = re.compile(r"=\?([^?\s*]+)(\*[^?\s]*)?\?([QqBb])\?([^?\s]*)\?=")


def _word_bytes(method: str, payload: str) -> bytes | None:
    try:
        raw = payload.encode("ascii")
    except UnicodeEncodeError:
        return None
    if method in "Qq":
        return binascii.a2b_qp(raw, header=True)
    raw = re.sub(rb"[^A-Za-z0-9+/]", b"", raw)
    raw = raw[: len(raw) - len(raw) % 4] if len(raw) % 4 == 1 else raw
    try:
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
    except binascii.Error:
        return None


def word_decode(word: str) -> tuple[str, str, str]:
    """Decode one RFC 2047 encoded word.

    Returns ``(charset, method, text)`` where ``method`` is
    ``"quoted-printable"`` or ``"base64"`` and ``charset`` is the charset as
    written, lower-cased (an RFC 2231 language suffix is dropped). Raises
    MimeError when ``word`` is not an encoded word or its charset is unknown.
    """
    m = _WORD_RE.fullmatch(word.strip())
    if not m:
        raise MimeError(f"not an encoded word: {word!r}")
    charset, _lang, method, payload = m.groups()
    codec = python_codec(charset)
    data = _word_bytes(method, payload)
    if codec is None or data is None:
        raise MimeError(f"cannot decode encoded word {word!r}")
    name = "quoted-printable" if method in "Qq" else "base64"
    return charset.lower(), name, data.decode(codec, "replace")


def field_decode(text: str) -> str:
    """Decode every RFC 2047 encoded word in a header value.

    White space between two adjacent encoded words is dropped (RFC 2047
    section 6.2); consecutive words in the same charset are joined before
    decoding, so a character split across words by a careless encoder comes
    back whole. Words that cannot be decoded are left as they are.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pending: list = []  # [codec, bytes, original text] of the run being joined
    pos = 0
    for m in _WORD_RE.finditer(text):
        gap = text[pos:m.start()]
        charset, _lang, method, payload = m.groups()
        codec = python_codec(charset)
        data = _word_bytes(method, payload) if codec else None
        if pending and gap.strip(" \t\r\n") == "" and data is not None:
            if pending[0] == codec and codec not in ("utf-16", "utf-32"):  # each word has a BOM
                pending[1] += data
            else:
                out.append(pending[1].decode(pending[0], "replace"))
                pending = [codec, data]
        else:
            if pending:
                out.append(pending[1].decode(pending[0], "replace"))
                pending = []
            out.append(gap)
            if data is None:
                out.append(m.group(0))
            else:
                pending = [codec, data]
        pos = m.end()
    if pending:
        out.append(pending[1].decode(pending[0], "replace"))
    out.append(text[pos:])
    return "".join(out)


# ------------------------------------------------------------ RFC 2231

# RFC 2045 section 5.1: tspecials may not appear in a token.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
# RFC 2231 section 7: attribute-char, safe without percent-encoding.
_ATTR_SAFE = "!#$&+-.^_`|~"


def quote_value(value: str, always: bool = False) -> str:
    """Return ``value`` as a token if it is one, else as a quoted-string."""
    if not always and _TOKEN_RE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_rfc2231(name: str, value: str, maxlength: int = 72, quote: bool = False) -> list[str]:
    """Render one MIME parameter as ``name=value`` segments.

    ASCII values become a token or quoted-string, split into RFC 2231
    continuations (``name*0=``, ``name*1=``) when longer than ``maxlength``;
    other values are percent-encoded UTF-8 (``name*=utf-8''...``, section 4),
    split into ``name*0*=`` continuations (section 4.1) as needed.
    ``quote=True`` writes a quoted-string even where a token would do.
    """
    if value.isascii() and all(c >= " " and c != "\x7f" for c in value):
        whole = f"{name}={quote_value(value, quote)}"
        if len(whole) <= maxlength:
            return [whole]
        step = max(8, maxlength - len(name) - 8)
        pieces = [value[i:i + step] for i in range(0, len(value), step)]
        return [f"{name}*{i}={quote_value(p)}" for i, p in enumerate(pieces)]
    encoded = urllib.parse.quote(value, safe=_ATTR_SAFE, encoding="utf-8")
    whole = f"{name}*=utf-8''{encoded}"
    if len(whole) <= maxlength:
        return [whole]
    step = max(12, maxlength - len(name) - 12)
    pieces: list[str] = []
    while encoded:
        cut = min(step, len(encoded))
        # never split a %XX escape
        pct = encoded.rfind("%", max(0, cut - 2), cut)
        if pct != -1 and cut < len(encoded):
            cut = pct
        # nor a UTF-8 character: step back over continuation octets (%80-%BF)
        while 3 <= cut < len(encoded) and encoded[cut] == "%" and encoded[cut + 1] in "89AB":
            cut -= 3
            while cut > 0 and encoded[cut] != "%":
                cut -= 1
        pieces.append(encoded[:cut])
        encoded = encoded[cut:]
    first = f"{name}*0*=utf-8''{pieces[0]}"
    return [first] + [f"{name}*{i}*={p}" for i, p in enumerate(pieces[1:], 1)]


_SECTION_RE = re.compile(r"^([^*]+)\*(?:(\d+)\*?|)$")


def decode_rfc2231(pairs: list[tuple[str, str, bool]]) -> dict[str, str]:
    """Join RFC 2231 continuations and decode charsets.

    ``pairs`` holds ``(name, value, was_quoted)`` in order as they appeared,
    names lower-cased. Returns the parameters by name. An RFC 2047 encoded
    word in a quoted value (common, though not standard) is decoded too.
    """
    params: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    for name, value, quoted in pairs:
        m = _SECTION_RE.match(name)
        if not m:
            if name not in params:
                params[name] = field_decode(value) if quoted and "=?" in value else value
            continue
        base, number = m.group(1), m.group(2)
        extended = name.endswith("*")
        sections.setdefault(base, {})[int(number) if number else 0] = (value, extended)
    for base, parts in sections.items():
        charset = None
        chunks: list[bytes] = []
        for index in sorted(parts):
            value, extended = parts[index]
            if extended:
                if index == sorted(parts)[0] and value.count("'") >= 2:
                    charset, _lang, value = value.split("'", 2)
                chunks.append(urllib.parse.unquote_to_bytes(value))
            else:
                chunks.append(value.encode("utf-8", "surrogateescape"))
        codec = python_codec(charset) if charset else "utf-8"
        params[base] = b"".join(chunks).decode(codec or "utf-8", "replace")
    return params


# ------------------------------------------------------------ body encoders


class LineBreakNormalizer:
    """Turn every line break (CRLF, bare LF, bare CR) into ``newline``.

    Works across chunk boundaries: a CR at the end of a chunk waits for the
    next chunk to see whether an LF follows.
    """

    def __init__(self, newline: bytes = b"\r\n") -> None:
        self._newline = newline
        self._cr = False

    def feed(self, data: bytes) -> bytes:
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._cr = True
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._newline != b"\n":
            data = data.replace(b"\n", self._newline)
        return data

    def flush(self) -> bytes:
        if self._cr:
            self._cr = False
            return self._newline
        return b""


_B64_LINE = 57  # octets per 76-character base64 line (RFC 2045 section 6.8)


class Base64Encoder:
    """Base64 in lines of 76 characters separated by CRLF.

    The output does not end in a line break: the line break after a body
    belongs to what follows it (a boundary delimiter, RFC 2046 section 5.1.1).
    """

    def __init__(self) -> None:
        self._pending = b""
        self._started = False

    def _lines(self, block: bytes) -> bytes:
        text = binascii.b2a_base64(block, newline=False)
        out = b"\r\n".join([text[i:i + 76] for i in range(0, len(text), 76)])
        if self._started:
            return b"\r\n" + out
        self._started = True
        return out

    def feed(self, data: bytes) -> bytes:
        if self._pending:
            data = self._pending + data
        cut = len(data) - len(data) % _B64_LINE
        self._pending = data[cut:]
        return self._lines(data[:cut]) if cut else b""

    def flush(self) -> bytes:
        tail, self._pending = self._pending, b""
        return self._lines(tail) if tail else b""


class QuotedPrintableEncoder:
    """Quoted-printable (RFC 2045 section 6.7) in lines of at most 76 characters.

    With ``text=True`` the input's line breaks are hard line breaks (written
    as CRLF); otherwise CR and LF are data and get encoded. Trailing white
    space and a lone "." on a line are encoded. Output lines end in CRLF.
    """

    _SEGMENT = 32768

    def __init__(self, text: bool = True) -> None:
        self._text = text
        self._lf = LineBreakNormalizer(b"\n") if text else None
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        out = []
        if self._lf is not None:
            data = self._pending + self._lf.feed(data)
            cut = data.rfind(b"\n") + 1
            if cut:
                out.append(self._encode_lines(data[:cut]))
            data = data[cut:]
        else:
            data = self._pending + data
        while len(data) > self._SEGMENT:
            out.append(self._encode_segment(data[:self._SEGMENT]))
            data = data[self._SEGMENT:]
        self._pending = data
        return b"".join(out)

    def flush(self) -> bytes:
        data = self._pending + (self._lf.flush() if self._lf is not None else b"")
        self._pending = b""
        if not data:
            return b""
        encoded = binascii.b2a_qp(data, quotetabs=False, istext=self._text)
        return encoded.replace(b"\n", b"\r\n")

    @staticmethod
    def _encode_lines(data: bytes) -> bytes:
        return binascii.b2a_qp(data, quotetabs=False, istext=True).replace(b"\n", b"\r\n")

    def _encode_segment(self, data: bytes) -> bytes:
        """Encode a piece of one long line and end it with a soft line break."""
        encoded = binascii.b2a_qp(data, quotetabs=False, istext=self._text)
        head, _, last = encoded.rpartition(b"\n")
        if len(last) >= 76:
            # Split the last line where no =XX escape is cut, leaving room for "=".
            cut = 75
            i = 0
            while i < len(last):
                if last[i] == 0x3D:  # "="
                    if i + 3 > 75:
                        cut = i
                        break
                    i += 3
                else:
                    i += 1
            last = last[:cut] + b"=\n" + last[cut:]
        encoded = (head + b"\n" if head or encoded.startswith(b"\n") else b"") + last + b"=\n"
        return encoded.replace(b"\n", b"\r\n")


_TRAILING_WS = re.compile(rb"[ \t]+(?=\r?\n|\Z)")


def decode_body(data: bytes, encoding: str) -> tuple[bytes, str | None]:
    """Undo a Content-Transfer-Encoding leniently.

    Returns ``(content, problem)``: ``problem`` is None, or says what was
    wrong (bad base64 padding, an unknown encoding) while the best-effort
    content is still returned.
    """
    if encoding == "base64":
        compact = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        problem = None
        extra = len(compact) % 4
        if extra == 1:
            compact = compact[:-1]
            problem = "base64 body has a stray final character"
        elif extra:
            compact += b"=" * (4 - extra)
            if not data.rstrip().endswith(b"="):
                problem = "base64 body lacks its padding"
        return binascii.a2b_base64(compact), problem
    if encoding == "quoted-printable":
        return binascii.a2b_qp(_TRAILING_WS.sub(b"", data)), None
    if encoding in ("7bit", "8bit", "binary", ""):
        return data, None
    return data, f"unknown Content-Transfer-Encoding {encoding!r}; body left encoded"
