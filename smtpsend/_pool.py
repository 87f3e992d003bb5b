"""The bookkeeping of a connection pool, with no I/O and no locking in it.

:class:`Pool` is what smtpsend.Transport (threads, smtpsend._transport) and
smtpsend.AsyncTransport (tasks, smtpsend._atransport) share: which idle
connections there are to each server, how old each is and how many
messages it carried, how many connections are held (idle + in use,
``max_connections``), and the counters of :class:`TransportStats`. The
transports hold their lock around every call and do the I/O (QUIT, close)
outside it, on the connections these methods hand back.

The rules:

- A sender first gets a :class:`Lease` -- the right to hold one connection
  -- with :meth:`Pool.lease`: then it may reuse an idle connection
  (:meth:`Pool.take`) or open one. Leases plus idle connections never
  exceed ``max_connections``; when every place is taken by a lease, the
  sender waits (the transports do); when idle connections fill it, the
  oldest is closed to make room.
- A connection is reused only when it ended its last transaction cleanly
  (:meth:`Pool.give_back`), has carried fewer than ``max_messages``, has
  been idle at most ``idle_timeout`` seconds, and was opened by this
  process (fork safety: a child never writes to its parent's socket).
- The most recently used idle connection is reused first (it is the
  likeliest to still be open); the others age out.

:class:`RateLimit` spaces messages ``1 / rate`` seconds apart.
"""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Optional, Protocol, TypeVar

from ._data import dkim_signers
from ._envelope import Message
from ._errors import UsageError
from ._failover import Plan, route
from ._options import client_name, server_list, server_url, shown
from ._secret import Secret
from ._session import Session

__all__ = ["Lease", "Pool", "Pooled", "RateLimit", "Settings", "TransportStats", "watch_fork"]

C = TypeVar("C")
Target = tuple[str, int]


@dataclass(frozen=True)
class TransportStats:
    """What a Transport did so far (``transport.stats``, a snapshot):

    - ``connections_opened``: connections it opened (the setup -- greeting,
      EHLO, TLS, AUTH -- each time);
    - ``connections_closed``: connections it closed, for any reason;
    - ``connections_replaced``: kept connections found closed by the server
      when a message was about to go over them, replaced (nothing of the
      message had been sent on them);
    - ``connections_reused``: messages sent over a kept connection;
    - ``messages_sent``: messages delivered (sendmessage returned);
    - ``waits``: sends that had to wait for a free connection
      (``max_connections`` were in use).
    """

    connections_opened: int = 0
    connections_closed: int = 0
    connections_replaced: int = 0
    connections_reused: int = 0
    messages_sent: int = 0
    waits: int = 0


@dataclass
class Pooled(Generic[C]):
    """One open connection the pool knows: its server, the driver's
    ``connection``, the Session of its dialogue (once set up), the process
    and time it was opened in, when it went idle, and the messages it
    carried."""

    target: Target
    connection: C
    session: Optional[Session] = None
    pid: int = field(default_factory=os.getpid)
    owner: object = None   # AsyncTransport: the event loop it belongs to
    opened: float = 0.0
    idle_since: float = 0.0
    messages: int = 0


@dataclass
class Lease(Generic[C]):
    """The right to hold one connection while sending one message;
    ``reserved`` is an idle connection set aside for it by :meth:`Pool.lease`."""

    reserved: Optional[Pooled[C]] = None
    active: bool = True


