"""Codecs: charsets, RFC 2047 encoded words, RFC 2231 parameters, and the
streaming line-break, base64 and quoted-printable encoders used by the serialiser.

Every encoder here is incremental (``feed(bytes) -> bytes`` then ``flush() ->
bytes``) so that a body of any size goes through in bounded memory.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import re
import urllib.parse
from typing import TYPE_CHECKING

from ._errors import MimeError
from .args import require_str

if TYPE_CHECKING:
    from typing_extensions import Buffer

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
    "cp874": "WINDOWS-874",
    "cp932": "Windows-31J",
    "cp949": "KS_C_5601-1987",
    "mac-roman": "macintosh",
    "mimecompose-x-user-defined": "x-user-defined",
}

# Charset names mail uses that Python's codecs do not know (or know wrongly),
# with the codec that reads them: the labels of the WHATWG Encoding Standard,
# which is what mail readers decode with. ks_c_5601-1987 is Microsoft's code
# page 949 (Python's alias, EUC-KR, cannot read its extra Hangul).
_ALIASES = {
    **dict.fromkeys(("unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8"), "utf-8"),
    **dict.fromkeys(("csiso88596e", "csiso88596i", "iso-8859-6-e", "iso-8859-6-i", "iso88596"), "iso8859-6"),
    **dict.fromkeys(("csiso88598e", "csiso88598i", "iso-8859-8-e", "iso-8859-8-i", "iso88598",
                     "visual", "logical"), "iso8859-8"),
    **{f"iso8859{n}": f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 7, 9)},
    **{f"iso88591{n}": f"iso8859-1{n}" for n in (0, 1, 3, 4, 5)},
    "csisolatin9": "iso8859-15",
    "sun_eu_greek": "iso8859-7",
    **dict.fromkeys(("windows-874", "dos-874"), "cp874"),
    **dict.fromkeys(("koi", "koi8"), "koi8-r"),
    "koi8-ru": "koi8-u",
    **dict.fromkeys(("mac", "csmacintosh", "x-mac-roman"), "mac-roman"),
    "x-mac-ukrainian": "mac-cyrillic",
    "x-mac-ce": "mac-latin2",
    **dict.fromkeys(("csgb2312", "gb_2312", "gb_2312-80"), "gbk"),
    **dict.fromkeys(("cn-big5", "x-x-big5"), "big5"),
    "cseucpkdfmtjapanese": "euc_jp",
    "windows-31j": "cp932",
    **dict.fromkeys(("ks_c_5601-1987", "ks_c_5601-1989", "ks_c_5601", "ksc5601", "ksc_5601",
                     "csksc56011987", "windows-949", "x-windows-949", "iso-ir-149"), "cp949"),
    "cseuckr": "euc_kr",
    "unicodefffe": "utf-16-be",
    **dict.fromkeys(("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff"), "utf-16-le"),
    "x-user-defined": "mimecompose-x-user-defined",
}

# x-user-defined (WHATWG Encoding Standard section 14.5): ASCII, and octets
# 0x80-0xFF as U+F780-U+F7FF. Registered under a private name only.
_USER_DEFINED_TABLE = "".join(chr(b) if b < 0x80 else chr(0xF780 + b - 0x80) for b in range(256))
_USER_DEFINED_ENCODING = codecs.charmap_build(_USER_DEFINED_TABLE)


def _user_defined(name: str) -> codecs.CodecInfo | None:
    if name != "mimecompose_x_user_defined":
        return None

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return codecs.charmap_encode(text, errors, _USER_DEFINED_ENCODING)

    def decode(data: Buffer, errors: str = "strict") -> tuple[str, int]:
        # a str decoding table is valid (Python docs, codecs.charmap_decode); pyright's bundled
        # typeshed predates the stub that says so (_DecodeCharMap)
        return codecs.charmap_decode(data, errors, _USER_DEFINED_TABLE)  # pyright: ignore[reportArgumentType]

    return codecs.CodecInfo(encode, decode, name="mimecompose-x-user-defined")


codecs.register(_user_defined)


@functools.lru_cache(maxsize=256)
def python_codec(charset: str) -> str | None:
    """Return the Python codec name for a MIME charset, or None if unknown.

    Knows the aliases mail uses that Python lacks (``iso-8859-8-i``,
    ``windows-874``, ``x-user-defined``, ``ks_c_5601-1987`` ...) and an ``x-``
    prefix on a name Python knows (``x-sjis``).
    """
    name = charset.strip().strip('"').lower()
    if name in ("", "unknown-8bit", "x-unknown") or not name.isprintable() or len(name) > 64:
        return None
    if name in _ALIASES:
        return codecs.lookup(_ALIASES[name]).name
    for candidate in (name, name[2:] if name.startswith("x-") else ""):
        if not candidate:
            continue
        try:
            return codecs.lookup(candidate).name
        except (LookupError, ValueError):
            continue
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
    m = _METHODS.get(require_str(method, "word_encode(method=)").lower())
    if m is None:
        raise MimeError(f"unknown encoding method {method!r}: use quoted-printable or base64")
    require_str(text, "word_encode(text=)")
    codec = python_codec(require_str(charset, "word_encode(charset=)"))
    if codec is None:
        raise MimeError(f"unknown charset {charset!r}")
    label = mime_charset(charset)
    room = min(maxlength, 75) - len(label) - 7  # "=?" label "?" m "?" ... "?="
    try:
        text.encode(codec)
    except UnicodeEncodeError as exc:
        raise MimeError(f"text cannot be encoded in {charset}: {exc.reason}") from None
    if not text:
        return ""  # RFC 2047 section 2: encoded-text is one or more characters
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
    """Encode ``text`` in UTF-8 encoded words with the shorter of Q and B.
    Raises MimeError for text that cannot be written as UTF-8 (a lone
    surrogate)."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MimeError(f"text cannot be encoded in utf-8: {exc.reason}") from None
    method = "q" if _q_len(data) <= _b_len(len(data)) else "b"
    return word_encode("utf-8", method, text, maxlength)


