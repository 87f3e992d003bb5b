"""What every driver shares below the dialogue: socket, ssl and OS errors
mapped to smtpsend's tree, the first-bytes check, and the facts of a TLS
session.

:func:`transport_errors` is the one place a lower-layer exception becomes
an SMTPError (httpx's ``map_httpcore_exceptions`` is the model). Both SMTP
drivers use it, and so can any other client of the package (POP3)::

    with transport_errors("read", deadline=deadline):
        data = sock.recv(65536)

| during | TimeoutError | ssl.SSLError | other OSError |
|---|---|---|---|
| ``"resolve"`` | -- | -- | TransportError "cannot resolve" (and UnicodeError) |
| ``"connect"`` | Timeout | TransportError | TransportError (reason "refused" for ECONNREFUSED) |
| ``"send"`` | Timeout | TransportError "TLS error while sending" | TransportError "connection lost while sending" |
| ``"read"`` | the deadline's Timeout | TransportError "TLS error while reading" | TransportError "connection lost" |
| ``"handshake"`` | TLSError "timed out" | TLSError (reason "certificate", "plaintext") | TLSError |

A timeout and a failed look-up are re-raised ``from None`` (the cause says
nothing more); the others keep the lower-layer exception as ``__cause__``. SMTPError passes
through unchanged. asyncio's TimeoutError is a different class before
Python 3.11: the asyncio driver raises the builtin one for it.
"""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Any, Literal, Optional, Union

from ._driver import Deadline, TLSInfo
from ._errors import RemoteProtocolError, SMTPError, Timeout, TLSError, TransportError

__all__ = ["During", "FirstBytes", "resolved", "tls_info", "transport_errors"]

During = Literal["resolve", "connect", "send", "read", "handshake"]

# What OpenSSL says when the peer's first bytes are not a TLS record: a
# server that speaks plaintext where TLS was expected.
_PLAINTEXT_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                                "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "UNEXPECTED_RECORD"})


class transport_errors:   # named as the function it was: with transport_errors(...)
    """Re-raise the socket, ssl and OS errors of the block as smtpsend's
    errors (see the table above). ``timeout`` is the wait that ran out, for
    the message; ``host`` and ``port`` what was resolved or connected to;
    ``deadline`` (for "read") gives the Timeout to raise. Anything else --
    an SMTPError, a TypeError -- passes through.

    A class rather than a @contextmanager generator: the drivers enter it
    for every send and read, and this costs a fraction of a generator's
    set-up; what it raises is the same."""

    __slots__ = ("_during", "_timeout", "_host", "_port", "_deadline")
    _during: During
    _timeout: float
    _host: str
    _port: int
    _deadline: Optional[Deadline]

    def __init__(self, during: During, *, timeout: float = 0.0, host: str = "", port: int = 0,
                 deadline: Optional[Deadline] = None) -> None:
        self._during = during
        self._timeout = timeout
        self._host = host
        self._port = port
        self._deadline = deadline

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> Literal[False]:
        if exc is None or isinstance(exc, SMTPError) or not isinstance(exc, (OSError, UnicodeError)):
            return False
        during = self._during
        if isinstance(exc, UnicodeError) and during != "resolve":
            return False
        error = _mapped(exc, during, self._timeout, self._host, self._port, self._deadline)
        if isinstance(exc, TimeoutError) or during == "resolve":
            raise error from None
        raise error from exc


def _mapped(exc: Union[OSError, UnicodeError], during: During, timeout: float, host: str, port: int,
            deadline: Optional[Deadline]) -> SMTPError:
    """The SMTPError for a lower-layer error ``during`` a step (the table above)."""
    if during == "resolve":
        return TransportError(f"cannot resolve {host!r}: {exc}")
    assert isinstance(exc, OSError)
    if isinstance(exc, TimeoutError):
        if during == "read":
            return deadline.expired() if deadline is not None else Timeout(f"no reply within {timeout} s")
        if during == "handshake":
            return TLSError(f"TLS handshake timed out after {timeout} s")
        if during == "connect":
            where = f"{host} port {port}" if port else host
            return Timeout(f"connect to {where} timed out after {timeout} s")
        return Timeout(f"server did not take data for {timeout} s")
    if during == "handshake":
        return _handshake_error(exc)
    text = exc.strerror or exc
    if during == "connect":
        reason = "refused" if isinstance(exc, ConnectionRefusedError) else None
        where = f"{host} port {port}" if port else host   # port 0: a Unix socket, host its path
        return TransportError(f"cannot connect to {where}: {text}", reason=reason)
    if isinstance(exc, ssl.SSLError):
        verb = "sending" if during == "send" else "reading"
        return TransportError(f"TLS error while {verb}: {exc}")
    if during == "send":
        return TransportError(f"connection lost while sending: {text}")
    return TransportError(f"connection lost: {text}")


def _handshake_error(exc: OSError) -> TLSError:
    """The TLSError for a failed handshake: reason "certificate" for a
    certificate the client does not trust, "plaintext" when the server
    answered in plaintext."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None) or exc   # set by OpenSSL, absent on a hand-made one
        return TLSError(f"certificate verification failed: {detail}", reason="certificate")
    if isinstance(exc, ssl.SSLError) and (getattr(exc, "reason", None) in _PLAINTEXT_REASONS
                                          or "wrong version number" in str(exc)):
        return TLSError(f"TLS handshake failed: the server answered in plaintext, not TLS ({exc.reason})",
                        reason="plaintext")
    return TLSError(f"TLS handshake failed: {exc}")


def tls_info(tls: Union[ssl.SSLSocket, ssl.SSLObject]) -> TLSInfo:
    """The TLSInfo of an established TLS session (socket or asyncio's SSLObject)."""
    version = tls.version()
    # tls-unique is defined for TLS 1.2 only (RFC 5929; RFC 8446 section C.5)
    binding = tls.get_channel_binding("tls-unique") if version == "TLSv1.2" else None
    cipher = tls.cipher()
    certificate: Any = tls.getpeercert()
    return TLSInfo(version, cipher[0] if cipher else None, binding, certificate)


class FirstBytes:
    """Watches the first two bytes a plaintext connection receives. An SMTP
    reply starts with a digit; a TLS record with its content type (20-23)
    and major version 3 (RFC 8446 section 5.1). When the server sends TLS
    to a client that waits for a greeting, ``check`` raises at once --
    rather than waiting for a line end that never comes."""

    def __init__(self) -> None:
        self._head: Optional[bytes] = b""

    def done(self) -> None:
        """Stop watching (after TLS starts: what follows is decrypted)."""
        self._head = None

    def check(self, data: bytes) -> None:
        """RemoteProtocolError (reason "implicit-tls") when the stream starts like TLS."""
        if self._head is None:
            return
        self._head += data[:2]
        if len(self._head) < 2:
            return
        head, self._head = self._head, None
        if 20 <= head[0] <= 23 and head[1] == 3:
            raise RemoteProtocolError("the server answered with TLS, not an SMTP greeting: this port speaks "
                                      "TLS from the first byte", reason="implicit-tls")


def resolved(infos: list[tuple[Any, ...]]) -> list[tuple[int, tuple[Any, ...]]]:
    """``(family, sockaddr)`` of each ``getaddrinfo`` result."""
    return [(info[0], info[4]) for info in infos]

