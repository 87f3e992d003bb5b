"""Message data on the wire: CRLF line breaks and dot-stuffing for DATA
(RFC 5321 section 4.5.2), in blocks, with the terminating "." written in
the same block as the end of the message."""

from __future__ import annotations

import zlib
from typing import Callable, Iterable, Iterator, Optional

from mimecompose import LineBreakNormalizer, MimeError, Part

from ._errors import UsageError

__all__ = ["DotStuffer", "MessageChanged", "MessageData", "bdat_blocks", "data_blocks", "unstuff",
           "xtext"]

BLOCK = 65536
HEAD = 65536      # octets of the start of a message kept for monitors
_KEEP = 8 << 20   # messages up to this size are serialised once and kept


class DotStuffer:
    """CRLF-normalise and dot-stuff a stream, across chunk boundaries.

    Every line break becomes CRLF -- a bare CR or LF never reaches the wire,
    which closes the SMTP smuggling class of CVE-2023-51764 -- and a line
    that starts with "." gets a second one.
    """

    def __init__(self) -> None:
        self._lines = LineBreakNormalizer(b"\r\n")
        self._at_line_start = True

    def feed(self, data: bytes) -> bytes:
        data = self._lines.feed(data)
        return self._stuff(data)

    def _stuff(self, data: bytes) -> bytes:
        if not data:
            return data
        if b"\n." in data:
            data = data.replace(b"\n.", b"\n..")
        if self._at_line_start and data[:1] == b".":
            data = b"." + data
        self._at_line_start = data[-1:] == b"\n"
        return data

    def finish(self) -> bytes:
        """The rest, a final CRLF if the message lacks one, and ".\\r\\n"."""
        tail = self._stuff(self._lines.flush())
        if not self._at_line_start:
            tail += b"\r\n"
        return tail + b".\r\n"


def xtext(text: str) -> str:
    """RFC 3461 section 4 xtext: "+" followed by two hex digits for every
    octet outside "!".."~", and for "+" and "=" themselves."""
    return "".join(chr(b) if 33 <= b <= 126 and b not in (43, 61) else f"+{b:02X}"
                   for b in text.encode("utf-8"))


def unstuff(line: bytes) -> bytes:
    """Undo dot-stuffing on one received line (RFC 5321 section 4.5.2,
    RFC 1939 section 3): the inverse of DotStuffer, used by the POP3 client."""
    return line[1:] if line.startswith(b".") else line


def data_blocks(chunks: Iterable[bytes], trailer: bytes = b"") -> Iterator[bytes]:
    """Yield the DATA stream in blocks of about BLOCK octets; the last one
    carries the terminator and ``trailer`` (a pipelined QUIT), so the end of
    the message never goes out as a tiny write of its own."""
    stuffer = DotStuffer()
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        out = stuffer.feed(chunk)
        if out:
            pending.append(out)
            size += len(out)
        if size >= BLOCK:
            yield b"".join(pending)
            pending, size = [], 0
    pending.append(stuffer.finish() + trailer)
    yield b"".join(pending)


class MessageChanged(UsageError):
    """The message's bytes changed between measuring it and sending it (a
    ``file=`` attachment written to or truncated meanwhile). Raised before
    the last of the data goes out, so the server never holds a complete
    message that differs from the one announced (SIZE=, BDAT): the
    transaction is unfinished and the connection must be dropped."""


