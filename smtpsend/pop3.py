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

Errors: ``ErrResponse`` for ``-ERR`` (``.text``, ``.command``); the
transport errors of smtpsend (TransportError, Timeout, TLSError,
RemoteProtocolError, TLSRequired); UsageError for bad input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import netrc
import os
import socket
import ssl
from typing import IO, Callable, Optional, Union

import mimecompose

from ._data import unstuff
from ._errors import (RemoteProtocolError, SMTPError, Timeout, TLSError, TLSRequired,
                      TransportError, UsageError)
from ._sasl import SASLFailure, choose
from ._session import Deadline

__all__ = ["AuthenticationFailed", "ErrResponse", "POP3", "POP3Error", "connect"]

MAX_LINE = 65536      # a line longer than this is a protocol error (RFC 1939 says 512 for responses)
MAX_OCTETS = 256 << 20   # a multi-line response held in memory may not grow past this
CRLF = b"\r\n"


class POP3Error(SMTPError):
    """Base of the errors a POP3 server causes."""


class ErrResponse(POP3Error):
    """The server answered ``command`` with -ERR ``text``."""

    def __init__(self, text: str, command: str) -> None:
        super().__init__(f"-ERR {text} (to {command})")
        self.text = text
        self.command = command


class AuthenticationFailed(POP3Error):
    """Every login method tried failed; ``errors`` lists (method, error)."""

    def __init__(self, errors: list) -> None:
        super().__init__("login failed: " + "; ".join(f"{m}: {e}" for m, e in errors))
        self.errors = errors


