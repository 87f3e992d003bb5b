"""The blocking driver: a socket that performs a Session's actions.

It moves bytes and nothing else: no SMTP logic lives here. Every wait has
a deadline (a server that trickles one byte a second still times out), and
every socket, ssl or OS error becomes one of smtpsend's own errors.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Generator, Optional

from ._errors import SMTPError, Timeout, TLSError, TransportError
from ._reply import Reply, ReplyBuffer
from ._session import Close, Connect, Deadline, Read, Resolve, Send, StartTLS, Steps, TLSInfo

__all__ = ["SyncConnection", "SyncDriver", "pump"]


class SyncConnection:
    """One TCP connection to one address of a server."""

    def __init__(self, sock: socket.socket, server_hostname: str,
                 ssl_context: Optional[ssl.SSLContext]) -> None:
        self._sock = sock
        self._hostname = server_hostname
        self._context = ssl_context
        self._replies = ReplyBuffer()

    @classmethod
    def open(cls, sockaddr: tuple, family: int, timeout: float, server_hostname: str,
             ssl_context: Optional[ssl.SSLContext]) -> "SyncConnection":
        """Connect to one resolved address. Raises TransportError or Timeout."""
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except socket.timeout:
            sock.close()
            raise Timeout(f"connect to {sockaddr[0]} port {sockaddr[1]} timed out after {timeout} s") from None
        except OSError as exc:
            sock.close()
            raise TransportError(f"cannot connect to {sockaddr[0]} port {sockaddr[1]}: "
                                 f"{exc.strerror or exc}") from exc
        return cls(sock, server_hostname, ssl_context)

    def perform(self, action: Any) -> Any:
        if isinstance(action, Send):
            return self._send(action)
        if isinstance(action, Read):
            return self._read(action.count, action.timeout)
        if isinstance(action, StartTLS):
            return self._starttls(action.timeout)
        raise TypeError(f"unknown action {action!r}")

    def _send(self, action: Send) -> None:
        blocks = [action.data] if isinstance(action.data, (bytes, bytearray)) else action.data
        try:
            self._sock.settimeout(action.timeout)
            for block in blocks:
                self._sock.sendall(block)
        except socket.timeout:
            raise Timeout(f"server did not take data for {action.timeout} s") from None
        except ssl.SSLError as exc:
            raise TransportError(f"TLS error while sending: {exc}") from exc
        except OSError as exc:
            raise TransportError(f"connection lost while sending: {exc.strerror or exc}") from exc

    def _read(self, count: int, timeout: float) -> list[Reply]:
        deadline = Deadline(timeout)
        while not self._replies.have(count):
            try:
                self._sock.settimeout(deadline.remaining())
                data = self._sock.recv(65536)
            except socket.timeout:
                raise deadline.expired() from None
            except ssl.SSLError as exc:
                raise TransportError(f"TLS error while reading: {exc}") from exc
            except OSError as exc:
                raise TransportError(f"connection lost: {exc.strerror or exc}") from exc
            if not data:
                raise TransportError(self._replies.closed_message())
            self._replies.feed(data)
        return self._replies.take(count)

    def _starttls(self, timeout: float) -> TLSInfo:
        # RFC 3207 section 4.2: anything received before the handshake is
        # discarded -- it could be an attacker's injected replies.
        self._replies.reset()
        context = self._context or ssl.create_default_context()
        try:
            self._sock.settimeout(timeout)
            self._sock = context.wrap_socket(self._sock, server_hostname=self._hostname)
        except socket.timeout:
            raise TLSError(f"TLS handshake timed out after {timeout} s") from None
        except ssl.SSLCertVerificationError as exc:
            raise TLSError(f"certificate verification failed: {exc.verify_message or exc}") from exc
        except (ssl.SSLError, OSError) as exc:
            raise TLSError(f"TLS handshake failed: {exc}") from exc
        binding = None
        if self._sock.version() == "TLSv1.2":
            # tls-unique is defined for TLS 1.2 only (RFC 5929; RFC 8446 section C.5)
            binding = self._sock.get_channel_binding("tls-unique")
        cipher = self._sock.cipher()
        return TLSInfo(self._sock.version(), cipher[0] if cipher else None, binding,
                       self._sock.getpeercert())

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


class SyncDriver:
    """Performs the connection-level actions of a failover dialogue
    (Resolve, Connect, Close) and hands the rest to the open connection."""

    def __init__(self, ssl_context: Optional[ssl.SSLContext]) -> None:
        self._context = ssl_context
        self._connection: Optional[SyncConnection] = None

    def perform(self, action: Any) -> Any:
        if isinstance(action, Resolve):
            from ._send import resolve
            return resolve(action.host, action.port)
        if isinstance(action, Connect):
            self.close()
            self._connection = SyncConnection.open(action.sockaddr, action.family, action.timeout,
                                                   action.host, self._context)
            return None
        if isinstance(action, Close):
            self.close()
            return None
        return self._connection.perform(action)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def pump(dialogue: Generator, connection) -> Any:
    """Drive ``dialogue`` over ``connection`` (a SyncDriver or SyncConnection);
    returns what the dialogue returns."""
    steps = Steps(dialogue)
    for action in steps:
        try:
            steps.succeeded(connection.perform(action))
        except SMTPError as exc:
            steps.failed(exc)
    return steps.result
