"""smtpsend against smtplib, side by side in one run, on loopback only.

1. One message to 20 recipients through a proxy that delays every segment
   by 5 ms in each direction (a 10 ms round trip): wall time (also in round
   trip times) and counted round trips (a round trip = the server answering
   after the client spoke). "raw transcript" is the shortest dialogue
   written by hand on a socket (greeting, EHLO, then MAIL, the RCPTs,
   BDAT LAST with the data and QUIT in one write): the limit.
2. 500 small messages over one connection, no delay: messages per second.
3. One call per message: 500 sendmessage() calls, each its own connection,
   against smtplib's connect + send_message + quit; "raw transcript" is
   the same 3 round trips written by hand (the limit of the protocol).

The server is smtpsend.testing.CaptureServer (it offers PIPELINING), run
in a process of its own so that it does not share the client's interpreter
lock; the proxy runs in threads of this process.

    python tests/benchmarks/bench_smtp.py [--delay-ms 5] [--messages 500] [--only recipients connection onecall]
"""

from __future__ import annotations

import argparse
import heapq
import pathlib
import smtplib
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Optional

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import mimecompose  # noqa: E402
import smtpsend  # noqa: E402


class DelayProxy:
    """Forward 127.0.0.1:port -> target, holding each segment ``delay`` seconds."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target = ("127.0.0.1", target_port)
        self.delay = delay
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.round_trips = 0
        self._last = "server"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.round_trips = 0
            self._last = "server"

    def _note(self, direction: str) -> None:
        with self._lock:
            if direction == "server" and self._last == "client":
                self.round_trips += 1
            if direction == "server" and self.round_trips == 0:
                self.round_trips = 1   # the greeting
            self._last = direction

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipe(client, server, "client")
            self._pipe(server, client, "server")

    def _pipe(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        queue: list = []
        cond = threading.Condition()
        counter = [0]

        def reader():
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                with cond:
                    counter[0] += 1
                    heapq.heappush(queue, (time.monotonic() + self.delay, counter[0], data))
                    cond.notify()
                if not data:
                    return

        def writer():
            while True:
                with cond:
                    while not queue:
                        cond.wait()
                    due, _, data = queue[0]
                    wait = due - time.monotonic()
                    if wait > 0:
                        cond.wait(wait)
                        continue
                    heapq.heappop(queue)
                if not data:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                if direction == "server" or data:
                    self._note(direction)
                try:
                    dst.sendall(data)
                except OSError:
                    return

        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=writer, daemon=True).start()


SERVER = r"""
import sys, time
sys.path.insert(0, {root!r})
from smtpsend.testing import CaptureServer, DEFAULT_EXTENSIONS
chunking = sys.argv[1] == "chunking"
server = CaptureServer([e for e in DEFAULT_EXTENSIONS if chunking or e != "CHUNKING"]).start()
print(server.port, flush=True)
sys.stdin.read()          # until the parent closes our stdin
print(server.received, flush=True)      # messages is a ring buffer of the newest only
"""


EXTERNAL: Optional[int] = None   # --server: measure against a running server instead


@contextmanager
def server_process(chunking: bool = True):
    """A CaptureServer in a child process; yields (port, counter) where
    counter() stops it and returns how many messages it received. With
    --server, the given server instead (counter() returns None)."""
    if EXTERNAL is not None:
        yield EXTERNAL, lambda: None
        return
    root = str(pathlib.Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-c", SERVER.format(root=root),
                             "chunking" if chunking else "plain"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    result = {}

    def stop() -> int:
        proc.stdin.close()
        result["count"] = int(proc.stdout.readline())
        proc.wait(10)
        return result["count"]

    try:
        yield port, stop
    finally:
        if proc.poll() is None:
            proc.kill()


RECIPIENTS = [f"user{i}@example.com" for i in range(20)]


def one_message(n_rcpt: int = 20) -> tuple[mimecompose.Part, bytes]:
    part = mimecompose.compose("A short notification.\n", header=[
        ("From", "bench@example.com"), ("To", ", ".join(RECIPIENTS[:n_rcpt])), ("Subject", "benchmark"),
        ("Date", "Mon, 23 Nov 2026 04:10:05 +0000"), ("Message-ID", "<bench@example.com>")])
    return part, part.buildmessage()


class RawConnection:
    """SMTP written by hand on one socket: the limit a client can reach."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.replies(1)
        self.sock.sendall(b"EHLO localhost\r\n")
        self.replies(1)

    def replies(self, count: int) -> None:
        """Read until ``count`` complete replies have come (and nothing more is pending)."""
        while True:
            if sum(1 for line in self.buf.split(b"\r\n") if line[3:4] == b" ") >= count:
                self.buf = b""
                return
            block = self.sock.recv(65536)
            if not block:
                raise ConnectionError("closed")
            self.buf += block

    def transaction(self, sender: str, recipients: list[str], message: bytes) -> None:
        """MAIL, the RCPTs and BDAT LAST with the data in one write; one round trip."""
        self.sock.sendall(b"".join([f"MAIL FROM:<{sender}>\r\n".encode()]
                                   + [f"RCPT TO:<{r}>\r\n".encode() for r in recipients]
                                   + [b"BDAT %d LAST\r\n" % len(message), message]))
        self.replies(len(recipients) + 2)

    def close(self) -> None:
        self.sock.sendall(b"QUIT\r\n")
        self.replies(1)
        self.sock.close()


