"""Loopback servers for the tests: aiosmtpd (a real SMTP server library),
our capture server, a throwaway CA, and small misbehaving servers."""

from __future__ import annotations

import socket
import threading
import time



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScriptedServer:
    """A TCP server on 127.0.0.1 that answers each connection with fixed
    bytes (e.g. b"421 busy\\r\\n") and then closes -- or stays silent."""

    def __init__(self, greeting: bytes = b"421 4.3.2 busy, try later\r\n", hold: float = 0.0):
        self.greeting = greeting
        self.hold = hold
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                if self.greeting:
                    conn.sendall(self.greeting)
                deadline = time.monotonic() + self.hold
                while time.monotonic() < deadline and not self._stop:
                    time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self.thread.join(5)
        self.sock.close()


class Conversation:
    """A TCP server on 127.0.0.1 that plays one scripted conversation:
    ("S", bytes) it sends, ("C", bytes) it expects to receive exactly,
    ("CLOSE",) it hangs up. ``errors`` lists any mismatch."""

    def __init__(self, script):
        self.script = list(script)
        self.errors = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        self.sock.settimeout(10)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.settimeout(10)
        buffer = b""
        with conn:
            for step in self.script:
                if step[0] == "S":
                    conn.sendall(step[1])
                elif step[0] == "C":
                    while len(buffer) < len(step[1]):
                        data = conn.recv(65536)
                        if not data:
                            self.errors.append(f"client closed; expected {step[1]!r}")
                            return
                        buffer += data
                    got, buffer = buffer[:len(step[1])], buffer[len(step[1]):]
                    if got != step[1]:
                        self.errors.append(f"expected {step[1]!r}, got {got!r}")
                        return
                elif step[0] == "CLOSE":
                    return
                elif step[0] == "HOLD":
                    time.sleep(step[1])

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(10)
        self.sock.close()
        assert not self.errors, self.errors


class Forwarder:
    """Listen on ``host`` (a loopback address the rig's certificate does not
    name, e.g. 127.0.0.2) and forward every connection to 127.0.0.1:``port``:
    a server reached under the wrong name."""

    def __init__(self, port: int, host: str = "127.0.0.2"):
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(4)
        self.host, self.port = self.sock.getsockname()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()
