"""Serialisation: a part tree to a stream of CRLF byte chunks, and
:class:`Part`, the public class: the data model (``_part.PartData``) plus
the methods that write it.

Bodies are encoded block by block as they are read, so a message with a
file attachment of any size is written in bounded memory. A part read from
a message and not changed since goes out as the bytes it was read from.
"""

from __future__ import annotations

from typing import IO, Iterable, Iterator, Literal, Protocol, overload

from .args import HeaderArg, header_fields, one_or_many
from ._codecs import Base64Encoder, LineBreakNormalizer, QuotedPrintableEncoder
from ._errors import MimeError
from ._headers import Field, check_name, check_value, format_field
from ._part import MESSAGES, RESERVED, PartData

__all__ = ["Part", "iter_part"]

_CRLF = b"\r\n"
# fields that follow from the content: iterbytes(add=, omit=) may not touch them
# (MIME-Version may be added or left out: it stands for the version written)
_FROM_CONTENT = frozenset(RESERVED) - {"mime-version"}
_FAST = True   # tests force the general path of iter_part with False


class Part(PartData):
    """One MIME part. Build one with ``initialize`` (or ``compose``).

    Read it with :meth:`getheader`, :meth:`fields`, :meth:`getproperty` and
    :meth:`getbody`; change its header with :meth:`setheader`; write it with
    :meth:`buildmessage`, :meth:`copymessage` or :meth:`iterbytes`.
    ``defects`` lists what was wrong in a parsed part.
    """

    @overload
    def getbody(self, decode: Literal[False] = False) -> bytes: ...

    @overload
    def getbody(self, decode: bool) -> bytes | str: ...

    def getbody(self, decode: bool = False) -> bytes | str:
        """Return the content of a leaf as bytes, transfer encoding undone.

        With ``decode=True`` a ``text/*`` body is returned as str, decoded
        with its charset (undecodable bytes replaced). A ``message/rfc822``
        part returns the bytes of the message it wraps. Raises MimeError for
        a multipart, and for a part that was finalized.
        """
        if self._source is None and self._content in MESSAGES and self._parts:
            self._check_alive()
            inner = self._parts[0]
            inner._check_alive()
            return b"".join(iter_part(inner, root=True))
        return super().getbody(decode)

    def iterbytes(self, *, add: HeaderArg = (), omit: str | Iterable[str] = (),
                  seven_bit: bool = False) -> Iterator[bytes]:
        """Yield the message in CRLF form as a stream of byte chunks.

        Memory stays bounded whatever the size of file-based bodies. The
        part itself is not changed by the options, which apply to the top
        of the header: ``add`` fields (pairs or a mapping) are written
        first, and a MIME-Version among them stands in for the one a built
        message gets; fields named in ``omit`` (one name or several, any
        case) are left out. ``seven_bit`` re-encodes 8bit and binary parts
        as quoted-printable (text) or base64, for a transport without
        8BITMIME (RFC 6152). Raises MimeError for a finalized part, an
        invalid name, or Content-Type, Content-Transfer-Encoding or
        Content-MD5 in ``add`` or ``omit`` (they follow from the content);
        HeaderInjectionError for CR, LF or NUL; TypeError for arguments of
        the wrong shape.
        """
        self._check_alive()
        fields = header_fields(add, "add=")
        for name, value in fields:
            check_name(name)
            check_value(name, value)
            if name.lower() in _FROM_CONTENT:
                raise MimeError(f"add= may not have {name}: {RESERVED[name.lower()]}")
        omitted = one_or_many(omit, "omit=")
        if not all(isinstance(name, str) for name in omitted):
            raise TypeError(f"omit= takes field names (str), not {omitted!r}")
        names = frozenset(name.lower() for name in omitted)
        refused = names & _FROM_CONTENT
        if refused:
            raise MimeError(f"omit= may not leave out {', '.join(sorted(refused))}: it follows from the content")
        return iter_part(self, root=True, add=fields, omit=names, seven_bit=seven_bit)

    def buildmessage(self) -> bytes:
        """Return the whole message (headers and body) as CRLF bytes.
        Raises MimeError for a finalized part."""
        return b"".join(self.iterbytes())

    def copymessage(self, fileobj: IO[bytes]) -> int:
        """Write the message to a binary file object in bounded memory;
        returns the number of bytes written. Raises MimeError for a
        finalized part, TypeError for an object with no ``write``."""
        write = getattr(fileobj, "write", None)
        if not callable(write):
            raise TypeError(f"copymessage() takes a binary file object, not a {type(fileobj).__name__}")
        total = 0
        for chunk in self.iterbytes():
            write(chunk)
            total += len(chunk)
        return total


