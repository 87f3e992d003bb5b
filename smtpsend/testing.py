"""A capture SMTP server for tests and demonstrations.

It runs an asyncio server on a free loopback port in a thread of its own,
records the messages it accepts, and can be told which extensions to
offer, which credentials to accept (PLAIN, LOGIN, CRAM-MD5; OAuth bearer
tokens with XOAUTH2 and OAUTHBEARER), to offer STARTTLS (or implicit TLS)
with a given certificate, and how to answer given commands::

    from smtpsend.testing import CaptureServer

    with CaptureServer() as server:
        smtpsend.sendmessage(part, servers=[server.host], ports=[server.port])
        [message] = server.messages
        message.envelope.recipients, message.data, message.part

It binds to 127.0.0.1 only and never relays anything. It is at least as
strict as Postfix where strictness protects the receiver: DATA ends only
at <CRLF>.<CRLF> (RFC 5321 section 4.1.1.4), so a message smuggled behind
<LF>.<CR><LF> stays inside the first message; ``bare_lf="refuse"``
answers a message holding a bare LF with 550 5.5.2 (Postfix's
smtpd_forbid_bare_newline). Everything a client can make it hold is
bounded: the line length, the message size, the recipients of a
transaction, the number of clients, how long a client may stay idle, and
what it keeps in memory -- ``messages`` and ``commands`` are ring buffers
of the most recent ones (``on_message`` sees every message, to store it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import re
import secrets
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, TypeVar

from mimecompose.args import one_or_many

from ._async import within, start_tls
from ._deprecated import keyword_only, renamed, warn
from ._driver import usable_seconds
from ._envelope import Envelope

__all__ = ["CaptureServer", "Captured", "printable"]

DEFAULT_EXTENSIONS = ("PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "SIZE 10485760",
                      "CHUNKING", "DSN")

MAX_LINE = 16384            # a command line, CRLF included: room for RFC 4954's 12288-octet AUTH lines
MAX_MESSAGE = 64 << 20      # the message size limit when no SIZE is announced
SHOWN_COMMAND = 512         # characters of each command kept in ``commands`` (RFC 5321 4.5.3.1.4's line)
READ = 65536                # octets asked of the socket at a time (read_data needs at least 2)
REPLY_BUFFER = 65536        # pending (pipelined) replies are written out before they exceed this

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_BDAT = re.compile(r"([0-9]{1,20})(?: +(LAST))?", re.IGNORECASE)


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters other than
    line feed and tab (ESC and the rest of C0, DEL, C1 -- which would let
    a client drive the terminal) and the bidirectional overrides become
    ``\\xNN`` / ``\\uNNNN`` escapes. Linear in the text."""
    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return _CONTROL.sub(escape, text)


@dataclass
class Captured:
    """One accepted message: its envelope and its bytes as received
    (dot-unstuffed, without the terminating line), the MAIL parameters, the
    RCPT parameters by recipient, and whether it came by DATA or BDAT."""

    envelope: Envelope
    data: bytes
    esmtp_params: list[str] = field(default_factory=list)
    authenticated_as: Optional[str] = None
    rcpt_params: dict[str, list[str]] = field(default_factory=dict)
    via: str = "DATA"           # or "BDAT"

    @property
    def part(self) -> Any:
        """The data parsed: a mimecompose Part."""
        import mimecompose
        return mimecompose.initialize(string=self.data)

    def display(self, body: bool = True) -> str:
        """A summary line (sender, recipients, size) and, with ``body``, the
        message with LF line ends -- everything the client chose passed
        through :func:`printable`, so it is safe to print on a terminal."""
        env = self.envelope
        recipients = ", ".join(f"<{r}>" for r in env.recipients)
        out = printable(f"--- message from <{env.originator}> to {recipients} ({len(self.data)} octets)") + "\n"
        if body:
            out += printable(self.data.decode("utf-8", "replace").replace("\r\n", "\n")) + "\n"
        return out


