"""Message data on the wire: CRLF line breaks and dot-stuffing for DATA
(RFC 5321 section 4.5.2), in blocks, with the terminating "." written in
the same block as the end of the message."""

from __future__ import annotations

from typing import Iterable, Iterator

from mimecompose._codecs import LineBreakNormalizer

__all__ = ["DotStuffer", "MessageData", "data_blocks", "unstuff"]

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
    """The serialised message: its size and whether it has 8-bit octets,
    measured once; the chunks can be produced again for another server.

    Up to 8 MiB it is kept in memory; above that it is serialised again on
    each use, so memory stays bounded.
    """

    def __init__(self, produce) -> None:
        self._produce = produce
        kept: list[bytes] | None = []
        size = 0
        eightbit = False
        head = b""
        for chunk in produce():
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

    def chunks(self) -> Iterator[bytes]:
        if self._kept is not None:
            return iter(self._kept)
        return iter(self._produce())