def _clean(part: PartData) -> bool:
    """True when ``part`` was parsed and nothing in it has been changed."""
    return part._parsed is not None and not part._dirty and all(_clean(p) for p in part._parts)


def _raw(part: PartData, span: tuple[int, int]) -> Iterator[bytes]:
    buf = part._parsed
    assert buf is not None
    start, end = span
    step = 1 << 20
    if buf.crlf:
        for i in range(start, end, step):
            yield buf.read(i, min(i + step, end))
        return
    # LF and bare CR become CRLF: the parser read both as line breaks
    normalizer = LineBreakNormalizer(_CRLF)
    for i in range(start, end, step):
        yield normalizer.feed(buf.read(i, min(i + step, end)))
    yield normalizer.flush()


def _field_bytes(part: PartData, field: Field) -> bytes:
    if field.raw is None:
        return format_field(field.name, field.value)
    raw = field.raw
    if part._parsed is not None and not part._parsed.crlf:
        normalizer = LineBreakNormalizer(_CRLF)
        raw = normalizer.feed(raw) + normalizer.flush()
    return raw if raw.endswith(b"\n") else raw + _CRLF


def _seven_bit(part: PartData) -> str | None:
    """With a 7-bit downgrade (RFC 6152 section 3: no 8BITMIME), the
    encoding this part must get instead of its own, or None to keep it."""
    encoding = part._effective_encoding()
    if part._source is None:
        return "7bit" if encoding in ("8bit", "binary") else None
    if encoding not in ("8bit", "binary"):
        return None
    if encoding == "8bit" and part._encoded and part._source.read().isascii():
        return None   # labelled 8bit, but 7-bit clean: nothing to do
    if encoding == "binary":
        # even ASCII: a binary body's CR and LF octets are data that a 7-bit
        # transfer (line breaks made CRLF) would rewrite (RFC 3030 section 3)
        return "base64"
    return "quoted-printable" if part._content.startswith("text/") else "base64"


def iter_part(part: PartData, root: bool = True, add: Iterable[tuple[str, str]] = (),
              omit: frozenset[str] = frozenset(), seven_bit: bool = False) -> Iterator[bytes]:
    """Yield ``part`` as CRLF bytes.

    ``root`` marks a whole message (a built one gets ``MIME-Version: 1.0``).
    ``add`` are fields written first; fields named in ``omit`` (lower-case)
    are left out -- the sender uses these for Date/Message-ID and Bcc.
    ``seven_bit`` re-encodes 8bit and binary parts as quoted-printable or
    base64, for a server without 8BITMIME.
    """
    add = list(add)
    fields = part._headers.fields
    recode = _seven_bit(part) if seven_bit else None
    clean = not seven_bit and _clean(part)
    if clean and not any(f.lname in omit for f in fields):
        assert part._raw is not None   # set on every parsed part
        if not add:
            yield from _raw(part, part._raw)
            return
        if _FAST and _header_as_read(part, fields):
            # what the general path below writes: the added fields, every
            # field as read, the empty line, the body as read -- and the last
            # three are the part's bytes in the buffer, unchanged
            raw = _raw(part, part._raw)
            yield b"".join([format_field(name, value) for name, value in add]) + next(raw, b"")
            yield from raw
            return
    out = [format_field(name, value) for name, value in add]
    names = {name.lower() for name, _ in add}
    for field in fields:
        if field.lname in omit or (recode and field.lname == "content-transfer-encoding"):
            continue
        out.append(_field_bytes(part, field))
    if part._parsed is None:
        if root and "mime-version" not in names and "mime-version" not in omit:
            out.append(b"MIME-Version: 1.0\r\n")
        for f in part._mime_fields():
            if not (recode and f.lname == "content-transfer-encoding"):
                out.append(format_field(f.name, f.value))
    if recode and recode != "7bit":
        out.append(format_field("Content-Transfer-Encoding", recode))
    out.append(_CRLF)
    yield b"".join(out)
    yield from _iter_body(part, seven_bit, recode)


