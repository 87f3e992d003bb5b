"""A POP3 client (RFC 1939, with CAPA/STLS/AUTH of RFC 2449, 2595, 5034):
the maildrop half of the system -- check that a message arrived, drain a
mailbox from a script.

::

    from smtpsend import pop3

    with pop3.connect("mail.example.com") as box:     # STLS when offered
        box.login("alice", "secret")                   # or from ~/.netrc
        count, size = box.stat()
        for n in box.list():
            message = box.retr(n)                      # a mimecompose Part
            box.dele(n)
    # QUIT on a clean exit commits the deletions; after an error the
    # connection is just closed and the server keeps every message.

Errors::

    ValueError
     └── UsageError                bad input from the caller (CR/LF/NUL in an argument)
    Exception
     ├── POP3Error                 what the POP3 server answered (not an SMTPError)
     │    ├── ErrResponse          -ERR to a command (.text, .command)
     │    └── AuthenticationFailed every login method failed (.errors)
     └── SMTPError                 smtpsend's network errors, shared by both protocols:
          ├── TLSRequired          TLS required (policy, credentials) and not to be had
          ├── RemoteProtocolError  a malformed, over-long or endless response
          └── TransportError       + ConnectionError: connect failed, connection lost
               ├── Timeout         + TimeoutError: no complete response in time
               └── TLSError        the TLS handshake or certificate check failed

The connection's failures are the transport errors every client of the
package raises (mapped in one place, smtpsend._sockets.transport_errors):
``except ConnectionError`` or ``except smtpsend.TransportError`` covers a lost
connection for SMTP and POP3 alike. To catch everything a POP3 session
can raise from the network: ``except (pop3.POP3Error, smtpsend.SMTPError)``.

Logging: the conversation goes to the ``smtpsend`` logger at DEBUG
(``C:`` sent, ``S:`` received, ``*:`` notes; passwords, digests and SASL
data as ``***``); ``logfile=`` appends the same lines to a file.

Bounds: every response must arrive completely within ``timeout`` seconds
of its command (one deadline per response, not per line); a line may be
at most ``max_line`` octets; a response read into memory may hold at most
``max_octets`` octets of memory. A read that fails part-way closes the
connection, since what follows could not be told from the next response.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import netrc
import os
import socket
import ssl
from contextlib import contextmanager
from types import TracebackType
from typing import IO, Callable, Iterator, Literal, Optional, TypeVar, Union, overload

import mimecompose

from ._data import unstuff
from ._deprecated import keyword_only, warn
from ._driver import Deadline, usable_seconds
from ._errors import RemoteProtocolError, SMTPError, TLSRequired, TransportError, UsageError
from ._options import port_number
from ._sasl import (Begin, Cancel, Challenge, Final, Note, Outcome, SASLFailure, Step, TokenArg, TokenFailure,
                    authenticate, choose, run)
from ._secret import Secret
from ._sockets import transport_errors

__all__ = ["AuthenticationFailed", "ErrResponse", "POP3", "POP3Error", "connect"]

MAX_LINE = 65536         # octets per response line, line break included (RFC 1939 allows 512 for status lines)
MAX_OCTETS = 256 << 20   # memory a response read into memory may take
ENTRY_COST = 128         # memory charged per LIST/UIDL/CAPA entry (dict slot, key, value) against max_octets
CRLF = b"\r\n"

Policy = Union[None, str, Callable[[int, str], str]]
Credential = Union[str, Secret]
T = TypeVar("T")
E = TypeVar("E", bound=Exception)

logger = logging.getLogger("smtpsend")


class POP3Error(Exception):
    """Base of the errors that say what a POP3 server answered. Not an
    SMTPError: a POP3 -ERR is not an SMTP failure. The connection's own
    failures are smtpsend's shared TransportError, Timeout, TLSError (see
    the module docstring)."""


class ErrResponse(POP3Error):
    """The server answered ``command`` with -ERR ``text``."""

    def __init__(self, text: str, command: str) -> None:
        super().__init__(f"-ERR {text} (to {command})")
        self.text = text
        self.command = command


class AuthenticationFailed(POP3Error):
    """Every login method tried failed; ``errors`` lists (method, error)."""

    def __init__(self, errors: list[tuple[str, Exception]]) -> None:
        super().__init__("login failed: " + "; ".join(f"{m}: {e}" for m, e in errors))
        self.errors = errors


def _check_field(name: str, value: str) -> None:
    """Raise UsageError naming ``name`` -- never showing the value, which
    may be a password -- when ``value`` cannot go into a command line: CR,
    LF or NUL (command injection), or text that is not valid Unicode (a
    lone surrogate from os.environ or argv)."""
    if not isinstance(value, str):
        raise TypeError(f"the {name} must be a str, not {type(value).__name__}")
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"the {name} contains CR, LF or NUL")
    try:
        value.encode("utf-8")
        valid = True
    except UnicodeEncodeError:
        valid = False
    if not valid:   # raised here, outside the handler: no __context__ holding the value
        raise UsageError(f"the {name} is not valid Unicode text (it holds a lone surrogate)")


class POP3:
    """An open POP3 connection. Use :func:`connect`."""

    def __init__(self, sock: socket.socket, host: str, *, timeout: float,
                 ssl_context: Optional[ssl.SSLContext], logfile: Optional[str],
                 debug: Union[bool, Callable[[str], None]] = False) -> None:
        self._sock = sock
        self.host = host
        self.timeout = timeout
        self._context = ssl_context
        self._handler: Optional[logging.Handler] = None
        self._debug = debug
        if logfile:
            self._handler = logging.FileHandler(logfile, mode="a", encoding="utf-8", delay=True)
            self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._buffer = bytearray()
        self.tls = isinstance(sock, ssl.SSLSocket)
        self._cleartext_allowed = False
        self.greeting = ""
        self.timestamp: Optional[str] = None
        self.max_line = MAX_LINE
        self.max_octets = MAX_OCTETS
        self._mechanism = ""   # the SASL mechanism being tried (for errors)
        self._deadline = Deadline(timeout, "no greeting")

    # ------------------------------------------------------------ wire

    def _log(self, line: str) -> None:
        """One (already redacted) transcript line: to the smtpsend logger at
        DEBUG when it is enabled for DEBUG (or always with ``debug=True``),
        to the ``logfile`` handler (whatever the logger's level: the file
        was asked for), and -- protocol lines only, not ``*:`` notes -- to
        a ``debug`` callable, as sendmessage's debug= does."""
        if callable(self._debug) and not line.startswith("*: "):
            self._debug(line)
        to_logger = logger.isEnabledFor(logging.DEBUG) or (self._debug is True and not logger.disabled)
        if not (to_logger or self._handler):
            return
        record = logger.makeRecord(logger.name, logging.DEBUG, __file__, 0, "%s", (line,), None)
        if to_logger:
            logger.handle(record)
        if self._handler is not None:
            self._handler.handle(record)

    def _broken(self, exc: E) -> E:
        """Close the connection after a read that cannot be finished (the
        rest of that response would be taken for the next one); return exc
        (marked as POP3's, see _pop3)."""
        self.close()
        return _pop3(exc)

    def _readline(self) -> bytes:
        """The next line of the current response, its line break included.
        Raises Timeout when the response's deadline (set when its command
        was sent) passes, RemoteProtocolError for a line over ``max_line``
        octets, TransportError when the connection ends; each closes the
        connection."""
        scanned = 0
        while True:
            eol = self._buffer.find(b"\n", scanned)
            if eol != -1:
                if eol + 1 > self.max_line:
                    raise self._broken(RemoteProtocolError(f"line longer than {self.max_line} octets"))
                line = bytes(self._buffer[:eol + 1])
                del self._buffer[:eol + 1]
                return line
            if len(self._buffer) >= self.max_line:   # no line break yet: the line can only be longer
                raise self._broken(RemoteProtocolError(f"line longer than {self.max_line} octets"))
            scanned = len(self._buffer)
            try:
                with transport_errors("read", timeout=self.timeout, deadline=self._deadline):
                    self._sock.settimeout(self._deadline.remaining())
                    data = self._sock.recv(65536)
            except SMTPError as exc:   # Timeout (the deadline's), TransportError
                raise self._broken(exc)
            if not data:
                raise self._broken(TransportError("connection closed by the server"))
            self._buffer += data

    def _send(self, line: str, shown: Optional[str] = None, timeout: Optional[float] = None) -> None:
        """Send one command line and start the deadline for its response
        (``timeout``, default the connection's). ``shown`` replaces the
        line in the log and in errors (it hides a secret)."""
        verb = (shown or line).split(" ", 1)[0]
        if timeout is not None and not usable_seconds(timeout):   # checked before anything is sent
            raise UsageError(f"timeout= must be a positive number of seconds, not {timeout!r}")
        if any(c in line for c in "\r\n\0"):
            raise UsageError(f"CR, LF or NUL in a POP3 {verb} command")
        data: Optional[bytes]
        try:
            data = line.encode("utf-8") + CRLF
        except UnicodeEncodeError:
            data = None
        if data is None:   # raised outside the handler: no __context__ holding the line
            raise UsageError(f"a POP3 {verb} command that is not valid Unicode text")
        self._log("C: " + (shown if shown is not None else line))
        with _pop3_errors(), transport_errors("send", timeout=self.timeout):
            self._sock.settimeout(self.timeout)
            self._sock.sendall(data)
        seconds = self.timeout if timeout is None else timeout
        self._deadline = Deadline(seconds, "no complete response")

    def _status(self, command: str) -> str:
        """Read one status line: the text after +OK, or raise ErrResponse."""
        line = self._readline().rstrip(b"\r\n").decode("utf-8", "replace")
        self._log("S: " + line)
        if line.startswith("+OK"):
            return line[3:].strip()
        if line.startswith("-ERR"):
            raise ErrResponse(line[4:].strip(), command)
        if line.startswith("+ ") or line == "+":
            return "\0" + line[2:]   # a SASL continuation (RFC 5034)
        raise self._broken(RemoteProtocolError(f"malformed POP3 response {line[:80]!r}"))

    def _command(self, line: str, shown: Optional[str] = None, timeout: Optional[float] = None) -> str:
        self._send(line, shown, timeout)
        return self._status((shown or line).split(" ", 1)[0])

    def _body(self, sink: Callable[[bytes], None]) -> None:
        """Read a multi-line body up to its "." line (RFC 1939 section 3),
        giving each line, un-dot-stuffed and with its line break, to
        ``sink``. Whatever stops it part-way (a sink's error included)
        closes the connection."""
        try:
            while True:
                line = self._readline()
                if line in (b".\r\n", b".\n"):
                    return
                sink(unstuff(line))
        except BaseException:
            self.close()
            raise

    def _too_long(self) -> RemoteProtocolError:
        return _pop3(RemoteProtocolError(f"response longer than {self.max_octets} octets; "
                                         "use retr_to(n, fileobj) for large messages"))

    def _collect(self) -> bytes:
        """The whole multi-line body as bytes, held in one buffer: more than
        ``max_octets`` is a RemoteProtocolError (an endless response cannot
        exhaust memory)."""
        out = io.BytesIO()   # getvalue() shares its buffer: memory held = octets received

        def sink(line: bytes) -> None:
            if out.tell() + len(line) > self.max_octets:
                raise self._too_long()
            out.write(line)

        self._body(sink)
        return out.getvalue()

    def _entries(self, parse: Callable[[bytes], None]) -> None:
        """Feed each line of a multi-line listing to ``parse``, charging
        ENTRY_COST octets of memory per line against ``max_octets``: a
        listing of millions of tiny lines is capped by what it costs."""
        held = 0

        def sink(line: bytes) -> None:
            nonlocal held
            held += len(line) + ENTRY_COST
            if held > self.max_octets:
                raise self._too_long()
            parse(line)

        self._body(sink)

    # ------------------------------------------------------------ session

    def _greet(self) -> None:
        self.greeting = self._status("greeting")
        start, end = self.greeting.find("<"), self.greeting.rfind(">")
        if 0 <= start < end:
            self.timestamp = self.greeting[start:end + 1]   # APOP (RFC 1939 section 7)

    def capa(self) -> dict[str, list[str]]:
        """CAPA (RFC 2449): capability -> arguments; {} if the server lacks CAPA."""
        try:
            self._command("CAPA")
        except ErrResponse:
            return {}
        caps: dict[str, list[str]] = {}

        def parse(line: bytes) -> None:
            words = line.decode("utf-8", "replace").split()
            if words:
                caps[words[0].upper()] = words[1:]

        self._entries(parse)
        return caps

    def stls(self, policy: Policy = None) -> None:
        """Upgrade with STLS (RFC 2595) when offered; see connect() for ``policy``."""
        if self.tls:
            return
        if "STLS" not in self.capa():
            if _ask(policy, 0, "STLS not offered") == "secure":
                raise _pop3(TLSRequired("TLS required but the server does not offer STLS"))
            self._cleartext_allowed = policy is not None   # "insecure", or a callable that said so
            return
        try:
            self._command("STLS")
        except ErrResponse as exc:
            if _ask(policy, -1, exc.text) == "secure":
                raise _pop3(TLSRequired(f"STLS refused: {exc.text}")) from exc
            self._cleartext_allowed = policy is not None
            return
        self._buffer.clear()   # RFC 2595 section 4 / RFC 3207 4.2: discard what came before TLS
        context = self._context or ssl.create_default_context()
        with _pop3_errors(), transport_errors("handshake", timeout=self.timeout):
            self._sock.settimeout(self.timeout)
            self._sock = context.wrap_socket(self._sock, server_hostname=self.host)
        self.tls = True
        self._log("*: TLS established")

    def _require_protection(self) -> None:
        """No credentials of any kind -- a password, an APOP or CRAM-MD5
        digest, a SASL exchange, a token -- travel in plaintext unless
        the caller said tlspolicy="insecure" (or its callable did), as on
        the SMTP side: a digest over a challenge a man in the middle chose
        (after stripping STLS) is open to an offline dictionary attack.
        Raises TLSRequired before anything is sent."""
        if not (self.tls or self._cleartext_allowed):
            raise _pop3(TLSRequired("credentials are never sent without TLS (the server did not offer STLS) "
                                    "unless tlspolicy says 'insecure'"))

    def _credentials(self, user: Optional[str], password: Optional[Credential]) -> tuple[str, Secret]:
        """The user name and password given, else those of ~/.netrc for the
        host; the password as a Secret from here on."""
        if user is not None and password is not None:
            return user, _secret(password)
        try:
            found = netrc.netrc().authenticators(self.host)
        except (FileNotFoundError, netrc.NetrcParseError, OSError):
            found = None
        if not found or found[2] is None:
            raise UsageError(f"no credentials given and none in ~/.netrc for {self.host}")
        return user or found[0], _secret(password if password is not None else found[2])

    def login(self, user: Optional[str] = None, password: Optional[Credential] = None) -> str:
        """Log in: USER/PASS, then APOP when the greeting carried a
        timestamp and USER/PASS failed (the seed's order). Credentials come
        from the arguments, else ~/.netrc. Without TLS nothing is sent
        (TLSRequired) unless the connection was opened with
        tlspolicy="insecure". Raises UsageError for a user name or password
        that cannot be sent (naming which, never showing it), and
        AuthenticationFailed with what each method answered."""
        user, secret = self._credentials(user, password)
        del password   # held as a Secret only: a traceback's locals show ***
        _check_field("user name", user)
        _check_field("password", secret.reveal())
        self._require_protection()
        errors: list[tuple[str, Exception]] = []
        try:
            self._command(f"USER {user}")
            return self._command(f"PASS {secret.reveal()}", "PASS ***")
        except ErrResponse as exc:
            errors.append(("USER/PASS", exc))
        if self.timestamp:
            try:
                return self.apop(user, secret)
            except ErrResponse as exc:
                errors.append(("APOP", exc))
        raise AuthenticationFailed(errors)

    def apop(self, user: str, password: Credential) -> str:
        """APOP (RFC 1939 section 7): MD5 of the greeting's timestamp and
        the password (a str or a Secret). Like every login, only over TLS or
        with tlspolicy="insecure" (TLSRequired otherwise)."""
        if not self.timestamp:
            raise UsageError("the server's greeting has no timestamp: APOP is not available")
        secret = _secret(password)
        del password
        _check_field("user name", user)
        _check_field("password", secret.reveal())
        self._require_protection()
        digest = hashlib.md5((self.timestamp + secret.reveal()).encode("utf-8")).hexdigest()
        return self._command(f"APOP {user} {digest}", f"APOP {user} ***")

    @keyword_only("token", "mechanism", leading=3)
    def auth(self, user: str, password: Optional[Credential] = None, *, token: TokenArg = None,
             mechanism: Optional[str] = None) -> str:
        """SASL AUTH (RFC 5034) with smtpsend's mechanisms, strongest first
        among those the server lists in CAPA SASL (or ``mechanism``): the
        login loop SMTP uses (smtpsend._sasl.authenticate), with POP3's
        framing. Only over TLS or with tlspolicy="insecure" (TLSRequired
        otherwise). The mechanisms hold the password and token as Secret;
        they refuse credentials that cannot be sent with UsageError
        (smtpsend._sasl.check_credentials). ``token`` may be a callable
        ``token(user, refresh)``, asked once per call and once more after
        the server rejected its token as invalid. The next mechanism is
        tried after a mechanism's failure, not after ``-ERR [AUTH]`` (RFC
        3206 section 4: the credentials were refused) nor after a server
        that failed to prove itself. AuthenticationFailed lists each
        mechanism's -ERR or SASLFailure; a failed token callable is an
        AuthenticationFailed too, its exception the cause. Returns the
        server's +OK text. ``token`` and ``mechanism`` are keyword-only (given
        positionally they still work, deprecated)."""
        self._require_protection()
        offered = [mechanism] if mechanism else self.capa().get("SASL", [])
        mechanisms = choose(offered, user, password, token, self.host, None)
        if not mechanisms:
            raise UsageError(f"no usable SASL mechanism among {offered}")
        outcome: Outcome[Union[str, ErrResponse]] = Outcome()
        try:
            run(authenticate(mechanisms, _next_mechanism, outcome), self._sasl_step)
        except TokenFailure as exc:
            raise AuthenticationFailed([*_errors(outcome), ("token", exc)]) from exc.__cause__
        if outcome.mechanism is None:
            raise AuthenticationFailed(_errors(outcome))
        return str(outcome.answer)

    def _sasl_step(self, step: Step) -> Union[None, Challenge, Final[Union[str, ErrResponse]]]:
        """One step of a SASL exchange over POP3 (RFC 5034 section 4):
        ``AUTH <mechanism> [initial response]`` ("=" for an empty one), each
        response a base64 line, "*" to cancel; a "+ " continuation is a
        challenge, +OK success, -ERR a refusal. The log shows ``AUTH
        <mechanism> ***`` and ``***`` for every response."""
        if isinstance(step, Note):
            self._log("*: " + step.text)
            return None
        if isinstance(step, Cancel):
            self._send("*")
            try:
                self._status("AUTH")
            except ErrResponse:
                pass
            return None
        try:
            if isinstance(step, Begin):
                self._mechanism = step.mechanism
                line = f"AUTH {step.mechanism}"
                if step.initial is not None:
                    line += " " + (base64.b64encode(step.initial).decode() or "=")
                text = self._command(line, f"AUTH {step.mechanism} ***")
            else:
                self._send(base64.b64encode(step.data).decode(), "***")
                text = self._status(f"AUTH {self._mechanism}")
        except ErrResponse as exc:
            return Final(False, exc)
        if text.startswith("\0"):
            return Challenge(text[1:])
        return Final(True, text)

    # ------------------------------------------------------------ mailbox

    def stat(self) -> tuple[int, int]:
        """(number of messages, total octets)."""
        parts = self._command("STAT").split()
        try:
            return int(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            raise _pop3(RemoteProtocolError(f"malformed STAT response {parts!r}")) from None

    def _listing(self, command: str, n: Optional[int],
                 convert: Callable[[str], T]) -> Union[T, dict[int, T]]:
        if n is not None:
            words = self._command(f"{command} {int(n)}").split()
            if len(words) < 2:
                raise _pop3(RemoteProtocolError(f"malformed {command} response {words!r}"))
            return convert(words[1])
        self._command(command)
        out: dict[int, T] = {}

        def parse(line: bytes) -> None:
            words = line.split()
            if len(words) >= 2:
                try:
                    out[int(words[0])] = convert(words[1].decode("utf-8", "replace"))
                except ValueError:
                    raise _pop3(RemoteProtocolError(f"malformed {command} line {line[:80]!r}")) from None

        self._entries(parse)
        return out

    @overload
    def list(self) -> dict[int, int]: ...
    @overload
    def list(self, n: int) -> int: ...

    def list(self, n: Optional[int] = None) -> Union[int, dict[int, int]]:
        """Sizes: {number: octets}, or one size with ``n``."""
        return self._listing("LIST", n, int)

    @overload
    def uidl(self) -> dict[int, str]: ...
    @overload
    def uidl(self, n: int) -> str: ...

    def uidl(self, n: Optional[int] = None) -> Union[str, dict[int, str]]:
        """Unique ids: {number: uid}, or one uid with ``n``. ErrResponse
        when the server has no UIDL."""
        return self._listing("UIDL", n, str)

    @overload
    def retr(self, n: int, fileobj: None = None, raw: Literal[False] = False, *,
             timeout: Optional[float] = None) -> mimecompose.Part: ...
    @overload
    def retr(self, n: int, fileobj: None = None, *, raw: Literal[True],
             timeout: Optional[float] = None) -> bytes: ...
    @overload
    def retr(self, n: int, fileobj: IO[bytes], raw: bool = False, *,
             timeout: Optional[float] = None) -> int: ...

    def retr(self, n: int, fileobj: Optional[IO[bytes]] = None, raw: bool = False, *,
             timeout: Optional[float] = None) -> Union[mimecompose.Part, bytes, int]:
        """Retrieve message ``n`` as a mimecompose Part. The whole message
        must arrive within ``timeout`` seconds (default: the connection's),
        else Timeout; more than ``max_octets`` is a RemoteProtocolError (use
        :meth:`retr_to` for messages that large).

        Deprecated forms (a DeprecationWarning; they go in the next
        release): ``retr(n, raw=True)`` is :meth:`retr_bytes`,
        ``retr(n, fileobj)`` is :meth:`retr_to`."""
        if fileobj is not None:
            warn("POP3.retr(n, fileobj) is deprecated: use retr_to(n, fileobj)")
            return self.retr_to(n, fileobj, timeout=timeout)
        if raw:
            warn("POP3.retr(n, raw=True) is deprecated: use retr_bytes(n)")
            return self.retr_bytes(n, timeout=timeout)
        return mimecompose.initialize(string=self.retr_bytes(n, timeout=timeout))

    def retr_bytes(self, n: int, *, timeout: Optional[float] = None) -> bytes:
        """Message ``n`` as bytes (un-dot-stuffed, as the server holds it),
        held in memory: more than ``max_octets`` is a RemoteProtocolError.
        The whole message within ``timeout`` seconds (as for retr)."""
        self._command(f"RETR {int(n)}", timeout=timeout)
        return self._collect()

    def retr_to(self, n: int, fileobj: IO[bytes], *, timeout: Optional[float] = None) -> int:
        """Write message ``n`` to ``fileobj`` line by line (bounded memory,
        whatever its size); returns the octets written. The whole message
        within ``timeout`` seconds (as for retr). An error of ``fileobj``
        closes the connection (the rest of the message cannot be told from
        the next response) and propagates; TypeError, before RETR is sent,
        for an object with no ``write``."""
        write = getattr(fileobj, "write", None)
        if not callable(write):
            raise TypeError(f"retr_to() takes a binary file object, not a {type(fileobj).__name__}")
        self._command(f"RETR {int(n)}", timeout=timeout)
        count = 0

        def sink(line: bytes) -> None:
            nonlocal count
            write(line)
            count += len(line)

        self._body(sink)
        return count

    def top(self, n: int, lines: int, *, timeout: Optional[float] = None) -> bytes:
        """The header and the first ``lines`` lines of the body of message
        ``n``; the whole response within ``timeout`` (as for retr)."""
        self._command(f"TOP {int(n)} {int(lines)}", timeout=timeout)
        return self._collect()

    def headers(self, n: int) -> mimecompose.Part:
        """The header of message ``n`` as a Part (TOP n 0)."""
        return mimecompose.initialize(string=self.top(n, 0))

    def last(self) -> int:
        """LAST (RFC 1460; dropped from RFC 1939): the highest message
        number accessed. ErrResponse where the server does not have it."""
        words = self._command("LAST").split()
        try:
            return int(words[0])
        except (IndexError, ValueError):
            raise _pop3(RemoteProtocolError(f"malformed LAST response {words!r}")) from None

    def dele(self, n: int) -> str:
        """Mark message ``n`` deleted (done at QUIT)."""
        return self._command(f"DELE {int(n)}")

    def rset(self) -> str:
        """Unmark every message marked deleted."""
        return self._command("RSET")

    def noop(self) -> str:
        return self._command("NOOP")

    def quit(self) -> str:
        """QUIT: the server commits deletions and closes."""
        try:
            return self._command("QUIT")
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection without QUIT: the server keeps every
        message. Closes the ``logfile`` too."""
        try:
            self._sock.close()
        except OSError:
            pass
        if self._handler is not None:
            self._handler.close()

    def __enter__(self) -> "POP3":
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if exc_type is None:
            try:
                self.quit()
            except (POP3Error, SMTPError):   # QUIT refused or lost: the connection is closed
                self.close()
        else:
            self.close()   # no QUIT: the server rolls back DELE (RFC 1939 section 6)


def _pop3(exc: E) -> E:
    """``exc`` marked as the POP3 client's (``protocol = "pop3"`` on an
    SMTPError): its hint is worded for POP3 (smtpsend._errors.hint)."""
    if isinstance(exc, SMTPError):
        exc.protocol = "pop3"
    return exc


@contextmanager
def _pop3_errors() -> Iterator[None]:
    """Mark the SMTPErrors raised inside as POP3's (see _pop3)."""
    try:
        yield
    except SMTPError as exc:
        _pop3(exc)
        raise


