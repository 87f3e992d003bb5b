"""The long fuzz: run every target with random and mutated inputs for a
while and report how many inputs each one tried; then check that every
target's cost grows linearly with hostile, repetitive input.

    python tests/fuzz/fuzz.py [--seconds 180] [--target NAME] [--no-linearity]

The linearity check builds, for each target and each hostile piece (runs of
blanks, open parentheses, colons, encoded words, bare CR, boundaries, a slice
of the target's seed...), inputs of n and 4n repetitions inserted into a
seed, grows n until one call costs at least 20 ms of CPU, and reports the
ratio of the two costs (best of three). Linear work gives about 4; quadratic
gives 16. A ratio above 8, confirmed one size up (a shared machine is noisy),
fails the run; a target too cheap to measure at 8 MiB passes. This is a script, not a test: the
suite never asserts timings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from targets import TARGETS  # noqa: E402
from test_fuzz import SEEDS, inputs  # noqa: E402

# Pieces that made parsers of this kind super-linear somewhere, ours or others'.
HOSTILE = [b" ", b"\t ", b"(", b"((", b")", b":", b",", b"<", b"\"", b"\\", b"=?utf-8?q?a?= ",
           b"=20", b"= ", b"\r", b"\n", b"\r\n ", b"--b\r\n", b"a*1*=x; ", b"%", b"@", b"[", b".",
           b"250-x\r\n", b"AUTH A B C\n", b"+OK\r\n"]
# Pieces that differ each time (a list that grows with distinct names: "p not in list").
DISTINCT = [lambda i: b"AUTH M%d\n" % i, lambda i: b"a%d=x; " % i, lambda i: b"n*%d=x; " % i,
            lambda i: b"<a%d@b>, " % i, lambda i: b"=?utf-8?q?%d?=" % i]
LIMIT_OCTETS = 8 << 20      # never build inputs larger than this
FLOOR_SECONDS = 0.02         # grow n until one call costs at least this much CPU
WORST_RATIO = 8.0            # 4n against n: linear ~4, quadratic ~16


def _cost(target, data: bytes) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        try:
            target(data)
        except Exception as exc:  # the fuzz phase reports unexpected exceptions; here only cost counts
            del exc
        best = min(best, time.process_time() - start)
    return best


def linearity(name: str) -> list[tuple[bytes, float, int]]:
    """(piece, ratio, octets) for every hostile piece, worst first."""
    target = TARGETS[name]
    seed = SEEDS[name][0]
    cut = len(seed) // 2
    results = []
    pieces = [(p, lambda k, p=p: p * k) for p in HOSTILE + [seed[cut:cut + 8] or b"x"]]
    pieces += [(make(0) + b"...", lambda k, make=make: b"".join(make(i) for i in range(k))) for make in DISTINCT]
    for label, repeat in pieces:
        n = 256
        while True:
            small = seed[:cut] + repeat(n) + seed[cut:]
            if _cost(target, small) >= FLOOR_SECONDS or len(small) * 4 > LIMIT_OCTETS:
                break
            n *= 2
        base = _cost(target, small)
        if base < FLOOR_SECONDS:
            # too cheap to measure even at the size limit: nothing grows here
            results.append((label, 1.0, len(small)))
            continue
        big = seed[:cut] + repeat(4 * n) + seed[cut:]
        ratio = _cost(target, big) / base
        if ratio > WORST_RATIO and len(big) * 4 <= LIMIT_OCTETS:
            # a shared machine is noisy: confirm one size up before calling it super-linear
            bigger = seed[:cut] + repeat(16 * n) + seed[cut:]
            ratio = min(ratio, _cost(target, bigger) / _cost(target, big))
        results.append((label, ratio, len(big)))
    return sorted(results, key=lambda r: -r[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=180.0, help="total time budget, shared by the targets")
    ap.add_argument("--target", choices=sorted(TARGETS))
    ap.add_argument("--no-linearity", action="store_true", help="skip the linearity check")
    args = ap.parse_args()
    names = [args.target] if args.target else sorted(TARGETS)
    budget = args.seconds / len(names)
    total = 0
    for name in names:
        count = [0]
        target = TARGETS[name]
        deadline = time.monotonic() + budget

        @settings(max_examples=10**9, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(inputs(name))
        def run(data):
            if time.monotonic() > deadline:
                raise _TimeUp
            count[0] += 1
            target(data)

        try:
            run()
        except _TimeUp:
            pass
        except Exception:
            print(f"{name}: FAILED after {count[0]} inputs", flush=True)
            raise
        print(f"{name:<16} {count[0]:>9} inputs in {budget:.0f} s, no unexpected exception", flush=True)
        total += count[0]
    print(f"total            {total:>9} inputs")
    if args.no_linearity:
        return 0
    failed = 0
    print("\nlinearity (cost of 4n / cost of n; linear ~4, quadratic ~16):")
    for name in names:
        results = linearity(name)
        piece, ratio, octets = results[0]
        verdict = "ok" if ratio <= WORST_RATIO else "SUPER-LINEAR"
        failed += ratio > WORST_RATIO
        print(f"{name:<16} worst {ratio:5.1f} with {piece!r:<22} at {octets:>9} octets  {verdict}", flush=True)
    return 1 if failed else 0


class _TimeUp(Exception):
    pass


if __name__ == "__main__":
    raise SystemExit(main())
