"""Loopback servers for the tests: aiosmtpd (a real SMTP server library),
our capture server, a throwaway CA, and small misbehaving servers."""

from __future__ import annotations

import socket
import threading
import time

import pytest


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
