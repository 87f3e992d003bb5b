"""How the ``smtpsend`` command ends: its exit statuses (sysexits.h, the
table in docs/cli.md), CLIError (a failure reported as one message and a
status), text made safe for the terminal (clean, warner), argparse's exits
and type errors turned into statuses, and the status and message for an
error from sending (exit_code, describe).

Every other part of the command imports this module; it imports none of them.
"""

from __future__ import annotations

import argparse
from typing import IO, Any, Callable, Optional

from . import _errors as errors

EX_OK = 0
EX_USAGE = 64        # bad flags or flag values, no recipients, a missing file, an unknown account
EX_DATAERR = 65      # a malformed message or address, no sender, refused content
EX_NOUSER = 67       # a recipient refused permanently
EX_UNAVAILABLE = 69  # no server reachable, every server refused
EX_SOFTWARE = 70     # an internal error (a bug)
EX_IOERR = 74        # reading the message or writing the output failed
EX_TEMPFAIL = 75     # try again later
EX_NOPERM = 77       # authentication, TLS, no password
EX_CONFIG = 78       # a configuration file that cannot be used

MAX_WARNINGS = 20

Warn = Callable[[str], None]


class CLIError(Exception):
    """A failure the command reports as one message and an exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class NoPassword(Exception):
    """A user name but no password for one server (recorded as that server's attempt)."""


# ---------------------------------------------------------------- output

_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROLS_KEEP_LINES = {c: v for c, v in _CONTROLS.items() if c not in (0x09, 0x0A)}


def clean(text: str, lines: bool = False) -> str:
    """``text`` safe for a terminal: control characters (escape sequences,
    CR, and LF unless ``lines``) written as ``\\xNN``. Server replies and
    client data reach stderr/stdout through this, never raw."""
    return text.translate(_CONTROLS_KEEP_LINES if lines else _CONTROLS)


def warner(stderr: IO[str]) -> Warn:
    """A function printing each distinct warning once on ``stderr`` (the
    first MAX_WARNINGS of them: a file of nonsense is not echoed line by line)."""
    seen: set[str] = set()

    def warn(message: str) -> None:
        if message in seen or len(seen) > MAX_WARNINGS:
            return
        seen.add(message)
        text = "further warnings are not shown" if len(seen) > MAX_WARNINGS else clean(message)
        stderr.write(f"smtpsend: warning: {text}\n")
        stderr.flush()
    return warn


# ---------------------------------------------------------------- arguments

def flag_type(check: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    """An argparse type: ``check(text)`` returns the value or None."""
    def convert(text: str) -> Any:
        value = check(text)
        if value is None:
            raise argparse.ArgumentTypeError(f"{what}, not {text!r}")
        return value
    return convert


def parse_arguments(p: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argparse, with its exit turned into CLIError: 64 for a usage error
    (argparse has printed the usage), 0 for --help and --version."""
    try:
        return p.parse_args(argv)
    except SystemExit as exit_:
        raise CLIError("", EX_OK if exit_.code in (0, None) else EX_USAGE) from None


# ---------------------------------------------------------------- outcomes

def _auth_like(error: BaseException) -> bool:
    return isinstance(error, (errors.AuthenticationError, errors.TLSRequired, errors.TLSError, NoPassword))


def _reply_class(error: BaseException) -> Optional[int]:
    """2, 3, 4 or 5 for an error carrying a reply; None otherwise."""
    reply = getattr(error, "reply", None)
    return reply.code // 100 if reply is not None else None


def exit_code(exc: BaseException) -> int:
    """The sysexits status for an error from sending."""
    if isinstance(exc, errors.RecipientsRefused):
        return EX_NOUSER if any(r.is_permanent for r in exc.rejected) else EX_TEMPFAIL
    if isinstance(exc, (errors.SenderRefused, errors.DataRefused, errors.MessageTooBig)):
        return EX_DATAERR
    if isinstance(exc, errors.DeliveryUncertain):
        return EX_TEMPFAIL
    if isinstance(exc, errors.AllServersFailed):
        kinds = [a.error for a in exc.attempts]
        if kinds and all(_auth_like(e) for e in kinds):
            return EX_NOPERM
        # a 4xx reply or a timeout says "later"; a refused connection says "not here"
        if kinds and all(isinstance(e, errors.Timeout) or _reply_class(e) == 4 for e in kinds):
            return EX_TEMPFAIL
        return EX_UNAVAILABLE
    if isinstance(exc, errors.UsageError):
        return EX_DATAERR
    return EX_UNAVAILABLE


def describe(exc: BaseException) -> str:
    """What to print for an error from sending (one line per server)."""
    if isinstance(exc, errors.AllServersFailed):
        lines = ["smtpsend: no server accepted the message:"]
        lines += [f"  {server_text(a.server, a.port)}, at {a.stage}: {_indented(a.error)}" for a in exc.attempts]
        return "\n".join(lines)
    if isinstance(exc, errors.RecipientsRefused):
        where = server_text(exc.server, exc.port)
        if exc.delivered:   # LMTP: refused after the data, the others have the message
            lines = [f"smtpsend: delivered by {where} to {', '.join(clean(a) for a in exc.delivered)} only; "
                     "refused after the message data:"]
        else:
            lines = [f"smtpsend: recipients refused by {where}; nothing was sent:"]
        lines += [f"  {clean(r.address)}: {r.code} {clean(r.text)}" for r in exc.rejected]
        return "\n".join(lines)
    return f"smtpsend: {_indented(exc)}"


def server_text(server: object, port: object) -> str:
    """``host port N`` for the terminal, or a Unix socket's path (port 0)."""
    return clean(str(server)) + (f" port {port}" if port else "")


def _indented(error: BaseException) -> str:
    """An error's text for the terminal: cleaned, a hint on a line of its own indented;
    a failed --token-command (the cause of an AuthenticationError) says why."""
    lines = str(error).split("\n")
    if isinstance(error.__cause__, CLIError):
        lines[0] += f": {error.__cause__}"
    return "\n    ".join(clean(line) for line in lines)
