"""The ``smtpsend`` command: sendmail-compatible sending, a compose mode for
scripts, and a capture server.

    smtpsend -t < message.eml                        recipients from the header
    smtpsend -f bounces@example.com alice@example.com < message.eml
    echo "disk full" | smtpsend -s "alert" --attach log.txt ops@example.com
    smtpsend serve --port 2525 --maildir ./mail      a capture server on 127.0.0.1
    smtpsend demo                                    send through a throwaway server

Exit statuses follow sysexits.h, as sendmail and msmtp use them; the table
in docs/cli.md is the contract (tests/test_cli_exit.py runs every row): 0
sent, 64 usage, 65 data, 67 no such user, 69 unavailable, 70 internal
error, 74 I/O error, 75 temporary failure, 77 permission, 78 configuration.
Nothing ends in a traceback: every failure is a status and a message.

Configuration: ``$SMTPSEND_SYSCONFIG`` (default /etc/smtpsend.conf), then
the user's file (``--config``, ``$SMTPSEND_CONFIG``, or
~/.config/smtpsend/config; without one, ~/.msmtprc), the user's settings
winning. Both use msmtp's syntax and key names. The environment
(``$SMTPSEND_URL``, ``$SMTPSEND_FROM``... see apply_environment) overrides
them, and the command line overrides the environment.

This module is the entry point (main), the flags and the sending; the
rest of the command is in smtpsend._cliconfig (configuration files, the
account, the environment), smtpsend._clicredentials (user names, passwords,
tokens), smtpsend._cliserve (``smtpsend serve``) and smtpsend._cliexit
(exit statuses and messages), which import one way: none imports this module.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import os
import ssl
import sys
import time
import traceback
from dataclasses import dataclass
from typing import IO, Any, Callable, NoReturn, Optional, TextIO, cast

import mimecompose

from . import _errors as errors
from ._cliconfig import (Account, account_settings, apply_environment, check_client, config_path, one_line,
                         resolve_account, seconds_value, server_value, system_config_path, url_problem)
from ._clicredentials import PASSWORD_TIMEOUT, Credentials
from ._cliexit import (EX_CONFIG, EX_DATAERR, EX_IOERR, EX_NOPERM, EX_OK, EX_SOFTWARE, EX_TEMPFAIL, EX_USAGE,
                       CLIError, NoPassword, Warn, clean, describe, exit_code, flag_type, parse_arguments, server_text,
                       warner)
from ._cliserve import serve
from ._envelope import envelope, transmitted
from ._options import mechanisms as mechanism_list, parse_server, protocol_port, server_url, url_options
from ._url import is_url, parse_url
from ._sync import sendmessage
from ._esmtp import Delivery


# ---------------------------------------------------------------- arguments

def _server_flag(text: str) -> str:
    """The argparse type of --server: HOST[:PORT], [ADDRESS]:PORT or a
    server URL without a password (a command line is visible to every
    user of the machine: the password goes elsewhere). The error never
    shows a URL."""
    if not is_url(text):
        if "@" in text:
            raise argparse.ArgumentTypeError("an '@' names a user: write the server as a URL, smtp://user@host "
                                             "(the value is not shown: it may hold a password)")
        if server_value(text) is None:
            raise argparse.ArgumentTypeError(f"must be HOST, HOST:PORT, [ADDRESS]:PORT or a server URL, "
                                             f"not {clean(text)!r}")
        return text
    problem = url_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    if parse_url(text).password is not None:
        raise argparse.ArgumentTypeError(
            "a password in a --server URL would be visible to every user of the machine: put the URL in "
            "$SMTPSEND_URL, or give the password with --password-command, $SMTPSEND_PASSWORD or ~/.netrc")
    return text


def _priority_value(text: str) -> Optional[int]:
    try:
        number = int(text)
    except ValueError:
        return None
    return number if -9 <= number <= 9 else None


def _header_value(text: str) -> Optional[tuple[str, str]]:
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    # RFC 5322 section 2.2: a field name is printable US-ASCII except the colon
    if not sep or not name or not all(33 <= ord(c) <= 126 for c in name) or not one_line(value):
        return None
    return name, value


DKIM_ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
DKIM_CANONICALIZATIONS = ("relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple")
SECONDS = flag_type(seconds_value, "must be a positive number of seconds")
ONE_LINE = flag_type(lambda t: t if one_line(t) else None, "must be one line (no CR, LF or NUL)")


def parser() -> argparse.ArgumentParser:
    """The sendmail-mode parser. Long options are never abbreviated
    (``allow_abbrev=False``): ``--password`` must not become
    ``--password-command``."""
    p = argparse.ArgumentParser(
        prog="smtpsend", allow_abbrev=False, description="Send mail over SMTP (sendmail-compatible).",
        epilog="Subcommands: 'smtpsend serve' (a capture server), 'smtpsend demo'. Exit statuses: 0 sent, "
               "64 usage, 65 data, 67 no user, 69 unavailable, 70 internal error, 74 I/O error, "
               "75 temporary, 77 permission, 78 configuration.")
    p.add_argument("recipients", nargs="*", type=ONE_LINE, help="recipient addresses")
    p.add_argument("--version", action="version", version=version_text())
    s = p.add_argument_group("sendmail compatibility")
    s.add_argument("-t", dest="extract", action="store_true", help="take recipients from To, Cc, Bcc (and add the arguments)")
    s.add_argument("-f", "-r", dest="sender", type=ONE_LINE, help="envelope sender (MAIL FROM); '' or '<>' for the null sender")
    s.add_argument("-i", "-oi", dest="ignore_dots", action="store_true", help="a line with a single '.' does not end the input")
    s.add_argument("-F", dest="fullname", type=ONE_LINE, help="full name for a From header that has to be written")
    s.add_argument("-N", dest="notify", help="DSN: NEVER, or SUCCESS,FAILURE,DELAY")
    s.add_argument("-R", dest="ret", choices=["full", "hdrs", "FULL", "HDRS"], help="DSN: return the full message or the headers")
    s.add_argument("-V", dest="envid", help="DSN: envelope identifier")
    s.add_argument("--orcpt", action="store_true", help="DSN: send each recipient's address as ORCPT")
    s.add_argument("-v", dest="verbose", action="store_true", help="verbose: the SMTP transcript on stderr (as --trace)")
    s.add_argument("-b", dest="mode", metavar="MODE", help="sendmail mode: only -bm (send a message, the default)")
    s.add_argument("-o", dest="sendmail_options", action="append", default=[], metavar="OPTION",
                   help="sendmail -oX options: -oi is -i; the others (-oem, -oep, -odi, -odb, ...) are accepted and ignored")
    s.add_argument("-B", dest="body_type", help=argparse.SUPPRESS)
    c = p.add_argument_group("compose a message (mail(1) style; the body is read from standard input)")
    c.add_argument("-s", "--subject", type=ONE_LINE, help="subject: composes a message from standard input")
    c.add_argument("--from", dest="from_", metavar="ADDR", type=ONE_LINE, help="From address of a composed message")
    c.add_argument("--cc", action="append", default=[], type=ONE_LINE, help="Cc recipient (repeatable)")
    c.add_argument("--bcc", action="append", default=[], type=ONE_LINE, help="Bcc recipient (repeatable)")
    c.add_argument("--attach", action="append", default=[], metavar="FILE", help="attach a file (repeatable)")
    c.add_argument("--html", metavar="FILE", help="an HTML alternative to the text body")
    c.add_argument("--header", action="append", default=[], metavar="'Name: value'",
                   type=flag_type(_header_value, "must be 'Name: value' on one line"),
                   help="add a header field (repeatable)")
    n = p.add_argument_group("connection (every sendmessage option)")
    n.add_argument("--server", action="append", default=[], metavar="HOST[:PORT]|URL", type=_server_flag,
                   help="server to try, in order (repeatable): HOST[:PORT], or a URL such as "
                        "smtps://user@host (no password: see $SMTPSEND_URL)")
    n.add_argument("--client", type=flag_type(check_client, "must be a host name or address literal"),
                   help="the name to give in EHLO")
    n.add_argument("--tls", dest="usetls", action="store_true", default=None, help="use STARTTLS when offered (the default)")
    n.add_argument("--no-tls", dest="usetls", action="store_false", help="never use STARTTLS")
    n.add_argument("--tlsimport", action="store_true", default=None, help="implicit TLS (port 465)")
    n.add_argument("--protocol", choices=["smtp", "lmtp"],
                   help="lmtp: deliver with LMTP (RFC 2033; default port 24, --server may be a Unix socket path)")
    n.add_argument("--tlspolicy", choices=["secure", "insecure"], help="when TLS cannot be had: give up, or go on in plaintext")
    n.add_argument("--cafile", metavar="FILE", help="trust this CA file (PEM) for the server's certificate")
    n.add_argument("--user", type=ONE_LINE, help="SASL user name")
    n.add_argument("--password-command", metavar="CMD", help="run CMD (through the shell) and use its output as the password")
    n.add_argument("--password-timeout", metavar="S", type=SECONDS,
                   help=f"seconds the password command may take (default {PASSWORD_TIMEOUT:g})")
    n.add_argument("--token-command", metavar="CMD",
                   help="run CMD (through the shell) for an OAuth 2 bearer token (XOAUTH2, OAUTHBEARER) when a "
                        "connection needs one; it gets $SMTPSEND_TOKEN_USER, and $SMTPSEND_TOKEN_REFRESH=1 when "
                        "the server rejected the last token (else 0)")
    n.add_argument("--mechanisms", help="only these SASL mechanisms, comma-separated")
    n.add_argument("--atleastone", action="store_true", help="send to the accepted recipients even if some are refused")
    n.add_argument("--queue", action="store_true", help="ask the server to queue (XQUE/QUED)")
    n.add_argument("--timeout", type=SECONDS, metavar="S", help="seconds for connecting and each reply")
    n.add_argument("--maxsecs", type=SECONDS, metavar="S", default=120.0, help="seconds to wait after the message data (default 120)")
    n.add_argument("--deliverby", help="RFC 2852 BY=, e.g. 3600;R")
    n.add_argument("--priority", type=flag_type(_priority_value, "must be a number from -9 to 9"),
                   help="RFC 6710 MT-PRIORITY, -9 to 9")
    n.add_argument("--requiretls", action="store_true", help="RFC 8689 REQUIRETLS")
    n.add_argument("--mail-auth", metavar="ADDR", help="RFC 4954 AUTH= on MAIL ('<>' for none)")
    d = p.add_argument_group("DKIM signing (needs the dkim extra; docs/signing.md)")
    d.add_argument("--dkim-domain", metavar="DOMAIN", type=ONE_LINE, help="sign for this domain (d=)")
    d.add_argument("--dkim-selector", action="append", default=[], metavar="SELECTOR", type=ONE_LINE,
                   help="the key's selector (s=); repeat with --dkim-key to sign more than once")
    d.add_argument("--dkim-key", action="append", default=[], metavar="FILE",
                   help="the private key (PEM file); one per --dkim-selector, in the same order")
    d.add_argument("--dkim-algorithm", action="append", default=[], choices=list(DKIM_ALGORITHMS),
                   help="rsa-sha256 (the default) or ed25519-sha256: once for every key, or once per key")
    d.add_argument("--dkim-headers", metavar="NAMES", type=ONE_LINE,
                   help="the fields to sign, comma-separated (From required; default: RFC 6376's list)")
    d.add_argument("--dkim-canonicalization", choices=list(DKIM_CANONICALIZATIONS),
                   help="header/body canonicalization (default relaxed/relaxed)")
    g = p.add_argument_group("configuration and output")
    g.add_argument("--account", "-a", help="account from the configuration file")
    g.add_argument("--config", metavar="FILE",
                   help="configuration file (default $SMTPSEND_CONFIG or ~/.config/smtpsend/config)")
    g.add_argument("--msmtprc", metavar="FILE", help="read this msmtp configuration file instead")
    g.add_argument("--dry-run", action="store_true", help="print the envelope and message instead of sending")
    g.add_argument("--trace", action="store_true", help="print the SMTP transcript (credentials redacted) on stderr")
    g.add_argument("--progress", action="store_true", help="draw a progress bar on stderr while sending")
    return p


def version_text() -> str:
    """``smtpsend VERSION (Python X.Y.Z)``."""
    package = sys.modules.get("smtpsend")
    version = getattr(package, "__version__", None) or getattr(mimecompose, "__version__", "unknown")
    return f"smtpsend {version} (Python {sys.version.split()[0]})"


PATH_DESTS = frozenset({"attach", "html", "config", "msmtprc", "cafile", "dkim_key"})


def check_text_arguments(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Arguments that are text (not file names) must be UTF-8: a byte that
    is not arrives as a lone surrogate and could not be sent. Raises
    CLIError (64) naming the flag, never showing the value."""
    names = {a.dest: (a.option_strings[0] if a.option_strings else a.dest) for a in p._actions}
    for dest, value in vars(args).items():
        if dest in PATH_DESTS:
            continue
        for item in value if isinstance(value, list) else [value]:
            text = " ".join(item) if isinstance(item, tuple) else item
            if isinstance(text, str) and not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise CLIError(f"the value of {names.get(dest, dest)} is not valid UTF-8 text", EX_USAGE) from None