class Pool(Generic[C]):
    """Idle connections by server, and the count of connections held.
    ``clock`` gives seconds (time.monotonic; a test passes its own)."""

    def __init__(self, max_connections: int, max_messages: Optional[int], idle_timeout: Optional[float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_connections = max_connections
        self.max_messages = max_messages
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.pid = os.getpid()
        self.closed = False
        self._idle: dict[Target, list[Pooled[C]]] = {}
        self._leases = 0
        self._dead: list[Pooled[C]] = []   # found unusable while looking for one: closed at release
        self._counts = {name: 0 for name in TransportStats.__dataclass_fields__}

    # ------------------------------------------------------------ what there is

    @property
    def idle(self) -> int:
        """Idle connections held."""
        return sum(len(entries) for entries in self._idle.values())

    @property
    def held(self) -> int:
        """Connections held or spoken for: idle ones plus leases."""
        return self.idle + self._leases

    def stats(self) -> TransportStats:
        """A snapshot of the counters."""
        return TransportStats(**self._counts)

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name`` (a TransportStats field)."""
        self._counts[name] += n

    # ------------------------------------------------------------ leases

    def lease(self, target: Target) -> tuple[Optional[Lease[C]], list[Pooled[C]]]:
        """A lease for one send whose first server is ``target``, or None
        when every place is taken by another send (wait and ask again);
        and the idle connections to close now (expired, or making room).
        UsageError once the pool is closed."""
        if self.closed:
            raise UsageError("the Transport is closed")
        to_close = self.expired() + self._dead
        self._dead = []
        reserved = self._pop(target)
        if reserved is None and self.held >= self.max_connections:
            oldest = self._oldest()
            if oldest is None:
                return None, to_close
            self._remove(oldest)
            to_close.append(oldest)
        self._leases += 1
        return Lease(reserved), to_close

    def take(self, lease: Lease[C], target: Target) -> Optional[Pooled[C]]:
        """An idle connection to ``target`` for ``lease`` (the one set aside
        for it first), or None. The caller checks it is still open."""
        reserved, lease.reserved = lease.reserved, None
        if reserved is not None and reserved.target == target and self._fresh(reserved):
            return reserved
        if reserved is not None:   # set aside for another server, or too old: it goes
            self._dead.append(reserved)
        return self._pop(target)

    def give_back(self, entry: Pooled[C]) -> bool:
        """A connection whose transaction ended cleanly: True when it is
        kept for the next message; False when the caller must close it
        (with QUIT: it carried ``max_messages``, or the pool is closed)."""
        entry.messages += 1
        entry.idle_since = self.clock()
        if self.closed or entry.pid != os.getpid() or \
                (self.max_messages is not None and entry.messages >= self.max_messages):
            return False
        self._idle.setdefault(entry.target, []).append(entry)
        return True

    def check_in(self, entry: Pooled[C], session: Session, target: Target, reusable: bool,
                 stale: bool) -> Optional[bool]:
        """A send is done with ``entry`` (a failover Checkin): None when it
        is kept for the next message; else the caller closes it -- with
        QUIT when this returns True (its transaction ended cleanly, but it
        carried ``max_messages`` or the pool is closed), without when False
        (not reusable: in an unknown state; ``stale``: found closed, counted
        as replaced)."""
        if not reusable:
            if stale:
                self.count("connections_replaced")
            return False
        entry.session, entry.target = session, target
        if entry.messages:
            self.count("connections_reused")
        return None if self.give_back(entry) else True

    def release(self, lease: Lease[C]) -> list[Pooled[C]]:
        """The send is over: its place is free again. Returns connections
        to close (one set aside for it and not used)."""
        if not lease.active:
            return []
        lease.active = False
        self._leases -= 1
        dead, self._dead = self._dead, []
        if lease.reserved is not None:
            reserved, lease.reserved = lease.reserved, None
            if self._fresh(reserved) and not self.closed:
                self._idle.setdefault(reserved.target, []).append(reserved)
            else:
                dead.append(reserved)
        return dead

    # ------------------------------------------------------------ age and end

    def expired(self) -> list[Pooled[C]]:
        """Remove and return the idle connections that may not be reused:
        idle longer than ``idle_timeout``, or opened by another process."""
        out: list[Pooled[C]] = []
        pid, now = os.getpid(), self.clock()   # once for the sweep: it runs at every lease
        for target in list(self._idle):
            keep: list[Pooled[C]] = []
            for entry in self._idle[target]:
                (keep if self._fresh(entry, pid, now) else out).append(entry)
            if keep:
                self._idle[target] = keep
            else:
                del self._idle[target]
        return out

    def close(self) -> list[Pooled[C]]:
        """No more sends: returns every idle connection (to close with
        QUIT); connections in use are closed when given back."""
        self.closed = True
        out = [e for entries in self._idle.values() for e in entries]
        self._idle.clear()
        return out

    def forget(self) -> list[Pooled[C]]:
        """In a forked child: forget the parent's connections without
        touching them (their sockets are the parent's), and its leases
        (their threads do not exist here); returns them, for a caller that
        must keep them from the garbage collector (an asyncio transport
        closed in the child would unregister its socket from the epoll
        instance the child shares with its parent). The counters start
        again."""
        forgotten = [e for entries in self._idle.values() for e in entries] + self._dead
        self._idle.clear()
        self._dead = []
        self._leases = 0
        self.pid = os.getpid()
        self._counts = {name: 0 for name in TransportStats.__dataclass_fields__}
        return forgotten

    # ------------------------------------------------------------ inside

    def _fresh(self, entry: Pooled[C], pid: Optional[int] = None, now: Optional[float] = None) -> bool:
        """May ``entry`` be reused: opened by this process (``pid``), idle
        no longer than idle_timeout (at ``now``)?"""
        if entry.pid != (os.getpid() if pid is None else pid):
            return False
        if self.idle_timeout is None:
            return True
        return (self.clock() if now is None else now) - entry.idle_since <= self.idle_timeout

    def _pop(self, target: Target) -> Optional[Pooled[C]]:
        """The most recently used fresh idle connection to ``target``."""
        entries = self._idle.get(target)
        while entries:
            entry = entries.pop()
            if self._fresh(entry):
                if not entries:
                    del self._idle[target]
                return entry
            self._dead.append(entry)
        self._idle.pop(target, None)
        return None

    def _oldest(self) -> Optional[Pooled[C]]:
        entries = [e for group in self._idle.values() for e in group]
        return min(entries, key=lambda e: e.idle_since) if entries else None

    def _remove(self, entry: Pooled[C]) -> None:
        group = self._idle[entry.target]
        group.remove(entry)
        if not group:
            del self._idle[entry.target]


class RateLimit:
    """At most ``rate`` messages a second: :meth:`delay` reserves the next
    free moment and says how long to wait for it (0 when it is now).
    Messages are spaced evenly, ``1 / rate`` seconds apart (a token bucket
    holding one token: no bursts for a relay to throttle)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0:
            raise UsageError(f"rate_limit must be a positive number of messages per second, not {rate!r}")
        self.interval = 1.0 / rate
        self.clock = clock
        self._next = -float("inf")

    def delay(self) -> float:
        """Seconds to wait before sending the next message (reserved now)."""
        now = self.clock()
        start = max(now, self._next)
        self._next = start + self.interval
        return start - now


class Settings:
    """A Transport's connection options, checked once at construction
    (UsageError, TypeError: the same checks as sendmessage's), with the
    password and token held as Secret; :meth:`plan` adds one message's
    options and prepares it (smtpsend._failover.plan)."""

    def __init__(self, options: dict[str, Any], max_connections: int, max_messages: Optional[int],
                 idle_timeout: Optional[float], rate_limit: Optional[float]) -> None:
        options = dict(options)
        if options.get("protocol", "smtp") == "smtp":
            options.pop("protocol", None)   # plan() before the LMTP option existed
        self.dkim = options.pop("dkim", None)
        dkim_signers(self.dkim)   # checked now: TypeError for what is no signer
        for name in ("password", "token"):   # held as Secret from here on; route() below checks them
            if isinstance(options.get(name), str):
                options[name] = Secret(options[name])
        # an iterator is read once, here; a URL is kept parsed (its password a Secret, never plain text)
        options["servers"] = [server_url(s) or s for s in server_list(options["servers"])]
        if options.get("ports") is not None and not isinstance(options["ports"], (int, str)):
            options["ports"] = list(options["ports"])
        options["client"] = client_name(options.get("client"), options["servers"])
        for name, value in (("max_connections", max_connections), ("max_messages", max_messages)):
            if not (value is None and name == "max_messages") and \
                    (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise UsageError(f"{name}= must be a whole number from 1 up, not {value!r}")
        if idle_timeout is not None and not (isinstance(idle_timeout, (int, float)) and idle_timeout >= 0):
            raise UsageError(f"idle_timeout= must be a number of seconds (or None), not {idle_timeout!r}")
        self.rate = RateLimit(rate_limit) if rate_limit is not None else None
        self.options = options
        # the connection options checked and worked out once, for every message
        self.route = route(**options)
        self.first = (self.route.targets[0].host, self.route.targets[0].port)   # where most sends go
        self.wait = self.route.connect_timeout   # how long a send waits for a free connection
        self.limits = (max_connections, max_messages, idle_timeout)

    def plan(self, part: Message, per_message: dict[str, Any]) -> Plan:
        """One message checked and prepared, with these options; a
        per-message ``dkim`` of None means the transport's own signer."""
        if per_message.get("dkim") is None:
            per_message = dict(per_message, dkim=self.dkim)
        return self.route.plan(part, **per_message)

    def pool(self, clock: Callable[[], float] = time.monotonic) -> "Pool[Any]":
        """A new, empty pool with these limits."""
        return Pool(*self.limits, clock=clock)

    def __repr__(self) -> str:
        return f"Settings(servers={[shown(s) for s in self.options['servers']]!r})"


class ForkAware(Protocol):
    def forked(self) -> None: ...


_WATCHED: "weakref.WeakSet[Any]" = weakref.WeakSet()


def watch_fork(owner: ForkAware) -> None:
    """Call ``owner.forked()`` in the child after each os.fork(), before
    any other thread of the child runs (it then forgets the parent's
    connections and locks)."""
    _WATCHED.add(owner)


def _in_child() -> None:
    for owner in list(_WATCHED):
        owner.forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
