"""The errors of smtpsend, and the records that go with them.

::

    ValueError
     └── UsageError                    bad input from the caller (bad address,
                                       CR/LF in a value, conflicting options)
    Exception
     ├── pop3.POP3Error                 what a POP3 server answered (smtpsend.pop3): not
     │    │                             an SMTPError; POP3's connection failures are
     │    │                             the TransportError family below
     │    ├── pop3.ErrResponse          -ERR to a command (.text, .command)
     │    └── pop3.AuthenticationFailed every login method failed (.errors)
     └── SMTPError                      anything from the network or a server
          │                             (.server, .port, .stage: see locate())
          ├── ReplyError                a negative reply (.reply, .command)
          │    ├── SenderRefused        5xx to MAIL FROM: the message's fault
          │    ├── RecipientsRefused    recipients refused (.rejected)
          │    ├── DataRefused          5xx to DATA, BDAT or the final "."
          │    ├── ServerUnavailable    4xx/5xx greeting, 421, refused EHLO,
          │    │                        4xx to MAIL/DATA/".": try another server
          │    └── AuthenticationError  every SASL mechanism failed (.replies)
          ├── MessageTooBig             larger than the server's SIZE (before any data)
          ├── NotSupported              the server lacks an extension the message needs
          ├── TLSRequired               TLS was required and could not be had
          ├── RemoteProtocolError       a malformed or over-long reply
          ├── TransportError            + ConnectionError: connect failed, connection lost
          │    ├── Timeout              + TimeoutError: nothing came in time
          │    └── TLSError             the TLS handshake or certificate check failed
          ├── DeliveryUncertain         the connection was lost after the whole message
          │                             was sent: it may have been delivered
          └── AllServersFailed          no server took the message (.attempts)

Every error answers ``is_transient`` and ``is_permanent`` itself (a reply
error from its reply's code; a lost connection is transient; a TLS failure
neither: it repeats until the certificate or the port changes). Socket, ssl
and OS errors become errors of this tree in one place
(smtpsend._sockets.transport_errors); where an error happened is recorded
in one place (:func:`locate`).

Failures of the message itself (SenderRefused, RecipientsRefused,
DataRefused, MessageTooBig, DeliveryUncertain) are raised at once; the
others are recorded as an :class:`Attempt` and the next server is tried.

What to do next is decided here, in one place: :func:`hint` reads an
error's class, its ``reason`` (a short tag the code that raised it gives:
``"refused"``, ``"certificate"``, ``"implicit-tls"``, ``"not-implicit-tls"``,
``"no-greeting"``) and its reply, and ``str()`` of an error -- and of
AllServersFailed, for every attempt -- ends with one ``hint:`` line.
No error message or attribute ever holds a password, a token, or the
base64 of a SASL response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from ._reply import Reply

__all__ = [
    "AllServersFailed", "Attempt", "AuthenticationError", "DataRefused", "DeliveryUncertain",
    "MessageTooBig", "NotSupported", "RecipientsRefused", "Rejected", "RemoteProtocolError",
    "ReplyError", "SMTPError", "SenderRefused", "ServerUnavailable", "TLSError", "TLSRequired",
    "Timeout", "TransportError", "UsageError", "hint", "locate",
]


class UsageError(ValueError):
    """The caller's input cannot be sent: a malformed address, CR/LF/NUL in
    a value, no recipients, conflicting options."""


class SMTPError(Exception):
    """Base of every error that comes from the network or a server.

    ``server`` and ``port`` name the server (as given) and ``stage`` the
    step of the dialogue (``"connect"``, ``"greeting"``, ``"ehlo"``,
    ``"starttls"``, ``"auth"``, ``"mail"``, ``"rcpt"``, ``"data"``,
    ``"quit"``) once known.
    """

    server: Optional[str] = None
    port: Optional[int] = None
    stage: Optional[str] = None
    reason: Optional[str] = None   # a tag for hint(): "refused", "certificate", ...
    protocol: str = "smtp"         # "pop3" for smtpsend.pop3's: hint() then words its advice for POP3

    def __init__(self, *args: object, reason: Optional[str] = None) -> None:
        super().__init__(*args)
        if reason is not None:
            self.reason = reason

    @property
    def is_transient(self) -> bool:
        """True when trying again later may succeed (a 4xx reply, a timeout).
        Each kind of error answers for itself; unknown here: False."""
        return False

    @property
    def is_permanent(self) -> bool:
        """True when the same request will fail again (a 5xx reply).
        Each kind of error answers for itself; unknown here: False."""
        return False

    @property
    def hint(self) -> Optional[str]:
        """What to do next, in one sentence, or None (see :func:`hint`)."""
        return hint(self)

    def summary(self) -> str:
        """The message and where it happened, without the hint."""
        text = super().__str__()
        where = f" ({_server(self.server, self.port)}, {self.stage})" if self.server and self.stage else ""
        return text + where

    def __str__(self) -> str:
        advice = self.hint
        return self.summary() + (f"\nhint: {advice}" if advice else "")


class ReplyError(SMTPError):
    """A server answered ``command`` with the negative ``reply``."""

    def __init__(self, message: str, reply: "Reply", command: str | None = None) -> None:
        super().__init__(f"{message}: {reply}")
        self.reply = reply
        self.command = command

    @property
    def is_transient(self) -> bool:
        """A 4xx reply: the same request may succeed later."""
        return self.reply.code // 100 == 4

    @property
    def is_permanent(self) -> bool:
        """A 5xx reply: the same request will fail again."""
        return self.reply.code // 100 == 5


class SenderRefused(ReplyError):
    """The server refused the originator (5xx to MAIL FROM)."""


class DataRefused(ReplyError):
    """The server refused the message (5xx to DATA, BDAT or the final ".")."""


class ServerUnavailable(ReplyError):
    """This server cannot take the message now: a 4xx or 421 reply, a
    refused greeting or EHLO. The next server is tried."""


class RecipientsRefused(ReplyError):
    """Recipients were refused. ``rejected`` lists them; ``reply`` is the
    first refusal.

    ``delivered`` is empty -- nothing was delivered -- except after an LMTP
    transaction (RFC 2033 section 4.2) without ``atleastone``: the server
    answered each recipient after the message data, and the addresses in
    ``delivered`` did get the message (it cannot be taken back); only the
    ``rejected`` ones (stage "data") did not. Such an error is never sent
    to another server."""

    def __init__(self, message: str, rejected: list["Rejected"], reply: "Reply",
                 command: str | None = None, delivered: tuple[str, ...] = ()) -> None:
        super().__init__(message, reply, command)
        self.rejected = rejected
        self.delivered = delivered


class AuthenticationError(ReplyError):
    """Every SASL mechanism tried failed. ``replies`` holds
    ``(mechanism, reply)`` for each one, ``reply`` the last of them. When a
    ``token=`` callable failed (its exception is the ``__cause__``) before
    any mechanism was refused, ``replies`` is empty and ``reply`` None."""

    reply: Optional["Reply"]   # type: ignore[assignment]  # None only when no server reply was had

    def __init__(self, message: str, replies: list[tuple[str, "Reply"]]) -> None:
        if replies:
            super().__init__(message, replies[-1][1], "AUTH")
        else:
            SMTPError.__init__(self, message)
            self.reply, self.command = None, "AUTH"
        self.replies = replies

    @property
    def is_transient(self) -> bool:
        """As the last reply says; for a failed token callable, unknown: False."""
        return self.reply is not None and self.reply.code // 100 == 4

    @property
    def is_permanent(self) -> bool:
        return self.reply is not None and self.reply.code // 100 == 5


class MessageTooBig(SMTPError):
    """The message is larger than the server's SIZE limit (RFC 1870);
    raised before any message data is sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} octets exceeds the server's limit of {limit}")
        self.size = size
        self.limit = limit