def refuse_password_flag(argv: list[str]) -> None:
    """``--password`` does not exist on purpose: say why, and what to use."""
    for arg in itertools.takewhile(lambda a: a != "--", argv):
        if arg == "--password" or arg.startswith("--password="):
            raise CLIError("there is no --password flag: a command line is visible to every user of the machine. "
                           "Use --password-command CMD, passwordeval in the configuration file, "
                           "$SMTPSEND_PASSWORD or ~/.netrc", EX_USAGE)


# ---------------------------------------------------------------- the message

def read_message(args: argparse.Namespace, stdin: IO[bytes]) -> bytes:
    """Standard input; without -i, up to a line holding a single "." (as
    sendmail). Raises CLIError (74) when it cannot be read."""
    try:
        data = stdin.read()
    except OSError as exc:
        raise CLIError(f"cannot read the message from standard input: {exc.strerror}", EX_IOERR) from None
    if not args.ignore_dots and "i" not in args.sendmail_options:
        start = 0
        while True:
            end = data.find(b"\n", start)
            line = data[start:] if end == -1 else data[start:end]
            if line.rstrip(b"\r") == b".":
                return data[:start]
            if end == -1:
                return data
            start = end + 1
    return data


def compose(args: argparse.Namespace, body: bytes, account: Account) -> mimecompose.Part:
    """The message of compose mode: the body from standard input, the
    header from the flags. Raises CLIError (64) for a missing file or no
    recipients."""
    if not (args.recipients or args.cc or args.bcc):
        raise CLIError("no recipients: give them as arguments (or with --cc, --bcc)", EX_USAGE)
    header: list[tuple[str, str]] = []
    sender = args.from_ or account.sender      # $SMTPSEND_FROM is in the account (apply_environment)
    fullname = args.fullname or account.fullname
    if sender:
        header.append(("From", mimecompose.formataddress(fullname, sender) if fullname else sender))
    if args.recipients:
        header.append(("To", ", ".join(args.recipients)))
    if args.cc:
        header.append(("Cc", ", ".join(args.cc)))
    if args.bcc:
        header.append(("Bcc", ", ".join(args.bcc)))
    if args.subject is not None:
        header.append(("Subject", args.subject))
    header.extend(args.header)
    html = None
    if args.html:
        try:
            with open(args.html, encoding="utf-8") as fh:
                html = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise CLIError(f"cannot read --html {args.html}: {getattr(exc, 'strerror', None) or 'not UTF-8'}",
                           EX_USAGE) from None
    for path in args.attach:
        if not os.path.isfile(path):
            raise CLIError(f"cannot attach {path!r}: no such file", EX_USAGE)
    text = body.decode("utf-8", "replace")
    return mimecompose.compose(text if text or not html else None, html, attachments=args.attach, header=header)


