"""Soak test of smtpsend.celery (a script, not a CI test; docs/scaling.md).

    flock /tmp/rig.lock python3 tests/soak/celery_soak.py [--count 20000] [--workers 4] [--drop 0.01]

N messages go through a real Celery worker (prefork, ``--workers``
processes) and a real Redis broker to the rig's Postfix (tests/rig/rig.py:
the state directory in MAILRIG_STATE, or a rig started and removed here,
as root), through a proxy on 127.0.0.1 that cuts ``--drop`` of the
connections at a random point (any byte of either direction: before the
greeting, in the dialogue, in the message data, between the data and its
reply). Every message is for bob@example.test; when the tasks are done and
Postfix's queue is empty, bob's Maildir is read and the script checks:

- every message whose task succeeded is in the Maildir exactly once;
- no message is in the Maildir twice (nothing was sent again);
- a message whose task failed is absent, except DeliveryUncertain ones,
  which may or may not be there;
- so: Maildir count = successes + (at most the DeliveryUncertain ones).

``--capture`` sends to a CaptureServer in this process instead of Postfix
(to try the script without the rig). Prints the figures and exits 0 when
every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import select
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path[:0] = [str(TESTS), str(TESTS / "rig")]

import celery_app_harness as harness  # noqa: E402

RECIPIENT = "bob@example.test"
PLAIN_PORT = 2526       # the rig's SMTP port without TLS (tests/rig/rig.py PORTS["plain"])


class DroppingProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; cuts each connection with
    probability ``drop`` once a random number of octets (uniform in
    0..``span``, counted over both directions) has passed -- both sockets
    closed at once. ``cuts`` counts where each cut fell."""

    def __init__(self, target: int, drop: float, span: int, seed: int) -> None:
        self.target, self.drop, self.span = target, drop, span
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.connections = 0
        self.cuts: collections.Counter[str] = collections.Counter()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port: int = self.listener.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "DroppingProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self.listener.close()
        self.thread.join(10)

    def _accept(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                cut = self.random.randint(0, self.span) if self.random.random() < self.drop else None
            threading.Thread(target=self._relay, args=(client, cut), daemon=True).start()

    def _relay(self, client: socket.socket, cut: Optional[int]) -> None:
        try:
            server = socket.create_connection(("127.0.0.1", self.target), timeout=10)
        except OSError:
            client.close()
            return
        passed = 0
        watch = Watcher()
        try:
            while True:
                ready, _, _ = select.select([client, server], [], [], 60)
                if not ready:
                    return
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    sink = server if source is client else client
                    if cut is not None and passed + len(data) >= cut:
                        data = data[:cut - passed]
                    sink.sendall(data)
                    passed += len(data)
                    if source is client:
                        watch.client(data)
                    else:
                        watch.server(data)
                    if cut is not None and passed >= cut:
                        with self.lock:
                            self.cuts[watch.place()] += 1
                        return
        except OSError:
            return
        finally:
            client.close()
            server.close()


class Watcher:
    """Follows a client's SMTP stream well enough to say where a cut fell:
    at which command, in the message data (DATA or BDAT), or after the
    whole message and before the server's reply to it."""

    def __init__(self) -> None:
        self.buffer = b""
        self.mode = "command"          # or "data" (until CRLF.CRLF) or "chunk" (BDAT octets)
        self.remaining = 0
        self.last_chunk = False
        self.phase = "greeting"
        self.awaiting_reply = False    # the whole message is out, its reply not yet in

    def client(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            if self.mode == "chunk":
                taken = min(self.remaining, len(self.buffer))
                self.buffer, self.remaining = self.buffer[taken:], self.remaining - taken
                if self.remaining:
                    return
                self.mode = "command"
                if self.last_chunk:
                    self.awaiting_reply = True
                continue
            if self.mode == "data":
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    self.buffer = self.buffer[-4:]
                    return
                self.buffer, self.mode, self.awaiting_reply = self.buffer[end + 5:], "command", True
                continue
            line, crlf, rest = self.buffer.partition(b"\r\n")
            if not crlf:
                return
            self.buffer = rest
            words = line.split()
            verb = words[0].upper().decode("ascii", "replace") if words else ""
            self.phase = f"at {verb}"
            if verb == "DATA":
                self.mode = "data"
            elif verb == "BDAT" and len(words) >= 2 and words[1].isdigit():
                self.mode, self.remaining = "chunk", int(words[1])
                self.last_chunk = len(words) > 2 and words[2].upper() == b"LAST"

    def server(self, data: bytes) -> None:
        if self.awaiting_reply and data[:1] in (b"2", b"4", b"5") and b"\r\n" in data:
            self.awaiting_reply = False    # the reply to the message came, whole

    def place(self) -> str:
        if self.awaiting_reply:
            return "after the whole message, before its reply"
        if self.mode in ("data", "chunk"):
            return "in the message data"
        return self.phase


def message_ids(maildir: Path) -> collections.Counter[str]:
    """Message-IDs of the messages in a Maildir (new and cur)."""
    found: collections.Counter[str] = collections.Counter()
    for sub in ("new", "cur"):
        folder = maildir / sub
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            with open(entry, "rb") as fh:
                for line in fh:
                    if line in (b"\n", b"\r\n"):
                        break
                    if line.lower().startswith(b"message-id:"):
                        found[line.split(b":", 1)[1].strip().decode("ascii", "replace")] += 1
                        break
    return found


def run(args: argparse.Namespace) -> int:
    import mimecompose
    import smtpsend.celery as sc

    work = Path(tempfile.mkdtemp(prefix="celery-soak-"))
    redis_port = harness.free_port()
    os.environ["SMTPSEND_TEST_BROKER"] = f"redis://127.0.0.1:{redis_port}/0"
    import celery_app
    from celery.result import ResultSet  # type: ignore[import-untyped]

    rig: Any = None
    state: Optional[str] = None
    capture: Any = None
    captured: collections.Counter[str] = collections.Counter()
    if args.capture:
        from smtpsend.testing import CaptureServer

        def keep(message: Any) -> None:
            [mid] = message.part.getheader("Message-ID")
            captured[str(mid)] += 1
        capture = CaptureServer(on_message=keep, keep=10).start()
        target = capture.port
    else:
        import rig as rigmod
        rig = rigmod
        state = os.environ.get("MAILRIG_STATE") or None
        started = state is None
        if started:
            state = rigmod.start()
        target = PLAIN_PORT
    maildir = Path(state or "") / "mail" / "example.test" / "bob" / "Maildir"
    before = message_ids(maildir) if not args.capture else collections.Counter()

    transports = {"default": {"servers": ["127.0.0.1"], "ports": [0], "usetls": False, "timeout": 10,
                              "maxsecs": 10, "max_messages": args.max_messages, "max_connections": 2}}
    policy = {"max_retries": 10, "backoff": 0.2, "backoff_max": 2.0}
    figures: dict[str, Any] = {}
    try:
        with DroppingProxy(target, args.drop, args.span, args.seed) as proxy, \
                harness.redis(redis_port, work) as url:
            transports["default"]["ports"] = [proxy.port]
            with harness.worker(url, transports, work / "worker.log", concurrency=args.workers, retry=policy):
                started_at = time.monotonic()
                payloads = []
                results = []
                for n in range(args.count):
                    part = mimecompose.initialize("text/plain", string=f"soak message {n}\n" * 8, header=[
                        ("From", "alice@example.test"), ("To", RECIPIENT), ("Subject", f"soak {n}")])
                    payload = sc.encode(part)
                    payloads.append(payload)
                    results.append(sc.send_task.apply_async(args=[payload]))
                enqueued = time.monotonic() - started_at
                ResultSet(results).join_native(timeout=args.timeout, propagate=False)
                elapsed = time.monotonic() - started_at
                outcomes = [r.get(timeout=10, propagate=False) for r in results]
        if rig is not None and state is not None:
            rig.queue_empty(state, 120)
        arrived = captured if args.capture else message_ids(maildir) - before

        ok_ids = [p["message_id"] for p, o in zip(payloads, outcomes) if o == []]
        failed = [(p["message_id"], o) for p, o in zip(payloads, outcomes) if o != []]
        uncertain = [mid for mid, o in failed if isinstance(o, sc.DeliveryFailed) and o.kind == "uncertain"]
        unsure = set(uncertain)
        others = [(mid, o) for mid, o in failed if mid not in unsure]
        uncertain_arrived = sum(1 for mid in uncertain if arrived.get(mid))
        figures = {
            "messages": args.count, "worker processes": args.workers, "drop": args.drop,
            "max_messages": args.max_messages,
            "connections through the proxy": proxy.connections, "connections cut": sum(proxy.cuts.values()),
            "cuts by place": dict(proxy.cuts),
            "task successes": len(ok_ids), "DeliveryUncertain": len(uncertain),
            "DeliveryUncertain that did arrive": uncertain_arrived,
            "other failures": len(others), "in the Maildir": sum(arrived.values()),
            "distinct in the Maildir": len(arrived), "duplicates": sum(c - 1 for c in arrived.values() if c > 1),
            "successes missing from the Maildir": sum(1 for mid in ok_ids if not arrived.get(mid)),
            "failures (not uncertain) in the Maildir": sum(1 for mid, _ in others if arrived.get(mid)),
            "enqueue seconds": round(enqueued, 1), "total seconds": round(elapsed, 1),
            "messages per second": round(args.count / elapsed, 1) if elapsed else None,
        }
        for mid, error in others[:5]:
            print(f"failure {mid}: {error}")
    finally:
        if capture is not None:
            capture.stop()
        if rig is not None and state is not None and not os.environ.get("MAILRIG_STATE"):
            rig.remove(state)
        celery_app.app.pool.force_close_all()
    for key, value in figures.items():
        print(f"{key}: {value}")
    holds = (figures["duplicates"] == 0 and figures["successes missing from the Maildir"] == 0
             and figures["failures (not uncertain) in the Maildir"] == 0
             and figures["task successes"] <= figures["in the Maildir"]
             <= figures["task successes"] + figures["DeliveryUncertain"])
    print("checks:", "hold" if holds else "FAIL")
    if holds:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"the worker's log: {work / 'worker.log'}")
    return 0 if holds else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--drop", type=float, default=0.01, help="the share of connections cut")
    parser.add_argument("--span", type=int, default=1200,
                        help="a cut falls after 0..SPAN octets (about one message's dialogue and data)")
    parser.add_argument("--max-messages", type=int, default=1,
                        help="messages per connection (the Transport's max_messages)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--capture", action="store_true", help="a CaptureServer instead of the rig's Postfix")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