def _header_as_read(part: PartData, fields: list[Field]) -> bool:
    """True when the header block of a clean parsed ``part`` is, in its
    buffer, exactly what the serialiser writes for it: every field's raw
    bytes and then CRLF, nothing else. Needs a buffer in memory (a file is
    read again only for the body, as the general path does) whose line
    breaks are all CRLF (so no field is normalised, and every raw ends in
    CRLF unless the header ran to the end without an empty line, which the
    length rules out). The lengths tell it: the block is the fields' raws,
    the lines the reader skipped (stray lines, 3 octets or more each with
    their CRLF) and the empty line (2 or 0 octets), so the raws plus 2 fill
    it only when nothing was skipped and the empty line is there."""
    buf = part._parsed
    if buf is None or not buf.crlf or buf._data is None or part._raw is None or part._body_raw is None:
        return False
    size = 2
    for field in fields:
        if field.raw is None:
            return False
        size += len(field.raw)
    return part._body_raw[0] - part._raw[0] == size


def _iter_body(part: PartData, seven_bit: bool = False, recode: str | None = None) -> Iterator[bytes]:
    if recode and part._source is not None:
        if part._encoded:
            yield from _encode(iter([part.getbody()]), recode, part._content.startswith("text/"))
        else:
            yield from _encode(part._source.chunks(), recode, part._content.startswith("text/"))
        return
    if not seven_bit and part._parsed is not None and part._body_raw is not None and _clean(part):
        yield from _raw(part, part._body_raw)
        return
    if part._source is not None:
        if part._encoded:
            assert part._body_raw is not None   # set on every parsed part
            yield from _raw(part, part._body_raw)
        else:
            yield from _encode_leaf(part)
        return
    if part._content in MESSAGES:
        inner = iter_part(part._parts[0], root=True, seven_bit=seven_bit)
        encoding = part._encoding if part._parsed is not None else None
        if encoding in ("base64", "quoted-printable"):
            # read from a message that sent it encoded (see _parse): write it
            # back with the encoding its header names
            yield from _encode(inner, encoding, encoding == "quoted-printable")
        else:
            yield from inner
        return
    boundary = part._params["boundary"].encode("utf-8", "surrogateescape")
    delimiter = b"\r\n--" + boundary + b"\r\n"
    if part.preamble is None:
        yield b"--" + boundary + b"\r\n"
    else:
        yield _crlf(part, part.preamble) + delimiter
    for n, child in enumerate(part._parts):
        if n:
            yield delimiter
        yield from iter_part(child, root=False, seven_bit=seven_bit)
    yield b"\r\n--" + boundary + b"--"
    if part.epilogue is not None:
        yield _CRLF + _crlf(part, part.epilogue)
    else:
        yield _CRLF


def _crlf(part: PartData, text: bytes) -> bytes:
    """A preamble or epilogue with CRLF line breaks: as read from a message
    with LF or bare CR ones (what the parser read as line breaks), or as
    set on a built part (RFC 5322 section 2.3: CR and LF occur together)."""
    if part._parsed is not None and part._parsed.crlf:
        return text
    normalizer = LineBreakNormalizer(_CRLF)
    return normalizer.feed(text) + normalizer.flush()


def _encode_leaf(part: PartData) -> Iterator[bytes]:
    """Encode a built leaf's content with its Content-Transfer-Encoding."""
    assert part._source is not None   # a leaf
    yield from _encode(part._source.chunks(), part._effective_encoding(), part._content.startswith("text/"))


class _Encoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


def _encode(chunks: Iterable[bytes], encoding: str, text: bool) -> Iterator[bytes]:
    """Encode content chunks with ``encoding``; line breaks become CRLF in
    text under any encoding, and in any 7bit or 8bit content."""
    encoders: list[_Encoder]
    if encoding == "base64":
        encoders = [LineBreakNormalizer(_CRLF), Base64Encoder()] if text else [Base64Encoder()]
    elif encoding == "quoted-printable":
        encoders = [QuotedPrintableEncoder(text=text)]
    elif encoding != "binary":
        # RFC 2045 sections 2.7 and 2.8: 7bit and 8bit data are lines, CR
        # and LF only together as the line break -- for any content type
        encoders = [LineBreakNormalizer(_CRLF)]
    else:
        encoders = []
    for block in chunks:
        for encoder in encoders:
            block = encoder.feed(block)
        if block:
            yield block
    tail = b""
    for encoder in encoders:
        tail = encoder.feed(tail) + encoder.flush() if tail else encoder.flush()
    if tail:
        yield tail