def _has_originator(part: mimecompose.Part) -> bool:
    return any(part.getheader(name) for name in ("From", "Sender", "Resent-From", "Resent-Sender"))


NO_SENDER = ("no sender address: the message has no From, and none is configured. Give -f ADDRESS, or put "
             "'from ADDRESS' in the configuration file ({user} or {system}); smtpsend does not make one up")


def progress_bar(stream: IO[str]) -> Callable[[int, int], None]:
    def draw(sent: int, total: int) -> None:
        width = 30
        done = int(width * sent / total) if total else width
        stream.write(f"\r[{'#' * done}{' ' * (width - done)}] {100 * sent // max(total, 1):3d}% "
                     f"{sent / 1e6:.1f}/{total / 1e6:.1f} MB")
        if sent >= total:
            stream.write("\n")
        stream.flush()
    return draw


# ---------------------------------------------------------------- sending

def log_outcome(path: Optional[str], servers: list[str], sender: Optional[str], count: int, code: int,
                text: str, warn: Warn) -> None:
    """Append one line to the account's logfile: when, servers, sender,
    recipient count, exit status and what happened (no secrets)."""
    if not path:
        return
    line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} servers={','.join(servers)} from={sender or '-'} "
            f"recipients={count} exitcode={code} {text}")
    try:
        with open(path, "a", encoding="utf-8", errors="replace") as fh:
            fh.write(clean(line) + "\n")
    except OSError as exc:
        warn(f"cannot write the logfile {path}: {exc.strerror}")