def raw_transcript(port: int, sender: str, recipients: list[str], message: bytes) -> None:
    """The shortest SMTP dialogue with CHUNKING and PIPELINING, by hand:
    wait for the greeting, EHLO, then MAIL, RCPTs, BDAT LAST with the data
    and QUIT in one write, and read every reply (3 round trips)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""

    def replies(count: int) -> None:
        nonlocal buf
        while True:
            finished = [line for line in buf.split(b"\r\n") if line[3:4] == b" "]
            if len(finished) >= count:
                buf = b""
                return
            block = sock.recv(65536)
            if not block:
                raise ConnectionError("closed")
            buf += block

    replies(1)
    sock.sendall(b"EHLO localhost\r\n")
    replies(1)
    sock.sendall(b"".join([f"MAIL FROM:<{sender}>\r\n".encode()]
                          + [f"RCPT TO:<{r}>\r\n".encode() for r in recipients]
                          + [b"BDAT %d LAST\r\n" % len(message), message, b"QUIT\r\n"]))
    replies(len(recipients) + 3)
    sock.close()


def bench_recipients(delay_ms: float, repeat: int) -> None:
    part, raw = one_message()
    cases = [("smtplib", False, False), ("smtpsend DATA", False, False),
             ("smtpsend BDAT", True, False), ("smtpsend BDAT atleastone", True, True),
             ("raw transcript", True, True)]
    results = {}
    for name, chunking, atleastone in cases:
        if EXTERNAL and name == "smtpsend DATA":
            continue
        with server_process(chunking) as (port, stop):
            proxy = DelayProxy(port, delay_ms / 1000)
            times, trips = [], []
            for _ in range(repeat):
                proxy.reset()
                t = time.perf_counter()
                if name == "smtplib":
                    with smtplib.SMTP("127.0.0.1", proxy.port, local_hostname="localhost") as smtp:
                        smtp.sendmail("bench@example.com", RECIPIENTS, raw)
                elif name == "raw transcript":
                    raw_transcript(proxy.port, "bench@example.com", RECIPIENTS, raw)
                else:
                    smtpsend.sendmessage(part, servers=["127.0.0.1"], ports=[proxy.port], usetls=False,
                                         atleastone=atleastone)
                times.append(time.perf_counter() - t)
                time.sleep(2 * delay_ms / 1000 + 0.02)   # let the QUIT reply drain through the proxy
                trips.append(proxy.round_trips)
            results[name] = (min(times), max(trips))
            assert stop() in (None, repeat)
    print(f"\n1. one message, 20 recipients, {delay_ms:g} ms each way (best of {repeat})")
    print(f"{'client':<28}{'wall time':>12}{'in RTTs':>9}{'round trips':>14}{'vs smtplib':>12}")
    base = results["smtplib"][0]
    rtt = 2 * delay_ms / 1000
    for name, (best, rt) in results.items():
        print(f"{name:<28}{best * 1000:>9.1f} ms{best / rtt:>9.2f}{rt:>14}{best / base:>11.2f}")
    print("targets: at most 0.25 of smtplib's time; BDAT with atleastone: 3 round trips, without: 4;"
          f"\n BDAT atleastone at most 3.3 RTT of wall time: {results['smtpsend BDAT atleastone'][0] / rtt:.2f}"
          f" (raw transcript {results['raw transcript'][0] / rtt:.2f})")
    print("(DATA: greeting, EHLO, MAIL+RCPT*20+DATA, data+.+QUIT; BDAT atleastone: greeting, EHLO, "
          "MAIL+RCPT*20+BDAT LAST+data+QUIT)")


def bench_throughput(count: int, rounds: int = 5) -> None:
    """Each client keeps one connection; rounds alternate between them so
    both see the same machine load; the best round of each is reported."""
    part, raw = one_message(1)
    per_round = max(1, count // rounds)
    with server_process() as (port, stop):
        lib = smtplib.SMTP("127.0.0.1", port, local_hostname="localhost")
        ours = smtpsend.connect(f"127.0.0.1:{port}", usetls=False)
        hand = RawConnection(port)
        senders = {
            "smtplib (bytes)": lambda: lib.sendmail("bench@example.com", RECIPIENTS[:1], raw),
            "raw transcript (1 round trip)": lambda: hand.transaction("bench@example.com", RECIPIENTS[:1], raw),
            "smtpsend (bytes)": lambda: ours.sendmessage(raw),
            "smtpsend (Part)": lambda: ours.sendmessage(part),
            "smtpsend (Part, atleastone)": lambda: ours.sendmessage(part, atleastone=True),
        }
        best = {name: 0.0 for name in senders}
        batch_name = "smtpsend sendmessages (Parts)"
        best[batch_name] = 0.0
        for _ in range(rounds):
            for name, send in senders.items():
                t = time.perf_counter()
                for _ in range(per_round):
                    send()
                best[name] = max(best[name], per_round / (time.perf_counter() - t))
            t = time.perf_counter()
            outcomes = ours.sendmessages([part] * per_round)
            best[batch_name] = max(best[batch_name], per_round / (time.perf_counter() - t))
            assert outcomes == [[]] * per_round
        lib.quit()
        ours.close()
        hand.close()
        assert stop() in (None, (len(senders) + 1) * per_round * rounds)
    print(f"\n2. {per_round * rounds} small messages per client over one connection each, no added delay")
    print(f"   ({rounds} interleaved rounds of {per_round}; best round)")
    print(f"{'client':<30}{'messages/s':>12}{'vs smtplib':>12}")
    base = best["smtplib (bytes)"]
    for name, rate in best.items():
        print(f"{name:<30}{rate:>12.0f}{rate / base:>11.2f}x")
    print("(smtpsend also parses the bytes, stamps Date/Message-ID and strips Bcc; smtplib sends them as given."
          "\n Round trips per message: smtplib 4; smtpsend 2 (MAIL+RCPT+BDAT n+data, then BDAT 0 LAST);"
          "\n with atleastone 1 (MAIL+RCPT+BDAT LAST+data); sendmessages pipelines whole transactions,"
          "\n 16 messages ahead of the replies.)"
          f"\ntarget: Client.sendmessage (Part) >= 6x smtplib: {best['smtpsend (Part)'] / base:.2f}x "
          f"(atleastone {best['smtpsend (Part, atleastone)'] / base:.2f}x; "
          f"the raw transcript {best['raw transcript (1 round trip)'] / base:.2f}x)")


def bench_one_call(count: int, rounds: int = 5) -> None:
    """One connection per message. Rounds alternate between the clients so
    that all see the same machine load; the best round of each is reported."""
    from email.message import EmailMessage
    part, raw = one_message(1)
    msg = EmailMessage()
    for name in ("From", "To", "Subject", "Date", "Message-ID"):
        msg[name] = part.getheader(name)[0]
    msg.set_content("A short notification.\n")
    per_round = max(1, count // rounds)
    with server_process() as (port, stop):
        def lib() -> None:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost") as smtp:
                smtp.send_message(msg)
        senders = {
            "smtplib (send_message)": lib,
            "smtpsend.sendmessage": lambda: smtpsend.sendmessage(part, servers=["127.0.0.1"], ports=[port],
                                                               usetls=False),
            "smtpsend.sendmessage atleastone": lambda: smtpsend.sendmessage(
                part, servers=["127.0.0.1"], ports=[port], usetls=False, atleastone=True),
            "raw transcript": lambda: raw_transcript(port, "bench@example.com", RECIPIENTS[:1], raw),
        }
        best = {name: 0.0 for name in senders}
        for _ in range(rounds):
            for name, send in senders.items():
                t = time.perf_counter()
                for _ in range(per_round):
                    send()
                best[name] = max(best[name], per_round / (time.perf_counter() - t))
        assert stop() in (None, len(senders) * per_round * rounds)
    print(f"\n3. one call per message: {per_round * rounds} messages per client, each its own connection")
    print(f"   ({rounds} interleaved rounds of {per_round}; best round)")
    print(f"{'client':<34}{'messages/s':>12}{'vs smtplib':>12}")
    base = best["smtplib (send_message)"]
    for name, rate in best.items():
        print(f"{name:<34}{rate:>12.0f}{rate / base:>11.2f}x")
    print("(round trips per message: smtplib 7 (greeting, EHLO, MAIL, RCPT, DATA, data, QUIT);"
          "\n smtpsend 4 (greeting, EHLO, MAIL+RCPT+BDAT n+data, BDAT 0 LAST+QUIT), 3 with atleastone)"
          f"\ntarget: smtpsend.sendmessage >= 3x smtplib: {best['smtpsend.sendmessage'] / base:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--delay-ms", type=float, default=5.0)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="+", default=["recipients", "connection", "onecall"],
                    choices=["recipients", "connection", "onecall"], help="the benchmarks to run")
    ap.add_argument("--rig-port", type=int, default=None,
                    help="measure against the test rig's Postfix (tests/rig/rig.py) listening on "
                         "127.0.0.1:PORT, e.g. 2526, instead of the capture server")
    args = ap.parse_args()
    global EXTERNAL, RECIPIENTS
    if args.rig_port:
        # the rig has recipient_delimiter "+": alice+N@example.test all reach alice
        EXTERNAL = args.rig_port
        RECIPIENTS = [f"alice+{i}@example.test" for i in range(20)]
    print(f"Python {sys.version.split()[0]}; loopback only; server: "
          f"{'Postfix on port %d' % EXTERNAL if EXTERNAL else 'capture server'}")
    if "recipients" in args.only:
        bench_recipients(args.delay_ms, args.repeat)
    if "connection" in args.only:
        bench_throughput(args.messages)
    if "onecall" in args.only:
        bench_one_call(args.messages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
