"""Speed of mimecompose against the email package, side by side in one run.

1. build + serialise: a text + HTML alternative with three 100 KB attachments
   (mimecompose.compose + buildmessage vs EmailMessage + as_bytes).
2. parse: every message of a corpus (this repository's tests/corpus, plus the
   email package's own test messages when the interpreter ships them),
   mimecompose.initialize(string=...) vs BytesParser(policy=default).
3. parse + read: the same, then the Subject and every leaf's decoded body.

    python tests/benchmarks/bench_speed.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import email
import os
import pathlib
import sys
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import mimecompose  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def rate(fn, seconds: float) -> float:
    """Seconds per call of ``fn``, best of three timed batches."""
    fn()
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t
        if elapsed > seconds / 6:
            break
        n *= 2
    best = elapsed / n
    for _ in range(2):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


TEXT = ("Hello team,\n\nplease find the quarterly figures attached. Grüße aus München!\n" * 20)
HTML = ("<html><body><p>Hello team,</p><p>please find the <b>quarterly figures</b> attached. "
        "Grüße aus München!</p></body></html>\n" * 20)
ATTACHMENTS = [(f"file{i}.bin", os.urandom(100_000)) for i in range(3)]
HEADERS = [("From", "Jörg Müller <joerg@example.com>"), ("To", "Team <team@example.com>"),
           ("Subject", "Quartalszahlen für März"), ("Date", "Mon, 23 Nov 2026 04:10:05 +0000")]


def build_ours() -> bytes:
    part = mimecompose.compose(TEXT, HTML, attachments=ATTACHMENTS, header=HEADERS)
    return part.buildmessage()


def build_stdlib() -> bytes:
    msg = EmailMessage()
    for name, value in HEADERS:
        msg[name] = value
    msg.set_content(TEXT)
    msg.add_alternative(HTML, subtype="html")
    for name, data in ATTACHMENTS:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes(policy=policy.SMTP)


def corpus() -> list[bytes]:
    paths = sorted((HERE.parent / "corpus").glob("*.eml"))
    stdlib_data = pathlib.Path(email.__file__).parent.parent / "test" / "test_email" / "data"
    paths += sorted(stdlib_data.glob("msg_*.txt"))
    return [p.read_bytes() for p in paths]


def leaves(part):
    props = part.getproperty()
    if "parts" in props:
        for child in props["parts"]:
            yield from leaves(child)
    else:
        yield part


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="time budget per measurement")
    args = ap.parse_args()
    print(f"Python {sys.version.split()[0]}; best of 3 batches; lower is better\n")
    print(f"{'benchmark':<44}{'mimecompose':>14}{'email':>14}{'speed-up':>10}")

    ours, theirs = rate(build_ours, args.seconds), rate(build_stdlib, args.seconds)
    print(f"{'build+serialise alt + 3x100 KB attachments':<44}{ours * 1e3:>11.3f} ms{theirs * 1e3:>11.3f} ms"
          f"{theirs / ours:>9.1f}x")
    size_ours, size_theirs = len(build_ours()), len(build_stdlib())
    print(f"{'  (message size)':<44}{size_ours:>12} B{size_theirs:>12} B")

    messages = corpus()
    our_fail = their_fail = 0
    for raw in messages:
        try:
            mimecompose.initialize(string=raw)
        except Exception:
            our_fail += 1
        try:
            BytesParser(policy=policy.default).parsebytes(raw)
        except Exception:
            their_fail += 1
    parser = BytesParser(policy=policy.default)

    def parse_ours():
        for raw in messages:
            mimecompose.initialize(string=raw)

    def parse_theirs():
        for raw in messages:
            parser.parsebytes(raw)

    def read_ours():
        for raw in messages:
            part = mimecompose.initialize(string=raw)
            part.getheader("Subject")
            for leaf in leaves(part):
                leaf.getbody()

    def read_theirs():
        for raw in messages:
            msg = parser.parsebytes(raw)
            msg["Subject"]
            for leaf in msg.walk():
                if not leaf.is_multipart():
                    leaf.get_payload(decode=True)

    n = len(messages)
    for label, a, b in ((f"parse {n} messages", parse_ours, parse_theirs),
                        (f"parse {n} + Subject + every decoded body", read_ours, read_theirs)):
        ours, theirs = rate(a, args.seconds), rate(b, args.seconds)
        print(f"{label:<44}{ours * 1e3:>11.3f} ms{theirs * 1e3:>11.3f} ms{theirs / ours:>9.1f}x")
    total = sum(map(len, messages))
    print(f"\ncorpus: {n} messages, {total / 1024:.0f} KiB; rejected (raised): "
          f"mimecompose {our_fail}, email {their_fail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
