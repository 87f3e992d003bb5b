"""The blocking driver: a socket that performs a Session's actions.

It moves bytes and nothing else: no SMTP logic lives here. Every wait has
a deadline (a server that trickles one byte a second still times out), and
every socket, ssl or OS error becomes one of smtpsend's own errors.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Generator, Optional

from ._errors import RemoteProtocolError, SMTPError, Timeout, TLSError, TransportError
from ._reply import Reply, ReplyBuffer
from ._session import Close, Connect, Deadline, Read, Resolve, Send, StartTLS, Steps, TLSInfo

__all__ = ["FirstBytes", "SyncConnection", "SyncDriver", "connect_error", "handshake_error", "pump"]

# What OpenSSL says when the peer's first bytes are not a TLS record: a
# server that speaks plaintext where TLS was expected.
_PLAINTEXT_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                                "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "UNEXPECTED_RECORD"})


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


def connect_error(exc: OSError, address: str, port: int) -> TransportError:
    """The TransportError for a failed connect (reason "refused" when nothing listens)."""
    reason = "refused" if isinstance(exc, ConnectionRefusedError) else None
    return TransportError(f"cannot connect to {address} port {port}: {exc.strerror or exc}", reason=reason)


def handshake_error(exc: BaseException) -> TLSError:
    """The TLSError for a failed handshake: reason "certificate" for a
    certificate the client does not trust, "plaintext" when the server
    answered in plaintext."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSError(f"certificate verification failed: {exc.verify_message or exc}", reason="certificate")
    if isinstance(exc, ssl.SSLError) and (exc.reason in _PLAINTEXT_REASONS or "wrong version number" in str(exc)):
        return TLSError(f"TLS handshake failed: the server answered in plaintext, not TLS ({exc.reason})",
                        reason="plaintext")
    return TLSError(f"TLS handshake failed: {exc}")


class SyncConnection:
    """One TCP connection to one address of a server."""

    def __init__(self, sock: socket.socket, server_hostname: str,
                 ssl_context: Optional[ssl.SSLContext]) -> None:
        self._sock = sock
        self._hostname = server_hostname
        self._context = ssl_context
        self._replies = ReplyBuffer()
        self._first = FirstBytes()

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
            raise connect_error(exc, sockaddr[0], sockaddr[1]) from exc
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
            self._first.check(data)
            self._replies.feed(data)
        return self._replies.take(count)

    def _starttls(self, timeout: float) -> TLSInfo:
        # RFC 3207 section 4.2: anything received before the handshake is
        # discarded -- it could be an attacker's injected replies.
        self._replies.reset()
        self._first.done()
        context = self._context or ssl.create_default_context()
        try:
            self._sock.settimeout(timeout)
            self._sock = context.wrap_socket(self._sock, server_hostname=self._hostname)
        except socket.timeout:
            raise TLSError(f"TLS handshake timed out after {timeout} s") from None
        except (ssl.SSLError, OSError) as exc:
            raise handshake_error(exc) from exc
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
