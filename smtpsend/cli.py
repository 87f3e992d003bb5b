"""The ``smtpsend`` command: sendmail-compatible sending, a compose mode for
scripts, and a capture server.

    smtpsend -t < message.eml                        recipients from the header
    smtpsend -f bounces@example.com alice@example.com < message.eml
    echo "disk full" | smtpsend -s "alert" --attach log.txt ops@example.com
    smtpsend serve --port 2525 --maildir ./mail      a capture server on 127.0.0.1
    smtpsend demo                                    send through a throwaway server

Exit codes follow sysexits.h, as sendmail and msmtp use them: 0 sent,
64 usage, 65 data (a malformed message or address, refused content),
67 no such user, 69 unavailable, 75 temporary failure, 77 permission
(authentication or TLS required and not possible).
"""

from __future__ import annotations

import argparse
import mailbox
import netrc
import os
import ssl
import subprocess
import sys
import time
from typing import Optional

import mimecompose

from . import _errors as errors
from ._envelope import transmitted
from ._send import sendmessage

EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, EX_SOFTWARE, EX_TEMPFAIL, EX_NOPERM = \
    0, 64, 65, 67, 69, 70, 75, 77


class CLIError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- configuration

def config_path() -> str:
    return os.environ.get("SMTPSEND_CONFIG") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "smtpsend", "config")


def read_config(path: str) -> dict[str, dict[str, str]]:
    """An msmtp-style file: ``defaults`` and ``account NAME`` sections of
    ``key value`` lines; ``account default : NAME`` names the default;
    ``account NAME : BASE`` starts from another account."""
    accounts: dict[str, dict[str, str]] = {}
    defaults: dict[str, str] = {}
    current = defaults
    with open(path, encoding="utf-8") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition(" ")
            value = value.strip()
            if key == "defaults":
                current = defaults
            elif key == "account":
                name, _, base = value.partition(":")
                name, base = name.strip(), base.strip()
                if not name:
                    raise CLIError(f"{path}:{number}: account needs a name", EX_USAGE)
                current = dict(defaults)
                if base:
                    if base not in accounts:
                        raise CLIError(f"{path}:{number}: unknown account {base!r}", EX_USAGE)
                    current.update(accounts[base])
                accounts[name] = current
            else:
                current[key] = value
    if "default" not in accounts and defaults:
        accounts["default"] = defaults
    return accounts


def account_settings(args) -> dict[str, str]:
    path = args.config or config_path()
    if not os.path.exists(path):
        if args.config or args.account:
            raise CLIError(f"configuration file {path} not found", EX_USAGE)
        return {}
    accounts = read_config(path)
    name = args.account or "default"
    if name not in accounts:
        if args.account:
            raise CLIError(f"no account {name!r} in {path}", EX_USAGE)
        return {}
    return accounts[name]


def _on(value: Optional[str]) -> Optional[bool]:
    if value is None:
        return None
    return value.lower() in ("on", "yes", "true", "1")


