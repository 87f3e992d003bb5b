"""``smtpsend serve``: a CaptureServer (smtpsend.testing) on 127.0.0.1
that prints or stores each message it receives and relays nothing, until
interrupted; its parser (serve_parser).
"""

from __future__ import annotations

import argparse
import mailbox
import ssl
import sys
import time
from typing import IO, Any, Optional

from ._cliconfig import one_line
from ._cliexit import EX_OK, EX_UNAVAILABLE, EX_USAGE, CLIError, clean, flag_type, parse_arguments

PORT = flag_type(lambda t: int(t) if t.isdigit() and t.isascii() and int(t) < 65536 else None,
                 "must be a port number from 0 to 65535")


def serve(argv: list[str], stdout: IO[str], stderr: Optional[IO[str]] = None) -> int:
    """``smtpsend serve``: a CaptureServer on 127.0.0.1 until interrupted.
    ``--tls-implicit`` is the deprecated spelling of ``--tlsimport`` (a
    warning on ``stderr``)."""
    from .testing import CaptureServer
    args = parse_arguments(serve_parser(), argv)
    if args.tls_implicit:
        (stderr or sys.stderr).write("smtpsend serve: --tls-implicit is deprecated, use --tlsimport\n")
        args.tlsimport = True
    users: dict[str, str] = {}
    for item in args.user:
        name, sep, password = item.partition(":")
        if not sep or not name or not one_line(item):
            raise CLIError(f"--user must be NAME:PASSWORD, not {clean(name)!r}:...", EX_USAGE)
        users[name] = password
    context = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(args.tls_cert, args.tls_key, password=lambda: b"")
        except (OSError, ValueError) as exc:
            raise CLIError(f"cannot load --tls-cert/--tls-key: {getattr(exc, 'strerror', None) or exc} "
                           "(a PEM certificate chain and an unencrypted PEM key)", EX_USAGE) from None
    elif args.tls_key or args.tlsimport:
        raise CLIError("--tls-key and --tlsimport need --tls-cert", EX_USAGE)
    store: Optional[mailbox.Mailbox] = None
    try:
        if args.maildir:
            store = mailbox.Maildir(args.maildir, create=True)
        elif args.mbox:
            store = mailbox.mbox(args.mbox, create=True)
    except OSError as exc:
        raise CLIError(f"cannot open {args.maildir or args.mbox}: {exc.strerror}", EX_USAGE) from None

    def received(captured: Any) -> None:
        env = captured.envelope
        who = f", authenticated as {captured.authenticated_as}" if captured.authenticated_as else ""
        stdout.write(clean(f"--- message from <{env.originator}> to {', '.join(f'<{r}>' for r in env.recipients)}"
                           f" ({len(captured.data)} octets{who})") + "\n")
        if not args.quiet:
            stdout.write(clean(captured.data.decode("utf-8", "replace").replace("\r\n", "\n"), lines=True))
            stdout.write("\n")
        stdout.flush()
        if store is not None:
            store.add(captured.data)
            store.flush()

    server = CaptureServer(port=args.port, on_message=received, users=users or None, tls_context=context,
                           tlsimport=bool(args.tlsimport))
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        raise CLIError(f"cannot listen on 127.0.0.1 port {args.port}: {exc}", EX_UNAVAILABLE) from None
    notes = ["implicit TLS" if args.tlsimport else "STARTTLS"] if context else []
    notes += [f"AUTH for {len(users)} user{'s' if len(users) != 1 else ''}"] if users else []
    notes += ["loopback only", "nothing is relayed"]
    stdout.write(f"smtpsend serve: listening on 127.0.0.1 port {server.port} ({'; '.join(notes)})\n")
    stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return EX_OK


def serve_parser() -> argparse.ArgumentParser:
    """The parser of ``smtpsend serve`` (long options never abbreviated,
    as in the sending parser)."""
    p = argparse.ArgumentParser(prog="smtpsend serve", allow_abbrev=False,
                                description="A capture SMTP server on 127.0.0.1 that prints or stores what it "
                                            "receives and never relays anything.")
    p.add_argument("--port", type=PORT, default=2525, help="port on 127.0.0.1 (0: any free port; default 2525)")
    p.add_argument("--maildir", help="store each message in this Maildir")
    p.add_argument("--mbox", help="append each message to this mbox file")
    p.add_argument("--quiet", action="store_true", help="print only the envelope of each message")
    p.add_argument("--tls-cert", metavar="FILE", help="certificate chain (PEM) to offer STARTTLS with")
    p.add_argument("--tls-key", metavar="FILE", help="its private key (PEM), if not in the --tls-cert file")
    p.add_argument("--tlsimport", action="store_true", help="speak TLS from the first byte (as on port 465)")
    p.add_argument("--tls-implicit", dest="tls_implicit", action="store_true",
                   help="deprecated: the old spelling of --tlsimport")
    p.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                   help="accept AUTH (PLAIN, LOGIN, CRAM-MD5) with these credentials (repeatable; a test "
                        "password: the command line is visible to every user)")
    return p