def deliver(part: mimecompose.Part, servers: list[str], credentials: Credentials, default_port: int,
            options: dict[str, Any]) -> list[errors.Rejected]:
    """Send to each server in turn, each with its own credentials (servers
    sharing credentials go to one sendmessage call); returns what
    sendmessage returns, raises as it does: message faults at once,
    AllServersFailed with every attempt when no server took the message.
    A server URL's user and password are its server's (its user's
    password, when the URL has none, is looked up as the user name's is)."""
    attempts: list[errors.Attempt] = []
    plan = []
    for entry in servers:
        url = server_url(entry)
        if url is None:
            host, port = parse_server(entry, None, default_port)
            plan.append((entry, host, port, credentials.for_server(host)))
            continue
        host, port = parse_server(url.server, None, url.default_port or default_port)
        if url.username is None:
            plan.append((entry, host, port, credentials.for_server(host)))
            continue
        if credentials.user is not None:
            raise CLIError("a user name in a server URL and --user (or user, $SMTPSEND_USER) exclude each "
                           "other: give the user one way", EX_USAGE)
        password = (url.password.reveal() if url.password is not None
                    else credentials.for_server(host, url.username)[1])
        # the URL without its credentials: they go as username= and password=, as every server's do
        bare = str(dataclasses.replace(url, username=None, password=None))
        plan.append((bare, host, port, (url.username, password)))
    missing = [user for *_, (user, password) in plan if user and password is None and credentials.token is None]
    if missing and len(missing) == sum(1 for *_, (user, _) in plan if user):
        raise CLIError(f"no password for {missing[0]}: use --password-command, passwordeval in the "
                       "configuration file, $SMTPSEND_PASSWORD or ~/.netrc", EX_NOPERM)
    for (user, password), group in itertools.groupby(plan, key=lambda item: item[3]):
        entries = list(group)
        if user and password is None and credentials.token is None:
            attempts += [errors.Attempt(host, port, "auth", NoPassword(
                f"no password for {user} at {host} (~/.netrc has none for this host)")) for _, host, port, _ in entries]
            continue
        try:
            return sendmessage(part, servers=[e[0] for e in entries], username=user, password=password,
                               token=credentials.token, **options)
        except errors.AllServersFailed as exc:
            attempts.extend(exc.attempts)
    raise errors.AllServersFailed(attempts)


