"""The SMTP client dialogue, written once, with no I/O in it.

``Session.run()`` is a generator. It yields actions -- :class:`Send` some
bytes, :class:`Read` some replies, :class:`StartTLS` -- and receives the
result of each (``None``, a list of :class:`Reply`, a :class:`TLSInfo`).
A driver (``_sync.py`` with sockets; an asyncio one can pump the same
generator) only moves bytes, wraps TLS and applies the timeouts. A driver
that fails throws the error into the generator, so the dialogue decides what
a failure means at each point (after the message data: DeliveryUncertain).

State the session keeps: ``stage`` (where it is, for error reports),
``extensions`` (forgotten and asked again after STARTTLS, RFC 3207
section 4.2), ``tls`` (the TLSInfo once encrypted).

The transaction (RFC 5321 section 3.3, RFC 2920):

- with PIPELINING: MAIL, every RCPT and DATA in one write; the message data,
  the final "." and QUIT in one more;
- without: one command at a time;
- ``atleastone=False``: nothing is delivered unless every recipient is
  accepted. If a refusal arrives after DATA was already accepted (354), the
  connection is dropped without the final "." -- the server then discards
  the transaction (RFC 5321 section 4.1.1.4).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterable, Optional, Union

from ._data import MessageData, data_blocks
from ._envelope import Envelope
from ._errors import (AuthenticationError, DataRefused, DeliveryUncertain, MessageTooBig,
                      NotSupported, RecipientsRefused, Rejected, RemoteProtocolError,
                      SenderRefused, ServerUnavailable, SMTPError, TLSError, TLSRequired,
                      TransportError, UsageError)
from ._extensions import Extensions
from ._reply import Reply
from ._sasl import SASLFailure, choose

__all__ = ["Read", "Send", "Session", "StartTLS", "TLSInfo", "Timeouts"]


@dataclass(frozen=True)
class Send:
    """Write ``data`` (bytes, or an iterable of byte blocks)."""

    data: Union[bytes, Iterable[bytes]]
    timeout: float


@dataclass(frozen=True)
class Read:
    """Read ``count`` whole replies, waiting at most ``timeout`` for them."""

    count: int
    timeout: float


@dataclass(frozen=True)
class StartTLS:
    """Start TLS on the connection; discard whatever was received before
    (RFC 3207 section 4.2). The driver answers with a :class:`TLSInfo`."""

    timeout: float


@dataclass(frozen=True)
class TLSInfo:
    version: Optional[str] = None
    cipher: Optional[str] = None
    channel_binding: Optional[bytes] = None   # tls-unique, when TLS 1.2 gives one
    peer_certificate: Optional[dict] = None


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for each reply. The defaults are RFC 5321 section
    4.5.3.2's; ``final`` (the reply to the final ".") is tcllib's maxsecs."""

    connect: float = 30.0
    greeting: float = 300.0
    command: float = 300.0
    data_start: float = 120.0
    data_block: float = 180.0
    final: float = 120.0

    @classmethod
    def make(cls, timeout: Optional[float], maxsecs: float) -> "Timeouts":
        if timeout is None:
            return cls(final=maxsecs)
        return cls(timeout, timeout, timeout, timeout, timeout, maxsecs)


Policy = Union[None, str, Callable[[int, str], str]]


