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
import binascii
import hashlib
import io
import logging
import netrc
import os
import socket
import ssl
from types import TracebackType
from typing import IO, Callable, Literal, Optional, TypeVar, Union, overload

import mimecompose

from ._data import unstuff
from ._driver import Deadline
from ._errors import RemoteProtocolError, SMTPError, TLSRequired, TransportError, UsageError
from ._sasl import SASLFailure, choose
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
                 ssl_context: Optional[ssl.SSLContext], logfile: Optional[str]) -> None:
        self._sock = sock
        self.host = host
        self.timeout = timeout
        self._context = ssl_context
        self._handler: Optional[logging.Handler] = None
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
        self._deadline = Deadline(timeout, "no greeting")

    # ------------------------------------------------------------ wire

    def _log(self, line: str) -> None:
        """One (already redacted) transcript line: to the smtpsend logger at
        DEBUG when it is enabled for DEBUG, and to the ``logfile`` handler
        (whatever the logger's level: the file was asked for)."""
        to_logger = logger.isEnabledFor(logging.DEBUG)
        if not (to_logger or self._handler):
            return
        record = logger.makeRecord(logger.name, logging.DEBUG, __file__, 0, "%s", (line,), None)
        if to_logger:
            logger.handle(record)
        if self._handler is not None:
            self._handler.handle(record)

    def _broken(self, exc: E) -> E:
        """Close the connection after a read that cannot be finished (the
        rest of that response would be taken for the next one); return exc."""
        self.close()
        return exc

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
        with transport_errors("send", timeout=self.timeout):
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
        return RemoteProtocolError(f"response longer than {self.max_octets} octets; "
                                   "use retr(n, fileobj=...) for large messages")

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
                raise TLSRequired("TLS required but the server does not offer STLS")
            self._cleartext_allowed = policy is not None   # "insecure", or a callable that said so
            return
        try:
            self._command("STLS")
        except ErrResponse as exc:
            if _ask(policy, -1, exc.text) == "secure":
                raise TLSRequired(f"STLS refused: {exc.text}") from exc
            self._cleartext_allowed = policy is not None
            return
        self._buffer.clear()   # RFC 2595 section 4 / RFC 3207 4.2: discard what came before TLS
        context = self._context or ssl.create_default_context()
        with transport_errors("handshake", timeout=self.timeout):
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
            raise TLSRequired("credentials are never sent without TLS (the server did not offer STLS) "
                              "unless tlspolicy says 'insecure'")

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

    def auth(self, user: str, password: Optional[Credential] = None, token: Optional[Credential] = None,
             mechanism: Optional[str] = None) -> str:
        """SASL AUTH (RFC 5034) with smtpsend's mechanisms, strongest first
        among those the server lists in CAPA SASL (or ``mechanism``).
        Only over TLS or with tlspolicy="insecure" (TLSRequired otherwise).
        The mechanisms hold the password and token as Secret; they refuse
        credentials that cannot be sent with UsageError
        (smtpsend._sasl.check_credentials)."""
        self._require_protection()
        offered = [mechanism] if mechanism else self.capa().get("SASL", [])
        mechanisms = choose(offered, user, password, token, self.host, None)
        if not mechanisms:
            raise UsageError(f"no usable SASL mechanism among {offered}")
        errors: list[tuple[str, Exception]] = []
        for mech in mechanisms:
            try:
                initial = mech.start()
                line = f"AUTH {mech.name}" + (f" {base64.b64encode(initial).decode() or '='}"
                                              if initial is not None else "")
                text = self._command(line, f"AUTH {mech.name} ***")
                while text.startswith("\0"):
                    try:
                        challenge = base64.b64decode(text[1:].strip(), validate=True)
                        answer = mech.respond(challenge)
                    except (SASLFailure, binascii.Error, ValueError) as exc:
                        self._send("*")
                        try:
                            self._status("AUTH")
                        except ErrResponse:
                            pass
                        raise ErrResponse(str(exc), "AUTH") from None
                    self._send(base64.b64encode(answer).decode(), "***")
                    text = self._status(f"AUTH {mech.name}")
                mech.finish()
                return text
            except (ErrResponse, SASLFailure) as exc:
                errors.append((mech.name, exc))
        raise AuthenticationFailed(errors)

    # ------------------------------------------------------------ mailbox

    def stat(self) -> tuple[int, int]:
        """(number of messages, total octets)."""
        parts = self._command("STAT").split()
        try:
            return int(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            raise RemoteProtocolError(f"malformed STAT response {parts!r}") from None

    def _listing(self, command: str, n: Optional[int],
                 convert: Callable[[str], T]) -> Union[T, dict[int, T]]:
        if n is not None:
            words = self._command(f"{command} {int(n)}").split()
            if len(words) < 2:
                raise RemoteProtocolError(f"malformed {command} response {words!r}")
            return convert(words[1])
        self._command(command)
        out: dict[int, T] = {}

        def parse(line: bytes) -> None:
            words = line.split()
            if len(words) >= 2:
                try:
                    out[int(words[0])] = convert(words[1].decode("utf-8", "replace"))
                except ValueError:
                    raise RemoteProtocolError(f"malformed {command} line {line[:80]!r}") from None

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
        """Retrieve message ``n``: a mimecompose Part; the bytes with
        ``raw=True``; or, with ``fileobj``, written there line by line
        (bounded memory) and the octet count returned. The whole message
        must arrive within ``timeout`` seconds (default: the connection's),
        else Timeout; held in memory, more than ``max_octets`` is a
        RemoteProtocolError."""
        self._command(f"RETR {int(n)}", timeout=timeout)
        if fileobj is not None:
            count = 0

            def sink(line: bytes) -> None:
                nonlocal count
                fileobj.write(line)
                count += len(line)

            self._body(sink)
            return count
        data = self._collect()
        return data if raw else mimecompose.initialize(string=data)

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
            raise RemoteProtocolError(f"malformed LAST response {words!r}") from None

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


def _secret(value: Credential) -> Secret:
    """``value`` as a Secret; UsageError (not showing it) for anything but a str or a Secret."""
    if not isinstance(value, (str, Secret)):
        raise UsageError(f"the password must be a str, not {type(value).__name__}")
    return value if isinstance(value, Secret) else Secret(value)


def _ask(policy: Policy, code: int, text: str) -> str:
    if policy is None:
        return "insecure"
    answer = policy(code, text) if callable(policy) else policy
    return "insecure" if answer == "insecure" else "secure"


def connect(host: Optional[str] = None, port: Optional[int] = None, *,
            tls: Union[str, bool] = "starttls", ssl_context: Optional[ssl.SSLContext] = None,
            tlspolicy: Policy = None, logfile: Optional[str] = None, timeout: float = 60.0) -> POP3:
    """Connect to a POP3 server and read its greeting.

    ``host`` defaults to $MAILHOST, then localhost. ``tls``: ``"starttls"``
    (STLS when offered, the default), ``"implicit"`` (or True: POP3S, port
    995), ``"none"`` (or False). ``tlspolicy`` as for sendmessage: None
    (plaintext without STLS, but no credentials of any kind are sent in
    it), "secure" (TLS or fail), "insecure" (plaintext allowed, credentials
    included), or a callable. ``timeout`` bounds the connect and each whole
    response. ``logfile`` appends the conversation with passwords redacted.
    Raises TransportError, Timeout, TLSError, TLSRequired.
    """
    host = host or os.environ.get("MAILHOST") or "localhost"
    mode = tls if isinstance(tls, str) else ("implicit" if tls else "none")
    if mode not in ("starttls", "implicit", "none"):
        raise UsageError(f"tls must be 'starttls', 'implicit' or 'none', not {tls!r}")
    if mode == "none" and tlspolicy == "secure":
        raise UsageError("tls='none' and tlspolicy='secure' contradict each other")
    port = port or (995 if mode == "implicit" else 110)
    with transport_errors("connect", timeout=timeout, host=host, port=port):
        sock = socket.create_connection((host, port), timeout=timeout)
    if mode == "implicit":
        context = ssl_context or ssl.create_default_context()
        try:
            with transport_errors("handshake", timeout=timeout):
                sock = context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
    box = POP3(sock, host, timeout=timeout, ssl_context=ssl_context, logfile=logfile)
    try:
        box._greet()
        if mode == "starttls":
            box.stls(tlspolicy)
        elif mode == "none":
            box._cleartext_allowed = tlspolicy == "insecure" or (
                callable(tlspolicy) and _ask(tlspolicy, 0, "TLS not used") == "insecure")
    except BaseException:
        box.close()
        raise
    return box