def connection_options(args: argparse.Namespace, account: Account) -> dict[str, Any]:
    """The sendmessage options from the flags and the account (flags win).
    Raises CLIError: 64 for bad or contradictory flags, 78 for a bad
    tls_trust_file."""
    try:
        delivery = Delivery(ret=args.ret or account.ret, envid=args.envid, notify=args.notify or account.notify,
                            deliverby=args.deliverby, priority=args.priority, mail_auth=args.mail_auth)
    except errors.UsageError as exc:
        raise CLIError(str(exc), EX_USAGE) from None
    usetls = args.usetls if args.usetls is not None else account.usetls
    tlsimport = args.tlsimport if args.tlsimport is not None else account.tlsimport
    tlspolicy = args.tlspolicy or account.tlspolicy or ("secure" if account.require_tls and usetls else None)
    if usetls is False and (tlsimport or tlspolicy == "secure"):
        raise CLIError("TLS is turned off (--no-tls, or tls off) but also required (--tlsimport, "
                       "--tlspolicy secure, tls on)", EX_USAGE)
    context = None
    cafile = args.cafile or account.cafile
    if cafile:
        try:
            context = ssl.create_default_context(cafile=cafile)
        except (OSError, ValueError) as exc:
            where = "--cafile" if args.cafile else "tls_trust_file"
            raise CLIError(f"{where} {cafile}: {getattr(exc, 'strerror', None) or 'not a PEM CA file'}",
                           EX_USAGE if args.cafile else EX_CONFIG) from None
    return dict(
        client=args.client or account.client, atleastone=args.atleastone, queue=args.queue,
        usetls=True if usetls is None else usetls, tlsimport=tlsimport, tlspolicy=tlspolicy, ssl_context=context,
        mechanisms=args.mechanisms or account.mechanisms, maxsecs=args.maxsecs,
        timeout=args.timeout or account.timeout, ret=delivery.ret, envid=delivery.envid, notify=delivery.notify,
        orcpt=True if args.orcpt else None, deliverby=delivery.deliverby, priority=delivery.priority,
        requiretls=args.requiretls, mail_auth=delivery.mail_auth,
        protocol=args.protocol or account.protocol or "smtp")


