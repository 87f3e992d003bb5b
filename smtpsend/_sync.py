"""The blocking driver: a socket that performs a dialogue's actions, and
``sendmessage`` -- failover (smtpsend._failover) pumped by it.

The driver moves bytes and nothing else: no SMTP logic lives here. Every wait has
a deadline (a server that trickles one byte a second still times out), and
every socket, ssl or OS error becomes one of smtpsend's own errors
(smtpsend._sockets.transport_errors).
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from typing import Any, Mapping, Optional, Protocol, TypeVar, Union

from ._driver import Action, Close, Connect, Deadline, Dialogue, Read, Resolve, Send, StartTLS, Steps, TLSInfo
from ._envelope import Message
from ._errors import Rejected, SMTPError, TransportError, locate
from ._esmtp import Delivery, Notify
from ._failover import DKIM, failover, plan
from ._options import Token
from ._options import (Debug, EventHook, HeaderArg, Mechanisms, MonitorHook, Orcpt, Policy, Ports,
                       ProgressHook, Recipients, Servers, is_unix_socket)
from ._reply import Reply, ReplyBuffer
from ._sockets import FirstBytes, resolved, tls_info, transport_errors

__all__ = ["Performer", "SyncConnection", "SyncDriver", "pump", "resolve", "sendmessage"]

T = TypeVar("T")


class Performer(Protocol):
    """What pump() drives: SyncDriver, SyncConnection, or a test's script."""

    def perform(self, action: Action) -> Any: ...