def password_for(args, settings: dict, host: str, user: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """(user, password): --password-command, the account's passwordeval or
    password, $SMTPSEND_PASSWORD, then ~/.netrc. Never from the command line."""
    command = args.password_command or settings.get("passwordeval")
    if command:
        result = subprocess.run(command, shell=True, capture_output=True, text=True)
        if result.returncode != 0:
            raise CLIError(f"the password command failed (exit {result.returncode})", EX_NOPERM)
        return user, result.stdout.rstrip("\n")
    if settings.get("password"):
        return user, settings["password"]
    if os.environ.get("SMTPSEND_PASSWORD") is not None:
        return user, os.environ["SMTPSEND_PASSWORD"]
    try:
        found = netrc.netrc().authenticators(host)
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        found = None
    if found and (user is None or user == found[0]):
        return found[0], found[2]
    return user, None


# ---------------------------------------------------------------- arguments

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="smtpsend", description="Send mail over SMTP (sendmail-compatible).",
        epilog="Subcommands: 'smtpsend serve' (a capture server), 'smtpsend demo'. "
               "Exit codes: 0 sent, 64 usage, 65 data, 67 no user, 69 unavailable, 75 temporary, 77 permission.")
    p.add_argument("recipients", nargs="*", help="recipient addresses")
    s = p.add_argument_group("sendmail compatibility")
    s.add_argument("-t", dest="extract", action="store_true", help="take recipients from To, Cc, Bcc (and add the arguments)")
    s.add_argument("-f", "-r", dest="sender", help="envelope sender (MAIL FROM); '' or '<>' for the null sender")
    s.add_argument("-i", "-oi", dest="ignore_dots", action="store_true", help="a line with a single '.' does not end the input")
    s.add_argument("-F", dest="fullname", help="full name for a From header that has to be added")
    s.add_argument("-N", dest="notify", help="DSN: NEVER, or SUCCESS,FAILURE,DELAY")
    s.add_argument("-R", dest="ret", choices=["full", "hdrs", "FULL", "HDRS"], help="DSN: return the full message or the headers")
    s.add_argument("-V", dest="envid", help="DSN: envelope identifier")
    s.add_argument("--orcpt", action="store_true", help="DSN: send each recipient's address as ORCPT")
    s.add_argument("-o", dest="sendmail_options", action="append", default=[], help=argparse.SUPPRESS)
    s.add_argument("-B", dest="body_type", help=argparse.SUPPRESS)
    c = p.add_argument_group("compose a message (mail(1) style; the body is read from standard input)")
    c.add_argument("-s", "--subject", help="subject: composes a message from standard input")
    c.add_argument("--from", dest="from_", help="From address of a composed message")
    c.add_argument("--cc", action="append", default=[], help="Cc recipient (repeatable)")
    c.add_argument("--bcc", action="append", default=[], help="Bcc recipient (repeatable)")
    c.add_argument("--attach", action="append", default=[], metavar="FILE", help="attach a file (repeatable)")
    c.add_argument("--html", metavar="FILE", help="an HTML alternative to the text body")
    c.add_argument("--header", action="append", default=[], metavar="'Name: value'", help="add a header field (repeatable)")
    n = p.add_argument_group("connection (every sendmessage option)")
    n.add_argument("--server", action="append", default=[], metavar="HOST[:PORT]", help="server to try, in order (repeatable)")
    n.add_argument("--client", help="the name to give in EHLO")
    n.add_argument("--tls", dest="usetls", action="store_true", default=None, help="use STARTTLS when offered (the default)")
    n.add_argument("--no-tls", dest="usetls", action="store_false", help="never use STARTTLS")
    n.add_argument("--tlsimport", action="store_true", default=None, help="implicit TLS (port 465)")
    n.add_argument("--tlspolicy", choices=["secure", "insecure"], help="when TLS cannot be had: give up, or go on in plaintext")
    n.add_argument("--cafile", help="trust this CA file (PEM) for the server's certificate")
    n.add_argument("--user", help="SASL user name")
    n.add_argument("--password-command", metavar="CMD", help="run CMD and use its output as the password")
    n.add_argument("--mechanisms", help="only these SASL mechanisms, comma-separated")
    n.add_argument("--atleastone", action="store_true", help="send to the accepted recipients even if some are refused")
    n.add_argument("--queue", action="store_true", help="ask the server to queue (XQUE/QUED)")
    n.add_argument("--timeout", type=float, help="seconds for connecting and each reply")
    n.add_argument("--maxsecs", type=float, default=120, help="seconds to wait after the message data (default 120)")
    n.add_argument("--deliverby", help="RFC 2852 BY=, e.g. 3600;R")
    n.add_argument("--priority", type=int, help="RFC 6710 MT-PRIORITY, -9 to 9")
    n.add_argument("--requiretls", action="store_true", help="RFC 8689 REQUIRETLS")
    n.add_argument("--mail-auth", metavar="ADDR", help="RFC 4954 AUTH= on MAIL ('<>' for none)")
    g = p.add_argument_group("configuration and output")
    g.add_argument("--account", "-a", help="account from the configuration file")
    g.add_argument("--config", help="configuration file (default $SMTPSEND_CONFIG or ~/.config/smtpsend/config)")
    g.add_argument("--dry-run", action="store_true", help="print the envelope and message instead of sending")
    g.add_argument("--trace", action="store_true", help="print the SMTP transcript (credentials redacted) on stderr")
    g.add_argument("--progress", action="store_true", help="draw a progress bar on stderr while sending")
    return p


def serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smtpsend serve",
                                description="A capture SMTP server on 127.0.0.1 that prints or stores what it receives "
                                            "and never relays anything.")
    p.add_argument("--port", type=int, default=2525, help="port on 127.0.0.1 (0: any free port; default 2525)")
    p.add_argument("--maildir", help="store each message in this Maildir")
    p.add_argument("--mbox", help="append each message to this mbox file")
    p.add_argument("--quiet", action="store_true", help="print only the envelope of each message")
    return p


# ---------------------------------------------------------------- sending

def read_message(args, stdin) -> bytes:
    data = stdin.read()
    if not args.ignore_dots and "i" not in "".join(args.sendmail_options):
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            if line.rstrip(b"\r") == b".":
                data = b"\n".join(lines[:i]) + (b"\n" if i else b"")
                break
    return data


