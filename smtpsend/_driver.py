"""The driver contract: what an I/O-free dialogue asks of a driver.

A dialogue (``Session.open()``, ``Session.deliver()``, ``failover()``...)
is a generator. It yields actions and receives each one's result:

| action | the driver does | and answers |
|---|---|---|
| :class:`Resolve` | look the host name up | ``[(family, sockaddr), ...]`` |
| :class:`Connect` | open a TCP (or Unix socket) connection, closing any open one | ``None`` |
| :class:`Send` | write the bytes, or every block of an iterable | ``None`` |
| :class:`Read` | wait for ``count`` whole replies | ``list[Reply]`` |
| :class:`StartTLS` | forget what was received; TLS handshake | :class:`TLSInfo` |
| :class:`Close` | close the connection | ``None`` |
| :class:`Checkout` | (pool drivers) hand over an idle connection to reuse | its ``Session``, or ``None`` |
| :class:`Checkin` | (pool drivers) keep the connection for the next message, or drop it | ``None`` |

A driver that fails raises an SMTPError (socket, ssl and OS errors mapped
by smtpsend._sockets.transport_errors), and its pump throws it into the
dialogue (:class:`Steps`), which decides what the failure means there.
Every wait has a :class:`Deadline`; :class:`Timeouts` says how long.

This module imports nothing of smtpsend but the errors: a new driver (a
pool, a test script) needs only this page, smtpsend._reply (to parse the
replies it reads) and smtpsend._sockets (to map its errors).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Generator, Generic, Iterable, Optional, TypeVar, Union

from ._errors import Timeout, UsageError

__all__ = ["Action", "Checkin", "Checkout", "Close", "Connect", "Deadline", "Dialogue", "Read", "Resolve",
           "Send", "StartTLS", "Steps", "TLSInfo", "Timeouts", "usable_seconds"]

T = TypeVar("T")


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
    or raises TransportError. A ``host`` that is a Unix socket's path
    (it starts with "/"; ``port`` is then 0) resolves to itself:
    ``[(AF_UNIX, (path,))]``."""

    host: str
    port: int


@dataclass(frozen=True)
class Connect:
    """Open a TCP connection to ``sockaddr`` (a Unix socket for AF_UNIX:
    ``(path,)``); ``host`` is the name TLS verifies. Raises TransportError
    or Timeout."""

    family: int
    sockaddr: tuple[Any, ...]
    host: str
    timeout: float


@dataclass(frozen=True)
class Close:
    """Close the current connection."""


@dataclass(frozen=True)
class Checkout:
    """Pool drivers only: make an idle, open connection to (``host``,
    ``port``) the current one and answer with its Session (the dialogue
    of that connection), or None when there is none to reuse (the
    dialogue then connects). Plain drivers never see it."""

    host: str
    port: int


@dataclass(frozen=True)
class Checkin:
    """Pool drivers only: the dialogue is done with the current
    connection. ``reusable``: the transaction ended cleanly -- keep it,
    with ``session``, for the next message to (``host``, ``port``);
    otherwise close it (``stale``: it was a kept connection found closed,
    replaced). Answers None."""

    session: Any
    host: str
    port: int
    reusable: bool
    stale: bool = False


@dataclass(frozen=True)
class StartTLS:
    """Start TLS on the connection; discard whatever was received before
    (RFC 3207 section 4.2). The driver answers with a :class:`TLSInfo`."""

    timeout: float


@dataclass(frozen=True)
class TLSInfo:
    """What a TLS handshake established: the protocol ``version`` and
    ``cipher``, the tls-unique ``channel_binding`` (TLS 1.2 only, RFC 5929)
    and the server's certificate as ``ssl.SSLSocket.getpeercert()`` gives it."""

    version: Optional[str] = None
    cipher: Optional[str] = None
    channel_binding: Optional[bytes] = None   # tls-unique, when TLS 1.2 gives one
    peer_certificate: Optional[dict[str, Any]] = None


Action = Union[Send, Read, Resolve, Connect, Close, StartTLS, Checkout, Checkin]

# A dialogue: yields actions, is sent each one's result, returns a T.
Dialogue = Generator[Action, Any, T]


class Steps(Generic[T]):
    """Iterate over a dialogue's actions; report each one's outcome with
    ``succeeded(value)`` or ``failed(error)`` before asking for the next.
    When the dialogue ends, ``result`` holds what it returned.

    This is all a driver's pump needs: ``for action in steps: ...perform...``,
    blocking or with ``await``.
    """

    def __init__(self, dialogue: Dialogue[T]) -> None:
        self._dialogue = dialogue
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self.result: T

    def __iter__(self) -> "Steps[T]":
        return self

    def __next__(self) -> Action:
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
        """The action's result, sent into the dialogue by the next step."""
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
        self._seconds = seconds
        self._what = what   # the message is made only when the wait runs out

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> Timeout:
        """The Timeout to raise when the wait ran out."""
        return Timeout(f"{self._what} within {self._seconds} s")


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
        """``timeout`` for every wait (the RFC's defaults when None), and
        ``maxsecs`` for the reply to the message data. UsageError unless
        each is a usable wait (:func:`usable_seconds`)."""
        if not usable_seconds(maxsecs) or (timeout is not None and not usable_seconds(timeout)):
            raise UsageError("timeout= and maxsecs= must be positive numbers of seconds "
                             f"(at most {threading.TIMEOUT_MAX:.0f})")
        if timeout is None:
            return cls(final=maxsecs)
        return cls(timeout, timeout, timeout, timeout, timeout, maxsecs)


def usable_seconds(value: object) -> bool:
    """True for a wait a socket, a lock and the event loop all take: a
    number of seconds above 0 and at most threading.TIMEOUT_MAX (NaN and
    infinity are not; a bool is not a number of seconds)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 < value <= threading.TIMEOUT_MAX)
