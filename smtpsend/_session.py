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
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterable, Optional, Union

from ._data import MessageChanged, MessageData, bdat_blocks, data_blocks, xtext
from ._envelope import Envelope
from ._errors import (AuthenticationError, DataRefused, DeliveryUncertain, MessageTooBig,
                      NotSupported, RecipientsRefused, Rejected, RemoteProtocolError,
                      SenderRefused, ServerUnavailable, SMTPError, Timeout, TLSError, TLSRequired,
                      TransportError, UsageError)
from ._extensions import Extensions
from ._reply import Reply
from ._sasl import Mechanism, SASLFailure, ServerNotProven, choose
from ._secret import Secret, wrap

__all__ = ["Close", "Connect", "Deadline", "Delivery", "Event", "Read", "Resolve", "Send", "Session", "StartTLS", "Steps",
           "TLSInfo", "Timeouts"]


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
class Resolve:
    """Resolve ``host``; the driver answers with [(family, sockaddr), ...]
    or raises TransportError."""

    host: str
    port: int


@dataclass(frozen=True)
class Connect:
    """Open a TCP connection to ``sockaddr``; ``host`` is the name TLS
    verifies. Raises TransportError or Timeout."""

    family: int
    sockaddr: tuple
    host: str
    timeout: float


@dataclass(frozen=True)
class Close:
    """Close the current connection."""


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


class Steps:
    """Iterate over a dialogue's actions; report each one's outcome with
    ``succeeded(value)`` or ``failed(error)`` before asking for the next.
    When the dialogue ends, ``result`` holds what it returned.

    This is all a driver's pump needs: ``for action in steps: ...perform...``,
    blocking or with ``await``.
    """

    def __init__(self, dialogue: Generator) -> None:
        self._dialogue = dialogue
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self.result: Any = None

    def __iter__(self) -> "Steps":
        return self

    def __next__(self) -> Any:
        try:
            if self._error is not None:
                action = self._dialogue.throw(self._error)
            else:
                action = self._dialogue.send(self._value)
        except StopIteration as stop:
            self.result = stop.value
            raise StopIteration from None
        self._value, self._error = None, None
        return action

    def succeeded(self, value: Any) -> None:
        self._value = value

    def failed(self, error: BaseException) -> None:
        """The driver failed: the error is thrown into the dialogue, which
        decides what it means (after the message data: DeliveryUncertain)."""
        self._error = error


class Deadline:
    """A wait that must end within ``seconds``: ``remaining()`` gives the
    time left for the next blocking call, or raises Timeout when none is
    left (so a server trickling one byte at a time still times out)."""

    def __init__(self, seconds: float, what: str = "no reply") -> None:
        self._end = time.monotonic() + seconds
        self._message = f"{what} within {seconds} s"

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> Timeout:
        return Timeout(self._message)


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

_NOTIFY = ("NEVER", "SUCCESS", "FAILURE", "DELAY")


@dataclass(frozen=True)
class Event:
    """Something that happened in a dialogue (libESMTP's event callback):
    ``name`` is connect, greeting, extensions, tls, auth, mail, rcpt, data,
    accepted, failed (a server given up on), disconnect, or note (``text``:
    what smtpsend decided, e.g. a downgrade); ``data`` holds its details."""

    name: str
    data: dict


@dataclass(frozen=True)
class Delivery:
    """Per-message options of a transaction.

    - ``atleastone``: deliver to the accepted recipients even if some are refused.
    - DSN (RFC 3461): ``ret`` ("FULL" or "HDRS"), ``envid``, ``notify`` ("NEVER",
      or any of "SUCCESS", "FAILURE", "DELAY": a string, a list, or a dict by
      recipient), ``orcpt`` (True: each recipient's own address; or a dict);
      ``require_dsn``: a server without DSN fails instead of ignoring them.
    - ``deliverby`` (RFC 2852): "seconds;R" or "seconds;N" (T for trace).
    - ``priority`` (RFC 6710 MT-PRIORITY): -9 to 9.
    - ``requiretls`` (RFC 8689): only over TLS to a server that offers it.
    - ``mail_auth`` (RFC 4954 section 5): the AUTH= mailbox on MAIL ("<>" for none).
    """

    atleastone: bool = False
    ret: Optional[str] = None
    envid: Optional[str] = None
    notify: Any = None
    orcpt: Any = None
    require_dsn: bool = False
    deliverby: Optional[str] = None
    priority: Optional[int] = None
    requiretls: bool = False
    mail_auth: Optional[str] = None

    def __post_init__(self) -> None:
        if self.ret is not None:
            object.__setattr__(self, "ret", self.ret.upper())
            if self.ret not in ("FULL", "HDRS"):
                raise UsageError(f"ret must be FULL or HDRS, not {self.ret!r}")
        if self.envid is not None and (not self.envid or len(self.envid) > 100
                                       or not all(32 <= ord(c) < 127 for c in self.envid)):
            raise UsageError("envid must be 1 to 100 printable ASCII characters (RFC 3461 section 4.4)")
        if self.notify is not None:
            values = self.notify.values() if isinstance(self.notify, dict) else [self.notify]
            for value in values:
                self._notify_text(value)
        if self.priority is not None and (not isinstance(self.priority, int) or not -9 <= self.priority <= 9):
            raise UsageError("priority must be an integer from -9 to 9 (RFC 6710)")
        if self.deliverby is not None:
            import re
            if not re.fullmatch(r"-?\d{1,9};[RN]T?", str(self.deliverby)):
                raise UsageError("deliverby must look like '3600;R' or '600;NT' (RFC 2852)")
        for value in (self.mail_auth,):
            if value is not None and any(c in value for c in "\r\n\0 "):
                raise UsageError(f"invalid mail_auth {value!r}")

    @staticmethod
    def _notify_text(value) -> str:
        items = [value] if isinstance(value, str) else list(value)
        items = [w.strip().upper() for item in items for w in str(item).split(",") if w.strip()]
        if not items or any(w not in _NOTIFY for w in items) or ("NEVER" in items and len(items) > 1):
            raise UsageError(f"notify must be NEVER or any of SUCCESS, FAILURE, DELAY, not {value!r}")
        return ",".join(items)

    @property
    def wants_dsn(self) -> bool:
        return any(v is not None for v in (self.ret, self.envid, self.notify, self.orcpt))

    def notify_for(self, address: str) -> Optional[str]:
        value = self.notify.get(address) if isinstance(self.notify, dict) else self.notify
        return self._notify_text(value) if value is not None else None

    def orcpt_for(self, address: str) -> Optional[str]:
        if isinstance(self.orcpt, dict):
            return self.orcpt.get(address)
        return address if self.orcpt else None