_DKIM_LISTS = ("dkim_selector", "dkim_key", "dkim_algorithm")   # one value per signer


def dkim_signers(args: argparse.Namespace, account: Account) -> list[mimecompose.DKIMSigner]:
    """The DKIM signers of the flags (--dkim-*) and the account's dkim_*
    keys, flags winning setting by setting: one signer per key, in tandem
    with the selectors (and the algorithms, unless one is given for all);
    none when no key is named. Made before the message is read, so a bad
    setting stops the command before anything is sent. Raises CLIError
    naming the flag or FILE:LINE: 64 for flags, 78 for configuration keys
    (and when the ``cryptography`` package is not installed)."""
    values: dict[str, Any] = {}
    where: dict[str, tuple[str, int]] = {}
    for key in ("dkim_domain", "dkim_selector", "dkim_key", "dkim_algorithm", "dkim_headers",
                "dkim_canonicalization"):
        flag = getattr(args, key)
        if flag:
            values[key], where[key] = flag, ("--" + key.replace("_", "-"), EX_USAGE)
        elif key in account.dkim:
            value, line = account.dkim[key]
            values[key] = [value] if key in _DKIM_LISTS else value
            where[key] = (f"{line}: {key}", EX_CONFIG)

    def fail(key: str, text: str) -> NoReturn:
        name, code = where[key]
        raise CLIError(f"{name} {text}", code)

    keys = values.get("dkim_key", [])
    if not keys:
        if values:
            fail(next(iter(values)), "needs a key to sign with: --dkim-key FILE (or dkim_key)")
        return []
    if "dkim_domain" not in values or "dkim_selector" not in values:
        fail("dkim_key", "needs --dkim-domain and --dkim-selector (or dkim_domain and dkim_selector)")
    selectors = values["dkim_selector"]
    if len(selectors) != len(keys):
        fail("dkim_selector", f"given {len(selectors)} times for {len(keys)} keys: one selector per key")
    algorithms = values.get("dkim_algorithm", ["rsa-sha256"])
    if len(algorithms) not in (1, len(keys)):
        fail("dkim_algorithm", f"given {len(algorithms)} times for {len(keys)} keys: once, or once per key")
    for key, allowed in (("dkim_algorithm", DKIM_ALGORITHMS), ("dkim_canonicalization", DKIM_CANONICALIZATIONS)):
        given = values.get(key)
        for value in given if isinstance(given, list) else [given] if given else []:
            if value not in allowed:   # a configuration key (the flags have choices)
                fail(key, f"must be one of {', '.join(allowed)}, not {clean(value)!r}"
                     + (" (RFC 8301: rsa-sha1 must not be used)" if value == "rsa-sha1" else ""))
    headers = values.get("dkim_headers")
    names = [n.strip() for n in headers.split(",") if n.strip()] if headers else None
    signers = []
    for n, (key, selector) in enumerate(zip(keys, selectors)):
        try:
            signers.append(mimecompose.DKIMSigner(
                domain=values["dkim_domain"], selector=selector, key=os.path.expanduser(key),
                algorithm=algorithms[n if len(algorithms) > 1 else 0], headers=names,
                canonicalization=values.get("dkim_canonicalization", "relaxed/relaxed")))
        except ImportError as exc:
            raise CLIError(str(exc), EX_CONFIG) from None
        except ValueError as exc:   # MimeError: which setting is wrong, in the signer's words
            text = str(exc)
            culprit = next((k for k, start in (("dkim_domain", "domain "), ("dkim_selector", "selector "),
                                                ("dkim_headers", "the signed headers"), ("dkim_headers", "headers "))
                            if text.startswith(start) and k in where), "dkim_key")
            fail(culprit, f"{clean(key) + ': ' if culprit == 'dkim_key' else ''}cannot make the signer: {clean(text)}")
    return signers


def server_list(args: argparse.Namespace, account: Account) -> list[str]:
    """--server, else the environment's ($SMTPSEND_URL or $SMTPSEND_SERVER,
    see apply_environment), else the account's host and port, else
    localhost."""
    if args.server:
        return list(args.server)
    if account.servers:
        return list(account.servers)
    if account.host:
        host = f"[{account.host}]" if ":" in account.host and not account.host.startswith("[") else account.host
        return [host + (f":{account.port}" if account.port else "")]
    return ["localhost"]


