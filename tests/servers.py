"""Loopback servers for the tests: aiosmtpd (a real SMTP server library),
our capture server, a throwaway CA, and small misbehaving servers.

Nothing here sleeps to wait for the other side: a server thread blocks in
``select`` on its socket and on a :class:`Stop` signal, so it wakes the
moment the client acts or the test ends.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any, Optional, Sequence, Union

Step = tuple[Any, ...]   # ("S", bytes), ("C", bytes), ("HOLD", seconds), ("CLOSE",)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Stop:
    """A stop signal that ``select`` can wait on beside sockets (a
    threading.Event cannot be), so a server blocked on a socket wakes at
    once when the test ends."""

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._event = threading.Event()

    def set(self) -> None:
        """Signal: every ``wait_readable`` on this Stop returns."""
        if not self._event.is_set():
            self._event.set()
            try:
                self._write.send(b"x")
            except OSError:
                pass

    def is_set(self) -> bool:
        return self._event.is_set()

    def fileno(self) -> int:
        return self._read.fileno()

    def close(self) -> None:
        self._read.close()
        self._write.close()


def wait_readable(sock: socket.socket, stop: Stop, timeout: Optional[float] = None) -> bool:
    """Block until ``sock`` is readable (data, a connection or the peer's
    close). False when ``timeout`` seconds passed first, or ``stop`` is set
    and ``sock`` has nothing already waiting (what arrived before the stop
    is still read)."""
    waiting: list[Union[socket.socket, Stop]] = [sock, stop]
    readable, _, _ = select.select(waiting, [], [], 0 if stop.is_set() else timeout)
    return sock in readable


def hold_until_closed(conn: socket.socket, stop: Stop, seconds: float) -> tuple[bool, bytes]:
    """Stay silent, reading what the client sends, until it closes the
    connection, ``stop`` is set or ``seconds`` pass. Returns (closed, the
    bytes read meanwhile)."""
    end = time.monotonic() + seconds
    received = b""
    while True:
        left = end - time.monotonic()
        if left <= 0 or not wait_readable(conn, stop, left):
            return False, received
        try:
            data = conn.recv(65536)
        except OSError:
            return True, received
        if not data:
            return True, received
        received += data


class ScriptedServer:
    """A TCP server on 127.0.0.1 that answers each connection with fixed
    bytes (e.g. b"421 busy\\r\\n") and then closes -- or first stays silent
    for up to ``hold`` seconds, until the client closes its end."""

    def __init__(self, greeting: bytes = b"421 4.3.2 busy, try later\r\n", hold: float = 0.0) -> None:
        self.greeting = greeting
        self.hold = hold
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = Stop()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while wait_readable(self.sock, self._stop):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                try:
                    if self.greeting:
                        conn.sendall(self.greeting)
                    if self.hold:
                        hold_until_closed(conn, self._stop, self.hold)
                except OSError:
                    pass

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()
        self._stop.close()


class Conversation:
    """A TCP server on 127.0.0.1 that plays one scripted conversation:
    ("S", bytes) it sends, ("C", bytes) it expects to receive exactly (bytes
    that do not end a line: a line that starts so),
    ("HOLD", seconds) it stays silent until the client closes (at most that
    long), ("CLOSE",) it hangs up (whatever the client sends after that is
    its own business).

    A script that ends without ("CLOSE",) waits for the client to close and
    counts anything it sends meanwhile as an unexpected command. ``errors``
    lists every mismatch; leaving the ``with`` block fails the test if there
    is one, or if the client stopped before the script did.

    ``unix``: listen on a Unix socket at that path instead (``port`` is then 0).
    """

    def __init__(self, script: Sequence[Step], unix: Optional[str] = None) -> None:
        self.script = list(script)
        self.errors: list[str] = []
        self.done = 0                       # steps played
        self.path = unix
        self.sock = socket.socket(socket.AF_UNIX) if unix else socket.socket()
        self.sock.bind(unix or ("127.0.0.1", 0))
        self.sock.listen(1)
        self.port: int = 0 if unix else self.sock.getsockname()[1]
        self._stop = Stop()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        if not wait_readable(self.sock, self._stop, 10):
            return
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            try:
                self._play(conn)
            except OSError as exc:
                self.errors.append(f"after {self.done} steps: {exc}")

    def _play(self, conn: socket.socket) -> None:
        buffer = b""
        closed = False
        for step in self.script:
            kind = step[0]
            if kind == "S":
                assert isinstance(step[1], bytes)
                conn.sendall(step[1])
            elif kind == "C":
                want = step[1]
                assert isinstance(want, bytes)
                while len(buffer) < len(want) and not closed:
                    if not wait_readable(conn, self._stop, 10):
                        self.errors.append(f"no {want!r} from the client (it sent {buffer!r})")
                        return
                    data = conn.recv(65536)
                    closed = not data
                    buffer += data
                got, buffer = buffer[:len(want)], buffer[len(want):]
                if got != want:
                    self.errors.append(f"expected {want!r}, got {got!r}"
                                       + (" (then the client closed)" if closed else ""))
                    return
                if not want.endswith(b"\n"):
                    # the start of a line: the rest of that line goes with it
                    while b"\n" not in buffer and not closed and wait_readable(conn, self._stop, 10):
                        data = conn.recv(65536)
                        closed = not data
                        buffer += data
                    buffer = buffer.partition(b"\n")[2]
            elif kind == "HOLD":
                assert isinstance(step[1], (int, float))
                if not closed:
                    closed, more = hold_until_closed(conn, self._stop, step[1])
                    buffer += more
            elif kind == "CLOSE":
                self.done += 1
                return
            else:
                raise ValueError(f"unknown step {step!r}")
            self.done += 1
        # the script ran out without a hang-up: the client must not say more
        if not closed:
            closed, more = hold_until_closed(conn, self._stop, 10)
            buffer += more
        if buffer:
            self.errors.append(f"the client sent {buffer!r} after the end of the script")

    def __enter__(self) -> "Conversation":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(10)
        self.sock.close()
        self._stop.close()
        if exc[0] is not None:
            return                           # the test already failed: that error says more
        assert not self.errors, "; ".join(self.errors)
        assert self.done == len(self.script), (
            f"script not finished: the client stopped after {self.done} of {len(self.script)} steps; "
            f"next: {self.script[self.done]!r}")


class Forwarder:
    """Listen on ``host`` (a loopback address the rig's certificate does not
    name, e.g. 127.0.0.2) and forward every connection to 127.0.0.1:``port``:
    a server reached under the wrong name."""

    def __init__(self, port: int, host: str = "127.0.0.2") -> None:
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(4)
        self.host: str
        self.port: int
        self.host, self.port = self.sock.getsockname()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> "Forwarder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
