"""A real Redis and a real Celery worker, as child processes, for
tests/test_celery.py and tests/soak/celery_soak.py.

Both are waited for by what they say, never by a guess: redis-server's
"Ready to accept connections" line, and the worker's connection to a
listening socket from the worker_ready signal of tests/celery_app.py.
Both are stopped at the end (terminated, then killed if they linger, each
wait bounded), and only the processes started here are touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, Optional

TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lines(threading.Thread):
    """Reads a child's output to the end (so its pipe never fills), and
    sets ``seen`` when a line holds ``marker`` (or the output ends)."""

    def __init__(self, stream: IO[str], marker: str) -> None:
        super().__init__(daemon=True)
        self.stream, self.marker = stream, marker
        self.lines: list[str] = []
        self.seen = threading.Event()

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line)
            if self.marker in line:
                self.seen.set()
        self.seen.set()


def _stop(process: "subprocess.Popen[Any]", group: bool, grace: float) -> None:
    """Terminate ``process`` (its process group when it leads one), then kill it."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait(10)


def redis_binary() -> Optional[str]:
    """The redis-server program, or None."""
    return shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")


@contextlib.contextmanager
def redis(port: int, directory: Path) -> Iterator[str]:
    """A redis-server on 127.0.0.1:``port`` that keeps nothing on disk;
    yields its URL (database 0). Raises RuntimeError when it does not start."""
    binary = redis_binary()
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(directory), "--loglevel", "notice"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    assert process.stdout is not None
    output = Lines(process.stdout, "Ready to accept connections")
    output.start()
    try:
        output.seen.wait(20)
        if process.poll() is not None or not any(output.marker in line for line in output.lines):
            raise RuntimeError("redis-server did not start:\n" + "".join(output.lines))
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process, group=False, grace=15)


@contextlib.contextmanager
def worker(broker: str, transports: Mapping[str, Any], log: Path, *, concurrency: int = 2,
           retry: Optional[Mapping[str, Any]] = None, ready_within: float = 60) -> Iterator["subprocess.Popen[Any]"]:
    """``celery -A celery_app worker --pool prefork --concurrency N`` with
    tests/ on PYTHONPATH, its output in ``log``; yields the process once
    the worker is ready. Stopped with a warm shutdown (the tasks running
    end first), killed after 30 s. Raises RuntimeError when it is not
    ready within ``ready_within`` seconds."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(ready_within)
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join(p for p in [str(TESTS), str(TESTS.parent),
                                                      os.environ.get("PYTHONPATH", "")] if p),
               SMTPSEND_TEST_BROKER=broker,
               SMTPSEND_TEST_TRANSPORTS=json.dumps(dict(transports)),
               SMTPSEND_TEST_RETRY=json.dumps(dict(retry) if retry is not None else None),
               SMTPSEND_TEST_READY=str(listener.getsockname()[1]))
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool",
                                    "prefork", "--concurrency", str(concurrency), "--loglevel", "INFO",
                                    "--without-gossip", "--without-mingle", "--without-heartbeat",
                                    "--hostname", f"smtpsend-test-{os.getpid()}@localhost"],
                                   cwd=TESTS, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            connection, _ = listener.accept()
            connection.close()
        except socket.timeout:
            raise RuntimeError(f"the Celery worker was not ready in {ready_within} s:\n"
                               + log.read_text()) from None
        finally:
            listener.close()
        yield process
    finally:
        _stop(process, group=True, grace=30)
