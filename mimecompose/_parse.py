"""Parsing: the bytes of a message into a Part tree.

Lenient by default, like the readers real mail has to get past: what is
malformed is recorded as a :class:`Defect` on the part and parsing goes on.
No input makes it raise anything but ParseError (and that only with
``strict=True``). A file is read once to be parsed; afterwards its bodies
are read from the file again only when they are asked for.

Line breaks. RFC 5322 section 2.1 has CRLF; real mail also comes with LF
alone, and a CR that no LF follows (a "bare CR") is sent as CRLF by every
sender, ours included (RFC 5321 section 2.3.8: no bare CR or LF on the
wire). So CRLF, LF and a bare CR are all line breaks to the parser: the
fields and parts it shows are the ones a receiver of the transmitted
message sees. A bare CR is recorded as a ``bare-cr`` defect.

Boundaries are found with RFC 2046 section 5.1.1's rule: a delimiter is a
line break, ``"--" boundary``, optional white space and a line break; the
line break before it belongs to the delimiter, not to the body. The tree is
built in one pass over the buffer: every line that starts with ``--`` is
looked at once and matched against the boundaries of all the multiparts
it is in (the outermost one wins), so the work is linear in the size of the
message whatever the nesting depth (``ParsedBuffer.work`` counts it).
"""

from __future__ import annotations

import os
import re
from typing import Callable, NamedTuple

from ._codecs import decode_body, decode_rfc2231
from ._errors import Defect, MimeError, ParseError
from ._headers import parse_content_type, raw_value, read_field_block
from ._part import MESSAGES, ParsedBuffer, PartData, Source
from ._serialize import Part

__all__ = ["parse_bytes", "parse_file"]

_MAX_DEPTH = 64
_KNOWN_ENCODINGS = frozenset({"7bit", "8bit", "binary", "quoted-printable", "base64",
                              "x-uuencode", "uuencode", "x-uue", "uue"})
_IDENTITY = (None, "7bit", "8bit", "binary")
_LINE_BREAK = re.compile(rb"[\r\n]")
_CANDIDATE = re.compile(rb"[\r\n]--")      # a line break before a line that starts with "--"
_BARE_CR = re.compile(rb"\r(?!\n)")


def parse_bytes(data: str | bytes, strict: bool = False) -> Part:
    """Parse a whole message held in memory.

    Raises MimeError for input that is neither str nor bytes, or a str that
    cannot be written as UTF-8 (a lone surrogate other than the ones
    ``surrogateescape`` reads undecodable bytes as); ParseError (with
    ``strict=True``) for the first defect.
    """
    if isinstance(data, str):
        try:
            data = data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            raise MimeError(f"a message given as str must be UTF-8 text: {exc.reason} "
                            f"at position {exc.start}") from None
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise MimeError(f"a message is str or bytes, not {type(data).__name__}")
    return _finish(ParsedBuffer(data), data, strict)


def parse_file(path: str | os.PathLike[str], strict: bool = False) -> Part:
    """Parse a message file.

    The file is read once to be parsed, then only its header fields stay in
    memory: bodies are read from the file when they are asked for, and a
    file that changed since (truncated, rewritten) raises MimeError then.
    Raises MimeError when the file cannot be read or changes while it is
    read, ParseError (with ``strict=True``) for the first defect.
    """
    buf, data = ParsedBuffer.from_file(path)
    part = _finish(buf, data, strict)
    buf.release()
    return part


def _finish(buf: ParsedBuffer, data: bytes, strict: bool) -> Part:
    start = 0
    unixfrom = None
    if data[:5] == b"From ":
        # an mbox envelope line is not part of the message
        start = _line_end(data, 0)
        unixfrom = data[:start]
    part = _parse_tree(buf, data, start, 0, [3 * len(data)])
    part.unixfrom = unixfrom
    if strict:
        first = _first_defect(part)
        if first is not None:
            buf.close()
            raise ParseError(first)
    return part


