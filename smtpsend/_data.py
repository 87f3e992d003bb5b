"""Message data on the wire: CRLF line breaks and dot-stuffing for DATA
(RFC 5321 section 4.5.2), in blocks, with the terminating "." written in
the same block as the end of the message."""

from __future__ import annotations

from typing import Iterable, Iterator

from mimecompose._codecs import LineBreakNormalizer

__all__ = ["DotStuffer", "MessageData", "bdat_blocks", "data_blocks", "unstuff", "xtext"]

BLOCK = 65536
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


class MessageData:
    """The serialised message: its size, whether it has 8-bit octets or
    binary parts, measured once; the chunks can be produced again for
    another server.

    Up to 8 MiB it is kept in memory; above that it is serialised again on
    each use, so memory stays bounded. Line breaks are made CRLF here (so
    ``size`` is exactly what BDAT announces), except in a message with binary
    parts, whose octets go out as they are.
    """

    def __init__(self, produce, binary: bool = False, seven_bit=None) -> None:
        self.binary = binary
        self._seven_bit_factory = seven_bit
        self._seven_bit: "MessageData | None" = None
        if binary:
            self._produce = produce
        else:
            def normalised():
                lines = LineBreakNormalizer(b"\r\n")
                for chunk in produce():
                    out = lines.feed(chunk)
                    if out:
                        yield out
                tail = lines.flush()
                if tail:
                    yield tail
            self._produce = normalised
        kept: list[bytes] | None = []
        size = 0
        eightbit = False
        head = b""
        for chunk in self._produce():
            size += len(chunk)
            if not eightbit and not chunk.isascii():
                eightbit = True
            if len(head) < 65536:
                head += chunk[:65536]
            if kept is not None:
                kept.append(chunk)
                if size > _KEEP:
                    kept = None
        self._kept = kept
        self.size = size
        self.eightbit = eightbit
        end = head.find(b"\r\n\r\n")
        self.header_utf8 = not (head if end == -1 else head[:end]).isascii()

    @classmethod
    def from_part(cls, part, add=(), omit=frozenset()) -> "MessageData":
        """The transmitted form of a mimecompose Part (``add``/``omit`` as
        for iter_part), with its 7-bit variant available on demand."""
        from mimecompose._serialize import iter_part
        return cls(lambda: iter_part(part, root=True, add=add, omit=omit), binary=_has_binary(part),
                   seven_bit=lambda: cls(lambda: iter_part(part, root=True, add=add, omit=omit,
                                                          seven_bit=True)))

    def seven_bit(self) -> "MessageData":
        """The same message with 8bit and binary parts re-encoded (QP or
        base64), for a server without 8BITMIME (RFC 6152) or BINARYMIME."""
        if self._seven_bit_factory is None:
            return self
        if self._seven_bit is None:
            self._seven_bit = self._seven_bit_factory()
        return self._seven_bit

    def chunks(self) -> Iterator[bytes]:
        if self._kept is not None:
            return iter(self._kept)
        return iter(self._produce())


def _has_binary(part) -> bool:
    props = part.getproperty()
    if "parts" in props:
        return any(_has_binary(child) for child in props["parts"])
    return props["encoding"] == "binary"


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