# RFC 2047 section 2 with RFC 2231 section 5: =?charset[*language]?Q|B?text?=;
# a language is an RFC 1766 tag (letters, digits, "-"); no white space anywhere.
_WORD_RE = re.compile(r"=\?([^?\s*]+)(\*[A-Za-z0-9-]*)?\?([QqBb])\?([^?\s]*)\?=")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_RAW_RUN = re.compile(r"[^\x00-\x7f]+")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_Q_BAD_ESCAPE = re.compile(rb"=(?![0-9A-Fa-f]{2})")


def _q_bytes(raw: bytes) -> bytes:
    """Decode Q (RFC 2047 section 4.2); an "=" that starts no escape stays as it is."""
    if not _Q_BAD_ESCAPE.search(raw):
        return binascii.a2b_qp(raw, header=True)
    return _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw.replace(b"_", b" "))


def _raw_octets(run: str, codec: str) -> bytes:
    """The octets behind raw 8-bit text found inside an encoded word.

    A header read from bytes reaches us as str: octets that were not UTF-8
    arrive as Latin-1 characters or as surrogate escapes. Readers take such
    octets as the word's own charset, so each character becomes its octets in
    that charset when it has them, else its single Latin-1 octet (or the
    escaped octet), else its UTF-8 form.
    """
    out = []
    for ch in run:
        if "\udc80" <= ch <= "\udcff":
            out.append(bytes([ord(ch) - 0xDC00]))
            continue
        try:
            out.append(ch.encode(codec))
        except UnicodeEncodeError:
            out.append(bytes([ord(ch)]) if ord(ch) < 256 else ch.encode("utf-8", "surrogatepass"))
    return b"".join(out)


def _word_bytes(method: str, payload: str, codec: str) -> bytes | None:
    """The octets an encoded word's payload stands for, or None when it has none."""
    if method in "Qq":
        if payload.isascii():
            return _q_bytes(payload.encode("ascii"))
        pieces = []
        pos = 0
        for m in _RAW_RUN.finditer(payload):
            pieces.append(_q_bytes(payload[pos:m.start()].encode("ascii")))
            pieces.append(_raw_octets(m.group(), codec))
            pos = m.end()
        pieces.append(_q_bytes(payload[pos:].encode("ascii")))
        return b"".join(pieces)
    # base64: characters outside the alphabet (raw 8-bit octets included) are dropped
    raw = _NOT_BASE64.sub(b"", payload.encode("ascii", "ignore"))
    raw = raw[: len(raw) - len(raw) % 4] if len(raw) % 4 == 1 else raw
    try:
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
    except binascii.Error:
        return None