def _parse_tree(buf: ParsedBuffer, data: bytes, start: int, depth: int, budget: list[int]) -> Part:
    """Parse ``data[start:]`` as one message into a tree over ``buf``.
    ``budget`` holds how many octets encoded messages may still be decoded
    from (see _Parser._encoded_message)."""
    parser = _Parser(buf, data, budget)
    part, _end = parser.part(start, "text/plain", depth)
    if buf.bare_cr:
        buf.work += len(data)
        cr = _BARE_CR.search(data)
        if cr is not None:
            part.defects.append(Defect("bare-cr", f"a CR without LF at offset {cr.start()}: read as a "
                                       "line break, as it is transmitted (CRLF)"))
    buf.work += parser.work
    return part


def _line_end(data: bytes, pos: int) -> int:
    """Where the line at ``pos`` ends, after its line break."""
    m = _LINE_BREAK.search(data, pos)
    if m is None:
        return len(data)
    eol = m.start()
    return eol + 2 if data[eol:eol + 2] == b"\r\n" else eol + 1


def _first_defect(part: PartData) -> Defect | None:
    if part.defects:
        return part.defects[0]
    for child in part._parts:
        found = _first_defect(child)
        if found:
            return found
    return None


def _boundary_keys(boundary: str) -> list[bytes]:
    """The octets a boundary may have been written with (the field was read
    as UTF-8, else Latin-1), without trailing white space."""
    keys = []
    for codec in ("utf-8", "latin-1"):
        try:
            key = boundary.encode(codec, "surrogateescape").rstrip(b" \t")
        except UnicodeEncodeError:
            continue
        if key not in keys:
            keys.append(key)
    return keys


class _Delim(NamedTuple):
    """A delimiter line found in the buffer."""

    line: int      # where its "--" starts
    brk: int       # where the delimiter starts: the line break before it, or ``line`` at a region start
    eol: int       # where its line ends (the line break after it)
    end: int       # after that line break
    level: int     # the multipart it belongs to (0 = the outermost)
    closing: bool  # "--boundary--"


