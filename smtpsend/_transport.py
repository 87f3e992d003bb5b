"""``smtpsend.Transport``: sendmessage with memory -- a pool of open
connections shared by any number of threads.

::

    transport = smtpsend.Transport(servers=["mail.example.com"], username="app", password=secret)
    transport.sendmessage(part)        # from any thread; the connection stays open for the next
    transport.close()                  # QUIT to the idle connections

The dialogue is failover's (smtpsend._failover, with ``reuse=True``); the
bookkeeping is smtpsend._pool's. This module adds only what threads need
-- a lock and a condition to wait on -- and the I/O: the blocking
connection of smtpsend._sync, opened, reused, QUIT and closed here.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from typing import Any, Callable, Mapping, NoReturn, Optional, Union

from ._driver import Action, Checkin, Checkout, Close, Connect, Read, Resolve, Send
from ._envelope import Message
from ._errors import Rejected, SMTPError, Timeout, TransportError, UsageError
from ._esmtp import Delivery, Notify
from ._failover import DKIM, failover
from ._options import Token, shown
from ._options import (Debug, EventHook, HeaderArg, Mechanisms, MonitorHook, Orcpt, Policy, Ports, ProgressHook,
                       Recipients, Servers)
from ._pool import Lease, Pool, Pooled, Settings, TransportStats, watch_fork
from ._sync import SyncConnection, pump, resolve

__all__ = ["Transport"]

QUIT_WAIT = 10.0   # seconds to wait for the reply to a QUIT when closing a kept connection


class Transport:
    """A pool of SMTP connections to ``servers`` for the whole life of an
    application: ``sendmessage`` from any number of threads, each message
    over a connection already open when there is one (see docs/transport.md).

    The connection options are sendmessage's. ``max_connections``: the
    connections held at most (idle and in use); a send beyond them waits
    its turn, and raises Timeout (nothing sent) when no connection was
    freed for ``timeout`` seconds (30 when None): the pool is stuck. ``max_messages``: a connection is closed with
    QUIT after that many (None: never). ``idle_timeout``: an idle
    connection older than that (seconds) is closed, not reused.
    ``rate_limit``: messages per second over the whole transport (None:
    no limit); a send waits its turn.

    The password and token are held as Secret (no repr, vars() or pickle
    shows them); bad options raise UsageError here, before any
    connection. In a child process after os.fork() the parent's
    connections are never used: the child opens its own.
    """

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
        self._pool: Pool[SyncConnection] = self._settings.pool()
        self._lock = threading.Condition()
        self._progress = time.monotonic()   # when a place was last freed
        self._sleep: Callable[[float], None] = time.sleep   # rate_limit's wait (a test records it)
        watch_fork(self)

    # ------------------------------------------------------------ sending

    def sendmessage(self, part: Message, *, originator: Optional[str] = None, recipients: Recipients = None,
                    header: HeaderArg = (), atleastone: bool = False, queue: bool = False,
                    ret: Optional[str] = None, envid: Optional[str] = None,
                    notify: Union[Notify, Mapping[str, Notify], None] = None, orcpt: Orcpt = None,
                    require_dsn: bool = False, deliverby: Optional[str] = None, priority: Optional[int] = None,
                    requiretls: bool = False, mail_auth: Optional[str] = None,
                    delivery: Optional[Delivery] = None, progress: Optional[ProgressHook] = None,
                    dkim: DKIM = None) -> list[Rejected]:
        """Send ``part`` as smtpsend.sendmessage does -- the same envelope,
        failover, return value and errors -- over a kept connection when
        one is open. UsageError after close(); Timeout when no connection
        became free in time (nothing was sent). ``dkim`` signs this
        message (None: the transport's own ``dkim=``; ``[]``: unsigned)."""
        per_message = dict(locals())
        del per_message["self"], per_message["part"]
        self._check_process()
        if self._pool.closed:
            raise UsageError("the Transport is closed")
        self._wait_turn()
        lease = self._lease()
        driver = _Driver(self, lease)
        sent = False
        try:   # prepared once it has a place (as AsyncTransport, where thousands may wait)
            checked = self._settings.plan(part, per_message)
            result = pump(failover(checked, reuse=True), driver)
            sent = True
        finally:
            driver.finish()
            with self._lock:
                dead = self._pool.release(lease)
                if sent:
                    self._pool.count("messages_sent")
                self._progress = time.monotonic()
                self._lock.notify()
            self._close_all(dead, quit=True)
        return result

    def _wait_turn(self) -> None:
        """rate_limit: wait until this message's moment."""
        rate = self._settings.rate
        if rate is None:
            return
        with self._lock:
            delay = rate.delay()
        if delay > 0:
            self._sleep(delay)

    def _lease(self) -> Lease[SyncConnection]:
        """A place in the pool for one send, waiting for one when all are
        in use: Timeout when none was freed for the settings' wait (the
        pool is stuck, not merely busy: a long queue that moves never
        times out)."""
        wait = self._settings.wait
        started = time.monotonic()
        doomed: list[Pooled[SyncConnection]] = []
        try:
            with self._lock:
                waited = False
                while True:
                    lease, to_close = self._pool.lease(self._settings.first)
                    doomed += to_close
                    if lease is not None:
                        return lease
                    if not waited:
                        self._pool.count("waits")
                        waited = True
                    left = max(started, self._progress) + wait - time.monotonic()
                    if left <= 0:
                        raise Timeout(f"the connection pool was exhausted: all {self._pool.max_connections} "
                                      f"connections stayed in use for {wait:g} s; nothing was sent "
                                      "(raise max_connections= or timeout=)", reason="pool")
                    self._lock.wait(left)
        finally:
            self._close_all(doomed, quit=True)

    # ------------------------------------------------------------ connections

    def _close_all(self, entries: list[Pooled[SyncConnection]], quit: bool) -> None:
        for entry in entries:
            self._close_one(entry, quit)

    def _close_one(self, entry: Pooled[SyncConnection], quit: bool) -> None:
        """Close one connection -- after QUIT with ``quit`` (best effort,
        bounded by QUIT_WAIT) -- unless another process opened it: that
        socket is the parent's, and is left alone."""
        if entry.pid != os.getpid():
            return
        try:
            if quit and entry.session is not None:
                pump(entry.session.channel.quit(min(QUIT_WAIT, self._settings.wait)), entry.connection)
        except SMTPError:
            pass
        finally:
            entry.connection.close()
            with self._lock:
                self._pool.count("connections_closed")

    @property
    def stats(self) -> TransportStats:
        """What this transport did so far (a snapshot; in a forked child,
        since the fork)."""
        with self._lock:
            return self._pool.stats()

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._pool.closed

    def close(self) -> None:
        """QUIT and close the idle connections; those in use close when
        their message is done. sendmessage raises UsageError from now on."""
        with self._lock:
            idle = self._pool.close()
            self._lock.notify_all()
        self._close_all(idle, quit=True)

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ processes

    def forked(self) -> None:
        """In a child process just forked (smtpsend._pool.watch_fork): a new
        lock (the parent's may have been held by a thread that does not
        exist here) and an empty pool -- the parent's sockets are never
        written to, nor closed with QUIT."""
        self._lock = threading.Condition()
        closed = self._pool.closed
        self._pool.forget()
        self._pool.closed = closed

    def _check_process(self) -> None:
        if self._pool.pid != os.getpid():   # forked without os.register_at_fork's hook
            self.forked()

    def __repr__(self) -> str:
        return (f"<smtpsend.Transport servers={[shown(s) for s in self._settings.options['servers']]!r} "
                f"max_connections={self._pool.max_connections}{' closed' if self._pool.closed else ''}>")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a Transport cannot be pickled: it holds open connections and credentials")


class _Driver:
    """Performs one send's pooled failover dialogue: Resolve and Connect as
    SyncDriver does, Checkout and Checkin with the transport's pool, the
    rest on the current connection."""

    def __init__(self, transport: Transport, lease: Lease[SyncConnection]) -> None:
        self._transport = transport
        self._pool = transport._pool
        self._lock = transport._lock
        self._lease = lease
        self._current: Optional[Pooled[SyncConnection]] = None

    def perform(self, action: Action) -> Any:
        """Do one action; TransportError for Send/Read/StartTLS with no
        connection current."""
        if isinstance(action, (Send, Read)):   # most actions: straight to the connection
            return self._on_connection(action)
        if isinstance(action, Resolve):
            return resolve(action.host, action.port)
        if isinstance(action, Connect):
            self.finish()
            connection = SyncConnection.open(action.sockaddr, action.family, action.timeout, action.host,
                                             self._transport._ssl_context)
            with self._lock:
                self._pool.count("connections_opened")
                self._current = Pooled((action.host, 0), connection, opened=self._pool.clock())
            return None
        if isinstance(action, Close):
            self.finish()
            return None
        if isinstance(action, Checkout):
            return self._checkout((action.host, action.port))
        if isinstance(action, Checkin):
            return self._checkin(action)
        return self._on_connection(action)

    def _on_connection(self, action: Action) -> Any:
        if self._current is None:
            raise TransportError("no connection is open")
        return self._current.connection.perform(action)

    def _checkout(self, target: tuple[str, int]) -> Any:
        """A kept connection to ``target`` that is still open, made current;
        its Session, or None."""
        self.finish()
        while True:
            with self._lock:
                entry = self._pool.take(self._lease, target)
            if entry is None:
                return None
            if not entry.connection.dropped():
                self._current = entry
                return entry.session
            with self._lock:
                self._pool.count("connections_replaced")
            self._transport._close_one(entry, quit=False)

    def _checkin(self, action: Checkin) -> None:
        entry, self._current = self._current, None
        if entry is None:
            return
        with self._lock:
            quit = self._pool.check_in(entry, action.session, (action.host, action.port), action.reusable,
                                       action.stale)
        if quit is not None:
            self._transport._close_one(entry, quit=quit)

    def finish(self) -> None:
        """Close the current connection, if any (no QUIT: it is in an
        unknown state)."""
        entry, self._current = self._current, None
        if entry is not None:
            self._transport._close_one(entry, quit=False)
