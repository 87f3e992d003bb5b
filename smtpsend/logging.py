"""A logging handler that mails log records without blocking the logging call.

::

    import logging, smtpsend.logging

    handler = smtpsend.logging.SMTPHandler(("mail.example.com", 587), "app@example.com",
                                           ["ops@example.com"], "app: errors",
                                           credentials=("app", password), secure=(),
                                           buffer_seconds=30, max_per_hour=20)
    handler.setLevel(logging.ERROR)
    logging.getLogger().addHandler(handler)

A drop-in for :class:`logging.handlers.SMTPHandler` (a subclass of it,
with the same constructor, so ``logging.config.dictConfig`` builds it the
same way), on an :class:`smtpsend.Transport`:

- ``emit()`` formats the record and puts it in a bounded queue; a
  background thread mails it. A full queue drops the record and counts it.
- The records of ``buffer_seconds`` go out as one message.
- At most ``max_per_hour`` messages go out in any hour; records beyond
  are counted, and the next message that may go says how many (by level)
  were not mailed: a log storm never becomes a mail storm.
- ``flush()`` and ``close()`` mail what is pending, waiting at most
  ``flush_timeout`` seconds; ``logging.shutdown()`` (which runs at
  interpreter exit) calls both.
- A failure to send goes to :meth:`handleError`, as for every handler: it
  never raises into the code that logged.

Inside this module ``logging`` is the standard library's (imports are
absolute): the module is ``smtpsend.logging``.
"""

from __future__ import annotations

import collections
import logging
import logging.handlers
import os
import re
import ssl
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import mimecompose

import smtpsend

__all__ = ["SMTPHandler"]

HOUR = 3600.0
MAX_RECORD = 1 << 16        # characters kept of one record's text (the queue holds capacity of them)
MAX_BODY = 1 << 20          # characters of record text in one message; the rest is counted
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
SEPARATOR = "\n" + "-" * 72 + "\n"


@dataclass(frozen=True)
class _Entry:
    """One record as it will be mailed: formatted when it was logged."""

    text: str
    subject: str
    level: str
    at: float               # the handler's clock


_HANDLERS: "weakref.WeakSet[SMTPHandler]" = weakref.WeakSet()