class POP3:
    """An open POP3 connection. Use :func:`connect`."""

    def __init__(self, sock: socket.socket, host: str, *, timeout: float,
                 ssl_context: Optional[ssl.SSLContext], logfile: Optional[str]) -> None:
        self._sock = sock
        self.host = host
        self.timeout = timeout
        self._context = ssl_context
        self._logfile = logfile
        self._buffer = bytearray()
        self.tls = isinstance(sock, ssl.SSLSocket)
        self._cleartext_allowed = False
        self.greeting = ""
        self.timestamp: Optional[str] = None
        self.max_octets = MAX_OCTETS

    # ------------------------------------------------------------ wire

    def _log(self, line: str) -> None:
        if self._logfile:
            with open(self._logfile, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    def _readline(self) -> bytes:
        deadline = Deadline(self.timeout, "no response")
        while True:
            eol = self._buffer.find(b"\n")
            if eol != -1:
                line = bytes(self._buffer[:eol + 1])
                del self._buffer[:eol + 1]
                return line
            if len(self._buffer) > MAX_LINE:
                raise RemoteProtocolError(f"line longer than {MAX_LINE} octets")
            try:
                self._sock.settimeout(deadline.remaining())
                data = self._sock.recv(65536)
            except socket.timeout:
                raise deadline.expired() from None
            except OSError as exc:
                raise TransportError(f"connection lost: {exc}") from exc
            if not data:
                raise TransportError("connection closed by the server")
            self._buffer += data

    def _send(self, line: str, shown: Optional[str] = None) -> None:
        if any(c in line for c in "\r\n\0"):
            raise UsageError(f"CR, LF or NUL in a POP3 command: {line!r}")
        self._log("C: " + (shown if shown is not None else line))
        try:
            self._sock.settimeout(self.timeout)
            self._sock.sendall(line.encode("utf-8") + CRLF)
        except OSError as exc:
            raise TransportError(f"connection lost while sending: {exc}") from exc

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
        raise RemoteProtocolError(f"malformed POP3 response {line[:80]!r}")

    def _command(self, line: str, shown: Optional[str] = None) -> str:
        self._send(line, shown)
        return self._status(shown or line.split()[0])

    def _lines(self, sink: Optional[Callable[[bytes], None]] = None) -> list[bytes]:
        """Read a multi-line body up to the "." line; lines keep their CRLF.
        With ``sink`` each line goes there instead of into the list; without,
        more than ``max_octets`` is a RemoteProtocolError (an endless
        response cannot exhaust memory)."""
        out: list[bytes] = []
        held = 0
        while True:
            line = self._readline()
            if line in (b".\r\n", b".\n"):
                return out
            line = unstuff(line)
            if sink is None:
                held += len(line)
                if held > self.max_octets:
                    raise RemoteProtocolError(f"response longer than {self.max_octets} octets; "
                                              "use retr(n, fileobj=...) for large messages")
                out.append(line)
            else:
                sink(line)

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
        caps = {}
        for line in self._lines():
            words = line.decode("utf-8", "replace").split()
            if words:
                caps[words[0].upper()] = words[1:]
        return caps

    def stls(self, policy=None) -> None:
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
        try:
            self._sock = context.wrap_socket(self._sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            raise TLSError(f"certificate verification failed: {exc.verify_message or exc}") from exc
        except (ssl.SSLError, OSError) as exc:
            raise TLSError(f"TLS handshake failed: {exc}") from exc
        self.tls = True
        self._log("*: TLS established")

    def _credentials(self, user: Optional[str], password: Optional[str]) -> tuple[str, str]:
        if user is not None and password is not None:
            return user, password
        try:
            found = netrc.netrc().authenticators(self.host)
        except (FileNotFoundError, netrc.NetrcParseError, OSError):
            found = None
        if not found:
            raise UsageError(f"no credentials given and none in ~/.netrc for {self.host}")
        return user or found[0], password if password is not None else found[2]

    def login(self, user: Optional[str] = None, password: Optional[str] = None) -> str:
        """Log in: USER/PASS, then APOP when the greeting carried a
        timestamp and USER/PASS failed (the seed's order). Credentials come
        from the arguments, else ~/.netrc. USER/PASS sends the password in
        the clear, so without TLS it is skipped unless the connection was
        opened with tlspolicy="insecure"; APOP never sends it.
        Raises AuthenticationFailed with what each method answered."""
        user, password = self._credentials(user, password)
        errors: list = []
        if self.tls or self._cleartext_allowed:
            try:
                self._command(f"USER {user}")
                return self._command(f"PASS {password}", "PASS ***")
            except ErrResponse as exc:
                errors.append(("USER/PASS", exc))
        else:
            errors.append(("USER/PASS", TLSRequired("password not sent without TLS")))
        if self.timestamp:
            try:
                return self.apop(user, password)
            except ErrResponse as exc:
                errors.append(("APOP", exc))
        raise AuthenticationFailed(errors)

    def apop(self, user: str, password: str) -> str:
        """APOP (RFC 1939 section 7): MD5 of the greeting's timestamp and the password."""
        if not self.timestamp:
            raise UsageError("the server's greeting has no timestamp: APOP is not available")
        digest = hashlib.md5((self.timestamp + password).encode("utf-8")).hexdigest()
        return self._command(f"APOP {user} {digest}", f"APOP {user} ***")

    def auth(self, user: str, password: Optional[str] = None, token: Optional[str] = None,
             mechanism: Optional[str] = None) -> str:
        """SASL AUTH (RFC 5034) with smtpsend's mechanisms, strongest first
        among those the server lists in CAPA SASL (or ``mechanism``).
        PLAIN, LOGIN and the token mechanisms need TLS or tlspolicy="insecure"."""
        offered = [mechanism] if mechanism else self.capa().get("SASL", [])
        mechanisms = choose(offered, user, password, token, self.host, None)
        if not (self.tls or self._cleartext_allowed):
            mechanisms = [m for m in mechanisms if m.name not in ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER")]
        if not mechanisms:
            raise UsageError(f"no usable SASL mechanism among {offered}")
        errors: list = []
        for mech in mechanisms:
            initial = mech.start()
            line = f"AUTH {mech.name}" + (f" {base64.b64encode(initial).decode() or '='}" if initial is not None else "")
            try:
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

    def _listing(self, command: str, n: Optional[int], convert):
        if n is not None:
            words = self._command(f"{command} {int(n)}").split()
            if len(words) < 2:
                raise RemoteProtocolError(f"malformed {command} response {words!r}")
            return convert(words[1])
        self._command(command)
        out = {}
        for line in self._lines():
            words = line.split()
            if len(words) >= 2:
                try:
                    out[int(words[0])] = convert(words[1].decode("utf-8", "replace"))
                except ValueError:
                    raise RemoteProtocolError(f"malformed {command} line {line!r}") from None
        return out

    def list(self, n: Optional[int] = None):
        """Sizes: {number: octets}, or one size with ``n``."""
        return self._listing("LIST", n, int)

    def uidl(self, n: Optional[int] = None):
        """Unique ids: {number: uid}, or one uid with ``n``. ErrResponse
        when the server has no UIDL."""
        return self._listing("UIDL", n, str)

    def retr(self, n: int, fileobj: Optional[IO[bytes]] = None, raw: bool = False):
        """Retrieve message ``n``: a mimecompose Part; the bytes with
        ``raw=True``; or, with ``fileobj``, written there line by line
        (bounded memory) and the octet count returned."""
        self._command(f"RETR {int(n)}")
        if fileobj is not None:
            count = [0]

            def sink(line: bytes) -> None:
                fileobj.write(line)
                count[0] += len(line)

            self._lines(sink)
            return count[0]
        data = b"".join(self._lines())
        return data if raw else mimecompose.initialize(string=data)

    def top(self, n: int, lines: int) -> bytes:
        """The header and the first ``lines`` lines of the body of message ``n``."""
        self._command(f"TOP {int(n)} {int(lines)}")
        return b"".join(self._lines())

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
        return self._command(f"DELE {int(n)}")

    def rset(self) -> str:
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
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> "POP3":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            try:
                self.quit()
            except SMTPError:
                self.close()
        else:
            self.close()   # no QUIT: the server rolls back DELE (RFC 1939 section 6)


def _ask(policy, code: int, text: str) -> str:
    if policy is None:
        return "insecure"
    answer = policy(code, text) if callable(policy) else policy
    return "insecure" if answer == "insecure" else "secure"


def connect(host: Optional[str] = None, port: Optional[int] = None, *,
            tls: Union[str, bool] = "starttls", ssl_context: Optional[ssl.SSLContext] = None,
            tlspolicy=None, logfile: Optional[str] = None, timeout: float = 60.0) -> POP3:
    """Connect to a POP3 server and read its greeting.

    ``host`` defaults to $MAILHOST, then localhost. ``tls``: ``"starttls"``
    (STLS when offered, the default), ``"implicit"`` (or True: POP3S, port
    995), ``"none"`` (or False). ``tlspolicy`` as for sendmessage: None,
    "secure" (TLS or fail), "insecure" (plaintext allowed, passwords
    included), or a callable. ``logfile`` appends the conversation with
    passwords redacted. Raises TransportError, Timeout, TLSError, TLSRequired.
    """
    host = host or os.environ.get("MAILHOST") or "localhost"
    mode = {True: "implicit", False: "none"}.get(tls, tls)
    if mode not in ("starttls", "implicit", "none"):
        raise UsageError(f"tls must be 'starttls', 'implicit' or 'none', not {tls!r}")
    if mode == "none" and tlspolicy == "secure":
        raise UsageError("tls='none' and tlspolicy='secure' contradict each other")
    port = port or (995 if mode == "implicit" else 110)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        raise Timeout(f"connect to {host} port {port} timed out") from None
    except OSError as exc:
        raise TransportError(f"cannot connect to {host} port {port}: {exc}") from exc
    if mode == "implicit":
        context = ssl_context or ssl.create_default_context()
        try:
            sock = context.wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise TLSError(f"certificate verification failed: {exc.verify_message or exc}") from exc
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise TLSError(f"TLS handshake failed: {exc}") from exc
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