def _secret(value: Credential) -> Secret:
    """``value`` as a Secret; UsageError (not showing it) for anything but a str or a Secret."""
    if not isinstance(value, (str, Secret)):
        raise UsageError(f"the password must be a str, not {type(value).__name__}")
    return value if isinstance(value, Secret) else Secret(value)


def _errors(outcome: Outcome[Union[str, ErrResponse]]) -> list[tuple[str, Exception]]:
    """(mechanism, -ERR or SASLFailure) per failed exchange."""
    return [(name, failure) for name, failure in outcome.failures if isinstance(failure, Exception)]


def _next_mechanism(failure: Union[str, ErrResponse, SASLFailure]) -> bool:
    """POP3's rule for the shared login loop: after a mechanism's failure
    (a malformed exchange, -ERR) the next mechanism is tried -- but not
    after ``-ERR [AUTH]``, which says the credentials themselves were
    refused (RFC 3206 section 4, RFC 5034 section 6): trying weaker
    mechanisms with them only adds failed logins."""
    return not (isinstance(failure, ErrResponse) and failure.text.upper().startswith("[AUTH]"))


def _ask(policy: Policy, code: int, text: str) -> str:
    if policy is None:
        return "insecure"
    answer = policy(code, text) if callable(policy) else policy
    return "insecure" if answer == "insecure" else "secure"