def word_decode(word: str) -> tuple[str, str, str]:
    """Decode one RFC 2047 encoded word.

    Returns ``(charset, method, text)`` where ``method`` is
    ``"quoted-printable"`` or ``"base64"`` and ``charset`` is the charset as
    written, lower-cased (an RFC 2231 language suffix is dropped). Raw 8-bit
    octets inside the word are read in its charset, as readers do. Raises
    MimeError when ``word`` is not an encoded word or its charset is unknown.
    """
    m = _WORD_RE.fullmatch(require_str(word, "word_decode()").strip())
    if not m:
        raise MimeError(f"not an encoded word: {word!r}")
    charset, _lang, method, payload = m.groups()
    codec = python_codec(charset)
    data = _word_bytes(method, payload, codec) if codec else None
    if codec is None or data is None:
        raise MimeError(f"cannot decode encoded word {word!r}")
    name = "quoted-printable" if method in "Qq" else "base64"
    return charset.lower(), name, data.decode(codec, "replace")


def field_decode(text: str) -> str:
    """Decode every RFC 2047 encoded word in a header value.

    White space between two adjacent encoded words is dropped (RFC 2047
    section 6.2); consecutive words in the same charset are joined before
    decoding, so a character split across words by a careless encoder comes
    back whole. Words that cannot be decoded are left as they are. Linear in
    the length of ``text``. Raises nothing.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    run_codec: str | None = None   # the run of adjacent words being joined
    run: list[bytes] = []

    def flush() -> None:
        if run:
            out.append(b"".join(run).decode(run_codec or "utf-8", "replace"))
            run.clear()

    pos = 0
    for m in _WORD_RE.finditer(text):
        gap = text[pos:m.start()]
        charset, _lang, method, payload = m.groups()
        codec = python_codec(charset)
        data = _word_bytes(method, payload, codec) if codec else None
        if data is None:
            flush()
            out.append(gap)
            out.append(m.group(0))
        else:
            adjacent = bool(run) and gap.strip(" \t\r\n") == ""
            # each UTF-16/32 word carries its own byte order mark: never join them
            if not (adjacent and codec == run_codec and codec not in ("utf-16", "utf-32")):
                flush()
                if not adjacent:
                    out.append(gap)
                run_codec = codec
            run.append(data)
        pos = m.end()
    flush()
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
    Raises MimeError for text that cannot be written as UTF-8 (a lone
    surrogate).
    """
    if value.isascii() and all(c >= " " and c != "\x7f" for c in value):
        whole = f"{name}={quote_value(value, quote)}"
        if len(whole) <= maxlength:
            return [whole]
        step = max(8, maxlength - len(name) - 8)
        plain = [value[i:i + step] for i in range(0, len(value), step)]
        return [f"{name}*{i}={quote_value(p)}" for i, p in enumerate(plain)]
    try:
        encoded = urllib.parse.quote(value, safe=_ATTR_SAFE, encoding="utf-8")
    except UnicodeEncodeError as exc:
        raise MimeError(f"parameter {name}: {exc.reason} in the value") from None
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


# RFC 2231 section 7: section := "*0" / ("*" [1-9] *DIGIT), so no leading
# zeros (section 3: "neither leading zeroes nor gaps"). Nine digits at most:
# a longer number is refused as invalid rather than converted.
_SECTION_RE = re.compile(r"([^*]+)\*(?:(0|[1-9][0-9]{0,8})\*?)?")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _percent_bytes(value: str, codec: str) -> bytes:
    """Undo RFC 2231 %XX escapes; raw 8-bit text (invalid there) is kept as its octets."""
    if value.isascii():
        return urllib.parse.unquote_to_bytes(value)
    pieces = []
    pos = 0
    for m in _RAW_RUN.finditer(value):
        pieces.append(urllib.parse.unquote_to_bytes(value[pos:m.start()]))
        pieces.append(_raw_octets(m.group(), codec))
        pos = m.end()
    pieces.append(urllib.parse.unquote_to_bytes(value[pos:]))
    return b"".join(pieces)


def _text_codec(charset: str | None) -> str:
    """The codec for an RFC 2231 charset: UTF-8 when absent, unknown or ASCII
    (8-bit octets under an ASCII label are nearly always UTF-8)."""
    codec = python_codec(charset) if charset else None
    return "utf-8" if codec in (None, "ascii") else codec


