"""The asyncio driver, and ``asendmessage`` -- failover pumped by it.

The same dialogue (smtpsend._session.Session) and the same failover
(smtpsend._failover) as the blocking sendmessage: this module only moves
bytes with asyncio streams, wraps TLS and applies the timeouts. A cancelled
send closes its connection.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from typing import Any, Awaitable, Mapping, Optional, Protocol, TypeVar, Union

from ._driver import Action, Close, Connect, Deadline, Dialogue, Read, Resolve, Send, StartTLS, Steps, TLSInfo
from ._envelope import Message
from ._errors import Rejected, SMTPError, TransportError
from ._esmtp import Delivery, Notify
from ._failover import DKIM, failover, plan
from ._options import Token
from ._options import (Debug, EventHook, HeaderArg, Mechanisms, MonitorHook, Orcpt, Policy, Ports,
                       ProgressHook, Recipients, Servers, is_unix_socket)
from ._reply import Reply, ReplyBuffer
from ._sockets import FirstBytes, resolved, tls_info, transport_errors

__all__ = ["AsyncDriver", "AsyncPerformer", "apump", "asendmessage", "start_tls", "within"]

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """``awaitable`` within ``seconds``, a timeout raised as the builtin
    TimeoutError (asyncio's own is another class before Python 3.11), so
    that transport_errors maps it as it maps a socket timeout.

    On Python 3.11+ with ``asyncio.timeout``: ``asyncio.wait_for`` there
    swallows a cancellation that arrives as the awaited step completes
    (a cancelled send then carried on), and costs a task per step."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise TimeoutError from None


class AsyncDriver:
    """Performs a failover dialogue's actions over asyncio streams."""

    def __init__(self, ssl_context: Optional[ssl.SSLContext]) -> None:
        self._context = ssl_context
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._host = ""
        self._replies = ReplyBuffer()
        self._first = FirstBytes()

    async def perform(self, action: Action) -> Any:
        """Do one action; TypeError for an unknown one."""
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

    def _streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            raise TransportError("no connection is open")
        return self._reader, self._writer

    async def _resolve(self, action: Resolve) -> list[tuple[int, tuple[Any, ...]]]:
        if is_unix_socket(action.host):
            return [(socket.AF_UNIX, (action.host,))]
        loop = asyncio.get_running_loop()
        with transport_errors("resolve", host=action.host, port=action.port):
            infos = await loop.getaddrinfo(action.host, action.port, type=socket.SOCK_STREAM)
        return resolved(infos)

    async def _connect(self, action: Connect) -> None:
        await self.aclose()
        if action.family == socket.AF_UNIX:
            path = action.sockaddr[0]
            with transport_errors("connect", timeout=action.timeout, host=path):
                self._reader, self._writer = await within(asyncio.open_unix_connection(path), action.timeout)
        else:
            address, port = action.sockaddr[0], action.sockaddr[1]
            with transport_errors("connect", timeout=action.timeout, host=address, port=port):
                self._reader, self._writer = await within(
                    asyncio.open_connection(address, port, family=action.family), action.timeout)
        self._host = action.host
        self._replies = ReplyBuffer()
        self._first = FirstBytes()

    async def _send(self, action: Send) -> None:
        _, writer = self._streams()
        blocks = [action.data] if isinstance(action.data, (bytes, bytearray)) else action.data
        with transport_errors("send", timeout=action.timeout):
            for block in blocks:
                writer.write(block)
                await within(writer.drain(), action.timeout)

    async def _read(self, count: int, timeout: float) -> list[Reply]:
        reader, _ = self._streams()
        deadline = Deadline(timeout)
        while not self._replies.have(count):
            left = deadline.remaining()   # first: a Timeout here leaves no coroutine unawaited
            with transport_errors("read", deadline=deadline):
                data = await within(reader.read(65536), left)
            if not data:
                raise TransportError(self._replies.closed_message())
            self._first.check(data)
            self._replies.feed(data)
        return self._replies.take(count)

    async def _starttls(self, timeout: float) -> TLSInfo:
        # RFC 3207 section 4.2: discard everything received before the
        # handshake -- our replies, and the old stream reader with whatever
        # it still holds: TLS gets a fresh reader.
        _, writer = self._streams()
        self._replies.reset()
        self._first.done()
        context = self._context or ssl.create_default_context()
        with transport_errors("handshake", timeout=timeout):
            reader, tls_writer = await within(start_tls(writer, context, server_hostname=self._host), timeout)
        self._reader, self._writer = reader, tls_writer
        ssl_object = tls_writer.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        return tls_info(ssl_object)

    def dropped(self) -> bool:
        """True when an idle connection cannot carry another command: the
        server closed it, or it failed, or a reply came unasked (a 421
        before closing, RFC 5321 section 3.8). Looks without waiting; used
        by the pool."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None or writer.is_closing():
            return True
        return reader.at_eof() or reader.exception() is not None or self._replies.have(1)

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


async def start_tls(writer: asyncio.StreamWriter, context: ssl.SSLContext, server_hostname: Optional[str] = None,
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
    if transport is None:   # the loop lost the connection during the handshake
        raise ConnectionResetError("connection closed during the TLS handshake")
    protocol.connection_made(transport)
    tls_writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    # The old writer shares the raw transport under TLS, and StreamWriter.__del__
    # closes its transport: keep it alive as long as the new one.
    setattr(tls_writer, "_plaintext_writer", writer)
    return reader, tls_writer


class AsyncPerformer(Protocol):
    """What apump() drives: AsyncDriver, a pool's driver, or a test's script."""

    async def perform(self, action: Action) -> Any: ...


async def apump(dialogue: Dialogue[T], driver: AsyncPerformer) -> T:
    """pump() for asyncio: the same steps, each performed with ``await``."""
    steps = Steps(dialogue)
    for action in steps:
        try:
            steps.succeeded(await driver.perform(action))
        except SMTPError as exc:
            steps.failed(exc)
    return steps.result


async def asendmessage(part: Message, *, servers: Servers = ("localhost",), ports: Ports = None,
                       client: Optional[str] = None, originator: Optional[str] = None,
                       recipients: Recipients = None, header: HeaderArg = (), atleastone: bool = False,
                       queue: bool = False, usetls: bool = True, tlsimport: Optional[bool] = None,
                       tlspolicy: Policy = None, ssl_context: Optional[ssl.SSLContext] = None,
                       username: Optional[str] = None, password: Optional[str] = None,
                       token: Token = None, mechanisms: Mechanisms = None, maxsecs: float = 120,
                       timeout: Optional[float] = None, debug: Debug = False, ret: Optional[str] = None,
                       envid: Optional[str] = None, notify: Union[Notify, Mapping[str, Notify], None] = None,
                       orcpt: Orcpt = None, require_dsn: bool = False, deliverby: Optional[str] = None,
                       priority: Optional[int] = None, requiretls: bool = False,
                       mail_auth: Optional[str] = None, delivery: Optional[Delivery] = None,
                       events: Optional[EventHook] = None, monitor: Optional[MonitorHook] = None,
                       monitor_headers: bool = False, progress: Optional[ProgressHook] = None,
                       dkim: DKIM = None, protocol: str = "smtp") -> list[Rejected]:
    """sendmessage for asyncio: the same arguments, result and errors.

    Safe to call inside a running loop and many times at once; cancelling
    it closes the connection it had open.
    """
    arguments = dict(locals())
    del arguments["part"], arguments["ssl_context"]
    checked = plan(part, **arguments)
    driver = AsyncDriver(ssl_context)
    try:
        return await apump(failover(checked), driver)
    finally:
        await asyncio.shield(driver.aclose())