class NotSupported(SMTPError):
    """The server lacks an extension this message or the caller needs."""


class TLSRequired(SMTPError):
    """TLS was required (by the policy, or to send credentials) and this
    server did not offer it or refused it."""


class RemoteProtocolError(SMTPError):
    """The server broke the protocol: a malformed, over-long or endless reply."""


class TransportError(SMTPError, ConnectionError):
    """The connection could not be made or was lost."""

    @property
    def is_transient(self) -> bool:
        """A lost or refused connection may work later."""
        return True


class Timeout(TransportError, TimeoutError):
    """The server did not answer (or accept data) in time."""


class TLSError(TransportError):
    """The TLS handshake or the certificate verification failed: the
    connection could not be secured (a ConnectionError, like every
    TransportError)."""

    @property
    def is_transient(self) -> bool:
        """False: a certificate or protocol mismatch repeats until the
        server's certificate, the trust store or the port changes."""
        return False


class DeliveryUncertain(SMTPError):
    """The whole message was sent but its reply never came: the server may
    have accepted it. It is not sent to another server (that could deliver
    it twice)."""


class AllServersFailed(SMTPError):
    """No server took the message. ``attempts`` holds one :class:`Attempt`
    per try, in order."""

    def __init__(self, attempts: list["Attempt"]) -> None:
        lines = "; ".join(f"{_server(a.server, a.port)} at {a.stage}: {_summary(a.error)}" for a in attempts)
        super().__init__(f"no server accepted the message ({len(attempts)} tried): {lines}")
        self.attempts = attempts


@dataclass(frozen=True)
class Rejected:
    """A recipient the server refused: its address, the reply code and text,
    the RFC 3463 enhanced status (``"5.1.1"``) or None, and the ``stage``
    it was refused at: ``"rcpt"``, or ``"data"`` for an LMTP server's reply
    to that recipient after the message data (RFC 2033 section 4.2)."""

    address: str
    code: int
    text: str
    status: Optional[str]
    stage: str = "rcpt"

    @property
    def is_transient(self) -> bool:
        return self.code // 100 == 4

    @property
    def is_permanent(self) -> bool:
        return self.code // 100 == 5


@dataclass(frozen=True)
class Attempt:
    """One try of one server: where, at which stage it failed, and why
    (``port`` 0 for a Unix socket, ``server`` then its path)."""

    server: str
    port: int
    stage: str
    error: BaseException