def _after_fork() -> None:
    for handler in list(_HANDLERS):
        handler._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class SMTPHandler(logging.handlers.SMTPHandler):
    """Mail log records from a background thread, batched and capped.

    ``mailhost`` is ``"host"`` or ``(host, port)`` (port 25 by default, 465
    with ``transport={"tlsimport": True}``);
    ``toaddrs`` one address or a list; ``credentials`` ``(username,
    password)``; ``secure`` ``()``, ``(keyfile,)`` or ``(keyfile,
    certfile)``: STARTTLS, required (with that client certificate; a lone
    file holds key and certificate); ``None``: no TLS, as in the standard
    library, and so no credentials (pass ``transport={"tlspolicy":
    "insecure"}`` to send them in plaintext all the same). ``timeout``:
    seconds for each network step.

    Keyword options: ``buffer_seconds`` (10): the records of this long go
    out as one message; ``max_per_hour`` (60): messages in any hour;
    ``capacity`` (1000): records held at most, the rest dropped and
    counted; ``flush_timeout`` (10): how long ``flush()`` and ``close()``
    wait; ``transport``: a dict of further :class:`smtpsend.Transport`
    options (``ssl_context``, ``tlspolicy``, ``servers`` for failover...),
    or a Transport (any object with ``sendmessage`` and ``close``) to
    use, which ``close()`` leaves open; ``clock``: the monotonic clock the
    buffer and the hourly cap are measured with.

    Raises ValueError for a bad ``mailhost``, ``toaddrs`` or option, and
    what ``smtpsend.Transport`` raises for bad transport options.
    """

    def __init__(self, mailhost: Union[str, Sequence[Any]], fromaddr: str, toaddrs: Union[str, Sequence[str]],
                 subject: str, credentials: Optional[Sequence[str]] = None,
                 secure: Optional[Sequence[str]] = None, timeout: float = 5.0, *,
                 buffer_seconds: float = 10.0, max_per_hour: int = 60, capacity: int = 1000,
                 flush_timeout: float = 10.0, transport: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        logging.Handler.__init__(self)   # not SMTPHandler's: it keeps the password in an attribute
        if isinstance(mailhost, (list, tuple)):
            if len(mailhost) != 2:
                raise ValueError(f"mailhost is 'host' or (host, port), not {mailhost!r}")
            if isinstance(mailhost[1], bool) or not str(mailhost[1]).isdigit():
                raise ValueError(f"mailhost's port must be a number, not {mailhost[1]!r}")
            self.mailhost, self.mailport = str(mailhost[0]), int(mailhost[1])
        else:
            self.mailhost, self.mailport = str(mailhost), None
        self.fromaddr = str(fromaddr)
        self.toaddrs = [toaddrs] if isinstance(toaddrs, str) else [str(a) for a in toaddrs]
        if not self.toaddrs:
            raise ValueError("toaddrs is empty: give at least one address")
        self.subject = str(subject)
        if isinstance(secure, (str, bytes)):   # tuple() would take a path apart into characters
            raise TypeError("secure is a tuple: (), (keyfile,) or (keyfile, certfile)")
        self.secure = tuple(secure) if secure is not None else None   # type: ignore[assignment]
        self.timeout = float(timeout)
        self.username = None
        if buffer_seconds < 0 or max_per_hour < 1 or capacity < 1 or flush_timeout < 0:
            raise ValueError("buffer_seconds and flush_timeout must be >= 0, max_per_hour and capacity >= 1")
        self.buffer_seconds = float(buffer_seconds)
        self.max_per_hour = int(max_per_hour)
        self.capacity = int(capacity)
        self.flush_timeout = float(flush_timeout)
        self._clock = clock
        if transport is None or isinstance(transport, Mapping):
            options = self._options(credentials, dict(transport or {}))
            self._transport: Any = smtpsend.Transport(**options)
            self._owns_transport = True
        else:
            self._transport, self._owns_transport = transport, False
            if credentials is not None:
                raise ValueError("credentials= and a transport object do not mix: the transport has its own")
        self._reset()
        _HANDLERS.add(self)

    def _options(self, credentials: Optional[Sequence[str]], extra: dict[str, Any]) -> dict[str, Any]:
        """The Transport options for the stdlib-style arguments, updated by ``extra``."""
        options: dict[str, Any] = {"servers": [self.mailhost], "ports": [self.mailport] if self.mailport else None,
                                   "timeout": self.timeout, "max_connections": 1,
                                   "usetls": self.secure is not None,
                                   "tlspolicy": "secure" if self.secure is not None else None}
        if credentials is not None:
            if isinstance(credentials, str) or len(credentials) != 2:
                raise ValueError("credentials is (username, password)")
            self.username = str(credentials[0])
            options["username"], options["password"] = str(credentials[0]), str(credentials[1])
        if self.secure:
            if "ssl_context" in extra:
                raise ValueError("secure=(keyfile, certfile) and transport={'ssl_context': ...} do not mix")
            if len(self.secure) > 2:
                raise ValueError("secure is (), (keyfile,) or (keyfile, certfile)")
            keyfile = self.secure[0]
            certfile = self.secure[1] if len(self.secure) > 1 else keyfile
            context = ssl.create_default_context()
            try:
                context.load_cert_chain(certfile, keyfile)
            except (OSError, ssl.SSLError) as exc:   # the error itself names no file
                raise ValueError(f"secure=: cannot load the client certificate {certfile!r} "
                                 f"(key {keyfile!r}): {getattr(exc, 'strerror', None) or exc}") from None
            options["ssl_context"] = context
        options.update(extra)
        return options

    def _reset(self) -> None:
        """The queue and the counters, empty."""
        self._cond = threading.Condition(threading.Lock())
        self._pending: collections.deque[_Entry] = collections.deque()
        self._dropped = 0                              # records the full queue did not take
        self._suppressed: collections.Counter[str] = collections.Counter()   # by level, over the cap
        self._report_at: Optional[float] = None        # when the first uncounted record was left out
        self._since: Optional[float] = None            # the wall-clock time of that
        self._sent: collections.deque[float] = collections.deque()   # clock times of the last hour's messages
        self._flush_asked = 0
        self._flush_done = 0
        self._in_flight = 0                            # messages taken and being sent
        self._stopping = False
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self._busy = threading.local()                 # set while this handler sends, in that thread

    def _forked(self) -> None:
        """In a child process: the parent mails what it had queued; the child
        starts empty, with a fresh lock and no thread (and its own hourly
        count). The transport opens the child's own connections."""
        closed = self._closed
        self._reset()
        self._closed = closed

    def __repr__(self) -> str:
        where = self.mailhost + (f":{self.mailport}" if self.mailport else "")
        return (f"<{type(self).__name__} {where} -> {', '.join(self.toaddrs)} "
                f"({logging.getLevelName(self.level)})>")

    # ------------------------------------------------------------ the logging side

    @property
    def pending(self) -> int:
        """Records queued and not yet handed to the transport."""
        with self._cond:
            return len(self._pending)

    @property
    def dropped(self) -> int:
        """Records left out since the last message: the queue was full, or the hourly cap reached."""
        with self._cond:
            return self._dropped + sum(self._suppressed.values())

    def handle(self, record: logging.LogRecord) -> bool:
        """What smtpsend logs in the thread that is sending for this handler
        is not mailed by it: that would feed a loop -- and the lock that
        handle() takes may be held by flush(), waiting for that thread."""
        if getattr(self._busy, "sending", False):
            return False
        return super().handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` and queue it; never waits on the network."""
        try:
            text = self.format(record)
            if len(text) > MAX_RECORD:
                text = text[:MAX_RECORD] + f"\n[{len(text) - MAX_RECORD} more characters not shown]"
            entry = _Entry(text, self.getSubject(record), record.levelname, self._clock())
        except Exception:   # noqa: BLE001 - the logging convention: report, never raise
            self.handleError(record)
            return
        with self._cond:
            if self._closed:
                return
            if len(self._pending) >= self.capacity:
                self._left_out(entry.at)
                self._dropped += 1
                return
            self._pending.append(entry)
            self._start()
            self._cond.notify_all()

    def _left_out(self, at: float) -> None:
        if self._report_at is None:
            self._report_at, self._since = at, time.time()

    def _start(self) -> None:
        """Start the sending thread (lock held); at interpreter shutdown, when
        no thread can start, flush() and close() send in their own."""
        if self._thread is not None and self._thread.is_alive():
            return
        thread = threading.Thread(target=self._run, name="smtpsend-logging", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            return
        self._thread = thread

    def flush(self) -> None:
        """Mail what is pending now (within the hourly cap), waiting at most
        ``flush_timeout`` seconds."""
        with self._cond:
            if not self._pending and not self._in_flight and not self._report_ready(self._clock()):
                return
            self._flush_asked += 1
            wanted = self._flush_asked
            alive = self._thread is not None and self._thread.is_alive()
            if alive:
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._flush_done >= wanted or self._thread is None
                                    or not self._thread.is_alive(), self.flush_timeout)
                return
        self._cycle()   # no thread: send from this one

    def close(self) -> None:
        """Mail what is pending (bounded by ``flush_timeout``), stop the
        thread, close the transport if the handler made it."""
        with self._cond:
            if self._closed:
                return
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.flush_timeout)
        if thread is None or not thread.is_alive():
            self._cycle()   # what the thread did not get to (or there was none)
        with self._cond:
            self._closed = True
        if self._owns_transport:
            try:
                self._transport.close()
            except Exception:   # noqa: BLE001 - reported as a sending error is
                self.handleError(self._note("closing the transport failed"))
        super().close()

    # ------------------------------------------------------------ the sending side

    def _report_ready(self, now: float) -> bool:
        """Left-out records to report, and a message may go (lock held)."""
        return self._report_at is not None and self._may_send(now)

    def _may_send(self, now: float) -> bool:
        while self._sent and self._sent[0] <= now - HOUR:
            self._sent.popleft()
        return len(self._sent) < self.max_per_hour

    def _due(self, now: float) -> Optional[float]:
        """When the next message is due by the clock, or None (lock held)."""
        times = []
        if self._pending:
            times.append(self._pending[0].at + self.buffer_seconds)
        if self._report_at is not None:
            at = self._report_at + self.buffer_seconds
            if not self._may_send(now):
                at = max(at, self._sent[0] + HOUR)
            times.append(at)
        return min(times) if times else None

    def _run(self) -> None:
        """The sending thread: wait until a message is due, a flush is asked
        or the handler closes; send; repeat."""
        while True:
            with self._cond:
                while True:
                    asked = self._flush_asked
                    now = self._clock()
                    if self._stopping and not self._pending and not self._report_ready(now):
                        self._flush_done = asked
                        self._cond.notify_all()
                        return
                    due = self._due(now)
                    if asked > self._flush_done or self._stopping or (due is not None and due <= now):
                        break
                    self._cond.wait(None if due is None else due - now)
            self._cycle()
            with self._cond:
                self._flush_done = max(self._flush_done, asked)
                self._cond.notify_all()

    def _take(self) -> tuple[list[_Entry], Optional[str]]:
        """What the next message holds -- the records and the report of those
        left out -- or, over the hourly cap, nothing: the records are then
        counted (lock held)."""
        now = self._clock()
        batch = list(self._pending)
        self._pending.clear()
        if not self._may_send(now):
            if batch:
                self._left_out(now)
                self._suppressed.update(entry.level for entry in batch)
            return [], None
        report = None
        if self._report_at is not None:
            report = self._report()
            self._dropped, self._report_at, self._since = 0, None, None
            self._suppressed.clear()
        if batch or report:
            self._sent.append(now)
        return batch, report

    def _report(self) -> str:
        lines = []
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self._since or time.time()))
        if self._suppressed:
            levels = ", ".join(f"{level}: {count}" for level, count in sorted(self._suppressed.items()))
            lines.append(f"{sum(self._suppressed.values())} records were not mailed since {since}: "
                         f"max_per_hour={self.max_per_hour} was reached ({levels}).")
        if self._dropped:
            lines.append(f"{self._dropped} records were dropped since {since}: "
                         f"the queue (capacity={self.capacity}) was full.")
        return "\n".join(lines)

    def _cycle(self) -> None:
        """Take the next message and send it; a failure goes to handleError."""
        with self._cond:
            batch, report = self._take()
            if not batch and not report:
                return
            self._in_flight += 1
        self._busy.sending = True
        try:
            self._transport.sendmessage(self._message(batch, report), originator=self.fromaddr,
                                        recipients=list(self.toaddrs))
        except Exception:   # noqa: BLE001 - the logging convention: handleError, never raise
            self.handleError(self._note(f"could not mail {len(batch)} log records"))
        finally:
            self._busy.sending = False
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _note(self, text: str) -> logging.LogRecord:
        """A record for handleError (which names the record it failed on)."""
        return logging.makeLogRecord({"name": "smtpsend.logging", "msg": text, "levelno": logging.ERROR,
                                      "levelname": "ERROR"})

    def _message(self, batch: list[_Entry], report: Optional[str]) -> mimecompose.Part:
        """One message: the report first, then each record's text."""
        texts = [report] if report else []
        size, shown = 0, 0
        for entry in batch:
            size += len(entry.text)
            if size > MAX_BODY and shown:
                break
            texts.append(entry.text)
            shown += 1
        if shown < len(batch):
            texts.append(f"{len(batch) - shown} more records are not shown: the message would pass "
                         f"{MAX_BODY} characters.")
        if batch:
            subject = batch[0].subject + (f" (and {len(batch) - 1} more)" if len(batch) > 1 else "")
        else:
            subject = self.subject + " (records not mailed)"
        body = SEPARATOR.join(texts).encode("utf-8", "backslashreplace").decode("utf-8")
        # a subject made from a record (getSubject overridden) may hold line
        # breaks: one line, as a header field must be (RFC 5322 section 2.2)
        subject = _CONTROL.sub(" ", subject).strip().encode("utf-8", "backslashreplace").decode("utf-8")
        return mimecompose.compose(body + "\n", header=[("From", self.fromaddr), ("To", ", ".join(self.toaddrs)),
                                                        ("Subject", subject[:200])])
