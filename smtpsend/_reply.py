"""SMTP replies as values, and the incremental parser that reads them.

A reply (RFC 5321 section 4.2) is a three-digit code and one or more lines
of text; with ENHANCEDSTATUSCODES (RFC 2034) each line starts with an RFC
3463 status such as ``5.1.1``. The parser takes bytes in any chunking and
returns whole replies. It caps what a server can make it hold: a reply line
longer than MAX_LINE octets, or a reply of more than MAX_LINES lines, is a
RemoteProtocolError, so an endless reply cannot exhaust memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ._errors import RemoteProtocolError

__all__ = ["EnhancedStatus", "Reply", "ReplyBuffer", "ReplyParser"]

# RFC 5321 section 4.5.3.1.5 limits a reply line to 512 octets; servers exceed
# it in practice (long EHLO keyword lists), so allow some room, but bounded.
MAX_LINE = 4096
MAX_LINES = 512

_STATUS_RE = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?=\s|$)")


class EnhancedStatus(str):
    """An RFC 3463 status code: class (2, 4, 5), subject and detail.

    It is the text itself -- a str that compares equal to, hashes like and
    prints as ``"5.7.1"``, as ``Rejected.status`` does -- with the three
    numbers as ``klass``, ``subject`` and ``detail``.
    """

    __slots__ = ()

    def __new__(cls, klass: int, subject: int, detail: int) -> "EnhancedStatus":
        numbers = (klass, subject, detail)
        if not all(type(n) is int for n in numbers) or klass not in (2, 4, 5) or \
                not (0 <= subject <= 999 and 0 <= detail <= 999):
            # RFC 3463 section 2: class 2, 4 or 5; subject and detail 1 to 3 digits
            raise ValueError(f"not an enhanced status code: {numbers!r}")
        return super().__new__(cls, f"{klass}.{subject}.{detail}")

    @property
    def klass(self) -> int:
        return int(self.split(".")[0])

    @property
    def subject(self) -> int:
        return int(self.split(".")[1])

    @property
    def detail(self) -> int:
        return int(self.split(".")[2])

    def __repr__(self) -> str:
        return f"EnhancedStatus({self.klass}, {self.subject}, {self.detail})"

    def __getnewargs__(self) -> tuple[int, int, int]:   # type: ignore[override]
        return (self.klass, self.subject, self.detail)

    @classmethod
    def parse(cls, text: str, code: int) -> Optional["EnhancedStatus"]:
        """The status at the start of ``text`` if its class agrees with ``code``."""
        m = _STATUS_RE.match(text)
        if not m or int(m.group(1)) != code // 100:
            return None
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))


@dataclass(frozen=True)
class Reply:
    """One server reply: ``code``, its text ``lines``, and the enhanced
    ``status`` when the server gave one."""

    code: int
    lines: tuple[str, ...]
    status: Optional[EnhancedStatus] = None

    @property
    def text(self) -> str:
        """The lines joined by newlines (enhanced status included)."""
        return "\n".join(self.lines)

    @property
    def is_positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        return self.code // 100 == 4

    @property
    def is_permanent(self) -> bool:
        return self.code // 100 == 5

    def __str__(self) -> str:
        return f"{self.code} {' / '.join(self.lines)}".rstrip()


class ReplyParser:
    """Turns bytes from the server into :class:`Reply` values.

    ``feed(data)`` returns the replies completed by ``data`` (maybe none).
    Raises RemoteProtocolError for a malformed line, a line over MAX_LINE
    octets, a multi-line reply whose codes disagree or that runs past
    MAX_LINES lines.
    """

    def __init__(self) -> None:
        self._buffer = b""   # the rest of the last chunk, after its last line feed
        self._lines: list[str] = []
        self._code: Optional[int] = None

    @property
    def pending(self) -> bool:
        """True while a reply has been started but not finished."""
        return bool(self._buffer) or bool(self._lines)

    def feed(self, data: bytes) -> list[Reply]:
        held = self._buffer + data if self._buffer else bytes(data)
        if b"\n" not in held:
            self._buffer = held
            if len(held) > MAX_LINE:
                raise RemoteProtocolError(f"reply line longer than {MAX_LINE} octets")
            return []
        # every complete line in one pass; the rest (at most MAX_LINE octets
        # once checked below) waits for the next chunk
        lines = held.split(b"\n")
        self._buffer = lines.pop()
        replies: list[Reply] = []
        taken = 0
        try:
            for line in lines:
                if len(line) > MAX_LINE:
                    raise RemoteProtocolError(f"reply line longer than {MAX_LINE} octets")
                taken += 1
                reply = self._line(line.rstrip(b"\r"))
                if reply is not None:
                    replies.append(reply)
        except RemoteProtocolError:
            # hold what a line-at-a-time parser holds: the lines not taken, and the rest
            self._buffer = b"\n".join(lines[taken:] + [self._buffer])
            raise
        if len(self._buffer) > MAX_LINE:
            raise RemoteProtocolError(f"reply line longer than {MAX_LINE} octets")
        return replies

    def _line(self, raw: bytes) -> Optional[Reply]:
        code = _CODES.get(raw[:3])
        more = raw[3:4]
        if code is None or more not in (b" ", b"-", b""):
            raise RemoteProtocolError(f"malformed reply line {raw[:80]!r}")
        if self._code is not None and code != self._code:
            raise RemoteProtocolError(f"reply code changed from {self._code} to {code} mid-reply")
        text = raw[4:].decode("utf-8", "replace")
        if more != b"-" and not self._lines:
            # a one-line reply (the common case): no list to build and reset
            return Reply(code, (text,), _status(text, code))
        self._code = code
        self._lines.append(text)
        if len(self._lines) > MAX_LINES:
            raise RemoteProtocolError(f"reply longer than {MAX_LINES} lines")
        if more == b"-":
            return None
        lines = tuple(self._lines)
        self._lines = []
        self._code = None
        return Reply(code, lines, _status(lines[0], code))


# Reply codes by their first three octets: b"100" to b"599" are exactly
# three ASCII digits, the first 1 to 5 (RFC 5321 section 4.2.1) -- what a
# check of each digit and int() accept and give.
_CODES = {b"%d" % code: code for code in range(100, 600)}

# EnhancedStatus.parse's results, one dict per class of reply code (its
# index), by the text before the first space. That text alone decides the
# result: a status contains no space, and what follows it must be
# whitespace or the end -- a space, or the end of that text. An
# EnhancedStatus is immutable, so one object serves every reply with it.
# Bounded: short texts only, and a server inventing texts only empties a
# dict now and then.
_STATUSES: tuple[dict[str, Optional[EnhancedStatus]], ...] = tuple({} for _ in range(6))
_STATUSES_MAX = 256
_TOKEN_MAX = 16


def _status(text: str, code: int) -> Optional[EnhancedStatus]:
    """``EnhancedStatus.parse(text, code)``, remembered."""
    token = text.partition(" ")[0]
    known = _STATUSES[code // 100]
    try:
        return known[token]
    except KeyError:   # (not "in" and then []: another thread may empty it between)
        status = EnhancedStatus.parse(token, code)
        if len(token) <= _TOKEN_MAX:
            if len(known) >= _STATUSES_MAX:
                known.clear()
            known[token] = status
        return status


class ReplyBuffer:
    """The replies a connection has received and nobody has asked for yet.

    Both drivers keep one: ``feed`` what arrives, ``take`` replies once
    ``have`` says they are there, ``reset`` at STARTTLS (RFC 3207 section
    4.2: nothing received before the handshake may be used after it).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._parser = ReplyParser()
        self._queued: list[Reply] = []

    def have(self, count: int) -> bool:
        return len(self._queued) >= count

    def feed(self, data: bytes) -> None:
        self._queued.extend(self._parser.feed(data))

    def take(self, count: int) -> list[Reply]:
        out, self._queued = self._queued[:count], self._queued[count:]
        return out

    def closed_message(self) -> str:
        """What to say when the server closed the connection."""
        return "connection closed by the server" + (" in the middle of a reply" if self._parser.pending else "")
