"""Serialisation: a Part tree to a stream of CRLF byte chunks.

Bodies are encoded block by block as they are read, so a message with a
file attachment of any size is written in bounded memory. A part read from
a message and not changed since goes out as the bytes it was read from.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from ._codecs import Base64Encoder, LineBreakNormalizer, QuotedPrintableEncoder
from ._headers import Field, format_field
from ._part import Part

__all__ = ["iter_part"]

_CRLF = b"\r\n"


def _clean(part: Part) -> bool:
    """True when ``part`` was parsed and nothing in it has been changed."""
    return part._parsed is not None and not part._dirty and all(_clean(p) for p in part._parts)


def _raw(part: Part, span: tuple[int, int]) -> Iterator[bytes]:
    buf = part._parsed
    data = buf.data()
    start, end = span
    step = 1 << 20
    if buf.crlf:
        for i in range(start, end, step):
            yield data[i:min(i + step, end)]
        return
    normalizer = LineBreakNormalizer(_CRLF)
    for i in range(start, end, step):
        yield normalizer.feed(data[i:min(i + step, end)])
    yield normalizer.flush()


def _field_bytes(part: Part, field: Field) -> bytes:
    if field.raw is None:
        return format_field(field.name, field.value)
    raw = field.raw
    if part._parsed is not None and not part._parsed.crlf:
        normalizer = LineBreakNormalizer(_CRLF)
        raw = normalizer.feed(raw) + normalizer.flush()
    return raw if raw.endswith(b"\n") else raw + _CRLF


def iter_part(part: Part, root: bool = True, add: Iterable[tuple[str, str]] = (),
              omit: frozenset[str] = frozenset()) -> Iterator[bytes]:
    """Yield ``part`` as CRLF bytes.

    ``root`` marks a whole message (a built one gets ``MIME-Version: 1.0``).
    ``add`` are fields written first; fields named in ``omit`` (lower-case)
    are left out -- the sender uses these for Date/Message-ID and Bcc.
    """
    add = list(add)
    fields = part._headers.fields
    if _clean(part) and not add and not any(f.lname in omit for f in fields):
        yield from _raw(part, part._raw)
        return
    out = [format_field(name, value) for name, value in add]
    names = {name.lower() for name, _ in add}
    for field in fields:
        if field.lname not in omit:
            out.append(_field_bytes(part, field))
    if part._parsed is None:
        if root and "mime-version" not in names and "mime-version" not in omit:
            out.append(b"MIME-Version: 1.0\r\n")
        out.extend(format_field(f.name, f.value) for f in part._mime_fields())
    out.append(_CRLF)
    yield b"".join(out)
    yield from _iter_body(part)


def _iter_body(part: Part) -> Iterator[bytes]:
    if part._parsed is not None and part._body_raw is not None and _clean(part):
        yield from _raw(part, part._body_raw)
        return
    if part._source is not None:
        if part._encoded:
            yield from _raw(part, part._body_raw)
        else:
            yield from _encode_leaf(part)
        return
    if part._content == "message/rfc822":
        yield from iter_part(part._parts[0], root=True)
        return
    boundary = part._params["boundary"].encode("ascii")
    delimiter = b"\r\n--" + boundary + b"\r\n"
    if part.preamble is None:
        yield b"--" + boundary + b"\r\n"
    else:
        yield part.preamble + delimiter
    for n, child in enumerate(part._parts):
        if n:
            yield delimiter
        yield from iter_part(child, root=False)
    yield b"\r\n--" + boundary + b"--"
    if part.epilogue is not None:
        yield _CRLF + part.epilogue
    else:
        yield _CRLF


def _encode_leaf(part: Part) -> Iterator[bytes]:
    """Encode a built leaf's content with its Content-Transfer-Encoding."""
    encoding = part._effective_encoding()
    text = part._content.startswith("text/")
    if encoding == "base64":
        encoders = [LineBreakNormalizer(_CRLF), Base64Encoder()] if text else [Base64Encoder()]
    elif encoding == "quoted-printable":
        encoders = [QuotedPrintableEncoder(text=text)]
    elif text and encoding != "binary":
        encoders = [LineBreakNormalizer(_CRLF)]
    else:
        encoders = []
    for block in part._source.chunks():
        for encoder in encoders:
            block = encoder.feed(block)
        if block:
            yield block
    tail = b""
    for encoder in encoders:
        tail = encoder.feed(tail) + encoder.flush() if tail else encoder.flush()
    if tail:
        yield tail