def decode_rfc2231(pairs: list[tuple[str, str, bool]], problems: list[str] | None = None) -> dict[str, str]:
    """Join RFC 2231 continuations and decode charsets.

    ``pairs`` holds ``(name, value, was_quoted)`` in order as they appeared,
    names lower-cased. Returns the parameters by name. An RFC 2047 encoded
    word in a quoted value (common, though not standard) is decoded too.

    Leniently, as readers do: the first of two same-named parameters wins;
    an extended ``name*`` wins over a plain ``name``; sections are joined in
    numeric order even when some are missing. What is not valid RFC 2231 is
    described in ``problems`` (when given): a repeated parameter or section,
    a gap, a section number with a leading zero or over nine digits (such a
    parameter is dropped: it names no section), a missing ``charset'lang'``
    prefix, a bad %-escape. Raises nothing. Linear in the number of pairs
    (plus one sort per parameter whose sections come out of order).
    """
    def note(problem: str) -> None:
        if problems is not None and len(problems) < 20:   # a bounded account of a hostile header
            problems.append(problem)

    params: dict[str, str] = {}
    sections: dict[str, list[tuple[int, str, bool]]] = {}
    for name, value, quoted in pairs:
        if "*" not in name:
            if name in params:
                note(f"parameter {name!r} given twice; the first is used")
            else:
                params[name] = field_decode(value) if quoted and "=?" in value else value
            continue
        m = _SECTION_RE.fullmatch(name)
        if not m:
            note(f"parameter name {name[:40]!r} is not an RFC 2231 section; ignored")
            continue
        number = m.group(2)
        sections.setdefault(m.group(1), []).append(
            (int(number) if number else 0, value, name.endswith("*")))
    for base, parts in sections.items():
        if any(parts[i][0] > parts[i + 1][0] for i in range(len(parts) - 1)):
            parts.sort(key=lambda section: section[0])   # stable: the first of a repeated number stays first
        unique = [parts[0]]
        for section in parts[1:]:
            if section[0] == unique[-1][0]:
                note(f"section {section[0]} of parameter {base!r} given twice; the first is used")
            else:
                unique.append(section)
        if unique[-1][0] != len(unique) - 1:
            note(f"sections of parameter {base!r} are not numbered 0, 1, 2 ...; joined in order")
        charset = None
        first_index, first_value, first_extended = unique[0]
        if first_index == 0 and first_extended:
            if first_value.count("'") >= 2:
                charset, _lang, first_value = first_value.split("'", 2)
                unique[0] = (0, first_value, True)
            else:
                note(f"parameter {base!r} lacks its charset'language' prefix")
        codec = _text_codec(charset)
        text: list[str] = []
        run: list[bytes] = []   # consecutive extended sections: one octet string
        for _index, value, extended in unique:
            if extended:
                if _BAD_PERCENT.search(value):
                    note(f"parameter {base!r} has a bad %-escape; kept as written")
                run.append(_percent_bytes(value, codec))
                continue
            if run:
                text.append(b"".join(run).decode(codec, "replace"))
                run = []
            text.append(value)
        if run:
            text.append(b"".join(run).decode(codec, "replace"))
        params[base] = "".join(text)
    return params


# ------------------------------------------------------------ body encoders


def _all_crlf(data: bytes) -> bool:
    """True when every CR and every LF in ``data`` is part of a CRLF."""
    if b"\r" not in data:
        return b"\n" not in data
    crs = data.count(b"\r")
    return crs == data.count(b"\n") == data.count(b"\r\n")


class LineBreakNormalizer:
    """Turn every line break (CRLF, bare LF, bare CR) into ``newline``.

    Works across chunk boundaries: a CR at the end of a chunk waits for the
    next chunk to see whether an LF follows. What comes out never holds a
    CR or LF that is not part of ``newline`` (RFC 5321 section 2.3.8: no
    bare CR or LF on the wire).
    """

    def __init__(self, newline: bytes = b"\r\n") -> None:
        self._newline = newline
        self._cr = False

    def feed(self, data: bytes) -> bytes:
        """The next chunk with its line breaks made ``newline``; a CR that
        ends it is held back until the next chunk (or :meth:`flush`)."""
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._cr = True
        if self._newline == b"\r\n" and _all_crlf(data):
            return data   # already CRLF (a serialised message): counted, not copied three times
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._newline != b"\n":
            data = data.replace(b"\n", self._newline)
        return data

    def flush(self) -> bytes:
        """The end of the stream: a CR held back, as ``newline``, or ``b""``."""
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
        pos = 0   # an offset, not re-slicing the rest: that made one long line quadratic
        while len(data) - pos > self._SEGMENT:
            out.append(self._encode_segment(data[pos:pos + self._SEGMENT]))
            pos += self._SEGMENT
        self._pending = data[pos:]
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


