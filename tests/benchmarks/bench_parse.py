"""Parsing real-world mail: mimecompose against the email package, in one run.

The messages are the shared corpus next to the repository
(../shared/corpus/messages: about 4,500 real received messages and other
libraries' test mail). Every message is timed on its own, best of three,
and the per-message times are summed (the libraries take turns message
by message, so that a change of the machine's load hits all alike):

1. parse alone: mimecompose.initialize(string=raw) against
   BytesParser(policy=email.policy.default).parsebytes(raw);
2. parse and read everything: then every header field of every part
   (decoded) and every leaf's body (transfer encoding undone):
   ``part.fields()`` and ``getbody()`` against ``items()`` (as str) and
   ``get_payload(decode=True)``.

The email package with policy.compat32 (which does not parse header values)
is printed for reference.

    python tests/benchmarks/bench_parse.py [--limit N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pathlib
import pstats
import sys
import time
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any, Callable, Iterator

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import mimecompose  # noqa: E402

CORPUS = ROOT / ".." / "shared" / "corpus" / "messages"


def walk(part: mimecompose.Part) -> Iterator[mimecompose.Part]:
    yield part
    for child in part.getproperty().get("parts", ()):
        yield from walk(child)


def read_ours(raw: bytes) -> None:
    for part in walk(mimecompose.initialize(string=raw)):
        part.fields()
        if "parts" not in part.getproperty():
            part.getbody()


FAILED: set[int] = set()   # messages a header of which the email package raised on


def email_reader(parser: Any) -> Callable[[bytes], None]:
    def read(raw: bytes) -> None:
        for part in parser.parsebytes(raw).walk():
            # what part.items() does, one field at a time: with policy.default
            # a malformed field can make it raise (a Message-ID of "<@@x>",
            # for one), and the fields after it are still read
            for name, value in part.raw_items():
                try:
                    str(part.policy.header_fetch_parse(name, value))
                except Exception:
                    FAILED.add(id(raw))
            if not part.is_multipart():
                part.get_payload(decode=True)
    return read


def best_of_3(fns: list[Callable[[bytes], Any]], messages: list[bytes]) -> list[float]:
    """For each of ``fns``, the sum over the messages of each one's best
    time of three runs in a row. The functions take turns message by
    message, so that a change of the machine's load hits all of them alike."""
    totals = [0.0] * len(fns)
    clock = time.perf_counter
    for raw in messages:
        for i, fn in enumerate(fns):
            best = float("inf")
            for _ in range(3):
                t = clock()
                fn(raw)
                best = min(best, clock() - t)
            totals[i] += best
    return totals


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="only the first N messages")
    ap.add_argument("--profile", action="store_true", help="profile our parse alone and print the top entries")
    args = ap.parse_args()
    if not CORPUS.is_dir():
        print(f"the shared corpus is not there ({CORPUS}); nothing to measure")
        return 0
    messages = [p.read_bytes() for p in sorted(CORPUS.rglob("*")) if p.is_file()]
    if args.limit:
        messages = messages[:args.limit]
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for raw in messages:
            mimecompose.initialize(string=raw)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)
        return 0
    default = BytesParser(policy=policy.default)
    compat = BytesParser(policy=policy.compat32, _class=Message)
    parse_ours: Callable[[bytes], Any] = lambda raw: mimecompose.initialize(string=raw)
    total = sum(map(len, messages))
    print(f"Python {sys.version.split()[0]}; {len(messages)} messages, {total / 2**20:.1f} MiB; "
          "each message best of 3, summed")
    print(f"{'benchmark':<34}{'mimecompose':>13}{'email':>11}{'ratio':>8}{'email compat32':>17}{'ratio':>8}")
    Reader = Callable[[bytes], Any]
    rows: list[tuple[str, Reader, Reader, Reader]] = [
            ("parse alone", parse_ours, default.parsebytes, compat.parsebytes),
            ("parse + every header and body", read_ours, email_reader(default), email_reader(compat))]
    ratios = []
    for label, ours_fn, theirs_fn, compat_fn in rows:
        ours, theirs, old = best_of_3([ours_fn, theirs_fn, compat_fn], messages)
        ratios.append(theirs / ours)
        print(f"{label:<34}{ours:>11.3f} s{theirs:>9.3f} s{theirs / ours:>7.1f}x{old:>15.3f} s{old / ours:>7.1f}x")
    print(f"(the email package raised reading a header of {len(FAILED)} messages; the fields after it were read)")
    print(f"targets: parse alone >= 10x email (policy.default): {ratios[0]:.1f}x; "
          f"parse + read >= 6x: {ratios[1]:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