class Session:
    """One SMTP connection's dialogue: ``open()``, then ``deliver()`` once
    or more, then ``quit()``; ``run()`` does all three for one message."""

    def __init__(self, *, client: str, usetls: bool = True, implicit_tls: bool = False,
                 tlspolicy: Policy = None, username: Optional[str] = None,
                 password: Optional[str] = None, token: Optional[str] = None,
                 host: str = "localhost", queue: bool = False, mechanisms: Optional[list[str]] = None,
                 timeouts: Timeouts = Timeouts(), trace: Optional[Callable[[str], None]] = None) -> None:
        self.client = client
        self.mechanisms = [m.upper() for m in mechanisms] if mechanisms is not None else None
        self.usetls = usetls
        self.implicit_tls = implicit_tls
        self.tlspolicy = tlspolicy
        self.username = username
        self._password = password
        self._token = token
        self.host = host
        self.queue = queue
        self.timeouts = timeouts
        self._trace = trace
        self.stage = "connect"
        self.extensions = Extensions()
        self.tls: Optional[TLSInfo] = None
        self._cleartext_allowed = False   # the caller said "insecure" for this connection

    # ------------------------------------------------------------ plumbing

    def _log(self, line: str) -> None:
        if self._trace is not None:
            self._trace(line)

    def _read(self, count: int, timeout: float) -> Generator[Any, Any, list[Reply]]:
        replies = yield Read(count, timeout)
        for reply in replies:
            for n, line in enumerate(reply.lines):
                sep = "-" if n < len(reply.lines) - 1 else " "
                self._log(f"< {reply.code}{sep}{line}")
        return replies

    def _send(self, lines: list[str], timeout: float, secret: Optional[str] = None) -> Generator:
        """Send command lines in one write. ``secret`` is what the trace
        shows instead of the line (AUTH data)."""
        for line in lines:
            if any(c in line for c in "\r\n\0"):
                # RFC 5321 section 2.3.8: a command is one line; CR/LF would inject more
                raise UsageError(f"CR, LF or NUL in an SMTP command: {line!r}")
            self._log("> " + (line if secret is None else secret))
        yield Send("".join(line + "\r\n" for line in lines).encode("utf-8"), timeout)

    def _command(self, line: str, timeout: float, secret: Optional[str] = None) -> Generator:
        yield from self._send([line], timeout, secret)
        [reply] = yield from self._read(1, timeout)
        if reply.code == 421:
            raise ServerUnavailable("server is closing the connection", reply, line.split()[0])
        return reply

    # ------------------------------------------------------------ the dialogue

    def run(self, envelope: Envelope, message: MessageData,
            atleastone: bool = False) -> Generator[Any, Any, list[Rejected]]:
        """Open, deliver one message, quit (QUIT pipelined when possible).
        Returns the rejected recipients (non-empty only with ``atleastone``)."""
        yield from self.open()
        rejected = yield from self.deliver(envelope, message, atleastone, quit=True)
        return rejected

    def open(self) -> Generator:
        """Greeting, EHLO, TLS, AUTH: ready for a transaction."""
        if self.implicit_tls:
            self.stage = "starttls"
            self.tls = yield StartTLS(self.timeouts.connect)
        self.stage = "greeting"
        [greeting] = yield from self._read(1, self.timeouts.greeting)
        if greeting.code != 220:
            raise ServerUnavailable("server refused the connection", greeting)
        yield from self._hello()
        yield from self._negotiate_tls()
        if self.username is not None:
            yield from self._authenticate()
        elif self._password is not None or self._token is not None:
            raise UsageError("password= or token= needs username=")
        if self.queue and "XQUE" in self.extensions:
            reply = yield from self._command("QUED", self.timeouts.command)
            if not reply.is_positive:
                self._log(f"* QUED refused ({reply.code}); sending without queueing")

    def quit(self) -> Generator:
        """Say goodbye; a server that is already gone changes nothing."""
        self.stage = "quit"
        try:
            yield from self._command("QUIT", self.timeouts.command)
        except SMTPError:
            pass

    def _hello(self) -> Generator:
        self.stage = "ehlo"
        reply = yield from self._command(f"EHLO {self.client}", self.timeouts.command)
        if reply.code == 250:
            self.extensions = Extensions.from_reply(reply)
            return
        if reply.code // 100 != 5:
            raise ServerUnavailable("EHLO refused", reply, "EHLO")
        # RFC 5321 section 3.2: a server that does not know EHLO answers 5xx; try HELO
        reply = yield from self._command(f"HELO {self.client}", self.timeouts.command)
        if reply.code != 250:
            raise ServerUnavailable("HELO refused", reply, "HELO")
        self.extensions = Extensions()

    def _policy(self, code: int, text: str) -> str:
        """Ask the TLS policy; returns "secure" or "insecure" and notes
        whether the caller explicitly allowed cleartext."""
        policy = self.tlspolicy
        if policy is None:
            return "insecure"
        answer = policy(code, text) if callable(policy) else policy
        answer = "insecure" if answer == "insecure" else "secure"
        self._cleartext_allowed = answer == "insecure"
        return answer

    def _negotiate_tls(self) -> Generator:
        if self.tls is not None:
            return
        if not self.usetls:
            self._policy_without_tls()
            return
        if "STARTTLS" not in self.extensions:
            if self._policy(250, "STARTTLS not offered") == "secure":
                raise TLSRequired("TLS required but the server does not offer STARTTLS")
            self._check_credentials_in_clear()
            return
        self.stage = "starttls"
        reply = yield from self._command("STARTTLS", self.timeouts.command)
        if reply.code != 220:
            if self._policy(reply.code, reply.text) == "secure":
                raise TLSRequired(f"STARTTLS refused: {reply}")
            self._check_credentials_in_clear()
            self.stage = "ehlo"
            return
        try:
            self.tls = yield StartTLS(self.timeouts.command)
        except TLSError as exc:
            # never downgraded, whatever the policy answers (it is told, though)
            if callable(self.tlspolicy):
                self.tlspolicy(reply.code, str(exc))
            raise
        # RFC 3207 section 4.2: forget what we knew and ask again
        self.extensions = Extensions()
        yield from self._hello()

    def _policy_without_tls(self) -> None:
        if self.tlspolicy == "insecure":
            self._cleartext_allowed = True
        elif callable(self.tlspolicy) and self.username is not None:
            self._policy(0, "TLS not used (usetls=False)")
        self._check_credentials_in_clear()

    def _check_credentials_in_clear(self) -> None:
        if self.username is not None and self.tls is None and not self._cleartext_allowed:
            raise TLSRequired("credentials are never sent without TLS unless tlspolicy says "
                              "'insecure'")

    # ------------------------------------------------------------ AUTH (RFC 4954)

    def _authenticate(self) -> Generator:
        self.stage = "auth"
        self._check_credentials_in_clear()
        offered = self.extensions.auth
        if not offered:
            raise NotSupported("the server offers no AUTH, but credentials were given")
        if self.mechanisms is not None:
            offered = [m for m in offered if m in self.mechanisms]
        binding = self.tls.channel_binding if self.tls else None
        mechanisms = choose(offered, self.username, self._password, self._token, self.host, binding)
        if not mechanisms:
            raise NotSupported(f"no usable SASL mechanism among {' '.join(offered)}")
        failures: list[tuple[str, Any]] = []
        for mech in mechanisms:
            initial = mech.start()
            line = f"AUTH {mech.name}"
            if initial is not None:
                line += " " + (base64.b64encode(initial).decode() or "=")
            reply = yield from self._command(line, self.timeouts.command, secret=f"AUTH {mech.name} ***"
                                             if initial else None)
            try:
                while reply.code == 334:
                    try:
                        challenge = base64.b64decode(reply.lines[0].strip(), validate=True)
                    except (binascii.Error, ValueError):
                        raise SASLFailure("challenge is not base64") from None
                    answer = base64.b64encode(mech.respond(challenge)).decode()
                    reply = yield from self._command(answer, self.timeouts.command, secret="***")
                if reply.code == 235:
                    mech.finish()
                    self._log(f"* authenticated with {mech.name}")
                    return
            except SASLFailure as exc:
                if reply.code == 334:
                    reply = yield from self._command("*", self.timeouts.command)  # cancel
                failures.append((mech.name, exc))
                continue
            failures.append((mech.name, reply))
        replies = [(name, r) for name, r in failures if isinstance(r, Reply)]
        summary = "; ".join(f"{name}: {r}" for name, r in failures)
        if not replies:
            raise RemoteProtocolError(f"authentication failed: {summary}")
        raise AuthenticationError(f"every mechanism failed ({summary})", replies)

    # ------------------------------------------------------------ the transaction

    def _path(self, address: str) -> tuple[str, bool]:
        """The address as sent, and whether it needs SMTPUTF8 (RFC 6531)."""
        if address.isascii():
            return address, False
        local, _, domain = address.rpartition("@")
        if not local.isascii():
            return address, True
        if "SMTPUTF8" in self.extensions:
            return address, True
        try:
            # RFC 5890: a non-ASCII domain goes as A-labels to a server without SMTPUTF8
            return f"{local}@{domain.encode('idna').decode('ascii')}", False
        except UnicodeError:
            raise UsageError(f"domain of {address!r} is not a valid IDN") from None

    def deliver(self, env: Envelope, message: MessageData, atleastone: bool = False,
                quit: bool = False) -> Generator:
        """One mail transaction. With ``quit``, QUIT follows the message
        (pipelined when the server allows it) and the dialogue ends."""
        ext = self.extensions
        self._envelope = env
        self._atleastone = atleastone
        size = message.size
        self.stage = "mail"
        if ext.size is not None and size > ext.size:
            raise MessageTooBig(size, ext.size)
        sender, utf8 = self._path(env.originator)
        rcpts = [self._path(r) for r in env.recipients]
        needs_utf8 = utf8 or any(u for _, u in rcpts)
        if needs_utf8 and "SMTPUTF8" not in ext:
            raise NotSupported("a non-ASCII address needs SMTPUTF8, which this server lacks")
        params = []
        if "SIZE" in ext:
            params.append(f"SIZE={size}")
        if message.eightbit and "8BITMIME" in ext:
            params.append("BODY=8BITMIME")
        if "SMTPUTF8" in ext and (needs_utf8 or message.header_utf8):
            params.append("SMTPUTF8")
        mail = f"MAIL FROM:<{sender}>" + "".join(" " + p for p in params)
        commands = [mail] + [f"RCPT TO:<{path}>" for path, _ in rcpts]
        pipelining = "PIPELINING" in ext
        t = self.timeouts
        if pipelining:
            yield from self._send(commands + ["DATA"], t.command)
            replies = yield from self._read(len(commands) + 1, t.command)
            mail_reply, rcpt_replies, data_reply = replies[0], replies[1:-1], replies[-1]
            self._check_mail(mail_reply, mail)
        else:
            mail_reply = yield from self._command(mail, t.command)
            self._check_mail(mail_reply, mail)
            rcpt_replies = []
            self.stage = "rcpt"
            for line in commands[1:]:
                rcpt_replies.append((yield from self._command(line, t.command)))
            data_reply = None
        self.stage = "rcpt"
        rejected = self._rejected(rcpt_replies)
        accepted = len(rcpt_replies) - len(rejected)
        refusal = self._refusal(accepted, rejected, rcpt_replies)
        if refusal is not None:
            if data_reply is None or data_reply.code != 354:
                yield from self._quietly(["RSET"] + (["QUIT"] if quit else []))
            raise refusal   # with DATA accepted: the connection is dropped without "."
        self.stage = "data"
        if data_reply is None:
            data_reply = yield from self._command("DATA", t.data_start)
        if data_reply.code != 354:
            self._check_reply(data_reply, "DATA", "DATA refused")
            raise RemoteProtocolError(f"unexpected reply to DATA: {data_reply}")
        trailer = b"QUIT\r\n" if pipelining and quit else b""
        self._log(f"> [message data: {size} octets]")
        self._log("> .")
        if trailer:
            self._log("> QUIT")
        yield Send(data_blocks(message.chunks(), trailer), t.data_block)
        # From here on the server may hold the message: never try another server.
        try:
            [final] = yield from self._read(1, t.final)
        except (TransportError, RemoteProtocolError) as exc:
            raise DeliveryUncertain(f"no reply after the message data was sent: {exc}") from exc
        self._check_reply(final, "DATA", "message refused")
        if trailer:
            self.stage = "quit"
            try:
                yield from self._read(1, t.command)
            except SMTPError:
                pass  # delivered; a lost goodbye changes nothing
        elif quit:
            yield from self.quit()
        return rejected if atleastone else []

    def _check_mail(self, reply: Reply, command: str) -> None:
        if reply.code // 100 == 2:
            return
        if reply.code == 530:
            # RFC 3207 / RFC 4954: "Must issue a STARTTLS command first",
            # "Authentication required" -- the server's terms, not the message
            raise ServerUnavailable("server requires TLS or authentication first", reply, command)
        if reply.code // 100 == 5:
            raise SenderRefused("originator refused", reply, command)
        raise ServerUnavailable("MAIL FROM refused for now", reply, command)

    def _check_reply(self, reply: Reply, command: str, what: str) -> None:
        if reply.code // 100 == 2:
            return
        if reply.code // 100 == 5:
            raise DataRefused(what, reply, command)
        raise ServerUnavailable(f"{what} for now", reply, command)

    def _rejected(self, replies: list[Reply]) -> list[Rejected]:
        out = []
        for address, reply in zip(self._envelope.recipients, replies):
            if reply.code not in (250, 251):
                out.append(Rejected(address, reply.code, reply.text,
                                    str(reply.status) if reply.status else None))
        return out

    def _refusal(self, accepted: int, rejected: list[Rejected],
                 replies: list[Reply]) -> Optional[SMTPError]:
        """The error to raise, or None to go on and send the data."""
        if not rejected or (self._atleastone and accepted):
            return None
        first = next(r for r in replies if r.code not in (250, 251))
        if first.code == 421:
            return ServerUnavailable("server is closing the connection", first, "RCPT")
        if all(r.is_transient for r in rejected):
            return RecipientsRefused("recipients refused for now", rejected, first, "RCPT")
        return RecipientsRefused(f"{len(rejected)} of {len(rejected) + accepted} recipients refused",
                                 rejected, first, "RCPT")

    def _quietly(self, commands: list[str]) -> Generator:
        for line in commands:
            try:
                yield from self._command(line, self.timeouts.command)
            except SMTPError:
                return
