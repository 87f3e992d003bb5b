"""``python -m smtpsend demo``: send a real message end to end, with no
outside server.

It starts the capture server on a free loopback port, composes a message
(text, HTML, a non-ASCII attachment name, a Bcc), sends it with
sendmessage, and prints the SMTP transcript and what the server received.
Nothing leaves this machine.
"""

from __future__ import annotations

import sys
from typing import IO, Optional

import mimecompose

from ._sync import sendmessage
from .testing import CaptureServer, printable


def demo(out: Optional[IO[str]] = None) -> int:
    """Run the demonstration, printing to ``out`` (stdout); returns 0."""
    out = out or sys.stdout
    part = mimecompose.compose(
        "Hello team,\n\nthe nightly build passed. The report is attached.\n",
        "<p>Hello team,</p><p>the nightly build <b>passed</b>. The report is attached.</p>",
        attachments=[("Bericht März.csv", "test;result\nparser;ok\nsender;ok\n".encode(), "text/csv")],
        header=[("From", "Build Bot <build@example.com>"), ("To", "Team <team@example.com>"),
                ("Bcc", "archive@example.com"), ("Subject", "Nightly build: grün ✓")],
    )
    with CaptureServer() as server:
        print(f"capture server listening on {server.host} port {server.port} (loopback only)\n", file=out)
        print("--- SMTP transcript", file=out)
        rejected = sendmessage(part, servers=[server.host], ports=[server.port],
                               debug=lambda line: print(line, file=out))
        print(f"\nsendmessage returned {rejected!r} (no recipient refused)\n", file=out)
        [received] = server.messages
        print("--- what the server received", file=out)
        # what a server received is printed escaped: control characters cannot reach the terminal
        print(printable(f"MAIL FROM: {received.envelope.originator}"), file=out)
        print(printable(f"RCPT TO:   {', '.join(received.envelope.recipients)}"), file=out)
        print(printable(received.data.decode("utf-8", "replace").replace("\r\n", "\n")), file=out)
        parsed = received.part
        print("--- read back with mimecompose", file=out)
        print(f"Subject: {parsed.getheader('Subject')[0]}", file=out)
        print(f"Bcc in the transmitted header: {parsed.getheader('Bcc') or 'none'}", file=out)
    return 0
