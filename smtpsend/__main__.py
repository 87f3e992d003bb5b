"""``python -m smtpsend``: the command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smtpsend")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="send a message end to end through a throwaway loopback server")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import demo
        return demo()
    return 2


if __name__ == "__main__":
    sys.exit(main())
