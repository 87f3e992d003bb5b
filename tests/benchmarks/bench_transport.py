"""smtpsend.Transport and AsyncTransport against a connection per message,
side by side in one run, on loopback only (not a timed test: it prints).

1. 1,000 messages from 8 threads to a server with STARTTLS and AUTH PLAIN:
   - smtpsend.Transport (max_connections=8, and the default 4): one shared pool;
   - smtplib with one kept connection per thread (sendmail() per message:
     what an application can write with the standard library alone);
   - smtplib: connect, starttls, login (PLAIN), sendmail, quit per message;
   - Django's SMTP backend: send_mail() per message (its own login picks
     CRAM-MD5, the strongest the server offers).
   With MAILRIG_STATE set (a running tests/rig/rig.py), the same workload
   through the rig's Postfix submission port as well.
2. 10,000 concurrent tasks to a plaintext server: AsyncTransport with
   max_connections=8 against aiosmtplib.send() under a semaphore of 8:
   the time, and the peak memory the client allocated (tracemalloc, in a
   second run so that tracing does not slow the timed one).

The server is smtpsend.testing.CaptureServer in a process of its own, so
that it does not share the client's interpreter lock.

    python3 -m pip install '.[bench]'     # aiosmtplib, Django, trustme
    python3 tests/benchmarks/bench_transport.py [--messages 1000] [--tasks 10000] [--threads 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import asyncio
import importlib
import os
import pathlib
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import smtpsend  # noqa: E402

USER, PASSWORD = "bench", "bench-pw"
RAW = (b"From: <app@example.com>\r\nTo: <user@example.com>\r\nSubject: benchmark\r\n"
       b"Message-ID: <bench@example.com>\r\n\r\nHello from the benchmark.\r\n")

SERVER = r"""
import ssl, sys
sys.path.insert(0, {root!r})
from smtpsend.testing import CaptureServer
context = None
if len(sys.argv) > 1:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
server = CaptureServer(tls_context=context, users={{{user!r}: {password!r}}} if context else None,
                       keep=10, keep_commands=10, max_clients=5000).start()
print(server.port, flush=True)
for line in sys.stdin:
    print(server.received, flush=True)