E = TypeVar("E", bound=SMTPError)


def locate(error: E, server: str, port: int, stage: Optional[str]) -> E:
    """Record on ``error`` which server (as given), port and dialogue stage
    it happened at, and return it (``raise locate(error, ...)``). The one
    place that sets ``.server``, ``.port`` and ``.stage``."""
    error.server, error.port, error.stage = server, port, stage
    return error


def _server(server: Optional[str], port: Optional[int]) -> str:
    """``host:port``, or just the path of a Unix socket (port 0)."""
    return f"{server}:{port}" if port else str(server)


def _summary(error: BaseException) -> str:
    return error.summary() if isinstance(error, SMTPError) else str(error)


_PORTS = "587 is submission with STARTTLS, 465 submission with implicit TLS, 25 relay"


def hint(error: BaseException) -> Optional[str]:
    """What the caller can do about ``error``: one sentence, or None.

    For AllServersFailed, the distinct hints of its attempts, in order. The
    advice is worded for the protocol the error came from (``protocol``:
    the POP3 client's errors get POP3's ports and options, or no hint where
    the advice is SMTP's alone).
    """
    if isinstance(error, AllServersFailed):
        hints = list(dict.fromkeys(h for h in (hint(a.error) for a in error.attempts) if h))
        return "; ".join(hints) or None
    if not isinstance(error, SMTPError):
        return None
    if error.protocol == "pop3":
        return _pop3_hint(error)
    reason = error.reason
    where = f"{error.server} port {error.port}" if error.server else "the server"
    if reason == "refused" and not error.port and (error.server or "").startswith("/"):
        return f"nothing listens on the Unix socket {error.server}: check the path and that the server runs"
    if reason == "refused":
        return f"nothing accepts connections on {where}: check the port ({_PORTS})"
    if reason == "certificate":
        return _CERTIFICATE + " (on the command line: --cafile)"
    if reason == "implicit-tls":
        return "this port speaks TLS from the first byte (implicit TLS, RFC 8314): pass tlsimport=True"
    if reason == "not-implicit-tls":
        return ("this port speaks plain SMTP, not TLS from the first byte: pass tlsimport=False "
                "(STARTTLS is then used when the server offers it)")
    if reason == "no-greeting":
        return ("the server sent no greeting: if this port speaks TLS from the first byte (like 465), "
                "pass tlsimport=True")
    if isinstance(error, AuthenticationError):
        if not error.replies:
            return ("getting the OAuth token failed (the token= callable, or --token-command): its error is "
                    "this error's cause")
        refused = [name for name, r in error.replies if _credentials_refused(r)]
        if refused and all(name in _TOKEN_MECHANISMS for name in refused):
            return ("the server refused the token: check username= and token= (a token= callable was asked "
                    "once for a fresh one where the server said the token was invalid)")
        if refused:
            return ("the server refused the user name or password: check username= and password= "
                    "(no other mechanism was tried with them)")
        return None
    if isinstance(error, TLSRequired):
        return ("TLS could not be had: to go on without it pass tlspolicy='insecure' (credentials then "
                "travel unencrypted), or use implicit TLS (port 465, tlsimport=True)")
    reply = getattr(error, "reply", None)
    if isinstance(error, ReplyError) and reply is not None and reply.code == 530:
        if "TLS" in reply.text.upper():
            return ("the server accepts mail only over TLS and this connection was not encrypted: keep "
                    "usetls=True and pass tlspolicy='secure' to refuse plaintext, or use port 465 with "
                    "tlsimport=True")
        return "the server requires authentication first: pass username= and password= (or token=)"
    return None


def _pop3_hint(error: SMTPError) -> Optional[str]:
    """hint() for an error of smtpsend.pop3: POP3's ports (RFC 1939's 110,
    RFC 8314's 995) and pop3.connect's options; None where the SMTP advice
    has no POP3 counterpart."""
    reason = error.reason
    where = f"{error.server} port {error.port}" if error.server else "the server"
    if reason == "refused":
        return f"nothing accepts connections on {where}: check the port ({_POP3_PORTS})"
    if reason == "certificate":
        return _CERTIFICATE
    if reason == "plaintext":
        return ("this port speaks plain POP3, not TLS from the first byte: pass tlsimport=False "
                "(STLS is then used when the server offers it)")
    if isinstance(error, TLSRequired):
        return ("TLS could not be had: to go on without it pass tlspolicy='insecure' (credentials then "
                "travel unencrypted), or use implicit TLS (port 995, tlsimport=True)")
    return None


_CERTIFICATE = ("the server's certificate is not trusted here: if it comes from a private CA, pass "
                "ssl_context=ssl.create_default_context(cafile=...)")
_POP3_PORTS = "110 is POP3 with STLS, 995 POP3 over implicit TLS"
_TOKEN_MECHANISMS = frozenset({"XOAUTH2", "OAUTHBEARER"})


def _credentials_refused(reply: "Reply") -> bool:
    """535, or the enhanced status 5.7.8 (RFC 4954 section 6): the server
    refused the credentials themselves, not the mechanism."""
    return reply.code == 535 or str(reply.status) == "5.7.8"
