"""A capture SMTP server for tests and demonstrations.

It runs an asyncio server on a free loopback port in a thread of its own,
records every message it accepts, and can be told which extensions to
offer, which credentials to accept (PLAIN, LOGIN, CRAM-MD5), to offer
STARTTLS with a given certificate, and how to answer given commands::

    from smtpsend.testing import CaptureServer

    with CaptureServer() as server:
        smtpsend.sendmessage(part, servers=[server.host], ports=[server.port])
        [message] = server.messages
        message.envelope.recipients, message.data, message.part

It binds to 127.0.0.1 only and never relays anything.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import secrets
import ssl
import threading
from dataclasses import dataclass, field
from typing import Optional

from ._envelope import Envelope

__all__ = ["CaptureServer", "Captured"]

DEFAULT_EXTENSIONS = ("PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "SIZE 10485760",
                      "CHUNKING", "DSN")


@dataclass
class Captured:
    """One accepted message: its envelope and its bytes as received
    (dot-unstuffed, without the terminating line), the MAIL parameters, the
    RCPT parameters by recipient, and whether it came by DATA or BDAT."""

    envelope: Envelope
    data: bytes
    esmtp_params: list = field(default_factory=list)
    authenticated_as: Optional[str] = None
    rcpt_params: dict = field(default_factory=dict)
    via: str = "DATA"           # or "BDAT"

    @property
    def part(self):
        import mimecompose
        return mimecompose.initialize(string=self.data)


class CaptureServer:
    """A small SMTP server on 127.0.0.1 that keeps what it receives.

    - ``extensions``: EHLO keywords to announce (STARTTLS and AUTH are added
      from ``tls_context`` and ``users``).
    - ``users``: ``{name: password}``; AUTH PLAIN, LOGIN, CRAM-MD5 then work.
    - ``tls_context``: a server-side SSLContext to offer STARTTLS with (or,
      with ``implicit_tls=True``, to speak TLS from the first byte).
    - ``port``: where to listen on 127.0.0.1 (0, the default: a free port).
    - ``on_message``: called with each Captured message as it is accepted.
    - ``responses``: replies to force, keyed by ``"GREETING"``, ``"EHLO"``,
      ``"STARTTLS"``, ``"MAIL"``, ``"RCPT"`` or ``"RCPT <address>"``, ``"DATA"``, ``"DOT"``
      (the final "."), e.g. ``{"RCPT bad@example.com": (550, "5.1.1 no such user")}``.
    """

    def __init__(self, extensions=DEFAULT_EXTENSIONS, users: Optional[dict] = None,
                 tls_context: Optional[ssl.SSLContext] = None, responses: Optional[dict] = None,
                 hostname: str = "capture.localhost", implicit_tls: bool = False,
                 port: int = 0, on_message=None) -> None:
        self.extensions = list(extensions)
        self.users = dict(users or {})
        self.tls_context = tls_context
        self.responses = dict(responses or {})
        self.hostname = hostname
        self.implicit_tls = implicit_tls
        self.messages: list[Captured] = []
        self.commands: list[str] = []
        self.host = "127.0.0.1"
        self.port = port
        self.on_message = on_message
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "CaptureServer":
        self._thread = threading.Thread(target=self._run, name="capture-smtp", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("capture server did not start")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)

        async def boot():
            ssl_arg = self.tls_context if self.implicit_tls else None
            self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port, ssl=ssl_arg)
            self.port = self._server.sockets[0].getsockname()[1]

        self._loop.run_until_complete(boot())
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        # finish the client handlers still running, rather than abandon them
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> "CaptureServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ one client

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _Dialogue(self, reader, writer).run()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()


class _Dialogue:
    def __init__(self, server: CaptureServer, reader, writer) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.tls = server.implicit_tls
        self.user: Optional[str] = None
        self.pending: list[bytes] = []
        self.buffer = bytearray()
        self.reset()

    def reset(self) -> None:
        self.sender: Optional[str] = None
        self.params: list[str] = []
        self.recipients: list[str] = []
        self.rcpt_params: dict = {}
        self.chunks: list[bytes] = []

    def forced(self, key: str):
        return self.server.responses.get(key)

    async def reply(self, code: int, text: str) -> None:
        lines = text.split("\n")
        out = "".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n" for i, line in enumerate(lines))
        self.pending.append(out.encode("utf-8"))

    async def flush(self) -> None:
        if self.pending:
            self.writer.write(b"".join(self.pending))
            self.pending = []
            await self.writer.drain()

    async def rawline(self) -> bytes:
        """The next line, CRLF included. Replies are flushed only when no
        complete command is waiting: RFC 2920 section 3's server side."""
        while True:
            eol = self.buffer.find(b"\n")
            if eol != -1:
                line = bytes(self.buffer[:eol + 1])
                del self.buffer[:eol + 1]
                return line
            if len(self.buffer) > 1 << 20:
                raise ConnectionError("line too long")
            await self.flush()
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("client went away")
            self.buffer += data

    async def readline(self) -> bytes:
        return (await self.rawline()).rstrip(b"\r\n")

    async def run(self) -> None:
        greeting = self.forced("GREETING") or (220, f"{self.server.hostname} ESMTP capture server")
        await self.reply(*greeting)
        if greeting[0] != 220:
            return await self.flush()
        while True:
            raw = await self.readline()
            line = raw.decode("utf-8", "replace")
            self.server.commands.append(line if not line.upper().startswith("AUTH") else line.split()[0] + " ...")
            verb, _, arg = line.partition(" ")
            handler = getattr(self, "do_" + verb.upper(), None)
            if handler is None:
                await self.reply(500, "5.5.2 command not recognized")
                continue
            if await handler(arg) is False:
                return await self.flush()

    async def do_EHLO(self, arg: str):
        if self.forced("EHLO"):
            return await self.reply(*self.forced("EHLO"))
        lines = [self.server.hostname] + list(self.server.extensions)
        if self.server.tls_context is not None and not self.tls:
            lines.append("STARTTLS")
        if self.server.users:
            lines.append("AUTH PLAIN LOGIN CRAM-MD5")
        await self.reply(250, "\n".join(lines))

    async def do_HELO(self, arg: str):
        await self.reply(250, self.server.hostname)

    async def do_STARTTLS(self, arg: str):
        if self.forced("STARTTLS"):
            return await self.reply(*self.forced("STARTTLS"))
        if self.server.tls_context is None or self.tls:
            return await self.reply(454, "4.7.0 TLS not available")
        await self.reply(220, "2.0.0 ready to start TLS")
        await self.flush()
        self.buffer.clear()   # RFC 3207 section 4.2: nothing sent before TLS counts
        from ._async import start_tls
        self.reader, self.writer = await start_tls(self.writer, self.server.tls_context, server_side=True)
        self.tls = True
        self.reset()

    async def do_AUTH(self, arg: str):
        mech, _, initial = arg.partition(" ")
        mech = mech.upper()
        users = self.server.users

        async def ask(prompt: bytes) -> bytes:
            await self.reply(334, base64.b64encode(prompt).decode())
            answer = await self.readline()
            if answer == b"*":
                raise _Cancelled
            return base64.b64decode(answer)

        try:
            if mech == "PLAIN":
                data = base64.b64decode(initial) if initial else await ask(b"")
                _authz, user, password = data.decode("utf-8").split("\0")
                ok = users.get(user) == password
            elif mech == "LOGIN":
                user = (await ask(b"Username:")).decode("utf-8")
                password = (await ask(b"Password:")).decode("utf-8")
                ok = users.get(user) == password
            elif mech == "CRAM-MD5":
                challenge = f"<{secrets.token_hex(8)}@{self.server.hostname}>".encode()
                user, _, digest = (await ask(challenge)).decode("utf-8").rpartition(" ")
                secret = users.get(user)
                ok = secret is not None and hmac.compare_digest(
                    digest, hmac.new(secret.encode(), challenge, "md5").hexdigest())
            else:
                return await self.reply(504, "5.5.4 mechanism not supported")
        except _Cancelled:
            return await self.reply(501, "5.7.0 authentication cancelled")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return await self.reply(501, "5.5.2 malformed authentication data")
        if ok:
            self.user = user
            await self.reply(235, "2.7.0 authenticated")
        else:
            await self.reply(535, "5.7.8 authentication failed")

    async def do_MAIL(self, arg: str):
        if self.forced("MAIL"):
            return await self.reply(*self.forced("MAIL"))
        if not arg.upper().startswith("FROM:<") or ">" not in arg:
            return await self.reply(501, "5.5.4 syntax: MAIL FROM:<address>")
        path, _, params = arg[6:].partition(">")
        self.reset()
        self.sender = path
        self.params = params.split()
        await self.reply(250, "2.1.0 sender ok")

    async def do_RCPT(self, arg: str):
        if self.sender is None:
            return await self.reply(503, "5.5.1 MAIL first")
        if not arg.upper().startswith("TO:<") or ">" not in arg:
            return await self.reply(501, "5.5.4 syntax: RCPT TO:<address>")
        address = arg[4:].partition(">")[0]
        forced = self.forced(f"RCPT {address}") or self.forced("RCPT")
        if forced:
            return await self.reply(*forced)
        self.recipients.append(address)
        self.rcpt_params[address] = arg[4:].partition(">")[2].split()
        await self.reply(250, "2.1.5 recipient ok")

    async def do_DATA(self, arg: str):
        if not self.recipients:
            return await self.reply(554, "5.5.1 no valid recipients")
        if self.forced("DATA"):
            return await self.reply(*self.forced("DATA"))
        await self.reply(354, "end data with <CR><LF>.<CR><LF>")
        lines = []
        while True:
            line = await self.rawline()
            if line == b".\r\n":
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        await self.accept(b"".join(lines), "DATA")

    async def accept(self, data: bytes, via: str) -> None:
        forced = self.forced("DOT")
        if forced:
            self.reset()
            return await self.reply(*forced)
        captured = Captured(Envelope(self.sender, list(self.recipients)), data, list(self.params), self.user,
                            dict(self.rcpt_params), via)
        self.server.messages.append(captured)
        if self.server.on_message is not None:
            self.server.on_message(captured)
        self.reset()
        await self.reply(250, f"2.0.0 queued as {len(self.server.messages)}")

    async def readexact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            await self.flush()
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("client went away")
            self.buffer += data
        out = bytes(self.buffer[:count])
        del self.buffer[:count]
        return out

    async def do_BDAT(self, arg: str):
        words = arg.split()
        if not words or not words[0].isdigit() or len(words) > 2 or (len(words) == 2 and words[1].upper() != "LAST"):
            return await self.reply(501, "5.5.4 syntax: BDAT size [LAST]")
        chunk = await self.readexact(int(words[0]))   # RFC 3030: always consume the chunk
        if not self.recipients:
            return await self.reply(554 if self.sender else 503, "5.5.1 no valid recipients")
        self.chunks.append(chunk)
        if len(words) == 2:
            return await self.accept(b"".join(self.chunks), "BDAT")
        await self.reply(250, f"2.0.0 {len(chunk)} octets received")

    async def do_RSET(self, arg: str):
        self.reset()
        await self.reply(250, "2.0.0 ok")

    async def do_NOOP(self, arg: str):
        await self.reply(250, "2.0.0 ok")

    async def do_QUIT(self, arg: str):
        await self.reply(221, "2.0.0 bye")
        return False


class _Cancelled(Exception):
    pass
