"""A fault-injecting SMTP server for the fault matrix (loopback only).

It speaks plain SMTP (no PIPELINING, no CHUNKING, so each stage is one
command and one reply), offers STARTTLS and AUTH PLAIN, and at one chosen
stage misbehaves in one chosen way instead of answering normally.

Stages:  greeting ehlo starttls tls auth mail rcpt data message final quit
Faults:  silence disconnect 421 4xx 5xx malformed overlong endless tlsfail
         (and "inject" at starttls: extra replies sent with the 220)
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time

STAGES = ["greeting", "ehlo", "starttls", "tls", "auth", "mail", "rcpt", "data", "message", "final", "quit"]
FAULTS = ["silence", "disconnect", "421", "4xx", "5xx", "malformed", "overlong", "endless", "tlsfail"]


class FaultServer:
    def __init__(self, stage: str, fault: str, tls_context: ssl.SSLContext | None = None,
                 users: dict | None = None, hold: float = 5.0):
        self.stage, self.fault = stage, fault
        self.tls_context = tls_context
        self.users = users or {}
        self.hold = hold
        self.delivered: list[bytes] = []
        self.client_closed = threading.Event()
        self.sock = socket.socket()
        # a small receive window, so a large message cannot vanish into
        # kernel buffers when the server stops reading
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.sock.close()
        self.thread.join(10)

    # ------------------------------------------------------------ one connection

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(10)
            try:
                self._dialogue(conn)
            except (OSError, ssl.SSLError, _Done):
                pass
            finally:
                try:
                    conn.close()
                except OSError:
                    pass

    def _wait_for_close(self, conn):
        """Stay silent; note when the client closes (it must, by its timeout)."""
        deadline = time.monotonic() + self.hold
        conn.settimeout(0.1)
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                if conn.recv(65536) == b"":
                    self.client_closed.set()
                    return
            except socket.timeout:
                continue
            except OSError:
                self.client_closed.set()
                return

    def _fault(self, conn, stage):
        """Misbehave if this is the stage; True when the dialogue must end."""
        if stage != self.stage or self.fault == "inject":
            return False
        f = self.fault
        if f == "silence":
            if stage == "message":
                time.sleep(2.5)        # read nothing until the client has given up
            self._wait_for_close(conn)
        elif f == "disconnect":
            self.client_closed.set()   # we hang up: the connection is gone either way
            raise _Done
        elif f == "421":
            conn.sendall(b"421 4.3.2 service shutting down\r\n")
        elif f == "4xx":
            conn.sendall(b"451 4.3.0 temporary trouble\r\n")
            return False
        elif f == "5xx":
            conn.sendall(b"554 5.3.0 permanent trouble\r\n")
            return False
        elif f == "malformed":
            conn.sendall(b"this is not an SMTP reply\r\n")
        elif f == "overlong":
            conn.sendall(b"250 " + b"x" * 20000 + b"\r\n")
        elif f == "endless":
            try:
                for _ in range(200_000):   # bounded: the client gives up long before
                    conn.sendall(b"250-and more\r\n" * 64)
            except OSError:
                self.client_closed.set()
        elif f == "tlsfail":
            conn.sendall(b"220 go ahead\r\n" if stage == "starttls" else b"")
            conn.sendall(b"\x15\x03\x03\x00\x02\x02\x28")   # a TLS alert instead of a handshake
        if f in ("421", "malformed", "overlong", "tlsfail"):
            self._wait_for_close(conn)
        raise _Done

    def _dialogue(self, conn):
        reader = _Lines(conn)
        if not self._fault(conn, "greeting"):
            conn.sendall(b"220 fault.localhost ESMTP\r\n")
        tls = False
        recipients = []
        while True:
            line = reader.line()
            if line is None:
                self.client_closed.set()
                return
            verb = line.split(b" ", 1)[0].upper()
            if verb == b"HELO":
                conn.sendall(b"250 fault.localhost\r\n")
            elif verb == b"EHLO":
                if self._fault(conn, "ehlo"):
                    return
                if self.stage == "ehlo" and self.fault in ("4xx", "5xx"):
                    continue
                features = [b"fault.localhost", b"ENHANCEDSTATUSCODES"]
                if self.tls_context and not tls:
                    features.append(b"STARTTLS")
                if self.users:
                    features.append(b"AUTH PLAIN")
                conn.sendall(b"".join(b"250%s%s\r\n" % (b"-" if i < len(features) - 1 else b" ", f)
                                      for i, f in enumerate(features)))
            elif verb == b"STARTTLS":
                if self._fault(conn, "starttls"):
                    return
                if self.stage == "starttls" and self.fault in ("4xx", "5xx"):
                    continue
                if self.stage == "starttls" and self.fault == "inject":
                    # CVE-2011-0411 class: replies slipped in before the handshake
                    conn.sendall(b"220 2.0.0 ready\r\n250-injected.example\r\n250 AUTH PLAIN\r\n")
                else:
                    conn.sendall(b"220 2.0.0 ready\r\n")
                if self._fault(conn, "tls"):
                    return
                conn = self.tls_context.wrap_socket(conn, server_side=True)
                reader = _Lines(conn)
                tls = True
            elif verb == b"AUTH":
                if self._fault(conn, "auth"):
                    return
                if self.stage == "auth" and self.fault in ("4xx", "5xx"):
                    continue
                data = base64.b64decode(line.split(b" ")[2])
                _, user, password = data.split(b"\0")
                ok = self.users.get(user.decode()) == password.decode()
                conn.sendall(b"235 2.7.0 ok\r\n" if ok else b"535 5.7.8 bad credentials\r\n")
            elif verb == b"MAIL":
                if self._fault(conn, "mail"):
                    return
                if self.stage == "mail" and self.fault in ("4xx", "5xx"):
                    continue
                recipients = []
                conn.sendall(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                if self._fault(conn, "rcpt"):
                    return
                if self.stage == "rcpt" and self.fault in ("4xx", "5xx"):
                    continue
                recipients.append(line)
                conn.sendall(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                if self._fault(conn, "data"):
                    return
                if self.stage == "data" and self.fault in ("4xx", "5xx"):
                    continue
                conn.sendall(b"354 go ahead\r\n")
                if self._fault(conn, "message"):
                    return
                body = reader.until_dot()
                if body is None:
                    self.client_closed.set()
                    return
                if self._fault(conn, "final"):
                    return
                if self.stage == "final" and self.fault in ("4xx", "5xx"):
                    continue
                self.delivered.append(body)
                conn.sendall(b"250 2.0.0 queued\r\n")
            elif verb == b"RSET":
                conn.sendall(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                if self._fault(conn, "quit"):
                    return
                conn.sendall(b"221 2.0.0 bye\r\n")
                self._wait_for_close(conn)
                return
            else:
                conn.sendall(b"500 5.5.2 unknown command\r\n")


class _Done(Exception):
    pass


class _Lines:
    def __init__(self, conn):
        self.conn = conn
        self.buffer = b""

    def line(self):
        while b"\r\n" not in self.buffer:
            try:
                data = self.conn.recv(65536)
            except (OSError, ssl.SSLError):
                return None
            if not data:
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def until_dot(self):
        lines = []
        while True:
            line = self.line()
            if line is None:
                return None
            if line == b".":
                return b"\r\n".join(lines)
            lines.append(line)