_RECIPIENT_FIELDS = ("To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")


@dataclass
class Outgoing:
    """The message and what sendmessage is told about it."""

    part: mimecompose.Part
    sender: Optional[str]                       # None: from the message's header
    recipients: Optional[list[str]]             # None: from the message's header
    header: list[tuple[str, str]]               # fields to add (a From smtpsend writes)


def outgoing(args: argparse.Namespace, stdin: IO[bytes], account: Account) -> Outgoing:
    """Read (or compose) the message and work out sender, recipients and
    the From to write. Raises CLIError: 64 no recipients, 65 no sender."""
    composing = bool(args.subject is not None or args.attach or args.html or args.cc or args.bcc or args.header)
    raw = read_message(args, stdin)
    part = compose(args, raw, account) if composing else mimecompose.initialize(string=raw)
    sender = args.sender
    if sender is not None and sender.strip() == "<>":
        sender = ""
    if sender is None and not composing:
        sender = account.sender or None      # $SMTPSEND_FROM is in the account (apply_environment)
    if sender is None and not _has_originator(part):
        raise CLIError(NO_SENDER.format(user=config_path(), system=system_config_path()), EX_DATAERR)
    header: list[tuple[str, str]] = []
    fullname = args.fullname or account.fullname
    if not composing and sender and fullname and not part.getheader("From"):
        header.append(("From", mimecompose.formataddress(fullname, sender)))
    recipients: Optional[list[str]] = None
    has_recipients = any(part.getheader(n) for n in _RECIPIENT_FIELDS)
    if composing:
        pass
    elif args.recipients:
        recipients = list(args.recipients)
        if args.extract and has_recipients:
            found = envelope(part, originator=sender, header=header).recipients
            recipients = found + [r for r in recipients if r not in found]
    elif not args.extract:
        raise CLIError("no recipients: give them as arguments, or -t to read them from the message", EX_USAGE)
    elif not has_recipients:
        raise CLIError("no recipients: -t found no To, Cc or Bcc in the message, and none were given as arguments",
                       EX_USAGE)
    return Outgoing(part, sender, recipients, header)


def dry_run(out: Outgoing, stdout: IO[str], dkim: Optional[list[mimecompose.DKIMSigner]] = None) -> int:
    """Print the envelope and the bytes that would be sent (signed with
    ``dkim`` as for a server with 8BITMIME)."""
    env, data = transmitted(out.part, originator=out.sender, recipients=out.recipients, header=out.header,
                            dkim=dkim)
    stdout.write(f"MAIL FROM:<{env.originator}>\n")
    for rcpt in env.recipients:
        stdout.write(f"RCPT TO:<{rcpt}>\n")
    stdout.write("\n")
    stdout.flush()
    if hasattr(stdout, "buffer"):   # a text stream over a binary one (sys.stdout): the bytes unchanged
        raw = cast(TextIO, stdout).buffer
        raw.write(data)
        raw.flush()
    else:
        stdout.write(data.decode("utf-8", "replace"))
    return EX_OK


def trace_hooks(stderr: IO[str]) -> dict[str, Any]:
    """debug= and events= options printing the transcript and smtpsend's notes."""
    def notes(event: Any) -> None:
        if event.name == "note":
            print(f"* {clean(str(event.data['text']))}", file=stderr, flush=True)
        elif event.name == "failed":
            print(f"* {server_text(event.data['server'], event.data['port'])} failed at "
                  f"{event.data['stage']}: {clean(str(event.data['error']))}", file=stderr, flush=True)
    return dict(debug=lambda line: print(clean(line), file=stderr, flush=True), events=notes)


def check_urls(servers: list[str], options: dict[str, Any]) -> None:
    """Each server URL against the settings that apply to every server
    (flags, environment, configuration): CLIError (64) naming what
    contradicts what (smtpsend._options.url_options), before anything is
    read or sent."""
    for entry in servers:
        url = server_url(entry)
        if url is None:
            continue
        problem: Optional[str] = None
        try:
            url_options(url, usetls=options["usetls"], tlsimport=options["tlsimport"],
                        tlspolicy=options["tlspolicy"], username=None, password=None, timeout=options["timeout"],
                        mechanisms=mechanism_list(options["mechanisms"]), protocol=options.get("protocol", "smtp"))
        except errors.UsageError as exc:
            problem = str(exc)
        if problem:
            raise CLIError(f"server {url}: {problem}", EX_USAGE)


