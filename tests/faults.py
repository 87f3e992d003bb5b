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
from typing import Optional, Union

from servers import Stop, hold_until_closed, wait_readable

Connection = Union[socket.socket, ssl.SSLSocket]

STAGES = ["greeting", "ehlo", "starttls", "tls", "auth", "mail", "rcpt", "data", "message", "final", "quit"]
FAULTS = ["silence", "disconnect", "421", "4xx", "5xx", "malformed", "overlong", "endless", "tlsfail"]


class ClientClosed(threading.Event):
    """Set once the client has closed its end. Waiting for it also tells a
    server that holds back until the client has given up (silence while
    the message is sent) that the client has returned: the test waits only
    after the client's call ended, so no sleep has to guess when that is."""

    def __init__(self) -> None:
        super().__init__()
        self.client_returned = threading.Event()

    def wait(self, timeout: Optional[float] = None) -> bool:
        self.client_returned.set()
        return super().wait(timeout)


class FaultServer:
    """Misbehaves at ``stage`` with ``fault`` (see the module docstring);
    ``connected`` is set when a client connects, ``client_closed`` when it
    has closed its end, ``delivered`` lists the message bodies taken."""

    def __init__(self, stage: str, fault: str, tls_context: Optional[ssl.SSLContext] = None,
                 users: Optional[dict[str, str]] = None, hold: float = 5.0) -> None:
        self.stage, self.fault = stage, fault
        self.tls_context = tls_context
        self.users = users or {}
        self.hold = hold
        self.delivered: list[bytes] = []
        self.connected = threading.Event()
        self.client_closed = ClientClosed()
        self.sock = socket.socket()
        # a small receive window, so a large message cannot vanish into
        # kernel buffers when the server stops reading
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port: int = self.sock.getsockname()[1]
        self._stop = Stop()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "FaultServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.client_closed.client_returned.set()
        self.thread.join(10)
        self.sock.close()
        self._stop.close()

    # ------------------------------------------------------------ one connection

    def _serve(self) -> None:
        while wait_readable(self.sock, self._stop):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connected.set()
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

    def _wait_for_close(self, conn: Connection) -> None:
        """Stay silent; note when the client closes (it must, by its timeout)."""
        if hold_until_closed(conn, self._stop, self.hold)[0]:
            self.client_closed.set()

    def _fault(self, conn: Connection, stage: str) -> bool:
        """Misbehave if this is the stage; True when the dialogue must end."""
        if stage != self.stage or self.fault == "inject":
            return False
        f = self.fault
        if f == "silence":
            if stage == "message":
                # read nothing until the client has given up: its close cannot
                # be seen while its data fills our window, so wait until the
                # test says the client's call has returned
                self.client_closed.client_returned.wait(self.hold)
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

    def _dialogue(self, conn: Connection) -> None:
        reader = _Lines(conn)
        if not self._fault(conn, "greeting"):
            conn.sendall(b"220 fault.localhost ESMTP\r\n")
        tls = False
        recipients: list[bytes] = []
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
                assert self.tls_context is not None
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
    """CRLF lines from a connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.buffer = b""

    def line(self) -> Optional[bytes]:
        """The next line without its CRLF; None when the client closed."""
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

    def until_dot(self) -> Optional[bytes]:
        """The message data up to the "." line; None when the client closed."""
        lines: list[bytes] = []
        while True:
            line = self.line()
            if line is None:
                return None
            if line == b".":
                return b"\r\n".join(lines)
            lines.append(line)