class _Parser:
    """One pass over a buffer, from the first header field to the end."""

    def __init__(self, buf: ParsedBuffer, data: bytes, budget: list[int]) -> None:
        self.buf = buf
        self.budget = budget
        self.data = data
        self.size = len(data)
        self.active: dict[bytes, int] = {}   # boundary -> level of the outermost multipart using it
        self.levels = 0
        self.work = 0                        # octets examined (see ParsedBuffer.work)

    # ------------------------------------------------------------ delimiters

    def _match(self, line: int, region: int) -> tuple[_Delim | None, int]:
        """Read the line at ``line`` (it starts with "--") as a delimiter of
        one of the open multiparts; returns it (or None) and where the line ends."""
        data = self.data
        m = _LINE_BREAK.search(data, line + 2)
        if m is None:
            eol = end = self.size
        else:
            eol = m.start()
            end = eol + 2 if data[eol:eol + 2] == b"\r\n" else eol + 1
        self.work += end - line
        text = data[line + 2:eol].rstrip(b" \t")
        level = self.active.get(text)
        closing = False
        if text.endswith(b"--"):
            outer = self.active.get(text[:-2])
            if outer is not None and (level is None or outer < level):
                level, closing = outer, True
        if level is None:
            return None, eol
        if line == region:
            brk = line      # its line break ended what came before (a header, a delimiter line)
        else:
            brk = line - 2 if data[line - 1:line] == b"\n" and data[line - 2:line - 1] == b"\r" else line - 1
            brk = max(brk, region)
        return _Delim(line, brk, eol, end, level, closing), eol

    def _next(self, pos: int) -> _Delim | None:
        """The first delimiter of an open multipart at or after ``pos``."""
        if not self.active:
            return None
        data = self.data
        if data.startswith(b"--", pos):
            found, _eol = self._match(pos, pos)
            if found is not None:
                return found
        scan = pos
        while True:
            line = self._candidate(scan)
            if line < 0:
                self.work += self.size - scan
                return None
            self.work += line - scan
            found, eol = self._match(line, pos)
            if found is not None:
                return found
            scan = max(eol, line + 2)

    def _candidate(self, scan: int) -> int:
        """Where the first line after ``scan`` that starts with "--" starts
        (-1: there is none). One C search over the buffer, not a look at
        every line: without a bare CR every line break ends in LF."""
        if self.buf.bare_cr:
            m = _CANDIDATE.search(self.data, scan)
            return -1 if m is None else m.start() + 1
        found = self.data.find(b"\n--", scan)
        return -1 if found < 0 else found + 1

    def _stops_header(self, pos: int) -> bool:
        return self._match(pos, pos)[0] is not None

    # ------------------------------------------------------------ parts

    def part(self, start: int, default: str, depth: int) -> tuple[Part, _Delim | None]:
        """Parse the part at ``start``; returns it and the delimiter that
        ended it (None: the end of the buffer)."""
        data = self.data
        part = Part()
        part._parsed = self.buf
        defects = part.defects

        # -- header block (RFC 5322 section 2.2)
        stop: Callable[[int], bool] | None = self._stops_header if self.active else None
        block = read_field_block(data, start, self.size, stop, bare_cr=self.buf.bare_cr)
        self.work += block.end + block.separator - start
        for note in block.stray:
            defects.append(Defect("stray-header-line", note))
        if block.problem:
            defects.append(Defect("missing-header-body-separator", block.problem))
        body_start = block.end + block.separator
        part._headers.read(block.pairs)

        # -- content type and transfer encoding
        ctype_value = None
        cte = None
        for raw, name in block.pairs:
            lname = name.lower()
            if lname == b"content-type":
                if ctype_value is None:
                    ctype_value = raw_value(raw)
            elif lname == b"content-transfer-encoding" and cte is None:
                cte = raw_value(raw).strip().lower()
        content = default
        params: dict[str, str] = {}
        if ctype_value is not None:
            problems: list[str] = []
            main, pairs, ok = parse_content_type(ctype_value, problems)
            if ok:
                content = main
                params = decode_rfc2231(pairs, problems)
            else:
                defects.append(Defect("invalid-content-type", f"{ctype_value[:60]!r}; read as {default}"))
                if default.startswith("text/"):
                    params = decode_rfc2231(pairs, problems)
            defects.extend(Defect("invalid-parameter", problem) for problem in problems)
        part._content = content
        part._params = params
        part._encoding = cte
        if cte is not None and cte not in _KNOWN_ENCODINGS:
            defects.append(Defect("unknown-transfer-encoding", f"Content-Transfer-Encoding {cte!r}; "
                                  "the body is given as it is"))

        # -- body
        found: _Delim | None
        if content.startswith("multipart/") and depth < _MAX_DEPTH:
            boundary = params.get("boundary")
            if boundary is None:
                defects.append(Defect("missing-boundary", f"{content} without a boundary parameter; read as a leaf"))
            else:
                if boundary == "":
                    defects.append(Defect("empty-boundary", 'boundary=""; split at lines of "--", '
                                          "as other readers do"))
                if cte not in _IDENTITY:
                    defects.append(Defect("invalid-multipart-encoding",
                                          f"multipart with Content-Transfer-Encoding {cte}"))
                split, found = self._multipart(part, body_start, boundary, depth)
                if split:
                    return self._close(part, start, body_start, found), found
                return self._leaf(part, start, body_start, found), found
        elif content in MESSAGES and depth < _MAX_DEPTH:
            if cte in _IDENTITY:
                child, found = self.part(body_start, "text/plain", depth + 1)
                part._parts = [child]
                return self._close(part, start, body_start, found), found
            if cte in ("base64", "quoted-printable"):
                return self._encoded_message(part, start, body_start, cte, depth)
        elif depth >= _MAX_DEPTH and (content.startswith("multipart/") or content.startswith("message/")):
            defects.append(Defect("nesting-too-deep", f"more than {_MAX_DEPTH} levels; read as a leaf"))
        found = self._next(body_start)
        return self._leaf(part, start, body_start, found), found

    def _close(self, part: Part, start: int, body_start: int, found: _Delim | None) -> Part:
        """Set the spans of a part that ``found`` ends (None: the buffer's end)."""
        end = found.brk if found is not None else self.size
        part._raw = (start, end)
        part._body_raw = (min(body_start, end), end)
        return part

    def _leaf(self, part: Part, start: int, body_start: int, found: _Delim | None) -> Part:
        """Make ``part`` a leaf whose (still encoded) body ends at ``found``."""
        self._close(part, start, body_start, found)
        body, end = _span(part)
        part._source = Source(buf=self.buf, start=body, end=end)
        part._encoded = True
        return part

    def _encoded_message(self, part: Part, start: int, body_start: int, cte: str,
                         depth: int) -> tuple[Part, _Delim | None]:
        """A message/rfc822 sent base64 or quoted-printable encoded, which RFC
        2046 section 5.2.1 forbids but real clients write: decoded, then
        parsed (as the readers that show it do)."""
        found = self._next(body_start)
        self._close(part, start, body_start, found)
        body, end = _span(part)
        problem = f"{part._content} with Content-Transfer-Encoding {cte} (RFC 2046 5.2.1 allows only 7bit, 8bit, binary)"
        if end - body > self.budget[0]:
            # encoded messages inside encoded messages: decoding each again
            # would cost depth x size; all of them together get the size of
            # the whole message to decode from
            part.defects.append(Defect("encoded-message", problem + ": read as a leaf"))
            self._leaf(part, start, body_start, found)
            return part, found
        self.budget[0] -= end - body
        decoded, _problem = decode_body(self.data[body:end], cte)
        self.work += 2 * (end - body)
        part.defects.append(Defect("encoded-message", problem + ": decoded, then parsed"))
        inner = ParsedBuffer(decoded)
        part._parts = [_parse_tree(inner, decoded, 0, depth + 1, self.budget)]
        self.work += inner.work
        return part, found

    def _multipart(self, part: Part, body_start: int, boundary: str,
                   depth: int) -> tuple[bool, _Delim | None]:
        """Split a multipart body into its parts. Returns whether a delimiter
        was found (else the part is a leaf) and the delimiter of an
        enclosing multipart that ended it (None: the end of the buffer)."""
        level = self.levels
        added = [key for key in _boundary_keys(boundary) if key not in self.active]
        for key in added:
            self.active[key] = level
        self.levels += 1

        def done() -> None:
            for key in added:
                del self.active[key]
            self.levels -= 1

        found = self._next(body_start)
        if found is None or found.level != level or found.closing:
            part.defects.append(Defect("missing-boundary-start", f"no delimiter for boundary {boundary!r}"))
            done()
            if found is not None and found.level == level:
                found = self._next(found.eol)
            return False, found
        part.preamble = None if found.line == body_start else self.data[body_start:found.brk]
        default = _child_default(part)
        children: list[PartData] = []
        while True:
            # ``found`` is a delimiter of this multipart, not the close delimiter.
            # A delimiter line right after another holds no part (there is no
            # line break to end one): skip it, as the email package does.
            if self.data.startswith(b"--", found.end):
                again, _eol = self._match(found.end, found.end)
                if again is not None and again.level == level and not again.closing:
                    found = again
                    continue
            child, found = self.part(found.end, default, depth + 1)
            children.append(child)
            if found is None or found.level != level:
                part._parts = children
                part.defects.append(Defect("missing-boundary-end", f"no closing delimiter for {boundary!r}"))
                part.epilogue = None
                done()
                return True, found
            if found.closing:
                break
        part._parts = children
        done()
        closing = found
        found = self._next(closing.eol)
        end = found.brk if found is not None else self.size
        # the line break after the close delimiter starts the epilogue, unless
        # it is the one before an enclosing delimiter
        part.epilogue = self.data[closing.end:end] if closing.end > closing.eol and end >= closing.end else None
        return True, found


def _span(part: PartData) -> tuple[int, int]:
    assert part._body_raw is not None
    return part._body_raw


def _child_default(part: PartData) -> str:
    # RFC 2046 section 5.1.5: in a digest the default type is message/rfc822
    return "message/rfc822" if part._content == "multipart/digest" else "text/plain"