def shown_servers(servers: list[str]) -> list[str]:
    """The servers as a log or a message may show them: URLs without their password."""
    return [str(url) if (url := server_url(entry)) is not None else entry for entry in servers]


def send(args: argparse.Namespace, p: argparse.ArgumentParser, stdin: IO[bytes], stdout: IO[str],
         stderr: IO[str]) -> int:
    """Sendmail and compose mode."""
    warn = warner(stderr)
    check_text_arguments(p, args)
    if args.mode not in (None, "m"):
        raise CLIError(f"-b{args.mode}: only -bm (send a message read from standard input) is supported", EX_USAGE)
    account = apply_environment(resolve_account(account_settings(args, warn), warn))
    options = connection_options(args, account)
    servers = server_list(args, account)
    check_urls(servers, options)
    options["dkim"] = dkim_signers(args, account)
    out = outgoing(args, stdin, account)
    if args.dry_run:
        return dry_run(out, stdout, options["dkim"])
    credentials = Credentials(args, account, warn,
                              urls_name_users=any(u is not None and u.username for u in map(server_url, servers)))
    options.update(originator=out.sender, recipients=out.recipients, header=out.header)
    if args.trace or args.verbose:
        options.update(trace_hooks(stderr))
    if args.progress:
        options["progress"] = progress_bar(stderr)
    count = len(out.recipients) if out.recipients is not None else -1
    if count < 0 and account.logfile:
        count = len(envelope(out.part, originator=out.sender, header=out.header).recipients)
    try:
        rejected = deliver(out.part, servers, credentials, protocol_port(options["protocol"], options["tlsimport"]),
                           options)
    except (errors.SMTPError, CLIError) as exc:
        code = exc.code if isinstance(exc, CLIError) else exit_code(exc)
        log_outcome(account.logfile, shown_servers(servers), out.sender, count, code, f"failed: {exc}", warn)
        raise
    for r in rejected:
        stderr.write(f"smtpsend: {clean(r.address)} refused: {r.code} {clean(r.text)} (sent to the others)\n")
    log_outcome(account.logfile, shown_servers(servers), out.sender, count, EX_OK,
                f"sent ({len(rejected)} refused)" if rejected else "sent", warn)
    return EX_OK


# ---------------------------------------------------------------- main

def main(argv: Optional[list[str]] = None, stdin: Optional[IO[bytes]] = None, stdout: Optional[IO[str]] = None,
         stderr: Optional[IO[str]] = None) -> int:
    """Run the command; returns the exit status (docs/cli.md). Every
    failure is one status and a message on stderr, never a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    infile: IO[bytes] = stdin or sys.stdin.buffer
    out: IO[str] = stdout or sys.stdout
    err: IO[str] = stderr or sys.stderr
    verbose = "--trace" in argv or "-v" in argv
    logger = logging.getLogger("smtpsend")
    if not logger.handlers:
        # the command reports on stderr itself; without a handler, logging's
        # last resort would print the library's warnings a second time
        logger.addHandler(logging.NullHandler())
    try:
        if argv[:1] == ["serve"]:
            return serve(argv[1:], out, err)
        if argv[:1] == ["demo"]:
            from ._demo import demo
            return demo(out)
        refuse_password_flag(argv)
        p = parser()
        return send(parse_arguments(p, argv), p, infile, out, err)
    except CLIError as exc:
        if str(exc):
            err.write(f"smtpsend: {clean(str(exc))}\n")
        return exc.code
    except errors.SMTPError as exc:
        err.write(describe(exc) + "\n")
        return exit_code(exc)
    except ValueError as exc:           # UsageError, MimeError: the message or an address
        err.write(f"smtpsend: {clean(str(exc))}\n")
        return EX_DATAERR
    except OSError as exc:
        err.write(f"smtpsend: {clean(exc.strerror or str(exc))}"
                  f"{f': {clean(str(exc.filename))}' if exc.filename else ''}\n")
        return EX_IOERR
    except KeyboardInterrupt:
        err.write("smtpsend: interrupted\n")
        return EX_TEMPFAIL
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a status, never a traceback
        err.write(f"smtpsend: internal error ({type(exc).__name__}); run with --trace for details, "
                  "and please report it\n")
        if verbose:
            traceback.print_exc(file=err)
        return EX_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
