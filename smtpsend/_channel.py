"""The dialogue's primitives -- command lines out, replies in -- and what it
tells the outside while it runs.

A :class:`Channel` is one connection's side of the dialogue with no I/O in
it: its generators yield Send and Read actions (smtpsend._driver). It
checks every command line before it is written (RFC 5321 section 2.3.8: a
command is one line, so CR, LF or NUL in one is refused with UsageError),
shows every protocol line to the trace and the monitor (AUTH data as
``***``), reports :class:`Event` values to the events hook, and keeps
``stage``, where the dialogue is, for the errors it raises.

State it keeps between calls: ``stage``, and the command lines held back
to go out with the next write (pipelining, RFC 2920).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from ._data import MessageChanged, MessageData
from ._driver import Dialogue, Read, Send
from ._envelope import Prepared
from ._errors import Attempt, Rejected, SMTPError, UsageError
from ._reply import Reply
from ._verdicts import closing, recipient_accepted

__all__ = ["Channel", "Event", "Hooks", "log_sent", "logger", "message_id"]

logger = logging.getLogger("smtpsend")
_NOT_IN_A_LINE = re.compile("[\r\n\0]")


@dataclass(frozen=True)
class Event:
    """Something that happened in a dialogue (libESMTP's event callback):
    ``name`` is connect, greeting, extensions, tls, auth, mail, rcpt, data,
    delivery (LMTP: one recipient's reply after the data, ``address`` and
    ``reply``), accepted, failed (a server given up on), disconnect, or note (``text``:
    what smtpsend decided, e.g. a downgrade); ``data`` holds its details."""

    name: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Hooks:
    """Where a dialogue reports what it does: ``trace`` gets each protocol
    line ("> " sent, "< " received; "* " notes too with ``trace_notes``),
    ``monitor(direction, line)`` each protocol line (message headers too
    with ``monitor_headers``), ``events`` each :class:`Event`,
    ``progress(sent, total)`` the octets of message data sent."""

    trace: Optional[Callable[[str], None]] = None
    trace_notes: bool = False
    monitor: Optional[Callable[[str, str], None]] = None
    monitor_headers: bool = False
    events: Optional[Callable[[Event], None]] = None
    progress: Optional[Callable[[int, int], None]] = None


class Channel:
    """One connection's commands and replies, logged. ``host`` names the
    server in log records."""

    def __init__(self, host: str = "localhost", hooks: Hooks = Hooks()) -> None:
        self.host = host
        self.hooks = hooks
        self.stage = "connect"
        self._held = b""

    # ------------------------------------------------------------ telling

    def log(self, direction: str, text: str) -> None:
        """A protocol line: ">" sent, "<" received."""
        if self.hooks.monitor is not None:
            self.hooks.monitor(direction, text)
        if self.hooks.trace is not None:
            self.hooks.trace(f"{direction} {text}")

    def note(self, text: str, warn: bool = True) -> None:
        """What smtpsend did: an Event("note"), and a "* ..." line in the
        logged transcript. A debug callable gets protocol lines only. With
        ``warn`` (the default: a note says what was left out or changed,
        e.g. a 7-bit downgrade) it is also logged at WARNING, always."""
        if self.hooks.trace_notes and self.hooks.trace is not None:
            self.hooks.trace(f"* {text}")
        if warn:
            logger.warning("%s: %s", self.host, text)
        self.event("note", text=text)

    @property
    def quiet(self) -> bool:
        """True when nothing takes the protocol lines (no trace, no
        monitor): the lines are then not even formatted."""
        return self.hooks.trace is None and self.hooks.monitor is None

    def event(self, name: str, **data: Any) -> None:
        """An Event for the ``events`` hook; a refused recipient is also
        logged at WARNING, always."""
        if name == "rcpt":
            reply = data.get("reply")
            if isinstance(reply, Reply) and not recipient_accepted(reply):
                logger.warning("%s refused recipient %s: %s", self.host, data.get("address"), reply)
        if self.hooks.events is not None:
            self.hooks.events(Event(name, data))

    def log_data(self, message: MessageData, size: int, trailer: bytes, dot: bool = False) -> None:
        """Log the message data being sent: its header lines (with
        ``monitor_headers``), its size, the "." and a QUIT in ``trailer``."""
        if self.quiet:
            self.event("data", size=size)
            return
        if self.hooks.monitor_headers:
            for line in message.head.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
                self.log(">", line.decode("utf-8", "replace"))
        self.log(">", f"[message data: {size} octets]")
        if dot:
            self.log(">", ".")
        if trailer:
            self.log(">", "QUIT")
        self.event("data", size=size)

    # ------------------------------------------------------------ commands out

    def encode(self, lines: list[str], secret: Optional[str] = None) -> bytes:
        """Command lines as they go on the wire, each logged. ``secret`` is
        what the trace and any error show instead of a line (AUTH data).
        UsageError for CR, LF or NUL in a line, or a line that is not valid
        text (a lone surrogate)."""
        quiet = self.quiet
        for line in lines:
            shown = line if secret is None else secret
            if _NOT_IN_A_LINE.search(line):
                # RFC 5321 section 2.3.8: a command is one line; CR/LF would inject more
                raise UsageError(f"CR, LF or NUL in an SMTP command: {shown!r}")
            if not quiet:
                self.log(">", shown)
        text = "".join(line + "\r\n" for line in lines)
        encoded: Optional[bytes]
        try:
            encoded = text.encode("utf-8")
        except UnicodeEncodeError:
            encoded = None
        if encoded is None:   # raised outside the except: its __context__ would hold the text
            shown = lines[0] if secret is None else secret
            raise UsageError(f"an SMTP command is not valid text (a lone surrogate): {shown!r}")
        return encoded

    def hold(self, lines: list[str]) -> None:
        """Check and log ``lines`` now; they go out at the front of the next
        write (RFC 2920: a pipelined group is one write)."""
        self._held += self.encode(lines)

    def take_held(self) -> bytes:
        """The held command lines, to prefix message data with."""
        held, self._held = self._held, b""
        return held

    def send(self, lines: list[str], timeout: float, secret: Optional[str] = None) -> Dialogue[None]:
        """Write ``lines`` (after any held ones) in one Send."""
        data = self._held + self.encode(lines, secret)
        self._held = b""
        yield Send(data, timeout)

    def send_data(self, blocks: Iterable[bytes], total: int, timeout: float) -> Dialogue[None]:
        """Write the message data, one Send per block, and tell the progress
        hook. MessageChanged from the blocks (MessageData.chunks) stops the
        data short of its end -- no terminating ".", fewer octets than the
        BDAT size -- and propagates."""
        sent = 0
        try:
            for block in blocks:
                yield Send(block, timeout)
                if self.hooks.progress is not None:
                    sent = min(total, sent + len(block))
                    self.hooks.progress(sent, total)
        except MessageChanged:
            self.note("the message changed while it was being sent: transaction left unfinished")
            raise

    # ------------------------------------------------------------ replies in

    def read(self, count: int, timeout: float) -> Dialogue[list[Reply]]:
        """Read ``count`` replies, each line logged."""
        replies: list[Reply] = yield Read(count, timeout)
        if self.quiet:
            return replies
        for reply in replies:
            for n, line in enumerate(reply.lines):
                sep = "-" if n < len(reply.lines) - 1 else " "
                self.log("<", f"{reply.code}{sep}{line}")
        return replies

    def command(self, line: str, timeout: float, secret: Optional[str] = None,
                command: Optional[str] = None) -> Dialogue[Reply]:
        """Send one command, read its reply, whatever it is -- except a 421
        (the server is closing, RFC 5321 section 3.8): ServerUnavailable
        whose ``.command`` is ``command``, else ``secret`` (the redacted
        form, for AUTH data), else the verb -- never the AUTH data itself."""
        yield from self.send([line], timeout, secret)
        [reply] = yield from self.read(1, timeout)
        closing(reply, command if command is not None else secret if secret is not None
                else (line.split() or [""])[0])
        return reply


    def quietly(self, commands: list[str], timeout: float) -> Dialogue[None]:
        """Send ``commands`` one by one, stopping quietly at the first failure."""
        for line in commands:
            try:
                yield from self.command(line, timeout)
            except SMTPError:
                return

    def quit(self, timeout: float) -> Dialogue[None]:
        """Say goodbye (stage "quit"); a server that is already gone changes nothing."""
        self.stage = "quit"
        try:
            yield from self.command("QUIT", timeout)
        except SMTPError:
            pass


def message_id(prepared: Prepared, part: object) -> Optional[str]:
    """The Message-ID the transmitted copy carries (for the log)."""
    for name, value in prepared.add:
        if name.lower() in ("message-id", "resent-message-id"):
            return str(value)
    getheader = getattr(part, "getheader", None)
    found = getheader("Message-ID") if getheader else []
    return str(found[0]) if found else None


def log_sent(msgid: Optional[str], recipients: int, rejected: list[Rejected], host: str, port: int,
             started: float, attempts: list[Attempt]) -> None:
    """INFO for a message sent, and WARNING when a backup server took it."""
    elapsed = time.monotonic() - started
    refused = f", {len(rejected)} refused" if rejected else ""
    logger.info("sent %s to %d recipient(s)%s via %s port %d in %.2f s", msgid or "a message",
                recipients - len(rejected), refused, host, port, elapsed)
    if attempts:
        tried = ", ".join(f"{a.server} port {a.port} ({a.stage})" for a in attempts)
        logger.warning("%s went to backup server %s port %d: %s could not take it", msgid or "a message",
                       host, port, tried)