def compose(args, body: bytes, settings: dict) -> mimecompose.Part:
    header = []
    sender = args.from_ or settings.get("from") or os.environ.get("SMTPSEND_FROM")
    if sender:
        header.append(("From", mimecompose.formataddress(args.fullname, sender) if args.fullname else sender))
    if args.recipients:
        header.append(("To", ", ".join(args.recipients)))
    if args.cc:
        header.append(("Cc", ", ".join(args.cc)))
    if args.bcc:
        header.append(("Bcc", ", ".join(args.bcc)))
    if args.subject is not None:
        header.append(("Subject", args.subject))
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep:
            raise CLIError(f"--header needs 'Name: value', not {item!r}", EX_USAGE)
        header.append((name.strip(), value.strip()))
    html = None
    if args.html:
        with open(args.html, encoding="utf-8") as fh:
            html = fh.read()
    for path in args.attach:
        if not os.path.isfile(path):
            raise CLIError(f"cannot attach {path!r}: no such file", EX_USAGE)
    text = body.decode("utf-8", "replace")
    return mimecompose.compose(text if text or not html else None, html, attachments=args.attach, header=header)


def progress_bar(stream):
    def draw(sent: int, total: int) -> None:
        width = 30
        done = int(width * sent / total) if total else width
        stream.write(f"\r[{'#' * done}{' ' * (width - done)}] {100 * sent // max(total, 1):3d}% "
                     f"{sent / 1e6:.1f}/{total / 1e6:.1f} MB")
        if sent >= total:
            stream.write("\n")
        stream.flush()
    return draw