def resolve(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    """Every (family, address) ``host`` resolves to, IPv6 and IPv4 alike; a
    Unix socket's path to itself, ``[(AF_UNIX, (path,))]``. Raises
    TransportError (stage "connect") when the name does not resolve."""
    if is_unix_socket(host):
        return [(socket.AF_UNIX, (host,))]
    try:
        with transport_errors("resolve", host=host, port=port):
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TransportError as error:
        raise locate(error, host, port, "connect")
    return resolved(infos)


# the "try again once the socket is ready" errors of a non-blocking socket
_NOT_READY = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_POLL = hasattr(select, "poll")
_IN = select.POLLIN if _POLL else 1
_OUT = select.POLLOUT if _POLL else 4


class SyncConnection:
    """One TCP connection to one address of a server: performs Send, Read
    and StartTLS.

    The socket is non-blocking once connected, and every wait is a poll()
    bounded by what is left of the action's deadline. No timeout is set
    on the socket per action, and a read waits for data before it reads:
    each system call lets another thread take the interpreter, and a
    socket with a timeout makes three of them (set, poll, then the call)
    where this makes one or two."""

    def __init__(self, sock: socket.socket, server_hostname: str,
                 ssl_context: Optional[ssl.SSLContext]) -> None:
        self._sock = sock
        self._hostname = server_hostname
        self._context = ssl_context
        self._replies = ReplyBuffer()
        self._first = FirstBytes()
        sock.setblocking(False)
        self._poller = _Poller(sock)

    @classmethod
    def open(cls, sockaddr: tuple[Any, ...], family: int, timeout: float, server_hostname: str,
             ssl_context: Optional[ssl.SSLContext]) -> "SyncConnection":
        """Connect to one resolved address (a Unix socket for AF_UNIX).
        Raises TransportError or Timeout."""
        unix = family == socket.AF_UNIX
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            with transport_errors("connect", timeout=timeout, host=sockaddr[0], port=0 if unix else sockaddr[1]):
                sock.settimeout(timeout)
                sock.connect(sockaddr[0] if unix else sockaddr)
                if not unix:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except SMTPError:
            sock.close()
            raise
        return cls(sock, server_hostname, ssl_context)

    def perform(self, action: Action) -> Union[None, list[Reply], TLSInfo]:
        """Do one Send, Read or StartTLS; TypeError for any other action."""
        if isinstance(action, Send):
            self._send(action)
            return None
        if isinstance(action, Read):
            return self._read(action.count, action.timeout)
        if isinstance(action, StartTLS):
            return self._starttls(action.timeout)
        raise TypeError(f"unknown action {action!r}")

    def _send(self, action: Send) -> None:
        blocks = [action.data] if isinstance(action.data, (bytes, bytearray)) else action.data
        with transport_errors("send", timeout=action.timeout):
            for block in blocks:
                self._send_block(block, action.timeout)

    def _send_block(self, block: bytes, timeout: float) -> None:
        """All of ``block``; TimeoutError when the server took none of it
        for ``timeout`` seconds (RFC 5321 section 4.5.3.2.6: the limit is on
        each send of a block of data, not on the whole message)."""
        view = memoryview(block)
        end = 0.0
        while view:
            try:
                sent = self._sock.send(view)
            except _NOT_READY as exc:   # a TLS socket may need to read first (a key update)
                now = time.monotonic()
                end = end or now + timeout
                if not self._poller.wait(_IN if isinstance(exc, ssl.SSLWantReadError) else _OUT, end - now):
                    raise TimeoutError("timed out") from None
                continue
            view = view[sent:]
            end = 0.0   # it moved: the next wait gets all of the timeout again

    def _read(self, count: int, timeout: float) -> list[Reply]:
        deadline = Deadline(timeout)
        while not self._replies.have(count):
            with transport_errors("read", deadline=deadline):
                data = self._receive(deadline)
            if not data:
                raise TransportError(self._replies.closed_message())
            self._first.check(data)
            self._replies.feed(data)
        return self._replies.take(count)

    def _receive(self, deadline: Deadline) -> bytes:
        """The next bytes from the server (b"" at its end), waiting for them
        at most what is left of ``deadline``: each wait is bounded by it,
        so a server that trickles one byte at a time still times out."""
        sock = self._sock
        events = _IN
        while True:
            # TLS: bytes already decrypted are read without a wait
            if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                if not self._poller.wait(events, deadline.remaining()):
                    raise TimeoutError("timed out")
            try:
                return sock.recv(65536)
            except _NOT_READY as exc:   # a part of a TLS record, or a key update to send
                events = _OUT if isinstance(exc, ssl.SSLWantWriteError) else _IN

    def _starttls(self, timeout: float) -> TLSInfo:
        # RFC 3207 section 4.2: anything received before the handshake is
        # discarded -- it could be an attacker's injected replies.
        self._replies.reset()
        self._first.done()
        context = self._context or ssl.create_default_context()
        with transport_errors("handshake", timeout=timeout):
            self._sock.settimeout(timeout)   # the handshake blocks (once per connection)
            self._sock = context.wrap_socket(self._sock, server_hostname=self._hostname)
            self._sock.setblocking(False)
        assert isinstance(self._sock, ssl.SSLSocket)
        self._poller = _Poller(self._sock)
        return tls_info(self._sock)

    def dropped(self) -> bool:
        """True when an idle connection cannot carry another command: the
        server closed it, or said something unasked (a 421 before closing,
        RFC 5321 section 3.8). Looks without waiting; used by the pool."""
        if self._sock.fileno() < 0:   # closed here
            return True
        try:
            readable = self._poller.wait(_IN, 0.0)
        except (OSError, ValueError):
            return True
        pending = isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0
        return readable or pending or self._replies.have(1)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


class _Poller:
    """Waits for one socket to be ready. poll() where there is one:
    select() refuses a descriptor numbered 1024 or more, which a busy
    process reaches."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._events = _IN
        if _POLL:
            self._poll = select.poll()
            self._poll.register(sock, _IN)

    def wait(self, events: int, seconds: float) -> bool:
        """True once the socket is ready for ``events`` (_IN, _OUT) -- or
        has an end or error to report; False after ``seconds`` (0: look
        without waiting)."""
        if not _POLL:
            ready = select.select(*(([self._sock], []) if events == _IN else ([], [self._sock])), [], seconds)
            return bool(ready[0] or ready[1])
        if events != self._events:
            self._poll.modify(self._sock, events)
            self._events = events
        return bool(self._poll.poll(max(seconds, 0.0) * 1000.0))   # milliseconds, rounded up


class SyncDriver:
    """Performs the connection-level actions of a failover dialogue
    (Resolve, Connect, Close) and hands the rest to the open connection."""

    def __init__(self, ssl_context: Optional[ssl.SSLContext]) -> None:
        self._context = ssl_context
        self._connection: Optional[SyncConnection] = None

    def perform(self, action: Action) -> Any:
        """Do one action. TransportError for Send/Read/StartTLS with no
        connection open."""
        if isinstance(action, Resolve):
            return resolve(action.host, action.port)
        if isinstance(action, Connect):
            self.close()
            self._connection = SyncConnection.open(action.sockaddr, action.family, action.timeout,
                                                   action.host, self._context)
            return None
        if isinstance(action, Close):
            self.close()
            return None
        if self._connection is None:
            raise TransportError("no connection is open")
        return self._connection.perform(action)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def pump(dialogue: Dialogue[T], connection: Performer) -> T:
    """Drive ``dialogue`` over ``connection`` (a SyncDriver or SyncConnection,
    or anything with the same ``perform``); returns what the dialogue returns."""
    steps = Steps(dialogue)
    for action in steps:
        try:
            steps.succeeded(connection.perform(action))
        except SMTPError as exc:
            steps.failed(exc)
    return steps.result


def sendmessage(part: Message, *, servers: Servers = ("localhost",), ports: Ports = None,
                client: Optional[str] = None, originator: Optional[str] = None, recipients: Recipients = None,
                header: HeaderArg = (), atleastone: bool = False, queue: bool = False, usetls: bool = True,
                tlsimport: Optional[bool] = None, tlspolicy: Policy = None,
                ssl_context: Optional[ssl.SSLContext] = None, username: Optional[str] = None,
                password: Optional[str] = None, token: Token = None, mechanisms: Mechanisms = None,
                maxsecs: float = 120, timeout: Optional[float] = None, debug: Debug = False,
                ret: Optional[str] = None, envid: Optional[str] = None,
                notify: Union[Notify, Mapping[str, Notify], None] = None, orcpt: Orcpt = None,
                require_dsn: bool = False, deliverby: Optional[str] = None, priority: Optional[int] = None,
                requiretls: bool = False, mail_auth: Optional[str] = None, delivery: Optional[Delivery] = None,
                events: Optional[EventHook] = None, monitor: Optional[MonitorHook] = None,
                monitor_headers: bool = False, progress: Optional[ProgressHook] = None,
                dkim: DKIM = None, protocol: str = "smtp") -> list[Rejected]:
    """Send ``part`` (a mimecompose Part, raw bytes, or an email.message.Message).

    The envelope comes from the header unless ``originator`` and
    ``recipients`` are given (see :func:`smtpsend.envelope`); ``header``
    adds or replaces fields in the transmitted copy. Each server is tried in
    turn, in tandem with ``ports`` (default 25, or 465 with ``tlsimport=True``);
    ``tlsimport=None`` (the default) speaks TLS from the first byte on port
    465 and uses STARTTLS elsewhere, True/False force it;
    a server may be ``host:port`` or ``[v6]:port``. ``mechanisms`` limits
    SASL to the named mechanisms (still strongest first).

    ESMTP options (see :class:`smtpsend.Delivery`): ``ret``, ``envid``,
    ``notify``, ``orcpt``, ``require_dsn`` (DSN, RFC 3461); ``deliverby``
    (RFC 2852); ``priority`` (MT-PRIORITY, RFC 6710); ``requiretls`` (RFC
    8689); ``mail_auth`` (AUTH= on MAIL, RFC 4954); or all of them (and
    ``atleastone``) as one ``delivery=Delivery(...)``, which excludes the
    individual options (UsageError when both are given). Hooks: ``events``
    receives an :class:`Event` at each step, ``monitor(direction, line)``
    every protocol line (credentials redacted; message headers too with
    ``monitor_headers``), ``progress(sent, total)`` the octets of message
    data sent. ``dkim``: a mimecompose.DKIMSigner, or a list of them that
    sign in turn (RSA and Ed25519): the message is signed as it is
    transmitted to each server -- stamped, without Bcc, and in the 7-bit
    form when the server lacks 8BITMIME (docs/signing.md).
    ``protocol="lmtp"``: deliver with LMTP (RFC 2033, docs/lmtp.md) --
    LHLO, one reply per recipient after the data, default port 24; a
    server may then also be a Unix socket's path (``"/run/dovecot/lmtp"``).
    Recipients an LMTP server refuses after the data are returned like RCPT
    refusals with ``atleastone``; without it, RecipientsRefused whose
    ``delivered`` lists those that did get the message.

    Returns ``[]`` when every recipient was accepted; with ``atleastone``,
    the list of refused recipients when the message went to the others.
    A message that was not delivered always raises: UsageError (a
    ValueError) for bad input; the message's own failures directly
    (SenderRefused, RecipientsRefused, DataRefused, MessageTooBig,
    DeliveryUncertain), each with ``.server``/``.port``; otherwise
    AllServersFailed with every attempt.
    """
    arguments = dict(locals())
    del arguments["part"], arguments["ssl_context"]
    checked = plan(part, **arguments)
    driver = SyncDriver(ssl_context)
    try:
        return pump(failover(checked), driver)
    finally:
        driver.close()
