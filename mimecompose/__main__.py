"""``python -m mimecompose``: compose a demonstration message and print it,
or, given a file, parse it and print its part tree."""

from __future__ import annotations

import argparse
import sys

from . import Part, compose, formatdate, initialize


def _tree(part: Part, depth: int = 0) -> None:
    props = part.getproperty()
    line = "  " * depth + props["content"]
    if "size" in props:
        line += f"  {props['encoding']}, {props['size']} octets"
    names = part.getheader("Content-Disposition")
    if names:
        line += f"  [{names[0]}]"
    print(line)
    for defect in part.defects:
        print("  " * depth + f"  ! {defect.kind}: {defect.detail}")
    for child in props.get("parts", ()):
        _tree(child, depth + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mimecompose", description=__doc__)
    parser.add_argument("file", nargs="?", help="a message to parse (default: build a demo message)")
    args = parser.parse_args(argv)
    if args.file:
        with initialize(file=args.file) as part:
            for name in ("From", "To", "Subject", "Date"):
                for value in part.getheader(name):
                    print(f"{name}: {value}")
            _tree(part)
        return 0
    part = compose(
        "Grüße aus München!\n\nThe report is attached.\n",
        "<p>Grüße aus <b>München</b>!</p><p>The report is attached.</p>",
        attachments=[("Bericht März.csv", "Monat;Umsatz\nMärz;1234\n".encode(), "text/csv")],
        header=[("From", "Jörg Müller <joerg@example.com>"), ("To", "Team <team@example.com>"),
                ("Subject", "Monatsbericht für März"), ("Date", formatdate())],
    )
    sys.stdout.buffer.write(part.buildmessage())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