T = TypeVar("T")


class _Ring(list[T]):
    """A list that keeps only the newest entries: at most ``count``, and,
    with ``octets``, drops the oldest while the data held is over that
    (the newest is always kept)."""

    def __init__(self, count: int, octets: Optional[int] = None,
                 size: Callable[[T], int] = lambda item: 0) -> None:
        super().__init__()
        self._count = count
        self._octets = octets
        self._size = size

    def append(self, item: T) -> None:
        super().append(item)
        while len(self) > self._count:
            del self[0]
        if self._octets is not None:
            held = sum(self._size(x) for x in self)   # at most count entries: cheap
            while len(self) > 1 and held > self._octets:
                held -= self._size(self[0])
                del self[0]


class CaptureServer:
    """A small SMTP server on 127.0.0.1 that keeps what it receives.

    - ``extensions``: EHLO keywords to announce (STARTTLS and AUTH are added
      from ``tls_context`` and ``users``).
    - ``users``: ``{name: password}``; AUTH PLAIN, LOGIN, CRAM-MD5 then work.
    - ``tokens``: ``{name: bearer token}``; AUTH OAUTHBEARER and XOAUTH2
      then work. A wrong token gets the provider's error challenge (XOAUTH2:
      ``{"status":"401",...}``; OAUTHBEARER: RFC 7628's
      ``{"status":"invalid_token",...}``) and, after the client's answer,
      535 5.7.8 -- as Gmail and Microsoft 365 answer an expired token.
    - ``tls_context``: a server-side SSLContext to offer STARTTLS with (or,
      with ``tlsimport=True``, to speak TLS from the first byte, as on
      port 465; ``implicit_tls=`` is the deprecated old name).
    - ``port``: where to listen on 127.0.0.1 (0, the default: a free port).
    - ``on_message``: called with each Captured message as it is accepted
      (in the server's thread); it sees every message, also those the ring
      buffer has dropped since.
    - ``responses``: replies to force, keyed by ``"GREETING"``, ``"EHLO"``,
      ``"STARTTLS"``, ``"MAIL"``, ``"RCPT"`` or ``"RCPT <address>"``, ``"DATA"``, ``"DOT"``
      (the final "."), e.g. ``{"RCPT bad@example.com": (550, "5.1.1 no such user")}``.

    Every option is keyword-only but ``extensions`` (the old positional
    forms still work, with a DeprecationWarning, for one release).

    Strictness and bounds:

    - ``bare_lf``: ``"accept"`` (keep a bare LF in the message as it came)
      or ``"refuse"`` (550 5.5.2 for a message holding one, and for a
      command line ending in one). Either way DATA ends only at <CRLF>.<CRLF>.
    - ``max_line``: octets of a command line (500 5.5.2 past it).
    - ``max_message_size``: octets of a message (552 5.3.4 past it; the rest
      is read and dropped); default the SIZE announced, else 64 MiB.
    - ``max_recipients``: per transaction (452 4.5.3 past it; RFC 5321
      4.5.3.1.8 asks for at least 100).
    - ``max_clients``: at the same time (421 4.3.2 to the next one).
    - ``max_receiving``: octets of unfinished messages held at once, over
      all clients (452 4.3.1 to the message that would pass it).
    - ``idle_timeout``: seconds a client may send nothing, or not read our
      replies, before 421 4.4.2 and the end of the connection (RFC 5321
      4.5.3.2.7's 5 minutes by default).
    - ``keep``, ``keep_octets``: ``messages`` holds the newest ``keep``
      messages, fewer when their data passes ``keep_octets`` (the newest
      always); ``keep_commands``: how many command lines ``commands`` holds.

    ``received`` counts every message accepted.
    """

    @keyword_only("users", "tls_context", "responses", "hostname", "implicit_tls", "port", "on_message",
                  leading=2)
    def __init__(self, extensions: Any = DEFAULT_EXTENSIONS, *, users: Optional[dict[str, str]] = None,
                 tls_context: Optional[ssl.SSLContext] = None,
                 responses: Optional[dict[str, tuple[int, str]]] = None,
                 hostname: str = "capture.localhost", tlsimport: bool = False,
                 port: int = 0, on_message: Optional[Callable[[Captured], None]] = None,
                 bare_lf: str = "accept", max_line: int = MAX_LINE,
                 max_message_size: Optional[int] = None, max_recipients: int = 1000,
                 max_clients: int = 500, max_receiving: int = 256 << 20, idle_timeout: float = 300.0,
                 keep: int = 1000, keep_octets: int = 64 << 20, keep_commands: int = 1000,
                 tokens: Optional[dict[str, str]] = None, implicit_tls: Optional[bool] = None) -> None:
        tlsimport = bool(renamed("CaptureServer", "implicit_tls", "tlsimport", implicit_tls, tlsimport, False))
        if bare_lf not in ("accept", "refuse"):
            raise ValueError(f"bare_lf must be 'accept' or 'refuse', not {bare_lf!r}")
        if tlsimport and tls_context is None:
            raise ValueError("tlsimport=True needs a tls_context")
        if not (isinstance(port, int) and 0 <= port < 65536):
            raise ValueError(f"port must be 0 (any free one) to 65535, not {port!r}")
        for name, value, least in (("max_line", max_line, 1), ("max_recipients", max_recipients, 1),
                                   ("max_clients", max_clients, 1), ("max_receiving", max_receiving, 1),
                                   ("keep", keep, 0), ("keep_octets", keep_octets, 0),
                                   ("keep_commands", keep_commands, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be a whole number from {least} up, not {value!r}")
        if not usable_seconds(idle_timeout):
            raise ValueError(f"idle_timeout must be a positive number of seconds, not {idle_timeout!r}")
        for name, mapping in (("users", users), ("tokens", tokens), ("responses", responses)):
            if mapping is not None and not isinstance(mapping, Mapping):
                raise TypeError(f"{name}= takes a mapping, not a {type(mapping).__name__}")
        # one EHLO keyword, or a list of them: a str is never taken apart into characters
        self.extensions = one_or_many(extensions, "extensions=")
        self.users = dict(users or {})
        self.tokens = dict(tokens or {})
        self.tls_context = tls_context
        self.responses = dict(responses or {})
        self.hostname = hostname
        self.tlsimport = tlsimport
        self.bare_lf = bare_lf
        self.max_line = max_line
        self.max_message_size = max_message_size or _announced_size(self.extensions) or MAX_MESSAGE
        self.max_recipients = max_recipients
        self.max_clients = max_clients
        self.max_receiving = max_receiving
        self._receiving = 0   # octets of unfinished messages held, over all clients
        self.idle_timeout = idle_timeout
        self.messages: list[Captured] = _Ring(keep, keep_octets, lambda m: len(m.data))
        self.commands: list[str] = _Ring(keep_commands)
        self.received = 0
        self.host = "127.0.0.1"
        self.port = port
        self.on_message = on_message
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Optional[asyncio.AbstractServer] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._boot_error: Optional[BaseException] = None
        self._dialogues: set[_Dialogue] = set()
        self._closing = False

    @property
    def implicit_tls(self) -> bool:
        """Deprecated: the old name of ``tlsimport``."""
        warn("CaptureServer.implicit_tls is deprecated, use .tlsimport")
        return self.tlsimport

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "CaptureServer":
        """Listen, in a thread of its own; raises OSError when the port is taken."""
        self._thread = threading.Thread(target=self._run, name="capture-smtp", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("capture server did not start")
        if self._boot_error is not None:
            self._thread.join(10)
            raise self._boot_error
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(_quiet)

        async def boot() -> None:
            ssl_arg = self.tls_context if self.tlsimport else None
            self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port, ssl=ssl_arg)
            self.port = self._server.sockets[0].getsockname()[1]

        try:
            loop.run_until_complete(boot())
        except BaseException as exc:   # noqa: BLE001 - handed to start(), which raises it
            self._boot_error = exc
            self._loop = None
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._shutdown())
        loop.close()

    async def _shutdown(self) -> None:
        """Stop listening, close every client connection, and let each
        handler finish on its own (they see the connection end): no
        cancelled task, no traceback."""
        assert self._server is not None
        self._closing = True   # a connection accepted from now on is closed at once
        self._server.close()
        current = asyncio.current_task()
        while True:
            for dialogue in list(self._dialogues):
                dialogue.abort()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            if not pending:
                break
            _done, late = await asyncio.wait(pending, timeout=5)
            for task in late:   # a handler that did not end when its connection did
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._server.wait_closed()

    def stop(self) -> None:
        """Stop the server, closing the connections of clients still there."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> "CaptureServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ one client

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.transport.abort()
            return
        if len(self._dialogues) >= self.max_clients:
            writer.write(b"421 4.3.2 too many connections, try again later\r\n")
            writer.close()
            return
        dialogue = _Dialogue(self, reader, writer)
        self._dialogues.add(dialogue)
        try:
            await dialogue.run()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, _Gone):
            pass   # ConnectionError and the rest: the client went away, or stop() closed it
        except asyncio.CancelledError:
            pass   # only _shutdown() cancels; a handler ending cancelled is logged by asyncio
        finally:
            self._dialogues.discard(dialogue)
            dialogue.reset()   # give back what an unfinished message held
            dialogue.writer.close()

    def _keep(self, captured: Captured) -> Optional[int]:
        """Hand a message to on_message and record it; returns its number,
        or None when on_message raised (reported as the loop reports an
        error, with its traceback: a store that fails is worth seeing)."""
        if self.on_message is not None:
            try:
                self.on_message(captured)
            except Exception as exc:   # noqa: BLE001 - the caller's callback: reported, answered 451
                assert self._loop is not None
                self._loop.default_exception_handler({"message": "CaptureServer: on_message failed",
                                                      "exception": exc})
                return None
        self.received += 1
        self.messages.append(captured)
        return self.received


def _bearer(mechanism: str, data: str) -> tuple[str, str]:
    """(user, token) of an XOAUTH2 or OAUTHBEARER initial response (RFC
    7628 section 3.1; XOAUTH2: ``user=U^Aauth=Bearer T^A^A``); ValueError
    when it is malformed."""
    fields = data.split("\x01")
    if mechanism == "OAUTHBEARER":
        gs2, *fields = fields
        header = gs2.split(",")
        if len(header) < 2 or not header[1].startswith("a="):
            raise ValueError("no authzid in the GS2 header")
        user = header[1][2:].replace("=2C", ",").replace("=3D", "=")
    else:
        if not fields[0].startswith("user="):
            raise ValueError("no user=")
        user, fields = fields[0][5:], fields[1:]
    auth = [f for f in fields if f.startswith("auth=")]
    if len(auth) != 1 or not auth[0][5:].lower().startswith("bearer "):
        raise ValueError("no auth=Bearer")
    return user, auth[0][12:]


def _announced_size(extensions: list[str]) -> Optional[int]:
    for keyword in extensions:
        words = keyword.split()
        if words and words[0].upper() == "SIZE" and len(words) == 2 and words[1].isascii() \
                and words[1].isdigit() and int(words[1]) > 0:
            return int(words[1])
    return None


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler: a client that breaks off a TLS
    handshake or resets its connection is not an error worth a traceback."""
    if isinstance(context.get("exception"), (OSError, ssl.SSLError, asyncio.IncompleteReadError)):
        return
    loop.default_exception_handler(context)


class _Gone(Exception):
    """The client stayed idle too long (it has been told) or stopped reading."""


class _Cancelled(Exception):
    """The client cancelled a SASL exchange with "*" (RFC 4954 section 4)."""


class _Refused(Exception):
    """A line was refused and answered already: the exchange it was part of ends."""


class _Dialogue:
    """One client's SMTP session: what the server reads, replies and keeps."""

    def __init__(self, server: CaptureServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.tls = server.tlsimport
        self.user: Optional[str] = None
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.buffer = bytearray()
        self.reset()

    def reset(self) -> None:
        """End the transaction (RSET, EHLO, after a message): forget its
        envelope and data, and give back what its data held of the
        server's max_receiving budget."""
        self.sender: Optional[str] = None
        self.params: list[str] = []
        self.recipients: list[str] = []
        self.rcpt_params: dict[str, list[str]] = {}
        self.server._receiving -= getattr(self, "held", 0)
        self.held = 0
        self.data = bytearray()
        self.refusal: Optional[tuple[int, str]] = None   # why the data is being dropped
        self.chunked = False   # BDAT chunks have come in this transaction

    def take(self, piece: bytes) -> None:
        """Add ``piece`` to the message being received, unless it is being
        dropped: past max_message_size (552 5.3.4), or past what all the
        clients together may hold while receiving (452 4.3.1, insufficient
        storage, RFC 5321 4.2.3) -- then the rest is read and dropped."""
        if self.refusal is not None:
            return
        server = self.server
        if len(self.data) + len(piece) > server.max_message_size:
            self.refusal = (552, f"5.3.4 message larger than {server.max_message_size} octets")
        elif server._receiving + len(piece) > server.max_receiving:
            self.refusal = (452, "4.3.1 insufficient storage for the message now, try again later")
        else:
            self.data += piece
            self.held += len(piece)
            server._receiving += len(piece)
            return
        server._receiving -= self.held
        self.held = 0
        self.data = bytearray()

    def abort(self) -> None:
        """Close the connection at once (stop())."""
        self.writer.transport.abort()

    def forced(self, key: str) -> Optional[tuple[int, str]]:
        return self.server.responses.get(key)

    # ------------------------------------------------------------ I/O, every wait bounded

    async def _bounded(self, awaitable: Awaitable[T]) -> T:
        try:
            return await within(awaitable, self.server.idle_timeout)
        except TimeoutError:
            raise _Gone from None

    async def reply(self, code: int, text: str) -> None:
        lines = text.split("\n")
        out = "".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n" for i, line in enumerate(lines))
        data = out.encode("utf-8")
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size > REPLY_BUFFER:   # a client that pipelines without reading: don't hoard
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            self.writer.write(b"".join(self.pending))
            self.pending, self.pending_size = [], 0
            if self.writer.transport.get_write_buffer_size():   # not all written at once: wait, bounded
                await self._bounded(self.writer.drain())

    async def receive(self) -> None:
        """Read more into the buffer. Replies are flushed only when no
        complete command is waiting: RFC 2920 section 3's server side.
        Idle past idle_timeout: 421 4.4.2 and _Gone."""
        await self.flush()
        try:
            data = await within(self.reader.read(READ), self.server.idle_timeout)
        except TimeoutError:   # smtpsend._async.within raises the builtin one on every version
            await self.reply(421, f"4.4.2 {self.server.hostname} idle for too long, closing")
            await self.flush()
            raise _Gone from None
        if not data:
            raise ConnectionError("client went away")
        self.buffer += data

    async def commandline(self) -> Optional[bytes]:
        """The next command line without its line end, or None when it was
        refused (already answered): longer than max_line (the rest of it
        is read and dropped), or ending in a bare LF with bare_lf="refuse"."""
        limit = self.server.max_line
        scanned = 0
        overlong = False
        while True:
            eol = self.buffer.find(b"\n", scanned)
            if eol != -1:
                line = bytes(self.buffer[:eol + 1])
                del self.buffer[:eol + 1]
                if overlong or len(line) > limit:
                    await self.reply(500, "5.5.2 line too long")   # RFC 5321 4.2.4
                    return None
                if self.server.bare_lf == "refuse" and not line.endswith(b"\r\n"):
                    await self.reply(550, "5.5.2 bare <LF> received; lines end in <CR><LF>")
                    return None
                return line.rstrip(b"\r\n")
            if len(self.buffer) > limit:
                overlong = True
                self.buffer.clear()
            scanned = len(self.buffer)
            await self.receive()

    async def textline(self) -> bytes:
        """A line of a SASL exchange, bounded like a command line; _Refused
        when commandline() refused (and answered) it."""
        line = await self.commandline()
        if line is None:
            raise _Refused
        return line

    # ------------------------------------------------------------ the session

    async def run(self) -> None:
        greeting = self.forced("GREETING") or (220, f"{self.server.hostname} ESMTP capture server")
        await self.reply(*greeting)
        if greeting[0] != 220:
            return await self.flush()
        while True:
            raw = await self.commandline()
            if raw is None:
                continue
            line = raw.decode("utf-8", "replace")
            shown = line if not line.upper().startswith("AUTH") else line.split(" ")[0] + " ..."
            self.server.commands.append(shown[:SHOWN_COMMAND])
            verb, _, arg = line.partition(" ")
            handler = getattr(self, "do_" + verb.upper(), None) if verb.isascii() and verb.isalpha() else None
            if handler is None:
                await self.reply(500, "5.5.2 command not recognized")
                continue
            if await handler(arg) is False:
                return await self.flush()

    async def do_EHLO(self, arg: str) -> None:
        forced = self.forced("EHLO")
        if forced:
            return await self.reply(*forced)
        lines = [self.server.hostname] + list(self.server.extensions)
        if self.server.tls_context is not None and not self.tls:
            lines.append("STARTTLS")
        mechanisms = (["PLAIN", "LOGIN", "CRAM-MD5"] if self.server.users else []) + \
            (["OAUTHBEARER", "XOAUTH2"] if self.server.tokens else [])
        if mechanisms:
            lines.append("AUTH " + " ".join(mechanisms))
        self.reset()   # RFC 5321 4.1.4: EHLO resets the transaction
        await self.reply(250, "\n".join(lines))

    async def do_HELO(self, arg: str) -> None:
        self.reset()
        await self.reply(250, self.server.hostname)

    async def do_STARTTLS(self, arg: str) -> None:
        forced = self.forced("STARTTLS")
        if forced:
            return await self.reply(*forced)
        if self.server.tls_context is None or self.tls:
            return await self.reply(454, "4.7.0 TLS not available")
        await self.reply(220, "2.0.0 ready to start TLS")
        # no more plaintext reads: the client's first TLS record, sent as soon as it has the 220,
        # must reach the TLS layer, not the plaintext reader (flush() yields to the loop)
        transport = self.writer.transport
        assert isinstance(transport, asyncio.ReadTransport)
        transport.pause_reading()
        await self.flush()
        self.buffer.clear()   # RFC 3207 section 4.2: nothing sent before TLS counts
        self.reader, self.writer = await self._bounded(
            start_tls(self.writer, self.server.tls_context, server_side=True))
        self.tls = True
        self.reset()

    async def do_AUTH(self, arg: str) -> None:
        mech, _, initial = arg.partition(" ")
        mech = mech.upper()
        users = self.server.users

        async def ask(prompt: bytes) -> bytes:
            await self.reply(334, base64.b64encode(prompt).decode())
            answer = await self.textline()
            if answer == b"*":
                raise _Cancelled
            return base64.b64decode(answer, validate=True)

        try:
            if mech == "PLAIN":
                data = base64.b64decode(initial, validate=True) if initial else await ask(b"")
                _authz, user, password = data.decode("utf-8").split("\0")
                ok = users.get(user) == password
            elif mech == "LOGIN":
                user = (await ask(b"Username:")).decode("utf-8")
                password = (await ask(b"Password:")).decode("utf-8")
                ok = users.get(user) == password
            elif mech in ("XOAUTH2", "OAUTHBEARER") and self.server.tokens:
                data = base64.b64decode(initial, validate=True) if initial else await ask(b"")
                user, token = _bearer(mech, data.decode("utf-8"))
                ok = user in self.server.tokens and hmac.compare_digest(
                    self.server.tokens[user].encode(), token.encode())
                if not ok:
                    # the provider's error challenge; the client's answer ends the exchange
                    status = "401" if mech == "XOAUTH2" else "invalid_token"
                    await ask(json.dumps({"status": status, "schemes": "bearer"}).encode())
            elif mech == "CRAM-MD5":
                challenge = f"<{secrets.token_hex(8)}@{self.server.hostname}>".encode()
                user, _, digest = (await ask(challenge)).decode("utf-8").rpartition(" ")
                secret = users.get(user)
                ok = secret is not None and hmac.compare_digest(
                    digest.encode(), hmac.new(secret.encode(), challenge, "md5").hexdigest().encode())
            else:
                return await self.reply(504, "5.5.4 mechanism not supported")
        except _Cancelled:
            return await self.reply(501, "5.7.0 authentication cancelled")
        except _Refused:
            return None
        except (ValueError, binascii.Error, UnicodeError):
            return await self.reply(501, "5.5.2 malformed authentication data")
        if ok:
            self.user = user
            await self.reply(235, "2.7.0 authenticated")
        else:
            await self.reply(535, "5.7.8 authentication failed")

    async def do_MAIL(self, arg: str) -> None:
        forced = self.forced("MAIL")
        if forced:
            return await self.reply(*forced)
        if self.sender is not None:   # RFC 5321 4.1.4: no MAIL inside a transaction
            return await self.reply(503, "5.5.1 nested MAIL command")
        if not arg.upper().startswith("FROM:<") or ">" not in arg:
            return await self.reply(501, "5.5.4 syntax: MAIL FROM:<address>")
        path, _, params = arg[6:].partition(">")
        self.reset()
        self.sender = path
        self.params = params.split()
        await self.reply(250, "2.1.0 sender ok")

    async def do_RCPT(self, arg: str) -> None:
        if self.sender is None:
            return await self.reply(503, "5.5.1 MAIL first")
        if not arg.upper().startswith("TO:<") or ">" not in arg:
            return await self.reply(501, "5.5.4 syntax: RCPT TO:<address>")
        address, _, params = arg[4:].partition(">")
        forced = self.forced(f"RCPT {address}") or self.forced("RCPT")
        if forced:
            return await self.reply(*forced)
        if len(self.recipients) >= self.server.max_recipients:   # RFC 5321 4.5.3.1.10
            return await self.reply(452, "4.5.3 too many recipients")
        self.recipients.append(address)
        self.rcpt_params[address] = params.split()
        await self.reply(250, "2.1.5 recipient ok")

    async def do_VRFY(self, arg: str) -> None:
        # RFC 5321 4.5.1 lists VRFY among the commands a server must know; 3.5.3: 252 when it
        # will not verify but will take mail for the address
        if not arg.strip():
            return await self.reply(501, "5.5.4 syntax: VRFY <address>")
        await self.reply(252, "2.5.0 cannot verify the user, but will accept a message for it")

    async def do_DATA(self, arg: str) -> None:
        if self.sender is None:
            return await self.reply(503, "5.5.1 MAIL first")
        if not self.recipients:
            return await self.reply(554, "5.5.1 no valid recipients")
        if self.chunked:
            return await self.reply(503, "5.5.1 DATA after BDAT")   # RFC 3030 section 3
        forced = self.forced("DATA")
        if forced:
            return await self.reply(*forced)
        await self.reply(354, "end data with <CR><LF>.<CR><LF>")
        bare_lf = await self.read_data()
        if bare_lf and self.server.bare_lf == "refuse":
            self.reset()   # Postfix's smtpd_forbid_bare_newline = reject
            return await self.reply(550, "5.5.2 bare <LF> received; lines end in <CR><LF>")
        await self.accept("DATA")

    async def read_data(self) -> bool:
        """Read the message after DATA into ``self.data`` (see take()),
        dot-unstuffed, up to the line "." that ends it; returns whether it
        held a bare LF. Lines end only at CRLF (RFC 5321 2.3.8):
        "<LF>.<CR><LF>" is message content, not the end, and a dot is
        unstuffed only at the start of a CRLF line (4.5.2). Linear: the
        buffer is scanned once, and a line longer than READ octets is taken
        in pieces."""
        bare_lf = False
        at_line_start = True
        scanned = 0
        while True:
            eol = self.buffer.find(b"\r\n", scanned)
            if eol == -1:
                if len(self.buffer) <= READ:
                    scanned = max(0, len(self.buffer) - 1)   # a CR at the end may meet its LF next
                    await self.receive()
                    continue
                piece = bytes(self.buffer[:-1])   # the last octet may be the CR of a CRLF
                del self.buffer[:-1]
                scanned, complete = 0, False
            else:
                piece = bytes(self.buffer[:eol + 2])
                del self.buffer[:eol + 2]
                scanned, complete = 0, True
                if at_line_start and piece == b".\r\n":
                    return bare_lf
            if at_line_start and piece.startswith(b"."):
                piece = piece[1:]
            bare_lf = bare_lf or b"\n" in (piece[:-2] if complete else piece)
            at_line_start = complete
            self.take(piece)

    async def accept(self, via: str) -> None:
        """The message data is complete: keep it, or answer why not."""
        if self.refusal is not None:
            refusal = self.refusal
            self.reset()
            return await self.reply(*refusal)
        forced = self.forced("DOT")
        if forced:
            self.reset()
            return await self.reply(*forced)
        assert self.sender is not None
        captured = Captured(Envelope(self.sender, list(self.recipients)), bytes(self.data), list(self.params),
                            self.user, dict(self.rcpt_params), via)
        self.reset()
        number = self.server._keep(captured)
        if number is None:
            return await self.reply(451, "4.3.0 the message could not be stored")
        await self.reply(250, f"2.0.0 queued as {number}")

    async def read_chunk(self, count: int, keep: bool) -> None:
        """Consume a BDAT chunk of ``count`` octets (RFC 3030: always, even
        when it is refused), adding it to the message (see take()) when
        ``keep``. Read in blocks: a huge count costs no memory."""
        while count:
            if not self.buffer:
                await self.receive()
            size = min(count, len(self.buffer), READ)
            if keep:
                self.take(bytes(self.buffer[:size]))
            del self.buffer[:size]
            count -= size

    async def do_BDAT(self, arg: str) -> None:
        match = _BDAT.fullmatch(arg.strip())
        if match is None:
            return await self.reply(501, "5.5.4 syntax: BDAT size [LAST]")
        ready, last = bool(self.recipients), bool(match.group(2))
        self.chunked = ready
        await self.read_chunk(int(match.group(1)), keep=ready)
        if not ready:
            # RFC 3030 section 2: a failed chunk fails the transaction; the last chunk ends it
            if last:
                self.reset()
            return await self.reply(554 if self.sender else 503, "5.5.1 no valid recipients")
        if last:
            return await self.accept("BDAT")
        if self.refusal is not None:
            return await self.reply(*self.refusal)
        await self.reply(250, f"2.0.0 {match.group(1)} octets received")

    async def do_RSET(self, arg: str) -> None:
        self.reset()
        await self.reply(250, "2.0.0 ok")

    async def do_NOOP(self, arg: str) -> None:
        await self.reply(250, "2.0.0 ok")

    async def do_QUIT(self, arg: str) -> bool:
        await self.reply(221, "2.0.0 bye")
        return False