@keyword_only("port")
def connect(host: Optional[str] = None, *, port: Optional[int] = None, usetls: bool = True,
            tlsimport: Optional[bool] = None, ssl_context: Optional[ssl.SSLContext] = None,
            tlspolicy: Policy = None, logfile: Optional[str] = None, timeout: float = 60.0,
            debug: Union[bool, Callable[[str], None]] = False,
            tls: Union[str, bool, None] = None) -> POP3:
    """Connect to a POP3 server and read its greeting.

    ``host`` defaults to $MAILHOST, then localhost. The TLS options are
    spelt as for sendmessage: ``tlsimport=None`` (the default) is implicit
    TLS (POP3S, RFC 8314) on port 995 and STLS elsewhere; ``tlsimport=True``
    forces implicit TLS (port 995 unless ``port`` says otherwise),
    ``tlsimport=False`` STLS; ``usetls=False`` never uses STLS.
    ``tlspolicy`` as for sendmessage: None (plaintext without STLS, but no
    credentials of any kind are sent in it), "secure" (TLS or fail),
    "insecure" (plaintext allowed, credentials included), or a callable.
    ``timeout`` bounds the connect and each whole response. ``logfile``
    appends the conversation with passwords redacted; ``debug`` as for
    sendmessage: True sends the transcript to the smtpsend logger whatever
    its level, a callable also gets each protocol line (``C:``, ``S:``). Every option is
    keyword-only (``port`` given positionally still works, deprecated).

    Deprecated (one release, a DeprecationWarning): ``tls="starttls"``,
    ``"implicit"`` (or True), ``"none"`` (or False) -- use ``tlsimport=``
    and ``usetls=``. Raises UsageError for contradictory options,
    TransportError, Timeout, TLSError, TLSRequired.
    """
    host = host or os.environ.get("MAILHOST") or "localhost"
    if tls is not None:
        mode = tls if isinstance(tls, str) else ("implicit" if tls else "none")
        if mode not in ("starttls", "implicit", "none"):
            raise UsageError(f"tls must be 'starttls', 'implicit' or 'none', not {tls!r}")
        if tlsimport is not None or usetls is not True:
            raise TypeError("pop3.connect: tls= is the old spelling of tlsimport= and usetls=; give only those")
        warn(f"pop3.connect: tls={tls!r} is deprecated, use "
             + {"starttls": "tlsimport=False", "implicit": "tlsimport=True", "none": "usetls=False"}[mode])
        tlsimport, usetls = mode == "implicit", mode != "none"
    if tlsimport and not usetls:
        raise UsageError("tlsimport=True and usetls=False contradict each other")
    if not usetls and tlspolicy == "secure":
        raise UsageError("usetls=False and tlspolicy='secure' contradict each other")
    if not usable_seconds(timeout):
        raise UsageError(f"timeout= must be a positive number of seconds, not {timeout!r}")
    if port:
        port = port_number(port)   # 1 to 65535: the resolver would take 70000 as 4464
    implicit = bool(tlsimport) if tlsimport is not None else (usetls and port == 995)
    port = port or (995 if implicit else 110)
    with _pop3_errors(), transport_errors("connect", timeout=timeout, host=host, port=port):
        sock = socket.create_connection((host, port), timeout=timeout)
    if implicit:
        context = ssl_context or ssl.create_default_context()
        try:
            with _pop3_errors(), transport_errors("handshake", timeout=timeout):
                sock = context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
    box = POP3(sock, host, timeout=timeout, ssl_context=ssl_context, logfile=logfile, debug=debug)
    try:
        box._greet()
        if usetls and not implicit:
            box.stls(tlspolicy)
        elif not usetls:
            box._cleartext_allowed = tlspolicy == "insecure" or (
                callable(tlspolicy) and _ask(tlspolicy, 0, "TLS not used") == "insecure")
    except BaseException:
        box.close()
        raise
    return box
