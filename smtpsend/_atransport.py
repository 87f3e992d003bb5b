"""``smtpsend.AsyncTransport``: smtpsend.Transport for asyncio -- a pool of
open connections shared by the tasks of one event loop.

::

    atransport = smtpsend.AsyncTransport(servers=["mail.example.com"], username="app", password=secret)
    await atransport.sendmessage(part)      # from any task; the connection stays open
    await atransport.aclose()               # QUIT to the idle connections

The same dialogue (failover with ``reuse=True``) and the same bookkeeping
(smtpsend._pool) as Transport; this module adds only a queue of waiting
tasks (the pool's calls are synchronous: no lock is needed on one loop)
and the I/O, with one smtpsend._async.AsyncDriver per
connection. A cancelled send closes the connection it was using.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections import deque
from typing import Any, Awaitable, Callable, Mapping, NoReturn, Optional, Union

from ._async import AsyncDriver, apump
from ._driver import Action, Checkin, Checkout, Close, Connect, Resolve
from ._envelope import Message
from ._errors import Rejected, SMTPError, Timeout, TransportError, UsageError
from ._esmtp import Delivery, Notify
from ._failover import DKIM, failover
from ._options import Token, shown
from ._options import (Debug, EventHook, HeaderArg, Mechanisms, MonitorHook, Orcpt, Policy, Ports, ProgressHook,
                       Recipients, Servers)
from ._pool import Lease, Pool, Pooled, Settings, TransportStats, watch_fork

__all__ = ["AsyncTransport"]

QUIT_WAIT = 10.0   # seconds to wait for the reply to a QUIT when closing a kept connection


class AsyncTransport:
    """smtpsend.Transport for asyncio: the same options, rules and
    errors; ``await sendmessage(...)`` from any number of tasks on one
    event loop, ``await aclose()`` at the end (or ``async with``).
    See docs/transport.md."""

    def __init__(self, *, servers: Servers = ("localhost",), ports: Ports = None, client: Optional[str] = None,
                 usetls: bool = True, tlsimport: Optional[bool] = None, tlspolicy: Policy = None,
                 ssl_context: Optional[ssl.SSLContext] = None, username: Optional[str] = None,
                 password: Optional[str] = None, token: Token = None, mechanisms: Mechanisms = None,
                 timeout: Optional[float] = None, maxsecs: float = 120, debug: Debug = False,
                 max_connections: int = 4, max_messages: Optional[int] = 100,
                 idle_timeout: Optional[float] = 60.0, rate_limit: Optional[float] = None,
                 events: Optional[EventHook] = None, monitor: Optional[MonitorHook] = None,
                 monitor_headers: bool = False, dkim: DKIM = None, protocol: str = "smtp") -> None:
        options = dict(servers=servers, ports=ports, client=client, usetls=usetls, tlsimport=tlsimport,
                       tlspolicy=tlspolicy, username=username, password=password, token=token,
                       mechanisms=mechanisms, timeout=timeout, maxsecs=maxsecs, debug=debug, events=events,
                       monitor=monitor, monitor_headers=monitor_headers, dkim=dkim, protocol=protocol)
        self._settings = Settings(options, max_connections, max_messages, idle_timeout, rate_limit)
        self._ssl_context = ssl_context
        self._pool: Pool[AsyncDriver] = self._settings.pool()
        # sends waiting for a place, oldest first: (when it began to wait, its future)
        self._waiters: deque[tuple[float, asyncio.Future[bool]]] = deque()
        self._progress = time.monotonic()      # when a place was last freed
        self._watchdog: Optional[tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle]] = None
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep   # rate_limit's wait
        watch_fork(self)

    # ------------------------------------------------------------ sending

    async def sendmessage(self, part: Message, *, originator: Optional[str] = None,
                          recipients: Recipients = None, header: HeaderArg = (), atleastone: bool = False,
                          queue: bool = False, ret: Optional[str] = None, envid: Optional[str] = None,
                          notify: Union[Notify, Mapping[str, Notify], None] = None, orcpt: Orcpt = None,
                          require_dsn: bool = False, deliverby: Optional[str] = None,
                          priority: Optional[int] = None, requiretls: bool = False,
                          mail_auth: Optional[str] = None, delivery: Optional[Delivery] = None,
                          progress: Optional[ProgressHook] = None, dkim: DKIM = None) -> list[Rejected]:
        """Send ``part`` as smtpsend.asendmessage does, over a kept
        connection when one is open. UsageError after aclose(); Timeout
        when no connection became free in time (nothing was sent). ``dkim`` signs this
        message (None: the transport's own ``dkim=``; ``[]``: unsigned)."""
        self._check_process()
        if self._pool.closed:
            raise UsageError("the AsyncTransport is closed")
        await self._wait_turn()
        lease = await self._lease()
        driver = _Driver(self, lease)
        try:   # prepared only once it has a place: 10,000 waiting tasks hold no 10,000 messages
            per_message = {name: value for name, value in locals().items() if name not in _NOT_OPTIONS}
            checked = self._settings.plan(part, per_message)
            result = await apump(failover(checked, reuse=True), driver)
        finally:
            await asyncio.shield(self._finish(driver, lease))
        self._pool.count("messages_sent")
        return result

    async def _finish(self, driver: "_Driver", lease: Lease[AsyncDriver]) -> None:
        await driver.finish()
        dead = self._pool.release(lease)
        self._progress = time.monotonic()
        self._wake()
        await self._close_all(dead, quit=True)

    def _wake(self) -> None:
        """Wake the send that has waited longest for a place."""
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return

    def _watch(self, due: float) -> None:
        """Make sure the watchdog looks for a stuck pool by ``due`` (one
        timer for every waiting send, not one each)."""
        loop = asyncio.get_running_loop()
        if self._watchdog is None or self._watchdog[0] is not loop:
            handle = loop.call_later(max(0.0, due - time.monotonic()), self._look)
            self._watchdog = (loop, handle)

    def _look(self) -> None:
        """The watchdog: wake -- to raise Timeout -- each send that has
        waited the settings' wait with no place freed meanwhile; look again
        when the next one could have."""
        self._watchdog = None
        wait, now = self._settings.wait, time.monotonic()
        waiting: deque[tuple[float, asyncio.Future[bool]]] = deque()
        for started, waiter in self._waiters:
            if waiter.done():
                continue
            if max(started, self._progress) + wait <= now:
                waiter.set_result(False)
            else:
                waiting.append((started, waiter))
        self._waiters = waiting
        if waiting:
            self._watch(min(max(started, self._progress) for started, _ in waiting) + wait)

    async def _wait_turn(self) -> None:
        rate = self._settings.rate
        if rate is not None:
            delay = rate.delay()
            if delay > 0:
                await self._sleep(delay)

    async def _lease(self) -> Lease[AsyncDriver]:
        """A place in the pool for one send, waiting in turn when all are in
        use: Timeout when none was freed for the settings' wait (the pool
        is stuck, not merely busy: a long queue that moves never times out)."""
        wait = self._settings.wait
        started = time.monotonic()
        doomed: list[Pooled[AsyncDriver]] = []
        loop = asyncio.get_running_loop()
        try:
            waited = woken = False
            while True:
                lease, to_close = self._pool.lease(self._settings.first)
                doomed += to_close
                if lease is not None:
                    return lease
                if not waited:
                    self._pool.count("waits")
                    waited = True
                due = max(started, self._progress) + wait
                if due <= time.monotonic():
                    raise Timeout(f"the connection pool was exhausted: all {self._pool.max_connections} "
                                  f"connections stayed in use for {wait:g} s; nothing was sent "
                                  "(raise max_connections= or timeout=)", reason="pool")
                waiter: asyncio.Future[bool] = loop.create_future()
                if woken:
                    self._waiters.appendleft((started, waiter))   # woken but overtaken: keep its turn
                else:
                    self._waiters.append((started, waiter))
                self._watch(due)
                try:
                    woken = await waiter   # True: a place was freed; False: the watchdog (time is up)
                except BaseException:
                    if waiter.done() and not waiter.cancelled() and waiter.result():
                        self._wake()   # woken, then cancelled: the place goes to the next one
                    raise
        finally:
            await self._close_all(doomed, quit=True)

    # ------------------------------------------------------------ connections

    async def _close_all(self, entries: list[Pooled[AsyncDriver]], quit: bool) -> None:
        for entry in entries:
            await self._close_one(entry, quit)

    async def _close_one(self, entry: Pooled[AsyncDriver], quit: bool) -> None:
        """Close one connection -- after QUIT with ``quit`` (best effort) --
        unless another process opened it (it is the parent's), or another
        event loop (an earlier asyncio.run: it cannot be used from here)."""
        if entry.pid != os.getpid() or entry.owner is not asyncio.get_running_loop():
            return
        try:
            if quit and entry.session is not None:
                await apump(entry.session.channel.quit(min(QUIT_WAIT, self._settings.wait)), entry.connection)
        except SMTPError:
            pass
        finally:
            await entry.connection.aclose()
            self._pool.count("connections_closed")

    @property
    def stats(self) -> TransportStats:
        """What this transport did so far (a snapshot)."""
        return self._pool.stats()

    @property
    def closed(self) -> bool:
        """True once aclose() was called."""
        return self._pool.closed

    async def aclose(self) -> None:
        """QUIT and close the idle connections; those in use close when
        their message is done. sendmessage raises UsageError from now on."""
        idle = self._pool.close()
        while self._waiters:   # each finds the pool closed: UsageError
            self._wake()
        if self._watchdog is not None:
            self._watchdog[1].cancel()
            self._watchdog = None
        await self._close_all(idle, quit=True)

    async def __aenter__(self) -> "AsyncTransport":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ processes

    def forked(self) -> None:
        """In a forked child: an empty pool (the parent's connections are
        never used) and no waiting sends."""
        closed = self._pool.closed
        _ORPHANS.extend(self._pool.forget())   # never closed here: see Pool.forget
        self._pool.closed = closed
        self._waiters = deque()
        self._watchdog = None

    def _check_process(self) -> None:
        if self._pool.pid != os.getpid():
            self.forked()

    def __repr__(self) -> str:
        return (f"<smtpsend.AsyncTransport servers={[shown(s) for s in self._settings.options['servers']]!r} "
                f"max_connections={self._pool.max_connections}{' closed' if self._pool.closed else ''}>")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("an AsyncTransport cannot be pickled: it holds open connections and credentials")


_ORPHANS: list[Pooled[AsyncDriver]] = []   # a forked child's inheritance, kept from the garbage collector

_NOT_OPTIONS = frozenset({"self", "part", "lease", "driver"})   # sendmessage's locals that are not options


class _Driver:
    """Performs one send's pooled failover dialogue over asyncio: one
    AsyncDriver per connection; Checkout and Checkin with the pool."""

    def __init__(self, transport: AsyncTransport, lease: Lease[AsyncDriver]) -> None:
        self._transport = transport
        self._pool = transport._pool
        self._lease = lease
        self._current: Optional[Pooled[AsyncDriver]] = None

    async def perform(self, action: Action) -> Any:
        """Do one action; TransportError for Send/Read/StartTLS with no
        connection current."""
        if isinstance(action, Resolve):
            return await AsyncDriver(None).perform(action)
        if isinstance(action, Connect):
            await self.finish()
            connection = AsyncDriver(self._transport._ssl_context)
            entry = Pooled((action.host, 0), connection, owner=asyncio.get_running_loop(),
                           opened=self._pool.clock())
            self._current = entry
            try:
                await connection.perform(action)
            except BaseException:
                self._current = None
                raise
            self._pool.count("connections_opened")
            return None
        if isinstance(action, Close):
            await self.finish()
            return None
        if isinstance(action, Checkout):
            return await self._checkout((action.host, action.port))
        if isinstance(action, Checkin):
            return await self._checkin(action)
        if self._current is None:
            raise TransportError("no connection is open")
        return await self._current.connection.perform(action)

    async def _checkout(self, target: tuple[str, int]) -> Any:
        await self.finish()
        while True:
            entry = self._pool.take(self._lease, target)
            if entry is None:
                return None
            if entry.owner is not asyncio.get_running_loop():
                continue   # opened in another event loop (an earlier asyncio.run): unusable here, left alone
            if not entry.connection.dropped():
                self._current = entry
                return entry.session
            self._pool.count("connections_replaced")
            await self._transport._close_one(entry, quit=False)

    async def _checkin(self, action: Checkin) -> None:
        entry, self._current = self._current, None
        if entry is None:
            return
        quit = self._pool.check_in(entry, action.session, (action.host, action.port), action.reusable,
                                   action.stale)
        if quit is not None:
            await self._transport._close_one(entry, quit=quit)

    async def finish(self) -> None:
        """Close the current connection, if any (no QUIT)."""
        entry, self._current = self._current, None
        if entry is not None:
            await self._transport._close_one(entry, quit=False)