# Trailing white space on a quoted-printable line is padding, not data (RFC 2045
# section 6.7 rule 3). The look-behind makes each run of blanks be tried once,
# from its start: without it a long run not ending a line is rescanned from
# every position in it (quadratic).
_TRAILING_WS = re.compile(rb"(?<![ \t])[ \t]+(?=\r?\n|\Z)")
# what a base64 body may hold besides its alphabet and padding (line breaks,
# white space, junk): deleted with bytes.translate, in C
_NON_BASE64_OCTETS = bytes(sorted(set(range(256)) - set(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")))
_UU_BEGIN = re.compile(rb"begin[ \t]+[0-7]{1,4}[ \t]")
UU_ENCODINGS = frozenset({"x-uuencode", "uuencode", "x-uue", "uue"})


def _may_have_trailing_ws(data: bytes) -> bool:
    """False when no line of ``data`` can end in white space: four C
    searches, where _TRAILING_WS stops at every blank of the text."""
    return (b" \n" in data or b"\t\n" in data or b" \r" in data or b"\t\r" in data
            or data.endswith((b" ", b"\t")))


def _base64_body(data: bytes) -> tuple[bytes, str | None]:
    """Decode a base64 body; it ends at its padding (RFC 2045 section 6.8)."""
    compact = data.translate(None, _NON_BASE64_OCTETS)
    problems = []
    pad = compact.find(b"=")
    if pad != -1:
        after = len(compact) - pad - compact.count(b"=", pad)
        if after:
            # typically a footer a list server appended to an encoded body
            problems.append(f"text after the base64 padding ignored ({after} base64 characters)")
        compact = compact[:pad]
    extra = len(compact) % 4
    if extra == 1:
        compact = compact[:-1]
        problems.append("base64 body has a stray final character")
    elif extra:
        compact += b"=" * (4 - extra)
        if pad == -1:
            problems.append("base64 body lacks its padding")
    return binascii.a2b_base64(compact), "; ".join(problems) or None


def _uu_body(data: bytes) -> tuple[bytes, str | None]:
    """Decode a uuencoded body: the lines between ``begin <mode> <name>`` and ``end``."""
    lines = data.splitlines()
    begin = next((i for i, line in enumerate(lines) if _UU_BEGIN.match(line)), None)
    if begin is None:
        return data, "uuencoded body has no 'begin' line; body left encoded"
    out: list[bytes] = []
    bad = 0
    ended = False
    for line in lines[begin + 1:]:
        if line.rstrip() == b"end":
            ended = True
            break
        if not line.strip():
            continue
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            # some encoders add characters after the data: decode what the length octet announces
            try:
                out.append(binascii.a2b_uu(line[:((line[0] - 32) & 63) * 4 // 3 + 2]))
            except binascii.Error:
                bad += 1
    problems = [f"{bad} malformed uuencoded line(s) skipped"] if bad else []
    if not ended:
        problems.append("uuencoded body has no 'end' line")
    return b"".join(out), "; ".join(problems) or None


def decode_body(data: bytes, encoding: str) -> tuple[bytes, str | None]:
    """Undo a Content-Transfer-Encoding leniently.

    ``encoding`` is ``base64``, ``quoted-printable``, ``7bit``, ``8bit``,
    ``binary``, or one of the uuencode names readers accept (``x-uuencode``,
    ``uuencode``, ``x-uue``, ``uue``). Returns ``(content, problem)``:
    ``problem`` is None, or says what was wrong (bad base64 padding, text
    after the padding, a malformed uuencoded line, an unknown encoding)
    while the best-effort content is still returned. Raises nothing; linear
    in ``len(data)``.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    if encoding == "base64":
        return _base64_body(data)
    if encoding == "quoted-printable":
        if _may_have_trailing_ws(data):
            data = _TRAILING_WS.sub(b"", data)
        return binascii.a2b_qp(data), None
    if encoding in UU_ENCODINGS:
        return _uu_body(data)
    if encoding in ("7bit", "8bit", "binary", ""):
        return data, None
    return data, f"unknown Content-Transfer-Encoding {encoding!r}; body left encoded"