def exit_code(exc: BaseException) -> int:
    """The sysexits code for an error."""
    if isinstance(exc, errors.RecipientsRefused):
        return EX_NOUSER if any(r.is_permanent for r in exc.rejected) else EX_TEMPFAIL
    if isinstance(exc, (errors.SenderRefused, errors.DataRefused, errors.MessageTooBig)):
        return EX_DATAERR
    if isinstance(exc, errors.DeliveryUncertain):
        return EX_TEMPFAIL
    if isinstance(exc, errors.AllServersFailed):
        kinds = [a.error for a in exc.attempts]
        if kinds and all(isinstance(e, (errors.AuthenticationError, errors.TLSRequired, errors.TLSError))
                         for e in kinds):
            return EX_NOPERM
        # a 4xx reply or a timeout says "later"; a refused connection says "not here"
        if kinds and all(isinstance(e, errors.Timeout) or (getattr(e, "reply", None) is not None
                                                          and e.reply.code // 100 == 4) for e in kinds):
            return EX_TEMPFAIL
        return EX_UNAVAILABLE
    if isinstance(exc, errors.UsageError):
        return EX_DATAERR
    return EX_UNAVAILABLE


def describe(exc: BaseException) -> str:
    if isinstance(exc, errors.AllServersFailed):
        lines = ["smtpsend: no server accepted the message:"]
        lines += [f"  {a.server} port {a.port}, at {a.stage}: {a.error}" for a in exc.attempts]
        return "\n".join(lines)
    if isinstance(exc, errors.RecipientsRefused):
        lines = [f"smtpsend: recipients refused by {exc.server} port {exc.port}; nothing was sent:"]
        lines += [f"  {r.address}: {r.code} {r.text}" for r in exc.rejected]
        return "\n".join(lines)
    return f"smtpsend: {exc}"


def send(args, stdin, stdout, stderr) -> int:
    settings = account_settings(args)
    composing = args.subject is not None or args.attach or args.html or args.cc or args.bcc or args.header
    raw = read_message(args, stdin)
    if composing:
        message = compose(args, raw, settings)
    else:
        message = raw
    recipients = None
    if args.recipients and not composing:
        recipients = list(args.recipients)
        if args.extract:
            found = transmitted(message)[0].recipients if message else []
            recipients = found + [r for r in recipients if r not in found]
    elif not args.extract and not composing:
        raise CLIError("no recipients: give them as arguments, or -t to read them from the message", EX_USAGE)
    sender = args.sender
    if sender is not None and sender.strip() in ("<>",):
        sender = ""
    if sender is None and not composing:
        sender = settings.get("from") or os.environ.get("SMTPSEND_FROM") or None
    servers = args.server or ([settings["host"] + (f":{settings['port']}" if settings.get("port") else "")]
                              if settings.get("host") else None) or \
        [os.environ.get("SMTPSEND_SERVER", "localhost")]
    usetls = args.usetls if args.usetls is not None else _on(settings.get("tls"))
    tlsimport = args.tlsimport if args.tlsimport is not None else (
        _on(settings.get("tls")) and _on(settings.get("tls_starttls")) is False)
    cafile = args.cafile or settings.get("tls_trust_file")
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    user = args.user or settings.get("user") or os.environ.get("SMTPSEND_USER")
    password = None
    if user or args.password_command or settings.get("passwordeval"):
        host = servers[0].rsplit(":", 1)[0].strip("[]")
        user, password = password_for(args, settings, host, user)
        if user and password is None:
            raise CLIError(f"no password for {user}: use --password-command, the account's passwordeval, "
                           "$SMTPSEND_PASSWORD or ~/.netrc", EX_NOPERM)
    options = dict(
        servers=servers, client=args.client, originator=sender, recipients=recipients,
        atleastone=args.atleastone, queue=args.queue, usetls=True if usetls is None else usetls,
        tlsimport=bool(tlsimport), tlspolicy=args.tlspolicy or settings.get("tlspolicy"), ssl_context=context,
        username=user, password=password, mechanisms=args.mechanisms or settings.get("mechanisms"),
        maxsecs=args.maxsecs, timeout=args.timeout or (float(settings["timeout"]) if settings.get("timeout") else None),
        ret=args.ret, envid=args.envid, notify=args.notify, orcpt=True if args.orcpt else None,
        deliverby=args.deliverby, priority=args.priority, requiretls=args.requiretls, mail_auth=args.mail_auth)
    if args.dry_run:
        envelope, data = transmitted(message, originator=sender, recipients=recipients)
        stdout.write(f"MAIL FROM:<{envelope.originator}>\n")
        for rcpt in envelope.recipients:
            stdout.write(f"RCPT TO:<{rcpt}>\n")
        stdout.write("\n")
        stdout.flush()
        stdout.buffer.write(data) if hasattr(stdout, "buffer") else stdout.write(data.decode("utf-8", "replace"))
        return EX_OK
    if args.trace:
        options["debug"] = lambda line: print(line, file=stderr, flush=True)

        def notes(event) -> None:
            if event.name == "note":
                print(f"* {event.data['text']}", file=stderr, flush=True)
            elif event.name == "failed":
                print(f"* {event.data['server']} port {event.data['port']} failed at {event.data['stage']}: "
                      f"{event.data['error']}", file=stderr, flush=True)
        options["events"] = notes
    if args.progress:
        options["progress"] = progress_bar(stderr)
    rejected = sendmessage(message, **options)
    for r in rejected:
        stderr.write(f"smtpsend: {r.address} refused: {r.code} {r.text} (sent to the others)\n")
    return EX_OK


def serve(argv, stdout) -> int:
    from .testing import CaptureServer
    args = serve_parser().parse_args(argv)
    store = None
    if args.maildir:
        store = mailbox.Maildir(args.maildir, create=True)
    elif args.mbox:
        store = mailbox.mbox(args.mbox, create=True)

    def received(captured) -> None:
        env = captured.envelope
        stdout.write(f"--- message from <{env.originator}> to {', '.join(f'<{r}>' for r in env.recipients)}"
                     f" ({len(captured.data)} octets)\n")
        if not args.quiet:
            stdout.write(captured.data.decode("utf-8", "replace").replace("\r\n", "\n"))
            stdout.write("\n")
        stdout.flush()
        if store is not None:
            store.add(captured.data)
            store.flush()

    server = CaptureServer(port=args.port, on_message=received)
    try:
        server.start()
    except OSError as exc:
        raise CLIError(f"cannot listen on 127.0.0.1 port {args.port}: {exc}", EX_UNAVAILABLE) from None
    stdout.write(f"smtpsend serve: listening on 127.0.0.1 port {server.port} (loopback only; nothing is relayed)\n")
    stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return EX_OK


def main(argv: Optional[list[str]] = None, stdin=None, stdout=None, stderr=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        if argv[:1] == ["serve"]:
            return serve(argv[1:], stdout)
        if argv[:1] == ["demo"]:
            from ._demo import demo
            return demo(stdout)
        try:
            args = parser().parse_args(argv)
        except SystemExit as exit_:
            return EX_OK if exit_.code == 0 else EX_USAGE
        return send(args, stdin, stdout, stderr)
    except CLIError as exc:
        stderr.write(f"smtpsend: {exc}\n")
        return exc.code
    except errors.UsageError as exc:
        stderr.write(f"smtpsend: {exc}\n")
        return EX_DATAERR
    except errors.SMTPError as exc:
        stderr.write(describe(exc) + "\n")
        return exit_code(exc)
    except OSError as exc:
        stderr.write(f"smtpsend: {exc}\n")
        return EX_USAGE if isinstance(exc, FileNotFoundError) else EX_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
