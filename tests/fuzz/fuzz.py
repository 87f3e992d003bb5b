"""The long fuzz: run every target with random and mutated inputs for a
while and report how many inputs each one tried.

    python tests/fuzz/fuzz.py [--seconds 180] [--target NAME]
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
from test_fuzz import inputs  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=180.0, help="total time budget, shared by the targets")
    ap.add_argument("--target", choices=sorted(TARGETS))
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
    return 0


class _TimeUp(Exception):
    pass


if __name__ == "__main__":
    raise SystemExit(main())
