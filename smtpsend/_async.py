"""The asyncio driver, and ``asendmessage``.

The same dialogue (``_session.Session``) and the same failover
(``_send.failover``) as the blocking sendmessage: this module only moves
bytes with asyncio streams, wraps TLS and applies the timeouts. A cancelled
send closes its connection.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import ssl
from typing import Any, Generator, Optional

from ._errors import SMTPError, Timeout, TLSError, TransportError
from ._reply import Reply, ReplyBuffer
from ._send import _plan, failover, sendmessage
from ._session import Close, Connect, Deadline, Read, Resolve, Send, StartTLS, Steps, TLSInfo
from ._sync import FirstBytes, connect_error, handshake_error

__all__ = ["AsyncDriver", "apump", "asendmessage", "start_tls"]


class AsyncDriver:
    """Performs a failover dialogue's actions over asyncio streams."""

    def __init__(self, ssl_context: Optional[ssl.SSLContext]) -> None:
        self._context = ssl_context
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._host = ""
        self._replies = ReplyBuffer()
        self._first = FirstBytes()

    async def perform(self, action: Any) -> Any:
        if isinstance(action, Resolve):
            return await self._resolve(action)
        if isinstance(action, Connect):
            return await self._connect(action)
        if isinstance(action, Close):
            await self.aclose()
            return None
        if isinstance(action, Send):
            return await self._send(action)
        if isinstance(action, Read):
            return await self._read(action.count, action.timeout)
        if isinstance(action, StartTLS):
            return await self._starttls(action.timeout)
        raise TypeError(f"unknown action {action!r}")

    async def _resolve(self, action: Resolve) -> list:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(action.host, action.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise TransportError(f"cannot resolve {action.host!r}: {exc}") from None
        return [(family, sockaddr) for family, _t, _p, _n, sockaddr in infos]

    async def _connect(self, action: Connect) -> None:
        await self.aclose()
        address, port = action.sockaddr[0], action.sockaddr[1]
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(address, port, family=action.family), action.timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"connect to {address} port {port} timed out after {action.timeout} s") from None
        except OSError as exc:
            raise connect_error(exc, address, port) from exc
        self._host = action.host
        self._replies = ReplyBuffer()
        self._first = FirstBytes()

    async def _send(self, action: Send) -> None:
        blocks = [action.data] if isinstance(action.data, (bytes, bytearray)) else action.data
        try:
            for block in blocks:
                self._writer.write(block)
                await asyncio.wait_for(self._writer.drain(), action.timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"server did not take data for {action.timeout} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"connection lost while sending: {exc}") from exc

    async def _read(self, count: int, timeout: float) -> list[Reply]:
        deadline = Deadline(timeout)
        while not self._replies.have(count):
            try:
                left = deadline.remaining()   # first: a Timeout here leaves no coroutine unawaited
                data = await asyncio.wait_for(self._reader.read(65536), left)
            except asyncio.TimeoutError:
                raise deadline.expired() from None
            except (OSError, ssl.SSLError) as exc:
                raise TransportError(f"connection lost: {exc}") from exc
            if not data:
                raise TransportError(self._replies.closed_message())
            self._first.check(data)
            self._replies.feed(data)
        return self._replies.take(count)

    async def _starttls(self, timeout: float) -> TLSInfo:
        # RFC 3207 section 4.2: discard everything received before the
        # handshake -- our replies, and the old stream reader with whatever
        # it still holds: TLS gets a fresh reader.
        self._replies.reset()
        self._first.done()
        context = self._context or ssl.create_default_context()
        try:
            self._reader, self._writer = await asyncio.wait_for(
                start_tls(self._writer, context, server_hostname=self._host), timeout)
        except asyncio.TimeoutError:
            raise TLSError(f"TLS handshake timed out after {timeout} s") from None
        except (ssl.SSLError, OSError) as exc:
            raise handshake_error(exc) from exc
        ssl_object = self._writer.get_extra_info("ssl_object")
        version = ssl_object.version()
        binding = ssl_object.get_channel_binding("tls-unique") if version == "TLSv1.2" else None
        cipher = ssl_object.cipher()
        return TLSInfo(version, cipher[0] if cipher else None, binding, ssl_object.getpeercert())

    async def aclose(self) -> None:
        """Close the connection and wait until the socket is really closed
        (writer.close() alone only schedules it)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1)
        except (asyncio.TimeoutError, OSError, ssl.SSLError):
            writer.transport.abort()
        except asyncio.CancelledError:
            writer.transport.abort()
            raise


async def start_tls(writer: asyncio.StreamWriter, context: ssl.SSLContext, server_hostname=None,
                    server_side: bool = False) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Upgrade a stream connection to TLS; returns a new reader and writer.

    Uses loop.start_tls (Python 3.7+) rather than StreamWriter.start_tls
    (3.11+), and a fresh StreamReader: bytes the old reader had buffered
    before the handshake are left behind with it.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    transport = await loop.start_tls(writer.transport, protocol, context, server_side=server_side,
                                     server_hostname=None if server_side else server_hostname)
    protocol.connection_made(transport)
    tls_writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    # The old writer shares the raw transport under TLS, and StreamWriter.__del__
    # closes its transport: keep it alive as long as the new one.
    tls_writer._plaintext_writer = writer
    return reader, tls_writer


async def apump(dialogue: Generator, driver: AsyncDriver) -> Any:
    """pump() for asyncio: the same steps, each performed with ``await``."""
    steps = Steps(dialogue)
    for action in steps:
        try:
            steps.succeeded(await driver.perform(action))
        except SMTPError as exc:
            steps.failed(exc)
    return steps.result


_SIGNATURE = inspect.signature(sendmessage)


async def asendmessage(*args, **kwargs):
    """sendmessage for asyncio: the same arguments, result and errors.

    Safe to call inside a running loop and many times at once; cancelling
    it closes the connection it had open.
    """
    bound = _SIGNATURE.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    ssl_context = arguments.pop("ssl_context")
    plan = _plan(**arguments)
    driver = AsyncDriver(ssl_context)
    try:
        return await apump(failover(plan), driver)
    finally:
        await asyncio.shield(driver.aclose())


asendmessage.__signature__ = _SIGNATURE
