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


class SyncConnection:
    """One TCP connection to one address of a server: performs Send, Read
    and StartTLS."""

    def __init__(self, sock: socket.socket, server_hostname: str,
                 ssl_context: Optional[ssl.SSLContext]) -> None:
        self._sock = sock
        self._hostname = server_hostname
        self._context = ssl_context
        self._replies = ReplyBuffer()
        self._first = FirstBytes()
        self._timeout = sock.gettimeout()   # what the socket's timeout is set to

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
            self._settimeout(action.timeout)
            for block in blocks:
                self._sock.sendall(block)

    def _read(self, count: int, timeout: float) -> list[Reply]:
        deadline = Deadline(timeout)
        first = True
        while not self._replies.have(count):
            with transport_errors("read", deadline=deadline):
                left = deadline.remaining()   # Timeout once it has passed: a trickle still times out
                # the first wait is all of the timeout (the deadline began a
                # moment ago), so the same timeout is not set again each read
                self._settimeout(timeout if first else left)
                data = self._sock.recv(65536)
            first = False
            if not data:
                raise TransportError(self._replies.closed_message())
            self._first.check(data)
            self._replies.feed(data)
        return self._replies.take(count)

    def _starttls(self, timeout: float) -> TLSInfo:
        # RFC 3207 section 4.2: anything received before the handshake is
        # discarded -- it could be an attacker's injected replies.
        self._replies.reset()
        self._first.done()
        context = self._context or ssl.create_default_context()
        with transport_errors("handshake", timeout=timeout):
            self._settimeout(timeout)
            self._sock = context.wrap_socket(self._sock, server_hostname=self._hostname)
        assert isinstance(self._sock, ssl.SSLSocket)
        return tls_info(self._sock)

    def _settimeout(self, seconds: float) -> None:
        """The socket's timeout for the next call; skipped when it is set
        already (each setting is a system call). A wrapped TLS socket keeps
        the timeout of the socket it wraps."""
        if seconds != self._timeout:
            self._sock.settimeout(seconds)
            self._timeout = seconds

    def dropped(self) -> bool:
        """True when an idle connection cannot carry another command: the
        server closed it, or said something unasked (a 421 before closing,
        RFC 5321 section 3.8). Looks without waiting; used by the pool."""
        try:
            readable = _readable(self._sock)
        except (OSError, ValueError):
            return True
        pending = isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0
        return bool(readable) or pending or self._replies.have(1)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


def _readable(sock: socket.socket) -> bool:
    """Has ``sock`` anything to read (or an end or error to report) right
    now? poll() where there is one: select() refuses a descriptor numbered
    1024 or more, which a busy process reaches."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


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