_logger = logging.getLogger("smtpsend")

# Seconds of silence before the greeting after which the client says NOOP,
# to find out whether the port speaks TLS from the first byte (see _greeting).
GREETING_QUIET = 10.0

# Replies to AUTH after which the next mechanism is tried: the mechanism
# failed, not the credentials (RFC 4954 section 6: 432 password transition,
# 454 temporary failure, 501 cannot decode / cancelled, 504 unknown
# mechanism, 534 too weak, 538 needs encryption). Any other refusal ends
# AUTH: 535 or 5.7.8 means the credentials were refused, and trying weaker
# mechanisms with them only adds failed logins (fail2ban counts them).
_NEXT_MECHANISM = frozenset({432, 454, 501, 504, 534, 538})


class Session:
    """One SMTP connection's dialogue: ``open()``, then ``deliver()`` once
    or more, then ``quit()``; ``run()`` does all three for one message.

    ``password`` and ``token`` are held as Secret (no repr, vars() or
    pickle shows them); ``port`` (when known) lets the greeting wait probe
    for a TLS port (see ``_greeting``).
    """

    def __init__(self, *, client: str, usetls: bool = True, implicit_tls: bool = False,
                 tlspolicy: Policy = None, username: Optional[str] = None,
                 password: Union[str, Secret, None] = None, token: Union[str, Secret, None] = None,
                 port: Optional[int] = None,
                 host: str = "localhost", queue: bool = False, mechanisms: Optional[list[str]] = None,
                 timeouts: Timeouts = Timeouts(), trace: Optional[Callable[[str], None]] = None,
                 monitor: Optional[Callable[[str, str], None]] = None, monitor_headers: bool = False,
                 events: Optional[Callable[["Event"], None]] = None,
                 progress: Optional[Callable[[int, int], None]] = None, trace_notes: bool = False) -> None:
        self.client = client
        self._trace_notes = trace_notes
        self._monitor = monitor
        self._monitor_headers = monitor_headers
        self._events = events
        self._progress_hook = progress
        self._pending = b""
        self.mechanisms = [m.upper() for m in mechanisms] if mechanisms is not None else None
        self.usetls = usetls
        self.implicit_tls = implicit_tls
        self.tlspolicy = tlspolicy
        self.username = username
        self._password = wrap(password)
        self._token = wrap(token)
        self.host = host
        self.port = port
        self.queue = queue
        self.timeouts = timeouts
        self._trace = trace
        self.stage = "connect"
        self.extensions = Extensions()
        self.tls: Optional[TLSInfo] = None
        self._cleartext_allowed = False   # the caller said "insecure" for this connection
        self._probed = False              # NOOP sent before the greeting (see _greeting)

    # ------------------------------------------------------------ plumbing

    def _log(self, direction: str, text: str) -> None:
        """A protocol line: ">" sent, "<" received."""
        if self._monitor is not None:
            self._monitor(direction, text)
        if self._trace is not None:
            self._trace(f"{direction} {text}")

    def _note(self, text: str, warn: bool = True) -> None:
        """What smtpsend did: an Event("note"), and a "* ..." line in the
        logged transcript. A debug callable gets protocol lines only. With
        ``warn`` (the default: a note says what was left out or changed,
        e.g. a 7-bit downgrade) it is also logged at WARNING, always."""
        if self._trace_notes and self._trace is not None:
            self._trace(f"* {text}")
        if warn:
            _logger.warning("%s: %s", self.host, text)
        self._event("note", text=text)

    def _event(self, name: str, **data: Any) -> None:
        """An Event for the ``events`` hook; a refused recipient is also
        logged at WARNING, always."""
        if name == "rcpt":
            reply = data.get("reply")
            if isinstance(reply, Reply) and reply.code not in (250, 251):
                _logger.warning("%s refused recipient %s: %s", self.host, data.get("address"), reply)
        if self._events is not None:
            self._events(Event(name, data))

    def _read(self, count: int, timeout: float) -> Generator[Any, Any, list[Reply]]:
        replies: list[Reply] = yield Read(count, timeout)
        for reply in replies:
            for n, line in enumerate(reply.lines):
                sep = "-" if n < len(reply.lines) - 1 else " "
                self._log("<", f"{reply.code}{sep}{line}")
        return replies

    def _send(self, lines: list[str], timeout: float, secret: Optional[str] = None,
              flush: bool = True) -> Generator[Any, Any, None]:
        """Send command lines in one write. ``secret`` is what the trace and
        any error show instead of the line (AUTH data). With ``flush=False``
        they wait in ``_pending`` to go out with the next write. UsageError
        for CR, LF or NUL in a line, or a line that is not valid text."""
        for line in lines:
            shown = line if secret is None else secret
            if any(c in line for c in "\r\n\0"):
                # RFC 5321 section 2.3.8: a command is one line; CR/LF would inject more
                raise UsageError(f"CR, LF or NUL in an SMTP command: {shown!r}")
            self._log(">", shown)
        text = "".join(line + "\r\n" for line in lines)
        encodable = True
        try:
            encoded = text.encode("utf-8")
        except UnicodeEncodeError:
            encodable = False
        if not encodable:   # raised outside the except: its __context__ would hold the text
            shown = lines[0] if secret is None else secret
            raise UsageError(f"an SMTP command is not valid text (a lone surrogate): {shown!r}")
        data = self._pending + encoded
        self._pending = b""
        if flush:
            yield Send(data, timeout)
        else:
            self._pending = data

    def _command(self, line: str, timeout: float, secret: Optional[str] = None,
                 command: Optional[str] = None) -> Generator[Any, Any, Reply]:
        """Send one command, read its reply. A 421 raises ServerUnavailable
        whose ``.command`` is ``command``, else ``secret`` (the redacted
        form, for AUTH data), else the verb -- never the AUTH data itself."""
        yield from self._send([line], timeout, secret)
        [reply] = yield from self._read(1, timeout)
        if reply.code == 421:
            if command is None:
                command = secret if secret is not None else (line.split() or [""])[0]
            raise ServerUnavailable("server is closing the connection", reply, command)
        return reply

    # ------------------------------------------------------------ the dialogue

    def run(self, envelope: Envelope, message: MessageData,
            atleastone: Union["Delivery", bool] = False) -> Generator[Any, Any, list[Rejected]]:
        """Open, deliver one message, quit (QUIT pipelined when possible).
        Returns the rejected recipients (non-empty only with ``atleastone``)."""
        yield from self.open()
        rejected = yield from self.deliver(envelope, message, atleastone, quit=True)
        return rejected

    def open(self) -> Generator[Any, Any, None]:
        """Greeting, EHLO, TLS, AUTH: ready for a transaction."""
        if self.implicit_tls:
            self.stage = "starttls"
            try:
                tls: TLSInfo = yield StartTLS(self.timeouts.connect)
            except TLSError as exc:
                if exc.reason == "plaintext":
                    exc.reason = "not-implicit-tls"   # it greeted in plaintext: hint tlsimport=False
                raise
            self.tls = tls
            self._event("tls", version=tls.version, cipher=tls.cipher, peer_certificate=tls.peer_certificate)
        self.stage = "greeting"
        greeting = yield from self._greeting()
        if greeting.code != 220:
            raise ServerUnavailable("server refused the connection", greeting)
        self._event("greeting", reply=greeting)
        if self._probed:
            [noop] = yield from self._read(1, self.timeouts.command)   # the probe's reply
            if noop.code == 421:
                raise ServerUnavailable("server is closing the connection", noop, "NOOP")
        yield from self._hello()
        yield from self._negotiate_tls()
        if self.username is not None:
            yield from self._authenticate()
        elif self._password is not None or self._token is not None:
            raise UsageError("password= or token= needs username=")
        if self.queue and "XQUE" in self.extensions:
            reply = yield from self._command("QUED", self.timeouts.command)
            if not reply.is_positive:
                self._note(f"QUED refused ({reply.code}); sending without queueing")

    def _greeting(self) -> Generator[Any, Any, Reply]:
        """Wait for the greeting (RFC 5321 section 3.1); sets ``_probed``.

        An implicit-TLS server (RFC 8314 section 3.3, port 465 and others)
        says nothing until the client's TLS handshake, so a plaintext
        client would wait the whole greeting timeout (300 s). On a port
        other than 25 (where MX servers may delay the greeting on purpose),
        after GREETING_QUIET seconds of silence (or half the timeout) the
        client sends NOOP: an SMTP server answers it after its greeting; a
        TLS server drops the connection or answers with a TLS alert, which
        the drivers recognise (RemoteProtocolError). Either way the error
        says to pass tlsimport=True (reason "implicit-tls"). A greeting
        that never comes is a Timeout with reason "no-greeting".
        """
        self._probed = False
        total = self.timeouts.greeting
        quiet = min(GREETING_QUIET, total / 2)
        try:
            if self.implicit_tls or self.port in (None, 25):
                [greeting] = yield from self._read(1, total)
                return greeting
            try:
                [greeting] = yield from self._read(1, quiet)
                return greeting
            except Timeout:
                pass
            self._note(f"no greeting within {quiet:g} s: sending NOOP to learn whether the port "
                       "expects TLS from the first byte", warn=False)
            try:
                yield from self._send(["NOOP"], self.timeouts.command)
                [greeting] = yield from self._read(1, total - quiet)
            except Timeout:
                raise
            except TransportError as exc:
                raise TransportError(f"no greeting within {quiet:g} s, and the connection was closed when "
                                     f"the client spoke first ({exc}): the server is probably waiting for a "
                                     "TLS handshake", reason="implicit-tls") from exc
            self._probed = True
            return greeting
        except Timeout as exc:
            exc.reason = exc.reason or "no-greeting"
            raise

    def quit(self) -> Generator[Any, Any, None]:
        """Say goodbye; a server that is already gone changes nothing."""
        self.stage = "quit"
        try:
            yield from self._command("QUIT", self.timeouts.command)
        except SMTPError:
            pass

    def _hello(self) -> Generator[Any, Any, None]:
        self.stage = "ehlo"
        reply = yield from self._command(f"EHLO {self.client}", self.timeouts.command)
        if reply.code == 250:
            self.extensions = Extensions.from_reply(reply)
            self._event("extensions", extensions=self.extensions)
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

    def _negotiate_tls(self) -> Generator[Any, Any, None]:
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
            tls: TLSInfo = yield StartTLS(self.timeouts.command)
        except TLSError as exc:
            # never downgraded, whatever the policy answers (it is told, though)
            if callable(self.tlspolicy):
                self.tlspolicy(reply.code, str(exc))
            raise
        self.tls = tls
        self._event("tls", version=tls.version, cipher=tls.cipher, peer_certificate=tls.peer_certificate)
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

    def _authenticate(self) -> Generator[Any, Any, None]:
        """AUTH (RFC 4954) with the strongest usable mechanism offered.

        The next mechanism is tried only when the mechanism failed (a reply
        in _NEXT_MECHANISM, a malformed challenge); credentials refused
        (535, 5.7.8) or any other refusal end AUTH with AuthenticationError,
        and a server that fails to prove it knows the password (SCRAM,
        DIGEST-MD5) with RemoteProtocolError: no weaker mechanism is then
        offered the same credentials. NotSupported when no mechanism is
        usable (none offered, or the credentials do not suit them).
        """
        self.stage = "auth"
        self._check_credentials_in_clear()
        offered = self.extensions.auth
        if not offered:
            raise NotSupported("the server offers no AUTH, but credentials were given")
        if self.mechanisms is not None:
            offered = [m for m in offered if m in self.mechanisms]
        binding = self.tls.channel_binding if self.tls else None
        skipped: list[tuple[str, str]] = []
        mechanisms = choose(offered, self.username or "", self._password, self._token, self.host, binding, skipped)
        for name, why in skipped:
            self._note(f"{name} not used: {why}")
        if not mechanisms:
            detail = "".join(f"; {why}" for _, why in skipped)
            raise NotSupported(f"no usable SASL mechanism among {' '.join(offered) or 'none'}{detail}")
        failures: list[tuple[str, Any]] = []
        for mech in mechanisms:
            outcome = yield from self._exchange(mech)
            if outcome is None:
                self._note(f"authenticated with {mech.name}", warn=False)
                self._event("auth", mechanism=mech.name)
                return
            failures.append((mech.name, outcome))
            if isinstance(outcome, ServerNotProven):
                break
            if isinstance(outcome, Reply) and outcome.code not in _NEXT_MECHANISM:
                break
        replies = [(name, r) for name, r in failures if isinstance(r, Reply)]
        summary = "; ".join(f"{name}: {r}" for name, r in failures)
        if not replies or isinstance(failures[-1][1], ServerNotProven):
            raise RemoteProtocolError(f"authentication failed: {summary}")
        last = failures[-1][1]
        if isinstance(last, Reply) and last.code not in _NEXT_MECHANISM:
            untried = [m.name for m in mechanisms[len(failures):]]
            rest = f"; not tried with the same credentials: {' '.join(untried)}" if untried else ""
            raise AuthenticationError(f"authentication refused ({summary}{rest})", replies)
        raise AuthenticationError(f"every mechanism failed ({summary})", replies)

    def _exchange(self, mech: Mechanism) -> Generator[Any, Any, Union[None, Reply, SASLFailure]]:
        """One SASL exchange: None on success, else the refusing Reply or
        the SASLFailure (the exchange then cancelled with "*", RFC 4954
        section 4). The trace shows AUTH data as ``***``; an error (a 421)
        carries ``AUTH <mechanism> ***`` as its command."""
        t = self.timeouts.command
        redacted = f"AUTH {mech.name} ***"
        initial = mech.start()
        line = f"AUTH {mech.name}"
        if initial is not None:
            line += " " + (base64.b64encode(initial).decode() or "=")   # "=": empty (RFC 4954 section 4)
        reply = yield from self._command(line, t, secret=redacted if initial else None)
        try:
            while reply.code == 334:
                text = reply.lines[0].strip()
                valid = True
                try:
                    challenge = base64.b64decode(text, validate=True)
                except (binascii.Error, ValueError):
                    valid = False
                if not valid:
                    raise SASLFailure("challenge is not base64")
                answer = base64.b64encode(mech.respond(challenge)).decode()
                reply = yield from self._command(answer, t, secret="***", command=redacted)
            if reply.code == 235:
                mech.finish()
                return None
            return reply
        except SASLFailure as exc:
            if reply.code == 334:
                yield from self._command("*", t)   # cancel; the reply (501) changes nothing
            return exc

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

    def _wire_form(self, message: MessageData, chunking: bool) -> MessageData:
        """The form of ``message`` this server can take. Binary parts need
        BINARYMIME with CHUNKING (RFC 3030 section 3) and 8-bit octets
        8BITMIME (RFC 6152 section 3); without them, the 7-bit form (binary
        parts as base64, 8-bit ones as quoted-printable or base64) -- never
        the same octets under the same label. NotSupported when a binary
        message has no 7-bit form."""
        ext = self.extensions
        if message.binary:
            if chunking and "BINARYMIME" in ext:
                return message
            seven = message.seven_bit()
            if seven.binary:
                raise NotSupported("the message has binary parts and no 7-bit form, and the server "
                                   "lacks BINARYMIME with CHUNKING (RFC 3030)")
            return seven
        if message.eightbit and "8BITMIME" not in ext:
            self._note("server lacks 8BITMIME: 8-bit parts re-encoded as quoted-printable/base64")
            return message.seven_bit()
        return message

    def deliver(self, env: Envelope, message: MessageData, options: Union["Delivery", bool] = False,
                quit: bool = False) -> Generator[Any, Any, list[Rejected]]:
        """One mail transaction. ``options`` is a :class:`Delivery` (or just
        ``atleastone``). With ``quit``, QUIT follows the message (pipelined
        when the server allows it) and the dialogue ends.

        Raises the SMTPError of the transaction, or MessageChanged (a
        UsageError) when the message's octets changed while being sent: the
        transaction is then left unfinished, and the connection must be
        closed (the server discards what it has, RFC 5321 section 4.1.1.4).
        """
        options = options if isinstance(options, Delivery) else Delivery(atleastone=bool(options))
        ext = self.extensions
        self._envelope = env
        self._atleastone = options.atleastone
        t = self.timeouts
        chunking = "CHUNKING" in ext
        self.stage = "mail"
        message = self._wire_form(message, chunking)
        size = message.size
        if ext.size is not None and size > ext.size:
            raise MessageTooBig(size, ext.size)
        mail = self._mail_command(env, message, options, chunking)
        rcpts = [self._rcpt_command(address, options) for address in env.recipients]
        pipelining = "PIPELINING" in ext
        last_write = b"QUIT\r\n" if pipelining and quit else b""
        self._event("mail", command=mail)
        data_reply: Optional[Reply] = None
        sent_last = False
        if pipelining:
            # RFC 2920: MAIL, every RCPT and DATA -- or BDAT with its data
            # (RFC 3030 section 4.2) -- in one write; the replies in order
            yield from self._send([mail] + rcpts, t.command, flush=False)
            if chunking:
                sent_last = options.atleastone
                data_cmd = f"BDAT {size} LAST" if sent_last else f"BDAT {size}"
                trailer = last_write if sent_last else b""
                self._log(">", data_cmd)
                self._data_note(message, size, trailer)
                prefix = self._pending + (data_cmd + "\r\n").encode()
                self._pending = b""
                yield from self._send_data(bdat_blocks(prefix, message.chunks(), trailer), size,
                                           t.data_block)
            else:
                data_cmd = "DATA"
                yield from self._send([data_cmd], t.command)
            try:
                replies = yield from self._read_group([mail] + rcpts + [data_cmd], t.command)
            except (TransportError, RemoteProtocolError) as exc:
                if sent_last:
                    raise DeliveryUncertain(f"no reply after the message was sent: {exc}") from exc
                raise
            mail_reply, rcpt_replies, data_reply = replies[0], replies[1:-1], replies[-1]
            self.stage = "mail"
            self._check_mail(mail_reply, mail)
        else:
            self._check_mail((yield from self._command(mail, t.command)), mail)
            rcpt_replies = []
            self.stage = "rcpt"
            for line in rcpts:
                rcpt_replies.append((yield from self._command(line, t.command)))
        self.stage = "rcpt"
        rejected = self._rejected(rcpt_replies)
        for address, reply in zip(env.recipients, rcpt_replies):
            self._event("rcpt", address=address, reply=reply)
        accepted = len(rcpt_replies) - len(rejected)
        refusal = self._refusal(accepted, rejected, rcpt_replies)
        if refusal is not None:
            if data_reply is None or data_reply.code != 354:
                # a BDAT chunk without LAST is discarded by RSET (RFC 3030 section 3)
                yield from self._quietly(["RSET"] + (["QUIT"] if quit else []))
            raise refusal   # with DATA accepted (354): dropped without "." -- the server discards it
        self.stage = "data"
        if sent_last:
            assert data_reply is not None
            final = data_reply
        elif chunking:
            if data_reply is None:
                self._log(">", f"BDAT {size} LAST")
                self._data_note(message, size, last_write)
                prefix = f"BDAT {size} LAST\r\n".encode()
                yield from self._send_data(bdat_blocks(prefix, message.chunks(), last_write), size,
                                           t.data_block)
            else:
                self._check_reply(data_reply, "BDAT", "message data refused")
                self._log(">", "BDAT 0 LAST")
                if last_write:
                    self._log(">", "QUIT")
                yield Send(b"BDAT 0 LAST\r\n" + last_write, t.command)
            final = yield from self._final_reply(t.final)
        else:
            if data_reply is None:
                data_reply = yield from self._command("DATA", t.data_start)
            if data_reply.code != 354:
                self._check_reply(data_reply, "DATA", "DATA refused")
                raise RemoteProtocolError(f"unexpected reply to DATA: {data_reply}")
            self._data_note(message, size, last_write, dot=True)
            yield from self._send_data(data_blocks(message.chunks(), last_write), size, t.data_block)
            final = yield from self._final_reply(t.final)
        self._check_reply(final, "DATA", "message refused")
        if last_write:
            self.stage = "quit"
            yield from self._goodbye(t.command)
        self._event("accepted", reply=final, size=size)
        if quit and not last_write:
            yield from self.quit()
        return rejected if options.atleastone else []

    def deliver_many(self, batch: list[tuple[Envelope, MessageData]], options: "Delivery",
                     window: int = 16) -> Generator[Any, Any, list[Any]]:
        """Many transactions back to back, for bulk sending.

        With PIPELINING, CHUNKING and ``options.atleastone``, each message
        goes as MAIL, its RCPTs and ``BDAT n LAST`` with the data, without
        waiting (RFC 2920: BDAT does not end a command group; RFC 3030), up
        to ``window`` messages ahead of the replies. Otherwise the messages
        go one transaction at a time. Returns one outcome per ``(envelope,
        message)`` in ``batch``: the rejected list, or the error that
        message met (an SMTPError, or MessageChanged). A lost connection
        makes every message whose data was sent but not answered
        DeliveryUncertain, and the rest unsent (TransportError) -- as does a
        message that changed while being sent, after which the connection
        must be closed.
        """
        ext = self.extensions
        outcomes: list[Any] = [None] * len(batch)
        if not (options.atleastone and "PIPELINING" in ext and "CHUNKING" in ext):
            for n, (env, message) in enumerate(batch):
                try:
                    outcomes[n] = yield from self.deliver(env, message, options)
                except (TransportError, RemoteProtocolError, DeliveryUncertain, MessageChanged) as exc:
                    outcomes[n] = exc
                    self._unsent(outcomes, n + 1, "the connection was lost before it")
                    return outcomes
                except SMTPError as exc:
                    outcomes[n] = exc
            return outcomes
        t = self.timeouts
        self._atleastone = True
        pending: list[tuple[int, Envelope, list[str]]] = []
        next_index = 0
        while next_index < len(batch) or pending:
            while next_index < len(batch) and len(pending) < window:
                n = next_index
                next_index += 1
                env, message = batch[n]
                self._envelope = env
                try:
                    message = self._wire_form(message, True)
                    if ext.size is not None and message.size > ext.size:
                        raise MessageTooBig(message.size, ext.size)
                    lines = [self._mail_command(env, message, options, True)]
                    lines += [self._rcpt_command(address, options) for address in env.recipients]
                except SMTPError as exc:
                    outcomes[n] = exc
                    continue
                lines.append(f"BDAT {message.size} LAST")
                for line in lines:
                    if any(c in line for c in "\r\n\0"):
                        raise UsageError(f"CR, LF or NUL in an SMTP command: {line!r}")
                    self._log(">", line)
                self._data_note(message, message.size, b"")
                prefix = "".join(line + "\r\n" for line in lines).encode("utf-8")
                try:
                    yield from self._send_data(bdat_blocks(prefix, message.chunks()), message.size,
                                               t.data_block)
                except (TransportError, RemoteProtocolError) as exc:
                    self._lost(outcomes, pending, n, exc)
                    return outcomes
                except MessageChanged as exc:
                    # the server waits for the rest of this BDAT: take the
                    # answers to the messages before it, then give up
                    outcomes[n] = exc
                    yield from self._settle(outcomes, pending, n + 1)
                    return outcomes
                pending.append((n, env, lines))
            if not pending:
                continue
            n, env, lines = pending[0]
            try:
                outcomes[n] = yield from self._collect(env, lines)
            except (TransportError, RemoteProtocolError) as exc:
                self._lost(outcomes, pending, next_index, exc)
                return outcomes
            pending.pop(0)
            if self._closing(outcomes, n, pending, next_index):
                return outcomes
        return outcomes

    def _collect(self, env: Envelope, lines: list[str]) -> Generator[Any, Any, Any]:
        """The outcome of one pipelined MAIL, RCPT..., BDAT LAST group from
        its replies (a 421 among them: that ServerUnavailable). Raises
        TransportError or RemoteProtocolError when they do not come."""
        self._envelope = env
        try:
            replies = yield from self._read_group(lines, self.timeouts.final)
        except ServerUnavailable as exc:   # a 421: the server is closing
            return exc
        return self._batch_outcome(env, replies)

    def _closing(self, outcomes: list[Any], n: int, pending: list[tuple[int, Envelope, list[str]]],
                 first_unsent: int) -> bool:
        """After a 421 as message ``n``'s outcome, the pending and unsent
        messages get the same; True when that happened."""
        closing = outcomes[n]
        if not (isinstance(closing, ServerUnavailable) and closing.reply.code == 421):
            return False
        for m, _, _ in pending:
            outcomes[m] = ServerUnavailable("server closed the connection", closing.reply)
        pending.clear()
        for m in range(first_unsent, len(outcomes)):
            if outcomes[m] is None:
                outcomes[m] = ServerUnavailable("not sent: the server closed the connection", closing.reply)
        return True

    def _settle(self, outcomes: list[Any], pending: list[tuple[int, Envelope, list[str]]],
                first_unsent: int) -> Generator[Any, Any, None]:
        """Collect the outcome of every pending transaction, then mark the
        messages from ``first_unsent`` on as not sent: the connection is
        being given up."""
        while pending:
            n, env, lines = pending[0]
            try:
                outcomes[n] = yield from self._collect(env, lines)
            except (TransportError, RemoteProtocolError) as exc:
                self._lost(outcomes, pending, first_unsent, exc)
                return
            pending.pop(0)
            if self._closing(outcomes, n, pending, first_unsent):
                return
        self._unsent(outcomes, first_unsent, "the connection was given up before it")

    def _unsent(self, outcomes: list[Any], first: int, why: str) -> None:
        for m in range(first, len(outcomes)):
            if outcomes[m] is None:
                outcomes[m] = TransportError(f"not sent: {why}")

    def _lost(self, outcomes: list[Any], pending: list[tuple[int, Envelope, list[str]]],
              first_unsent: int, exc: BaseException) -> None:
        """The connection was lost: the pending messages (data sent, no
        reply) are DeliveryUncertain, the unsent ones TransportError."""
        for m, _, _ in pending:
            outcomes[m] = DeliveryUncertain(f"no reply after the message data was sent: {exc}")
        for m in range(first_unsent, len(outcomes)):
            if outcomes[m] is None:
                outcomes[m] = TransportError(f"not sent: {exc}")

    def _batch_outcome(self, env: Envelope, replies: list[Reply]) -> Union[list[Rejected], SMTPError]:
        """The outcome of one pipelined BDAT LAST transaction."""
        mail_reply, rcpt_replies, final = replies[0], replies[1:-1], replies[-1]
        try:
            self._check_mail(mail_reply, "MAIL")
            rejected = self._rejected(rcpt_replies)
            for address, reply in zip(env.recipients, rcpt_replies):
                self._event("rcpt", address=address, reply=reply)
            if len(rejected) == len(rcpt_replies):
                refusal = self._refusal(0, rejected, rcpt_replies)
                if refusal is not None:
                    raise refusal
            self._check_reply(final, "BDAT", "message refused")
        except SMTPError as exc:
            return exc
        self._event("accepted", reply=final, size=None)
        return rejected

    def _read_group(self, commands: list[str], timeout: float) -> Generator[Any, Any, list[Reply]]:
        """The replies to a pipelined group of ``commands``, each checked
        against its command in order (RFC 2920 section 3.1).

        A 421 ends the group -- the server is closing (RFC 5321 section
        3.8) -- and is the error, ServerUnavailable, even when the
        connection closed (or went silent) before the rest: the replies that
        arrived before are read back from what the driver holds (a Read
        with no time to wait returns them, and fails at once after). A
        reply that cannot answer its command (an unsolicited reply put the
        server out of step) is a RemoteProtocolError, never taken for
        another command's answer."""
        try:
            replies = yield from self._read(len(commands), timeout)
        except TransportError:
            arrived: list[Reply] = []
            while len(arrived) < len(commands):
                try:
                    arrived += yield from self._read(1, 0.0)
                except SMTPError:
                    break
            self._check_group(commands, arrived)
            raise
        self._check_group(commands, replies)
        return replies

    def _check_group(self, commands: list[str], replies: list[Reply]) -> None:
        for line, reply in zip(commands, replies):
            verb = line[:4]   # MAIL, RCPT, DATA or BDAT
            self.stage = _STAGES[verb]
            if reply.code == 421:
                raise ServerUnavailable("server is closing the connection", reply, verb)
            if not _answers(verb, reply):
                raise RemoteProtocolError(f"reply {reply} cannot answer {verb}: the server's replies "
                                          "are out of step with the commands")

    def _final_reply(self, timeout: float) -> Generator[Any, Any, Reply]:
        # From here on the server may hold the message: never try another server.
        try:
            [final] = yield from self._read(1, timeout)
        except (TransportError, RemoteProtocolError) as exc:
            raise DeliveryUncertain(f"no reply after the message data was sent: {exc}") from exc
        if not _answers("BDAT", final):
            problem = RemoteProtocolError(f"reply {final} cannot answer the message data: the server's "
                                          "replies are out of step with the commands")
            raise DeliveryUncertain(f"no reply to the message data: {problem}") from problem
        return final

    def _goodbye(self, timeout: float) -> Generator[Any, Any, None]:
        """Read the reply to a QUIT pipelined after the data. A lost one
        changes nothing (delivered). Any other reply than 221 (or 421) means
        the replies were out of step -- an unsolicited one earlier -- so the
        one taken for the message's may have been another's:
        DeliveryUncertain."""
        try:
            [bye] = yield from self._read(1, timeout)
        except SMTPError:
            return   # delivered; a lost goodbye changes nothing
        if bye.code not in (221, 421):
            problem = RemoteProtocolError(f"reply {bye} to QUIT: the server's replies are out of step "
                                          "with the commands")
            raise DeliveryUncertain(f"whether the message was accepted is unknown: {problem}") from problem

    def _data_note(self, message: MessageData, size: int, last_write: bytes, dot: bool = False) -> None:
        if self._monitor_headers:
            for line in message.head.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
                self._log(">", line.decode("utf-8", "replace"))
        self._log(">", f"[message data: {size} octets]")
        if dot:
            self._log(">", ".")
        if last_write:
            self._log(">", "QUIT")
        self._event("data", size=size)

    def _send_data(self, blocks: Iterable[bytes], total: int, timeout: float) -> Generator[Any, Any, None]:
        """Write the message data, one Send per block, and tell the progress
        hook. MessageChanged from the blocks (MessageData.chunks) stops the
        data short of its end -- no terminating ".", fewer octets than the
        BDAT size -- and propagates."""
        sent = 0
        try:
            for block in blocks:
                yield Send(block, timeout)
                if self._progress_hook is not None:
                    sent = min(total, sent + len(block))
                    self._progress_hook(sent, total)
        except MessageChanged:
            self._note("the message changed while it was being sent: transaction left unfinished")
            raise

    def _mail_command(self, env: Envelope, message: MessageData, options: "Delivery",
                      chunking: bool) -> str:
        ext = self.extensions
        sender, utf8 = self._path(env.originator)
        needs_utf8 = utf8 or any(self._path(r)[1] for r in env.recipients)
        if needs_utf8 and "SMTPUTF8" not in ext:
            raise NotSupported("a non-ASCII address needs SMTPUTF8, which this server lacks")
        params = []
        if "SIZE" in ext:
            params.append(f"SIZE={message.size}")
        if message.binary and chunking and "BINARYMIME" in ext:
            params.append("BODY=BINARYMIME")
        elif message.eightbit and "8BITMIME" in ext:
            params.append("BODY=8BITMIME")
        if "SMTPUTF8" in ext and (needs_utf8 or message.header_utf8):
            params.append("SMTPUTF8")
        if options.wants_dsn:
            if "DSN" in ext:
                if options.ret:
                    params.append(f"RET={options.ret}")
                if options.envid:
                    params.append(f"ENVID={xtext(options.envid)}")
            elif options.require_dsn:
                raise NotSupported("DSN was required but the server does not offer it (RFC 3461)")
            else:
                self._note("server lacks DSN: RET, ENVID, NOTIFY and ORCPT left out")
        if options.deliverby is not None:
            if "DELIVERBY" not in ext:
                raise NotSupported("DELIVERBY was asked for but the server does not offer it (RFC 2852)")
            params.append(f"BY={options.deliverby}")
        if options.priority is not None:
            if "MT-PRIORITY" in ext:
                params.append(f"MT-PRIORITY={options.priority}")
            else:
                self._note("server lacks MT-PRIORITY: priority left out")
        if options.requiretls:
            # RFC 8689 section 4.1: only over TLS, only to a server that offers it
            if self.tls is None or "REQUIRETLS" not in ext:
                raise NotSupported("REQUIRETLS needs a TLS connection to a server that offers it")
            params.append("REQUIRETLS")
        if options.mail_auth is not None and "AUTH" in ext:
            params.append("AUTH=" + ("<>" if options.mail_auth in ("", "<>") else xtext(options.mail_auth)))
        return f"MAIL FROM:<{sender}>" + "".join(" " + p for p in params)

    def _rcpt_command(self, address: str, options: "Delivery") -> str:
        path, _ = self._path(address)
        line = f"RCPT TO:<{path}>"
        if options.wants_dsn and "DSN" in self.extensions:
            notify = options.notify_for(address)
            if notify:
                line += f" NOTIFY={notify}"
            orcpt = options.orcpt_for(address)
            if orcpt:
                line += f" ORCPT=rfc822;{xtext(orcpt)}"
        return line

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

    def _quietly(self, commands: list[str]) -> Generator[Any, Any, None]:
        """Send ``commands`` one by one, stopping quietly at the first failure."""
        for line in commands:
            try:
                yield from self._command(line, self.timeouts.command)
            except SMTPError:
                return


_STAGES = {"MAIL": "mail", "RCPT": "rcpt", "DATA": "data", "BDAT": "data"}


def _answers(verb: str, reply: Reply) -> bool:
    """Whether ``reply`` can be the answer to ``verb`` (BDAT also stands for
    the final "."). A 2xx to DATA, a 3xx to anything but DATA, or a positive
    reply to the message data with an address status (RFC 3463 section
    3.2: X.1.Y answers MAIL or RCPT) is another command's reply."""
    kind = reply.code // 100
    if kind in (4, 5):
        return True
    if verb in ("MAIL", "RCPT"):
        return kind == 2
    if reply.status is not None and reply.status.subject == 1:
        return False
    if verb == "DATA":
        return reply.code == 354
    return kind == 2