class MessageData:
    """The serialised message: its size, whether it has 8-bit octets or
    binary parts, measured once; the chunks can be produced again for
    another server.

    Up to 8 MiB it is kept in memory; above that it is serialised again on
    each use, so memory stays bounded -- and checked against what was
    measured (size and CRC-32) as it goes: every chunk is released only
    once the next one exists, the last only once the whole matched, and a
    difference raises MessageChanged. So the octets sent are always the
    octets announced (RFC 3030 section 2: the server reads exactly the
    BDAT size, and whatever follows as commands).

    Line breaks are made CRLF here, and a message that does not end in one
    gets one, so ``size`` is exactly what BDAT announces and DATA and BDAT
    carry the same bytes -- except in a message with binary parts, whose
    octets go out as they are (only ever by BDAT with BODY=BINARYMIME).
    """

    def __init__(self, produce: Callable[[], Iterable[bytes]], binary: bool = False,
                 seven_bit: Optional[Callable[[], "MessageData"]] = None) -> None:
        self.binary = binary
        self._source = produce
        self._seven_bit_factory = seven_bit
        self._seven_bit: Optional[MessageData] = None
        kept: Optional[list[bytes]] = []
        size = 0
        crc = 0
        eightbit = False
        head = b""
        for chunk in self._stream():
            size += len(chunk)
            if not eightbit and not chunk.isascii():
                eightbit = True
            if len(head) < HEAD:
                head += chunk[:HEAD - len(head)]
            if kept is None:
                crc = zlib.crc32(chunk, crc)
                continue
            kept.append(chunk)
            if size > _KEEP:
                for block in kept:
                    crc = zlib.crc32(block, crc)
                kept = None
        self._kept = kept
        self._crc = crc
        self.size = size
        self.eightbit = eightbit
        #: the first HEAD octets: what a monitor shows of the header
        self.head = head
        end = head.find(b"\r\n\r\n")
        self.header_utf8 = not (head if end == -1 else head[:end]).isascii()

    def _stream(self) -> Iterator[bytes]:
        """The message as it goes out, in non-empty chunks: CRLF line
        breaks and a final CRLF, or (binary) the octets as they are."""
        if self.binary:
            for chunk in self._source():
                if chunk:
                    yield chunk
            return
        lines = LineBreakNormalizer(b"\r\n")
        ends_in_crlf = True
        for chunk in self._source():
            out = lines.feed(chunk)
            if out:
                ends_in_crlf = out.endswith(b"\n")   # every LF out of the normaliser is a CRLF
                yield out
        tail = lines.flush()
        if tail:
            yield tail
        elif not ends_in_crlf:
            # RFC 5321 section 4.1.1.4: the data ends with a line break; DATA
            # would add it, so BDAT gets it too (one message, one set of bytes)
            yield b"\r\n"

    @classmethod
    def from_part(cls, part: Part, add: Iterable[tuple[str, str]] = (),
                  omit: Iterable[str] = frozenset()) -> "MessageData":
        """The transmitted form of a mimecompose Part (``add``/``omit`` as
        for ``Part.iterbytes``), with its 7-bit variant available on demand.
        Only the transfer-encoding labels are read to find binary parts: no
        body is decoded to be sent. Raises what ``Part.iterbytes`` raises."""
        fields = list(add)
        names = frozenset(omit)
        return cls(lambda: part.iterbytes(add=fields, omit=names), binary=_has_binary(part),
                   seven_bit=lambda: cls(lambda: part.iterbytes(add=fields, omit=names, seven_bit=True)))

    def seven_bit(self) -> "MessageData":
        """The same message with 8bit and binary parts re-encoded (QP or
        base64), for a server without 8BITMIME (RFC 6152) or BINARYMIME.
        Without a way to re-encode, the message itself (``binary`` still
        set: the caller must not send it by DATA)."""
        if self._seven_bit_factory is None:
            return self
        if self._seven_bit is None:
            self._seven_bit = self._seven_bit_factory()
        return self._seven_bit

    def chunks(self) -> Iterator[bytes]:
        """The octets to send, exactly ``size`` of them. Raises
        MessageChanged, before the last chunk, when they are no longer the
        ones measured."""
        if self._kept is not None:
            return iter(self._kept)
        return self._checked()

    def _checked(self) -> Iterator[bytes]:
        size = 0
        crc = 0
        held: Optional[bytes] = None
        for chunk in self._stream():
            size += len(chunk)
            if size > self.size:
                raise MessageChanged(f"the message grew while it was being sent (more than the "
                                     f"{self.size} octets measured): was a file attachment written to?")
            crc = zlib.crc32(chunk, crc)
            if held is not None:
                yield held
            held = chunk
        if size != self.size or crc != self._crc:
            raise MessageChanged(f"the message changed while it was being sent ({size} octets, "
                                 f"{self.size} measured): was a file attachment written to?")
        if held is not None:
            yield held


def _has_binary(part: Part) -> bool:
    """True when ``part`` or a part inside it is labelled binary (RFC 3030).

    Reads the labels only, through public Part methods: the ``encoding``
    property, never ``size`` (which decodes the body to measure it).
    """
    stack = [part]
    while stack:
        node = stack.pop()
        if node.getproperty("encoding") == "binary":
            return True
        try:
            stack.extend(node.getproperty("parts"))
        except MimeError:
            pass   # a leaf
    return False


def bdat_blocks(prefix: bytes, chunks: Iterable[bytes], trailer: bytes = b"") -> Iterator[bytes]:
    """BDAT data (RFC 3030): no dot-stuffing, no terminator; ``prefix``
    (the commands before it) and ``trailer`` (commands after it) share the
    first and last blocks, so a whole pipelined transaction can be one write."""
    pending = [prefix]
    size = len(prefix)
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= BLOCK:
            yield b"".join(pending)
            pending, size = [], 0
    pending.append(trailer)
    yield b"".join(pending)
