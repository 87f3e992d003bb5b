"""smtpsend.Transport: the pool's rules, reuse, replacement of connections
the server closed, failover, fork safety and a reliability run against a
server that drops connections at random points."""

from __future__ import annotations

import inspect
import os
import pickle
import random
import socket
import ssl
import threading
from collections import Counter
from typing import Callable, Optional

import pytest

import mimecompose
import smtpsend
from smtpsend._pool import Pool, Pooled, RateLimit
from smtpsend.testing import CaptureServer

from conftest import SENTINEL, assert_no_secret
from servers import ScriptedServer, Stop, wait_readable

FULL = os.environ.get("SMTPSEND_TRANSPORT_FULL", "").strip() not in ("", "0")


def part(n: object = 0, sender: str = "a@example.com") -> mimecompose.Part:
    return mimecompose.compose(f"message {n}", header=[("From", sender), ("To", "b@example.com"),
                                                       ("Subject", f"m-{n}")])


# ---------------------------------------------------------------- a server that counts and misbehaves

class ChaosServer:
    """A threaded SMTP server on 127.0.0.1 that counts connections (in
    total, at once, at most at once), records each message with the
    client's port, and asks ``fault(point, connection, transaction)`` at
    each point where it may misbehave:

    - "mail": MAIL received -> "close" (no reply), "421" (421 and close), None;
    - "data": the message received -> "drop" (close, not stored), "keep"
      (stored, then close without a reply), None;
    - "idle": the reply to the message sent -> "close", None.

    ``hold``: an Event the server waits on before answering the message
    (``hold_at="data"``) or MAIL (``hold_at="mail"``); ``reached`` is set
    when it starts waiting. ``extensions``: EHLO keywords.
    """

    def __init__(self, fault: Optional[Callable[[str, int, int], Optional[str]]] = None,
                 extensions: tuple[str, ...] = ("PIPELINING", "ENHANCEDSTATUSCODES"),
                 hold: Optional[threading.Event] = None, hold_at: str = "data") -> None:
        self.fault = fault or (lambda point, conn, tx: None)
        self.extensions = extensions
        self.hold = hold
        self.hold_at = hold_at
        self.reached = threading.Event()
        self.lock = threading.Lock()
        self.connections = 0
        self.active = 0
        self.peak = 0
        self.quits = 0
        self.messages: list[tuple[str, int]] = []   # (Subject, client port)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.host = "127.0.0.1"
        self.port: int = self.sock.getsockname()[1]
        self._stop = Stop()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "ChaosServer":
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._acceptor.join(10)
        with self.lock:
            for conn in list(self._open):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(10)
        self.sock.close()
        self._stop.close()

    @property
    def subjects(self) -> list[str]:
        return [subject for subject, _ in self.messages]

    def _accept(self) -> None:
        while wait_readable(self.sock, self._stop):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with self.lock:
                self.connections += 1
                number = self.connections
                self.active += 1
                self.peak = max(self.peak, self.active)
                self._open.add(conn)
            thread = threading.Thread(target=self._serve, args=(conn, number), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        try:
            self._dialogue(conn, number)
        except OSError:
            pass
        finally:
            with self.lock:
                self.active -= 1
                self._open.discard(conn)
            conn.close()

    def _wait(self, point: str) -> None:
        if self.hold is not None and point == self.hold_at:
            self.reached.set()
            self.hold.wait(30)

    def _dialogue(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(30)
        buffer = b""
        port = conn.getpeername()[1]

        def line() -> Optional[bytes]:
            nonlocal buffer
            while b"\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return None
                buffer += data
            text, buffer = buffer.split(b"\r\n", 1)
            return text

        conn.sendall(b"220 chaos.localhost ESMTP\r\n")
        transactions = 0
        while True:
            command = line()
            if command is None:
                return
            verb = command[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                keywords = [b"chaos.localhost"] + [k.encode() for k in self.extensions]
                conn.sendall(b"".join(b"250%s%s\r\n" % (b"-" if i < len(keywords) - 1 else b" ", k)
                                      for i, k in enumerate(keywords)))
            elif verb == b"MAIL":
                what = self.fault("mail", number, transactions)
                if what == "close":
                    return
                if what == "421":
                    conn.sendall(b"421 4.4.2 chaos.localhost closing the connection\r\n")
                    return
                self._wait("mail")
                conn.sendall(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                conn.sendall(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                body = []
                while True:
                    text = line()
                    if text is None:
                        return
                    if text == b".":
                        break
                    body.append(text)
                subject = next((t[9:].decode() for t in body if t.startswith(b"Subject: ")), "")
                what = self.fault("data", number, transactions)
                if what == "drop":
                    return
                with self.lock:
                    self.messages.append((subject, port))
                if what == "keep":
                    return
                self._wait("data")
                transactions += 1
                conn.sendall(b"250 2.0.0 queued\r\n")
                if self.fault("idle", number, transactions) == "close":
                    return
            elif verb == b"RSET" or verb == b"NOOP":
                conn.sendall(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                with self.lock:
                    self.quits += 1
                conn.sendall(b"221 2.0.0 bye\r\n")
                return
            else:
                conn.sendall(b"500 5.5.2 unknown command\r\n")


def transport(server: ChaosServer, **options: object) -> smtpsend.Transport:
    return smtpsend.Transport(servers=[server.host], ports=[server.port], **options)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the pool's bookkeeping (no I/O)

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pool_reuses_the_most_recent_idle_connection_and_counts_leases() -> None:
    clock = Clock()
    pool: Pool[str] = Pool(2, None, 60.0, clock=clock)
    first, _ = pool.lease(("mx", 25))
    second, _ = pool.lease(("mx", 25))
    assert first and second and pool.held == 2
    assert pool.lease(("mx", 25)) == (None, [])            # both places taken: wait
    assert pool.take(first, ("mx", 25)) is None and pool.take(second, ("mx", 25)) is None
    for name, lease in (("old", first), ("new", second)):
        entry = Pooled(("mx", 25), name)
        clock.now += 1
        assert pool.give_back(entry)
        assert pool.release(lease) == []
    assert pool.idle == 2 and pool.held == 2
    third, closing = pool.lease(("mx", 25))
    assert third is not None and closing == []
    taken = pool.take(third, ("mx", 25))
    assert taken is not None and taken.connection == "new"


def test_pool_makes_room_by_closing_the_oldest_idle_connection_to_another_server() -> None:
    pool: Pool[str] = Pool(1, None, None)
    lease, _ = pool.lease(("a", 25))
    assert lease is not None
    assert pool.give_back(Pooled(("a", 25), "to-a"))
    pool.release(lease)
    lease, closing = pool.lease(("b", 25))
    assert lease is not None and [e.connection for e in closing] == ["to-a"] and pool.idle == 0


def test_pool_ages_out_idle_connections_and_counts_messages() -> None:
    clock = Clock()
    pool: Pool[str] = Pool(4, 2, 60.0, clock=clock)
    entry = Pooled(("mx", 25), "conn")
    assert pool.give_back(entry)                            # 1 message
    clock.now += 61
    assert [e.connection for e in pool.expired()] == ["conn"] and pool.idle == 0
    entry = Pooled(("mx", 25), "conn2")
    assert pool.give_back(entry) and pool.expired() == []
    pool._idle.clear()
    assert not pool.give_back(entry)                        # the 2nd message: max_messages, QUIT it


def test_pool_never_hands_out_another_process_connection() -> None:
    pool: Pool[str] = Pool(4, None, None)
    entry = Pooled(("mx", 25), "parent's", pid=os.getpid() + 1)
    pool._idle[("mx", 25)] = [entry]
    lease, closing = pool.lease(("mx", 25))
    assert lease is not None and closing == [entry] and pool.take(lease, ("mx", 25)) is None


def test_pool_after_close_refuses_leases_and_keeps_nothing() -> None:
    pool: Pool[str] = Pool(4, None, None)
    lease, _ = pool.lease(("mx", 25))
    assert lease is not None
    assert pool.close() == []
    assert not pool.give_back(Pooled(("mx", 25), "conn"))
    with pytest.raises(smtpsend.UsageError):
        pool.lease(("mx", 25))


def test_rate_limit_spaces_messages_evenly() -> None:
    clock = Clock()
    rate = RateLimit(4, clock=clock)
    assert [rate.delay() for _ in range(3)] == [0.0, 0.25, 0.5]
    clock.now += 10
    assert rate.delay() == 0.0
    with pytest.raises(smtpsend.UsageError):
        RateLimit(0)


@pytest.mark.skipif(not hasattr(os, "sysconf") or os.name != "posix", reason="file descriptor numbers are POSIX")
def test_an_idle_connection_on_a_high_descriptor_number_is_not_taken_for_dropped() -> None:
    """select() refuses descriptors numbered 1024 and up, which a busy
    process reaches: the pool's look at an idle connection must not take
    every such connection for closed (and reconnect for each message)."""
    import fcntl
    import resource
    from smtpsend._sync import SyncConnection
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip("the descriptor limit is below 1200")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    ours, theirs = socket.socketpair()
    try:
        high = socket.socket(fileno=fcntl.fcntl(ours.fileno(), fcntl.F_DUPFD, 1100))
        assert high.fileno() >= 1100
        connection = SyncConnection(high, "localhost", None)
        assert not connection.dropped()           # idle and open
        theirs.sendall(b"421 4.4.2 closing\r\n")  # something unasked: it cannot be reused
        assert connection.dropped()
        connection.close()
    finally:
        ours.close()
        theirs.close()
        if soft < 1200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_what_counts_as_a_kept_connection_lost_while_idle() -> None:
    from smtpsend import _verdicts as verdict
    from smtpsend._reply import Reply
    bye = smtpsend.ServerUnavailable("closing", Reply(421, ("4.4.2 bye",)), "MAIL")
    busy = smtpsend.ServerUnavailable("busy", Reply(451, ("4.3.0 later",)), "MAIL")
    lost = smtpsend.TransportError("connection closed")
    assert verdict.lost_while_idle(lost, "mail") and verdict.lost_while_idle(bye, "mail")
    assert not verdict.lost_while_idle(busy, "mail")                       # the server answered: not idle-closed
    assert not any(verdict.lost_while_idle(e, stage) for e in (lost, bye) for stage in ("rcpt", "data"))


# ---------------------------------------------------------------- construction

def test_the_options_are_sendmessages_split_in_two() -> None:
    """Every sendmessage option is either the Transport's (a connection
    option) or its sendmessage's (a message option), never both -- except
    ``dkim``, the Transport's default that one message may replace, as on
    Client -- never missing; AsyncTransport takes exactly the same."""
    send = set(inspect.signature(smtpsend.sendmessage).parameters) - {"part"}
    made = set(inspect.signature(smtpsend.Transport).parameters)
    each = set(inspect.signature(smtpsend.Transport.sendmessage).parameters) - {"self", "part"}
    pool = {"max_connections", "max_messages", "idle_timeout", "rate_limit"}
    assert pool <= made and made & each == {"dkim"}
    assert (made - pool) | each == send
    for name in ("__init__", "sendmessage"):
        sync, other = (inspect.signature(getattr(cls, name)) for cls in (smtpsend.Transport, smtpsend.AsyncTransport))
        assert [(p.name, p.default, p.kind) for p in sync.parameters.values()] == \
            [(p.name, p.default, p.kind) for p in other.parameters.values()]


@pytest.mark.parametrize("options", [
    dict(max_connections=0), dict(max_connections=1.5), dict(max_messages=0), dict(idle_timeout=-1),
    dict(rate_limit=0), dict(password="x"), dict(servers=[]), dict(ports=["x"]),
    dict(tlsimport=True, usetls=False), dict(tlspolicy="sometimes"),
])
def test_bad_options_raise_usage_error_before_any_connection(options: dict[str, object]) -> None:
    with ScriptedServer(greeting=b"") as server:
        args = dict(servers=["127.0.0.1"], ports=[server.port])
        args.update(options)
        with pytest.raises(smtpsend.UsageError):
            smtpsend.Transport(**args)  # type: ignore[arg-type]
        assert server.connections == 0


def test_a_transport_never_shows_its_password(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    with CaptureServer(tls_context=server_tls, users={"u": SENTINEL}) as server:
        with smtpsend.Transport(servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                                username="u", password=SENTINEL) as t:
            t.sendmessage(part())
            assert SENTINEL not in repr(t)
            assert_no_secret(t)
            assert_no_secret(t.stats)
            with pytest.raises(TypeError):
                pickle.dumps(t)
        with smtpsend.Transport(servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                                username="u", password=SENTINEL + "x") as wrong:
            with pytest.raises(smtpsend.AllServersFailed) as info:
                wrong.sendmessage(part())
            assert_no_secret(info.value, SENTINEL + "x")
            assert_no_secret(wrong, SENTINEL + "x")


def test_a_password_in_a_server_url_never_shows_either() -> None:
    with CaptureServer(users={"u": SENTINEL}) as server:
        with smtpsend.Transport(servers=[f"smtp://u:{SENTINEL}@127.0.0.1:{server.port}?tlspolicy=insecure"],
                                usetls=False) as t:
            t.sendmessage(part())
            assert SENTINEL not in repr(t)
            assert_no_secret(t)
        assert server.messages[0].authenticated_as == "u"


# ---------------------------------------------------------------- reuse

def test_messages_reuse_one_connection_with_tls_and_auth(server_tls: ssl.SSLContext,
                                                         client_tls: ssl.SSLContext) -> None:
    with CaptureServer(tls_context=server_tls, users={"u": "pw"}) as server:
        with smtpsend.Transport(servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                                username="u", password="pw") as t:
            assert [t.sendmessage(part(n)) for n in range(5)] == [[]] * 5
            stats = t.stats
        assert (stats.connections_opened, stats.connections_reused, stats.messages_sent) == (1, 4, 5)
        assert t.stats.connections_closed == 1
        assert [c for c in server.commands if c.startswith(("STARTTLS", "AUTH"))] == ["STARTTLS", "AUTH ..."]
        assert server.commands[-1] == "QUIT"
        assert [m.part.getheader("Subject")[0] for m in server.messages] == [f"m-{n}" for n in range(5)]
        assert all(m.authenticated_as == "u" for m in server.messages)


def test_the_same_results_and_errors_as_sendmessage() -> None:
    refuse = {"RCPT bad@example.com": (550, "5.1.1 no such user")}
    with CaptureServer(responses=refuse) as server, \
            smtpsend.Transport(servers=["localhost"], ports=[server.port]) as t:
        two = mimecompose.compose("x", header=[("From", "a@example.com"), ("To", "b@example.com, bad@example.com")])
        with pytest.raises(smtpsend.RecipientsRefused) as info:
            t.sendmessage(two)
        assert info.value.rejected[0].status == "5.1.1" and info.value.port == server.port
        [refused] = t.sendmessage(two, atleastone=True)
        assert refused.address == "bad@example.com"
        assert t.sendmessage(part(), recipients=["c@example.com"], header=[("X-Extra", "1")]) == []
        assert server.messages[-1].envelope.recipients == ["c@example.com"]
        assert b"X-Extra: 1" in server.messages[-1].data
        with pytest.raises(smtpsend.UsageError):
            t.sendmessage(part(), ret="SOMETIMES")


def test_each_message_gets_its_own_progress_hook_on_a_reused_connection() -> None:
    with CaptureServer() as server, smtpsend.Transport(servers=["localhost"], ports=[server.port]) as t:
        first: list[int] = []
        second: list[int] = []
        t.sendmessage(part(1), progress=lambda sent, total: first.append(sent))
        t.sendmessage(part(2), progress=lambda sent, total: second.append(sent))
        assert first and second and t.stats.connections_reused == 1


def test_debug_logging_turned_on_after_the_transport_was_made_shows_the_next_message(
        caplog: pytest.LogCaptureFixture) -> None:
    """The connection options are worked out once (smtpsend._failover.Route),
    but whether the transcript is wanted is decided per message."""
    with CaptureServer() as server, caplog.at_level("INFO", logger="smtpsend"):
        with smtpsend.Transport(servers=["localhost"], ports=[server.port]) as t:
            t.sendmessage(part(1))
            assert not [r for r in caplog.records if r.levelname == "DEBUG"]
            with caplog.at_level("DEBUG", logger="smtpsend"):
                t.sendmessage(part(2))
            lines = [r.getMessage() for r in caplog.records if r.levelname == "DEBUG"]
            assert any(line.startswith("> MAIL FROM:<a@example.com>") for line in lines)
            assert any(line.startswith("* reusing the connection") for line in lines)
            caplog.clear()
            t.sendmessage(part(3))
            assert not [r for r in caplog.records if r.levelname == "DEBUG"]


def test_eight_threads_share_two_connections() -> None:
    count = 60 if FULL else 20
    with ChaosServer() as server:
        with transport(server, max_connections=2, max_messages=None) as t:
            errors: list[BaseException] = []

            def work(k: int) -> None:
                for n in range(count):
                    try:
                        t.sendmessage(part(f"{k}-{n}"))
                    except BaseException as exc:   # noqa: BLE001 - reported below
                        errors.append(exc)
            threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            assert t.stats.messages_sent == 8 * count and t.stats.connections_opened <= 2
        assert server.peak <= 2 and server.connections <= 2
        assert sorted(server.subjects) == sorted(f"m-{k}-{n}" for k in range(8) for n in range(count))


def test_max_messages_closes_a_connection_with_quit() -> None:
    with ChaosServer() as server:
        with transport(server, max_messages=3) as t:
            for n in range(7):
                t.sendmessage(part(n))
            assert server.quits == 2 and t.stats.connections_opened == 3
        assert server.quits == 3
        ports = [p for _, p in server.messages]
        assert len(set(ports[0:3])) == len(set(ports[3:6])) == 1 and len(set(ports)) == 3


def test_an_idle_connection_older_than_idle_timeout_is_closed_not_reused() -> None:
    clock = Clock()
    with ChaosServer() as server, transport(server, idle_timeout=60.0) as t:
        t._pool.clock = clock
        t.sendmessage(part(1))
        clock.now += 59
        t.sendmessage(part(2))
        assert server.connections == 1
        clock.now += 61
        t.sendmessage(part(3))
        assert server.connections == 2 and server.quits == 1
        assert t.stats.connections_opened == 2 and t.stats.connections_closed == 1


def test_a_sender_waits_for_a_free_connection_at_most_timeout() -> None:
    hold = threading.Event()
    with ChaosServer(hold=hold) as server, transport(server, max_connections=1, timeout=0.5) as t:
        first = threading.Thread(target=t.sendmessage, args=(part(1),))
        first.start()
        assert server.reached.wait(10)                     # the only connection is busy
        with pytest.raises(smtpsend.Timeout, match="exhausted") as info:
            t.sendmessage(part(2))
        assert "nothing was sent" in str(info.value)
        hold.set()
        first.join()
        assert server.subjects == ["m-1"] and t.stats.waits == 1
        t.sendmessage(part(3))
        assert server.subjects == ["m-1", "m-3"] and server.connections == 1


def test_rate_limit_waits_between_messages() -> None:
    with ChaosServer() as server, transport(server, rate_limit=10) as t:
        clock = Clock()
        assert t._settings.rate is not None
        t._settings.rate.clock = clock
        waits: list[float] = []
        t._sleep = waits.append
        for n in range(3):
            t.sendmessage(part(n))
        assert waits == pytest.approx([0.1, 0.2]) and len(server.messages) == 3


def test_after_close_sendmessage_raises_usage_error() -> None:
    with ChaosServer() as server:
        t = transport(server)
        t.sendmessage(part())
        t.close()
        assert server.quits == 1 and t.closed
        with pytest.raises(smtpsend.UsageError, match="closed"):
            t.sendmessage(part())
        assert server.connections == 1


# ---------------------------------------------------------------- the server closes kept connections

def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    with ChaosServer(fault=lambda point, conn, tx: "close" if point == "idle" else None) as server, \
            transport(server) as t:
        for n in range(3):
            assert t.sendmessage(part(n)) == []
        assert server.subjects == ["m-0", "m-1", "m-2"] and server.connections == 3
        assert t.stats.connections_replaced == 2 and t.stats.connections_opened == 3


@pytest.mark.parametrize("fault", ["close", "421"])
@pytest.mark.parametrize("extensions", [(), ("PIPELINING",)], ids=["plain", "pipelining"])
def test_a_reused_connection_lost_at_its_first_command_is_replaced(fault: str, extensions: tuple[str, ...]) -> None:
    """The server drops (or says 421 to) the first command on a reused
    connection: replaced on the same server, no Attempt, one copy."""
    def chaos(point: str, conn: int, tx: int) -> Optional[str]:
        return fault if point == "mail" and tx >= 1 else None
    with ChaosServer(fault=chaos, extensions=extensions) as server, transport(server) as t:
        for n in range(3):
            assert t.sendmessage(part(n)) == []
        assert server.subjects == ["m-0", "m-1", "m-2"] and server.connections == 3
        assert t.stats.connections_replaced == 2


def test_a_failure_after_the_data_is_delivery_uncertain_and_never_resent() -> None:
    def chaos(point: str, conn: int, tx: int) -> Optional[str]:
        return "keep" if point == "data" and tx == 1 else None
    with ChaosServer(fault=chaos) as server, ChaosServer() as backup:
        with smtpsend.Transport(servers=[server.host, backup.host], ports=[server.port, backup.port]) as t:
            t.sendmessage(part(0))
            with pytest.raises(smtpsend.DeliveryUncertain):
                t.sendmessage(part(1))                      # over the reused connection
            assert server.subjects == ["m-0", "m-1"] and backup.messages == []
            assert t.stats.connections_replaced == 0
            t.sendmessage(part(2))
        assert server.subjects == ["m-0", "m-1", "m-2"] and backup.messages == []


def test_failover_across_servers_as_sendmessage() -> None:
    with ScriptedServer() as down, ChaosServer() as up:
        with smtpsend.Transport(servers=["127.0.0.1", "127.0.0.1"], ports=[down.port, up.port]) as t:
            for n in range(3):
                assert t.sendmessage(part(n)) == []
        assert down.connections == 3 and up.connections == 1 and up.subjects == ["m-0", "m-1", "m-2"]


def test_a_kept_connection_serves_only_the_user_it_logged_in_as() -> None:
    """Two server URLs naming one server with different users: the
    connection bob logged in on is never used to send as alice."""
    with CaptureServer(users={"alice": "alice-pw", "bob": "bob-pw"}) as server:
        where = f"127.0.0.1:{server.port}?tlspolicy=insecure"
        with smtpsend.Transport(servers=[f"smtp://alice:wrong@{where}", f"smtp://bob:bob-pw@{where}"],
                                usetls=False) as t:
            t.sendmessage(part(1))                          # alice refused: bob sends it
            server.users["alice"] = "wrong"                 # now alice's password works
            t.sendmessage(part(2))
        assert [m.authenticated_as for m in server.messages] == ["bob", "alice"]


def test_all_servers_failed_as_sendmessage() -> None:
    with ScriptedServer() as one, ScriptedServer() as two:
        with smtpsend.Transport(servers=["127.0.0.1", "127.0.0.1"], ports=[one.port, two.port]) as t:
            with pytest.raises(smtpsend.AllServersFailed) as info:
                t.sendmessage(part())
        assert [a.port for a in info.value.attempts] == [one.port, two.port]
        assert all(a.stage == "greeting" for a in info.value.attempts)
        assert t.stats.messages_sent == 0


# ---------------------------------------------------------------- processes

@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_after_fork_the_child_opens_its_own_connection_and_the_parent_keeps_its_own() -> None:
    with ChaosServer() as server, transport(server) as t:
        t.sendmessage(part("parent-1"))
        pid = os.fork()
        if pid == 0:   # the child: its own connection, never the parent's socket
            code = 1
            try:
                t.sendmessage(part("child"))
                stats = t.stats
                code = 0 if (stats.connections_opened, stats.connections_reused) == (1, 0) else 2
                t.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        t.sendmessage(part("parent-2"))
        assert t.stats.connections_opened == 1 and t.stats.connections_replaced == 0
    ports = dict(server.messages)
    assert server.subjects == ["m-parent-1", "m-child", "m-parent-2"] and server.connections == 2
    assert ports["m-parent-1"] == ports["m-parent-2"] != ports["m-child"]


def test_a_process_change_without_the_fork_hook_is_noticed_too() -> None:
    with ChaosServer() as server, transport(server) as t:
        t.sendmessage(part(1))
        t._pool.pid = -1                                    # as if this were another process
        t._pool._idle[server.host, server.port][0].pid = -1
        t.sendmessage(part(2))
        assert server.connections == 2 and server.quits == 0


# ---------------------------------------------------------------- reliability

def random_faults(seed: int) -> Callable[[str, int, int], Optional[str]]:
    """A ChaosServer ``fault`` that misbehaves at random (reproducibly, by
    ``seed``; safe from the server's threads): closes 10% of idle
    connections, 5% at MAIL and 3% with a 421 there, and after the data
    drops 3% of the messages and keeps 3% without replying."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def chaos(point: str, conn: int, tx: int) -> Optional[str]:
        with lock:
            roll = rng.random()
        if point == "idle":
            return "close" if roll < 0.10 else None
        if point == "mail":
            return "close" if roll < 0.05 else "421" if roll < 0.08 else None
        return "drop" if roll < 0.03 else "keep" if roll < 0.06 else None
    return chaos


def assert_each_once(received: list[str], sent: list[str], uncertain: list[str]) -> None:
    """What the server holds (subjects) against what the senders were told."""
    assert len(received) == len(set(received))                        # never a second copy
    assert set(sent) <= set(received)                                 # every success is there
    assert set(received) - set(sent) <= set(uncertain)                # the rest only if uncertain


def test_every_message_is_delivered_once_or_its_caller_gets_an_error() -> None:
    """8 threads through one Transport to a server that closes connections
    at random points (idle, after MAIL, after the data -- stored or not):
    the server holds exactly the messages whose send returned, plus at
    most those that raised DeliveryUncertain; never one twice."""
    per_thread = 250 if FULL else 40
    lock = threading.Lock()
    outcomes: Counter[str] = Counter()
    sent: list[str] = []
    uncertain: list[str] = []
    with ChaosServer(fault=random_faults(15)) as server:
        with transport(server, max_connections=3, timeout=10) as t:
            def work(k: int) -> None:
                for n in range(per_thread):
                    subject = f"m-{k}-{n}"
                    try:
                        t.sendmessage(part(f"{k}-{n}"))
                    except smtpsend.DeliveryUncertain:
                        kind = "uncertain"
                        uncertain.append(subject)
                    except smtpsend.SMTPError:
                        kind = "failed"
                    else:
                        kind = "sent"
                        sent.append(subject)
                    with lock:
                        outcomes[kind] += 1
            threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            stats = t.stats
        received = server.subjects
    assert sum(outcomes.values()) == 8 * per_thread
    assert_each_once(received, sent, uncertain)
    assert stats.messages_sent == len(sent) and stats.connections_replaced > 0
    assert outcomes["sent"] > outcomes["failed"] + outcomes["uncertain"]