"""


@contextmanager
def server_process(cert: Optional[tuple[str, str]] = None) -> Iterator[tuple[int, Callable[[], int]]]:
    """A CaptureServer in a child process (TLS + AUTH with ``cert``); yields
    (port, received) where received() asks it how many messages it took."""
    script = SERVER.format(root=str(ROOT), user=USER, password=PASSWORD)
    child = subprocess.Popen([sys.executable, "-c", script, *(cert or ())], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdin is not None
    port = int(child.stdout.readline())

    def received() -> int:
        assert child.stdout is not None and child.stdin is not None
        child.stdin.write("count\n")
        child.stdin.flush()
        return int(child.stdout.readline())
    try:
        yield port, received
    finally:
        child.stdin.close()
        child.wait(10)


def threaded(count: int, threads: int, send: Callable[[], Any]) -> float:
    """Run ``send`` ``count`` times from ``threads`` threads; messages/second."""
    left = [count]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                send()
            except BaseException as exc:   # noqa: BLE001 - reported after the run
                errors.append(exc)
                return
    started = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return count / elapsed


def smtplib_send(port: int, context: ssl.SSLContext, host: str = "localhost", user: str = USER,
                 password: str = PASSWORD, sender: str = "app@example.com",
                 recipient: str = "user@example.com") -> None:
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        smtp.starttls(context=context)
        smtp.ehlo()
        smtp.user, smtp.password = user, password
        smtp.auth("PLAIN", smtp.auth_plain)
        smtp.sendmail(sender, [recipient], RAW)


class RawKept:
    """The limit of this server: a hand-written client that does nothing
    but the protocol -- one kept connection per thread (STARTTLS and AUTH
    PLAIN once), then per message MAIL, RCPT and DATA in one write and the
    message in another, the fewest round trips SMTP allows. No parsing, no
    checks: what no real client can beat against the same server."""

    def __init__(self, port: int, context: ssl.SSLContext, host: str = "localhost", user: str = USER,
                 password: str = PASSWORD, recipient: str = "user@example.com") -> None:
        self.args = (port, context, host, user, password, recipient)
        self.local = threading.local()
        self.opened: list[socket.socket] = []

    def _reply(self, stream: Any) -> bytes:
        while True:
            line: bytes = stream.readline()
            if line[3:4] != b"-":
                return line

    def _connection(self) -> Any:
        stream = getattr(self.local, "stream", None)
        if stream is None:
            port, context, host, user, password, _ = self.args
            sock = socket.create_connection((host, port), timeout=30)
            stream = sock.makefile("rb")
            self._reply(stream)
            sock.sendall(b"EHLO bench\r\n")
            self._reply(stream)
            sock.sendall(b"STARTTLS\r\n")
            self._reply(stream)
            sock = context.wrap_socket(sock, server_hostname=host)
            stream = sock.makefile("rb")
            sock.sendall(b"EHLO bench\r\n")
            self._reply(stream)
            token = base64.b64encode(f"\0{user}\0{password}".encode())
            sock.sendall(b"AUTH PLAIN " + token + b"\r\n")
            self._reply(stream)
            self.local.sock, self.local.stream = sock, stream
            self.opened.append(sock)
        return stream

    def send(self) -> None:
        stream = self._connection()
        sock: socket.socket = self.local.sock
        recipient = self.args[5]
        sock.sendall(b"MAIL FROM:<app@example.com>\r\nRCPT TO:<" + recipient.encode() + b">\r\nDATA\r\n")
        for _ in range(3):
            self._reply(stream)
        sock.sendall(RAW + b".\r\n")
        self._reply(stream)

    def close(self) -> None:
        for sock in self.opened:
            sock.close()


class SmtplibKept:
    """What an application can do with smtplib alone: one connection per
    thread, opened once (STARTTLS and AUTH PLAIN), then sendmail() per
    message -- MAIL, RCPT, DATA and the message, one round trip each,
    with nothing parsed: the envelope is passed in."""

    def __init__(self, port: int, context: ssl.SSLContext, host: str = "localhost", user: str = USER,
                 password: str = PASSWORD, recipient: str = "user@example.com") -> None:
        self.args = (port, context, host, user, password)
        self.recipient = recipient
        self.local = threading.local()
        self.opened: list[smtplib.SMTP] = []

    def send(self) -> None:
        smtp = getattr(self.local, "smtp", None)
        if smtp is None:
            port, context, host, user, password = self.args
            smtp = smtplib.SMTP(host, port, timeout=30)
            smtp.starttls(context=context)
            smtp.ehlo()
            smtp.user, smtp.password = user, password
            smtp.auth("PLAIN", smtp.auth_plain)
            self.local.smtp = smtp
            self.opened.append(smtp)
        smtp.sendmail("app@example.com", [self.recipient], RAW)

    def close(self) -> None:
        for smtp in self.opened:
            smtp.quit()


def django_sender(port: int, ca: str, host: str = "localhost", user: str = USER, password: str = PASSWORD,
                  recipient: str = "user@example.com") -> Optional[Callable[[], Any]]:
    try:
        import django  # type: ignore[import-untyped]
        from django.conf import settings  # type: ignore[import-untyped]
        from django.core import mail  # type: ignore[import-untyped]
    except ImportError:
        print("  (Django is not installed: its column is left out)")
        return None
    os.environ["SSL_CERT_FILE"] = ca   # Django's backend verifies with the default context
    if not settings.configured:
        settings.configure(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend")
        django.setup()
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = host, port, True
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD, settings.EMAIL_TIMEOUT = user, password, 30

    def send() -> None:
        mail.send_mail("benchmark", "Hello from the benchmark.", "app@example.com", [recipient])
    return send


def sync_round(label: str, port: int, context: ssl.SSLContext, ca: str, messages: int, threads: int,
               received: Optional[Callable[[], int]], rounds: int = 1, host: str = "localhost", user: str = USER,
               password: str = PASSWORD, recipient: str = "user@example.com") -> None:
    """Every client, ``rounds`` times in turn (so that a slow moment of a
    shared machine falls on all of them); prints each one's median rate,
    the range, and how the first Transport row compares to it."""
    print(f"\n{label}: {messages} messages from {threads} threads, STARTTLS + AUTH, {rounds} round(s)")
    before = received() if received else 0
    stats: list[smtpsend.TransportStats] = []

    def pooled(connections: int) -> Callable[[], float]:
        def run() -> float:
            with smtpsend.Transport(servers=[host], ports=[port], ssl_context=context, username=user,
                                    password=password, mechanisms="PLAIN", max_connections=connections) as transport:
                rate = threaded(messages, threads, lambda: transport.sendmessage(RAW, recipients=[recipient]))
                stats.append(transport.stats)
                return rate
        return run

    def kept(kind: Callable[..., Any]) -> Callable[[], float]:
        def run() -> float:
            client = kind(port, context, host, user, password, recipient=recipient)
            try:
                return threaded(messages, threads, client.send)
            finally:
                client.close()
        return run

    clients: list[tuple[str, Callable[[], float]]] = [
        (f"smtpsend.Transport, {threads} connections", pooled(threads)),
        ("smtpsend.Transport, the default 4", pooled(4)),
        ("the limit: a raw client, kept connections", kept(RawKept)),
        ("smtplib, a kept connection per thread", kept(SmtplibKept)),
        ("smtplib, a connection per message", lambda: threaded(messages, threads, lambda: smtplib_send(
            port, context, host, user, password, recipient=recipient)))]
    django = django_sender(port, ca, host, user, password, recipient)
    if django is not None:
        clients.append(("Django send_mail() per message", lambda: threaded(messages, threads, django)))
    rates: dict[str, list[float]] = {name: [] for name, _ in clients}
    for _ in range(rounds):
        for name, run in clients:
            rates[name].append(run())
    ours = statistics.median(rates[clients[0][0]])
    print(f"  {'':42s} {'median':>8s}        {'range':13s} {clients[0][0][:18]} is")
    for name, runs in rates.items():
        middle = statistics.median(runs)
        print(f"  {name:42s} {middle:8.0f} msg/s  {min(runs):6.0f}-{max(runs):<6.0f} {ours / middle:5.1f}x")
    first = stats[0]
    print(f"  Transport ({threads} connections): {first.connections_opened} connections opened, "
          f"{first.connections_reused} messages over a kept one (round 1)")
    if received:
        got = received() - before
        sent = rounds * len(clients) * messages
        print(f"  the server received {got} messages ({rounds} x {len(clients)} x {messages} sent)")
        assert got == sent


async def async_transport(port: int, tasks: int) -> smtpsend.TransportStats:
    async with smtpsend.AsyncTransport(servers=["127.0.0.1"], ports=[port], max_connections=8) as transport:
        await asyncio.gather(*(transport.sendmessage(RAW) for _ in range(tasks)))
        return transport.stats


async def async_aiosmtplib(port: int, tasks: int) -> None:
    import aiosmtplib
    gate = asyncio.Semaphore(8)

    async def one() -> None:
        async with gate:
            await aiosmtplib.send(RAW, sender="app@example.com", recipients=["user@example.com"],
                                  hostname="127.0.0.1", port=port, start_tls=False)
    await asyncio.gather(*(one() for _ in range(tasks)))


def measured(run: Callable[[], Any]) -> tuple[float, int, Any]:
    """(seconds untraced, peak bytes traced in a second run, result)."""
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak, result


def async_round(tasks: int) -> None:
    print(f"\nasyncio: {tasks} concurrent tasks, at most 8 connections, plaintext loopback")
    with server_process() as (port, received):
        before = received()
        seconds, peak, stats = measured(lambda: asyncio.run(async_transport(port, tasks)))
        got = received() - before
        assert got == 2 * tasks, got
        print(f"  {'smtpsend.AsyncTransport':36s} {seconds:6.2f} s {tasks / seconds:8.0f} msg/s  "
              f"peak {peak / 1e6:6.1f} MB  ({stats.connections_opened} connections)")
        try:
            import aiosmtplib  # noqa: F401
        except ImportError:
            print("  (aiosmtplib is not installed: pip install aiosmtplib for its column)")
            return
        before = received()
        other, other_peak, _ = measured(lambda: asyncio.run(async_aiosmtplib(port, tasks)))
        assert received() - before == 2 * tasks
        print(f"  {'aiosmtplib.send + Semaphore(8)':36s} {other:6.2f} s {tasks / other:8.0f} msg/s  "
              f"peak {other_peak / 1e6:6.1f} MB")
        print(f"  AsyncTransport: {other / seconds:.1f}x aiosmtplib's speed, {peak / max(other_peak, 1):.1f}x its "
              "peak memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="runs of every threaded client, in turn")
    args = parser.parse_args()
    try:
        import trustme
    except ImportError:
        sys.exit("the benchmark needs trustme (pip install trustme) for its throwaway CA")
    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as tmp:
        cert = ca.issue_cert("localhost", "127.0.0.1")
        paths = [os.path.join(tmp, name) for name in ("cert.pem", "key.pem", "ca.pem")]
        cert.private_key_and_cert_chain_pem.write_to_path(paths[0])
        cert.private_key_pem.write_to_path(paths[1])
        ca.cert_pem.write_to_path(paths[2])
        context = ssl.create_default_context(cafile=paths[2])
        with server_process((paths[0], paths[1])) as (port, received):
            sync_round("loopback capture server", port, context, paths[2], args.messages, args.threads, received,
                       args.rounds)
        state = os.environ.get("MAILRIG_STATE")
        if state:
            sys.path.insert(0, str(ROOT / "tests" / "rig"))
            rig: Any = importlib.import_module("rig")   # the rig's ports and users
            user, (password, _) = next(iter(rig.USERS.items()))
            rig_ca = os.path.join(state, "tls", "ca.pem")
            sync_round("the rig's Postfix (submission port)", rig.PORTS["submission"],
                       ssl.create_default_context(cafile=rig_ca), rig_ca, args.messages, args.threads, None,
                       args.rounds, host="localhost", user=user, password=password, recipient=user)
    async_round(args.tasks)


if __name__ == "__main__":
    main()
