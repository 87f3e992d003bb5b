"""Parsing: the bytes of a message (CRLF or LF) into a Part tree.

Lenient by default, like the readers real mail has to get past: what is
malformed is recorded as a :class:`Defect` on the part and parsing goes on.
No input makes it raise anything but ParseError (and that only with
``strict=True``). A file is memory-mapped, not read: bodies stay on disk
until they are asked for.

Boundaries are found with RFC 2046 section 5.1.1's rule: a delimiter is
``CRLF "--" boundary`` followed by optional white space and a line break;
the line break before it belongs to the delimiter, not to the body.
"""

from __future__ import annotations

import mmap
import os
import re

from ._codecs import decode_rfc2231
from ._errors import Defect, MimeError, ParseError
from ._headers import parse_content_type, parse_field_block
from ._part import ParsedBuffer, Part, _Source

__all__ = ["parse_bytes", "parse_file"]

_MAX_DEPTH = 64
_KNOWN_ENCODINGS = frozenset({"7bit", "8bit", "binary", "quoted-printable", "base64"})
_BLANK_RE = re.compile(rb"\r?\n\r?\n")
_EOL_RE = re.compile(rb"\r?\n")


def parse_bytes(data: str | bytes, strict: bool = False) -> Part:
    """Parse a whole message held in memory."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise MimeError(f"a message is str or bytes, not {type(data).__name__}")
    return _finish(ParsedBuffer(data), len(data), strict)


def parse_file(path, strict: bool = False) -> Part:
    """Parse a message file; its bytes are memory-mapped, not loaded."""
    try:
        fh = open(os.fspath(path), "rb")
    except OSError as exc:
        raise MimeError(f"cannot open {path!r}: {exc.strerror}") from None
    size = os.fstat(fh.fileno()).st_size
    if size == 0:
        fh.close()
        return _finish(ParsedBuffer(b""), 0, strict)
    data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    return _finish(ParsedBuffer(data, fh), size, strict)


def _finish(buf: ParsedBuffer, size: int, strict: bool) -> Part:
    start = 0
    data = buf.data()
    unixfrom = None
    if data[:5] == b"From ":
        # an mbox envelope line is not part of the message
        eol = data.find(b"\n")
        start = size if eol == -1 else eol + 1
        unixfrom = data[:start]
    part = _parse(buf, data, start, size, "text/plain", 0)
    part.unixfrom = unixfrom
    if strict:
        first = _first_defect(part)
        if first is not None:
            buf.close()
            raise ParseError(first)
    return part


def _first_defect(part: Part) -> Defect | None:
    if part.defects:
        return part.defects[0]
    for child in part._parts:
        found = _first_defect(child)
        if found:
            return found
    return None


def _parse(buf: ParsedBuffer, data, start: int, end: int, default: str, depth: int) -> Part:
    part = Part()
    part._parsed = buf
    part._raw = (start, end)
    defects = part.defects

    # -- header block
    if data[start:start + 2] == b"\r\n":
        body_start = start + 2
        fields = []
    elif data[start:start + 1] == b"\n":
        body_start = start + 1
        fields = []
    else:
        m = _BLANK_RE.search(data, start, end)
        block = data[start:data.find(b"\n", m.start()) + 1] if m else data[start:end]
        fields, used, problem = parse_field_block(block)
        if problem:
            defects.append(Defect("missing-header-body-separator", problem))
            body_start = start + used
        elif m:
            body_start = m.end()
        else:
            body_start = end
            if fields and start + used < end:
                defects.append(Defect("missing-header-body-separator", "no blank line after the header"))
    part._headers.fields = fields
    part._body_raw = (body_start, end)

    # -- content type and transfer encoding
    ctype_value = None
    cte = None
    for f in fields:
        if f.lname == "content-type":
            if ctype_value is None:
                ctype_value = f.value
        elif f.lname == "content-transfer-encoding" and cte is None:
            cte = f.value.strip().lower()
    content = default
    params: dict[str, str] = {}
    if ctype_value is not None:
        main, pairs, ok = parse_content_type(ctype_value)
        if ok:
            content = main
            params = decode_rfc2231(pairs)
        else:
            defects.append(Defect("invalid-content-type", f"{ctype_value[:60]!r}; read as {default}"))
            if default.startswith("text/"):
                params = decode_rfc2231(pairs)
    part._content = content
    part._params = params
    part._encoding = cte
    if cte is not None and cte not in _KNOWN_ENCODINGS:
        defects.append(Defect("unknown-transfer-encoding", f"Content-Transfer-Encoding {cte!r}; "
                              "the body is given as it is"))

    # -- body
    if content.startswith("multipart/") and depth < _MAX_DEPTH:
        boundary = params.get("boundary")
        if not boundary:
            defects.append(Defect("missing-boundary", f"{content} without a boundary parameter; read as a leaf"))
        else:
            if cte not in (None, "7bit", "8bit", "binary"):
                defects.append(Defect("invalid-multipart-encoding",
                                      f"multipart with Content-Transfer-Encoding {cte}"))
            if _split_multipart(part, buf, data, body_start, end, boundary, depth):
                return part
    elif content in ("message/rfc822", "message/global") and depth < _MAX_DEPTH and \
            cte in (None, "7bit", "8bit", "binary"):
        part._parts = [_parse(buf, data, body_start, end, "text/plain", depth + 1)]
        return part
    elif depth >= _MAX_DEPTH and (content.startswith("multipart/") or content.startswith("message/")):
        defects.append(Defect("nesting-too-deep", f"more than {_MAX_DEPTH} levels; read as a leaf"))
    part._source = _Source(buf=buf, start=body_start, end=end)
    part._encoded = True
    return part


def _split_multipart(part: Part, buf, data, start: int, end: int, boundary: str, depth: int) -> bool:
    """Find the parts of a multipart body; False if no delimiter is found."""
    esc = re.escape(boundary.encode("utf-8", "surrogateescape"))
    line_tail = rb"(--)?[ \t]*(?:\r?\n|\Z)"
    at_line = re.compile(rb"--" + esc + line_tail)
    delim = re.compile(rb"\r?\n--" + esc + line_tail)
    at_start = at_line.match(data, start, end)
    positions: list[tuple[int, int]] = []   # (where a delimiter starts, where its part starts)
    closed = None                            # (start, end) of the close delimiter
    m = at_start or delim.search(data, start, end)
    while m is not None:
        begin = m.start()
        # a delimiter line right after another one holds no part (there is no
        # CRLF to end one): skip it, as the email package does
        while m.end() < end and not m.group(1):
            again = at_line.match(data, m.end(), end)
            if again is None:
                break
            m = again
        if m.group(1):
            closed = (begin, m.end())
            break
        positions.append((begin, m.end()))
        m = delim.search(data, m.end(), end) if m.end() < end else None
    if not positions:
        part.defects.append(Defect("missing-boundary-start", f"no delimiter for boundary {boundary!r}"))
        return False
    part.preamble = None if at_start is not None else data[start:positions[0][0]]
    children = []
    for n, (_begin, body) in enumerate(positions):
        child_end = positions[n + 1][0] if n + 1 < len(positions) else (closed[0] if closed else end)
        children.append(_parse(buf, data, body, child_end, _child_default(part), depth + 1))
    part._parts = children
    if closed is None:
        part.defects.append(Defect("missing-boundary-end", f"no closing delimiter for {boundary!r}"))
        part.epilogue = None
    else:
        closing_line = data[closed[0]:closed[1]]
        part.epilogue = data[closed[1]:end] if closing_line.endswith(b"\n") else None
    return True


def _child_default(part: Part) -> str:
    # RFC 2046 section 5.1.5: in a digest the default type is message/rfc822
    return "message/rfc822" if part._content == "multipart/digest" else "text/plain"
