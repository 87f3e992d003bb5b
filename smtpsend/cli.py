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
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import mailbox
import math
import netrc
import os
import ssl
import stat
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import IO, Any, Callable, NoReturn, Optional, TextIO, cast

import mimecompose

from . import _errors as errors
from ._envelope import envelope, transmitted
from ._options import mechanisms as mechanism_list, parse_server, protocol_port, server_url, url_options
from ._url import is_url, parse_url
from ._sync import sendmessage
from ._esmtp import Delivery

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

SYSTEM_CONFIG = "/etc/smtpsend.conf"
PASSWORD_TIMEOUT = 120.0         # seconds a password command may take (a person may be typing a passphrase)
MAX_CONFIG = 1 << 20             # octets: a configuration file larger than this is refused
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


# ---------------------------------------------------------------- configuration files

def system_config_path() -> str:
    """The system-wide file: ``$SMTPSEND_SYSCONFIG``, else /etc/smtpsend.conf."""
    return os.environ.get("SMTPSEND_SYSCONFIG") or SYSTEM_CONFIG


def config_path() -> str:
    """The user's file: ``$SMTPSEND_CONFIG``, else ~/.config/smtpsend/config."""
    return os.environ.get("SMTPSEND_CONFIG") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "smtpsend", "config")


def msmtprc_paths() -> list[str]:
    """Where msmtp keeps a user's configuration, in the order we look."""
    return [os.path.expanduser("~/.msmtprc"),
            os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "msmtp", "config")]


# The keys smtpsend uses (msmtp's names; docs/cli.md maps each one).
KEYS = frozenset({
    "host", "port", "from", "from_full_name", "user", "password", "passwordeval", "password_timeout",
    "auth", "tls", "tls_starttls", "tls_trust_file", "tls_certcheck", "tls_nocertcheck", "tlspolicy",
    "mechanisms", "timeout", "domain", "dsn_notify", "dsn_return", "logfile", "protocol",
    "dkim_domain", "dkim_selector", "dkim_key", "dkim_algorithm", "dkim_headers", "dkim_canonicalization",
})
SECRET_KEYS = frozenset({"password", "passwordeval"})
CREDENTIAL_KEYS = frozenset({"user", "password", "passwordeval", "auth", "mechanisms"})
# msmtp keys smtpsend does not support. The set holds the values that are
# what smtpsend does anyway (accepted quietly); any other value is a warning.
MSMTP_UNSUPPORTED: dict[str, frozenset[str]] = {
    "add_missing_date_header": frozenset({"", "on"}), "add_missing_from_header": frozenset({"", "on"}),
    "aliases": frozenset(), "allow_from_override": frozenset({"", "on"}), "auto_from": frozenset({"off"}),
    "eval": frozenset(), "keepbcc": frozenset({"off"}), "logfile_time_format": frozenset(),
    "maildomain": frozenset(), "ntlmdomain": frozenset(), "remove_bcc_headers": frozenset({"", "on"}),
    "set_date_header": frozenset({"auto"}), "set_from_header": frozenset({"auto"}),
    "set_msgid_header": frozenset({"auto"}), "source_ip": frozenset(), "syslog": frozenset({"off"}),
    "tls_cert_file": frozenset(), "tls_crl_file": frozenset(), "tls_fingerprint": frozenset(),
    "tls_force_sslv3": frozenset({"off"}), "tls_host_override": frozenset(), "tls_key_file": frozenset(),
    "tls_min_dh_prime_bits": frozenset(), "tls_priorities": frozenset(),
    "undisclosed_recipients": frozenset({"off"}),
}
# msmtp keys whose absence would change where the mail goes: refused, never ignored.
MSMTP_REFUSED = {"proxy_host": "a SOCKS proxy", "proxy_port": "a SOCKS proxy", "socket": "a local socket"}

Setting = tuple[str, str]        # (value, "FILE:LINE")


@dataclass
class ConfigFile:
    """One parsed file: its accounts (``default`` included when the file
    names one or has ``defaults``) and whether it holds a secret."""

    path: str
    accounts: dict[str, dict[str, Setting]]
    holds_secret: bool


_BLANKS = " \t\r\v\f"


def unquote(text: str, where: str) -> str:
    """A value as msmtp writes it: as is, or in double quotes with ``\\"``
    and ``\\\\`` escaped inside. Raises CLIError (78) for a missing closing
    quote or text after it."""
    if not text.startswith('"'):
        return text
    out: list[str] = []
    i = 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            if text[i + 1:].strip(_BLANKS):
                raise CLIError(f"{where}: text after the closing quote", EX_CONFIG)
            return "".join(out)
        out.append(c)
        i += 1
    raise CLIError(f"{where}: the value has no closing quote", EX_CONFIG)


def parse_config(text: str, path: str, warn: Warn) -> ConfigFile:
    """msmtp's syntax: one ``key value`` per line (blanks or tabs between),
    ``#`` comments, ``defaults`` (settings for the accounts that follow),
    ``account NAME`` and ``account NAME : BASE[, BASE...]`` (starting from
    copies of earlier accounts); ``account default : NAME`` names the
    default. A key smtpsend does not know is a warning naming it. Raises
    CLIError (78) for a malformed line."""
    accounts: dict[str, dict[str, Setting]] = {}
    defaults: dict[str, Setting] = {}
    current = defaults
    holds_secret = False
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(_BLANKS)
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        split = next((i for i, c in enumerate(line) if c in _BLANKS), len(line))
        key, rest = line[:split], line[split:].strip(_BLANKS)
        if key == "defaults":
            if rest:
                raise CLIError(f"{where}: 'defaults' takes no value", EX_CONFIG)
            current = defaults
        elif key == "account":
            name, colon, bases = rest.partition(":")
            name = name.strip(_BLANKS)
            if not name or any(c in _BLANKS + ",\"" for c in name):
                raise CLIError(f"{where}: 'account' needs a name", EX_CONFIG)
            if name in accounts:
                raise CLIError(f"{where}: account {name!r} is defined twice", EX_CONFIG)
            current = dict(defaults)
            for base in (b.strip(_BLANKS) for b in bases.split(",")) if colon else ():
                if base not in accounts:
                    raise CLIError(f"{where}: account {name!r} starts from {base!r}, which is not defined above",
                                   EX_CONFIG)
                current.update(accounts[base])
            accounts[name] = current
        else:
            if key not in KEYS and key not in MSMTP_UNSUPPORTED and key not in MSMTP_REFUSED:
                warn(f"{where}: unknown key {key!r} (ignored)")
                continue
            current[key] = (unquote(rest, where), where)
            holds_secret = holds_secret or key in SECRET_KEYS
    if "default" not in accounts and defaults:
        accounts["default"] = defaults
    return ConfigFile(path, accounts, holds_secret)


def check_private(path: str, info: os.stat_result, strict: bool, warn: Warn) -> None:
    """A file holding a password or a password command must be the user's
    own and private: others who can write it can run commands as the user
    (``passwordeval``) or redirect the mail; others who can read it have the
    password. ``strict`` (smtpsend's own files) refuses a file others can
    read; msmtp's files get a warning for that, as msmtp gives. Raises
    CLIError (78)."""
    problems = []
    euid = os.geteuid() if hasattr(os, "geteuid") else None
    if euid is not None and info.st_uid not in (euid, 0):
        problems.append(f"it belongs to another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append("others can write to it")
    readable = bool(info.st_mode & (stat.S_IRGRP | stat.S_IROTH))
    if problems or (readable and strict):
        if readable:
            problems.append("others can read it")
        raise CLIError(f"{path} holds a password (password or passwordeval) but {' and '.join(problems)}; "
                       f"not using it: make it yours and private (chmod 600 {path})", EX_CONFIG)
    if readable:
        warn(f"{path} holds a password and others can read it (chmod 600 {path})")


def load_config(path: str, strict: bool, warn: Warn, optional: bool = False) -> Optional[ConfigFile]:
    """Read and parse one configuration file; None when it does not exist
    (or, when ``optional``, cannot be read: a warning). Raises CLIError (78)
    for a file that cannot be read, is not UTF-8, is malformed, or holds a
    password others can reach."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return None
    except OSError as exc:
        if optional:
            warn(f"cannot read {path} ({exc.strerror}); not using it")
            return None
        raise CLIError(f"cannot read the configuration file {path}: {exc.strerror}", EX_CONFIG) from None
    with fh:
        try:
            info = os.fstat(fh.fileno())
            data = fh.read(MAX_CONFIG + 1)
        except OSError as exc:
            raise CLIError(f"cannot read the configuration file {path}: {exc.strerror}", EX_CONFIG) from None
    if len(data) > MAX_CONFIG:
        raise CLIError(f"{path}: larger than {MAX_CONFIG} octets; not a configuration file", EX_CONFIG)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CLIError(f"{path}:{line}: not valid UTF-8 (the file must be UTF-8 text)", EX_CONFIG) from None
    config = parse_config(text, path, warn)
    if config.holds_secret:
        check_private(path, info, strict, warn)
    return config


def account_settings(args: argparse.Namespace, warn: Warn) -> dict[str, Setting]:
    """The settings of the chosen account (``--account``, else
    ``default``): the system file's, then the user's file's on top, key by
    key. When the user's account names a ``host``, the system file's
    credentials are dropped: they were written for another server. Raises
    CLIError: 64 for a missing ``--config``/``--msmtprc`` file or an
    unknown account, 78 for a file that cannot be used."""
    if args.config and args.msmtprc:
        raise CLIError("--config and --msmtprc exclude each other", EX_USAGE)
    system = load_config(system_config_path(), True, warn, optional=True)
    if args.msmtprc or args.config:
        path = args.msmtprc or args.config
        user = load_config(path, not args.msmtprc, warn)
        if user is None:
            raise CLIError(f"configuration file {path} not found", EX_USAGE)
    else:
        user = load_config(config_path(), True, warn)
        for path in msmtprc_paths() if user is None else ():
            user = load_config(path, False, warn)
            if user is not None:
                break
    name = args.account or "default"
    settings: dict[str, Setting] = {}
    found = False
    for config in (system, user):
        account = config.accounts.get(name) if config else None
        if account is None:
            continue
        found = True
        if config is user and "host" in account:
            settings = {k: v for k, v in settings.items() if k not in CREDENTIAL_KEYS}
        settings.update(account)
    if args.account and not found:
        files = [c.path for c in (system, user) if c]
        raise CLIError(f"no account {name!r} in {' or '.join(files)}" if files else
                       f"no account {name!r}: no configuration file ({config_path()}, "
                       f"{system_config_path()} or ~/.msmtprc)", EX_USAGE)
    return settings


@dataclass
class Account:
    """The chosen account's settings, checked and converted."""

    host: Optional[str] = None
    port: Optional[int] = None
    sender: Optional[str] = None
    fullname: Optional[str] = None
    user: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    passwordeval: Optional[str] = None
    password_timeout: Optional[float] = None
    auth: Optional[bool] = None
    usetls: Optional[bool] = None
    tlsimport: Optional[bool] = None
    tlspolicy: Optional[str] = None
    require_tls: bool = False            # msmtp's "tls on": TLS or nothing
    cafile: Optional[str] = None
    mechanisms: Optional[str] = None
    timeout: Optional[float] = None
    client: Optional[str] = None
    notify: Optional[str] = None
    ret: Optional[str] = None
    logfile: Optional[str] = None
    servers: list[str] = field(default_factory=list, repr=False)   # from $SMTPSEND_URL or $SMTPSEND_SERVER
    protocol: Optional[str] = None       # msmtp's "protocol": smtp or lmtp
    dkim: dict[str, Setting] = field(default_factory=dict)   # the dkim_* keys, checked by dkim_signers()


def _bool(value: str, where: str, key: str) -> bool:
    word = value.lower()
    if word in ("", "on", "yes", "true", "1"):
        return True
    if word in ("off", "no", "false", "0"):
        return False
    raise CLIError(f"{where}: {key} must be on or off, not {value!r}", EX_CONFIG)


def _seconds_value(value: str) -> Optional[float]:
    """A positive, finite number of seconds, or None."""
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _one_line(value: str) -> bool:
    return not any(c in value for c in "\r\n\0")


def _check_client(name: str) -> Optional[str]:
    """The EHLO name, or None when it is not a host name or address literal."""
    if not name or any(c.isspace() or c in "\0<>" for c in name):
        return None
    return name


def resolve_account(settings: dict[str, Setting], warn: Warn) -> Account:
    """Check and convert the settings (docs/cli.md maps msmtp's keys to
    ours). Raises CLIError (78) naming the file and line of a bad value."""
    account = Account()
    for key, (value, where) in settings.items():
        if key in MSMTP_REFUSED:
            raise CLIError(f"{where}: {key} ({MSMTP_REFUSED[key]}) is not supported by smtpsend; "
                           "not sending without it", EX_CONFIG)
        if key in MSMTP_UNSUPPORTED:
            if value.lower() not in MSMTP_UNSUPPORTED[key]:
                warn(f"{where}: msmtp's {key!r} is not supported by smtpsend (ignored)")
            continue
        if key == "host":
            try:
                parse_server(value, None, 25)
            except errors.UsageError:
                raise CLIError(f"{where}: malformed host {value!r}", EX_CONFIG) from None
            account.host = value
        elif key == "port":
            if not (value.isdigit() and value.isascii() and 0 < int(value) < 65536):
                raise CLIError(f"{where}: port must be a number from 1 to 65535, not {value!r}", EX_CONFIG)
            account.port = int(value)
        elif key == "from":
            found = mimecompose.parseaddress(value) if _one_line(value) else []
            if len(found) != 1 or found[0].error or not found[0].address:
                raise CLIError(f"{where}: from must be one address, not {value!r}", EX_CONFIG)
            account.sender = value
        elif key in ("from_full_name", "user", "domain"):
            if not value or not _one_line(value):
                raise CLIError(f"{where}: {key} must be one line of text", EX_CONFIG)
            if key == "domain" and _check_client(value) is None:
                raise CLIError(f"{where}: domain must be a host name, not {value!r}", EX_CONFIG)
            setattr(account, {"from_full_name": "fullname", "user": "user", "domain": "client"}[key], value)
        elif key == "password":
            account.password = value
        elif key == "passwordeval":
            account.passwordeval = value or None
        elif key in ("timeout", "password_timeout"):
            seconds = None if key == "timeout" and value == "off" else _seconds_value(value)
            if seconds is None and value != "off":
                raise CLIError(f"{where}: {key} must be a positive number of seconds, not {value!r}", EX_CONFIG)
            setattr(account, key, seconds)
        elif key == "auth":
            if value.lower() in ("", "on", "off"):
                account.auth = value.lower() != "off"
            elif value.replace("-", "").replace("_", "").isalnum():
                account.auth = True
                account.mechanisms = account.mechanisms or value.upper()
            else:
                raise CLIError(f"{where}: auth must be on, off or a mechanism, not {value!r}", EX_CONFIG)
        elif key == "mechanisms":
            account.mechanisms = value
        elif key == "tls":
            account.usetls = _bool(value, where, key)
            account.require_tls = account.usetls
        elif key == "tls_starttls":
            account.tlsimport = not _bool(value, where, key)
        elif key == "tls_trust_file":
            account.cafile = None if value in ("", "system") else os.path.expanduser(value)
        elif key in ("tls_certcheck", "tls_nocertcheck"):
            if _bool(value, where, key) == (key == "tls_nocertcheck"):
                warn(f"{where}: {key} {value}: smtpsend always verifies the server's certificate "
                     "(trust a private CA with tls_trust_file)")
        elif key == "tlspolicy":
            if value not in ("secure", "insecure"):
                raise CLIError(f"{where}: tlspolicy must be secure or insecure, not {value!r}", EX_CONFIG)
            account.tlspolicy = value
        elif key == "dsn_notify":
            account.notify = None if value == "off" else value
        elif key == "dsn_return":
            ret = {"off": None, "headers": "HDRS", "hdrs": "HDRS", "full": "FULL"}.get(value.lower(), "?")
            if ret == "?":
                raise CLIError(f"{where}: dsn_return must be off, headers or full, not {value!r}", EX_CONFIG)
            account.ret = ret
        elif key == "logfile":
            account.logfile = os.path.expanduser(value) if value else None
        elif key.startswith("dkim_"):
            account.dkim[key] = (value, where)
        elif key == "protocol":
            if value.lower() not in ("smtp", "lmtp"):
                raise CLIError(f"{where}: protocol must be smtp or lmtp, not {value!r}", EX_CONFIG)
            account.protocol = value.lower()
    if account.notify is not None:
        try:
            Delivery(notify=account.notify)
        except errors.UsageError:
            raise CLIError(f"{settings['dsn_notify'][1]}: dsn_notify must be off, never, or any of "
                           f"success, failure, delay, not {account.notify!r}", EX_CONFIG) from None
    if not account.usetls:
        account.tlsimport = None if account.usetls is None else False
    return account


# ---------------------------------------------------------------- the environment

# What the command reads from the environment (docs/cli.md, "Environment"):
# each one overrides the configuration files' setting, and a flag overrides it.
ENVIRONMENT = ("SMTPSEND_URL", "SMTPSEND_SERVER", "SMTPSEND_FROM", "SMTPSEND_USER", "SMTPSEND_PASSWORD",
               "SMTPSEND_TLSPOLICY", "SMTPSEND_CAFILE", "SMTPSEND_TIMEOUT", "SMTPSEND_CLIENT")
# The account's settings a server named by the environment replaces: they
# were written for the account's own server (with $SMTPSEND_SERVER, only
# the credentials, and only when the account names a host).
URL_REPLACES = {"host": None, "port": None, "usetls": None, "tlsimport": None, "require_tls": False,
                "tlspolicy": None, "user": None, "password": None, "passwordeval": None, "auth": None,
                "mechanisms": None, "protocol": None}
CREDENTIALS_REPLACED = {"user": None, "password": None, "passwordeval": None, "auth": None, "mechanisms": None}


def apply_environment(account: Account, environ: Optional[dict[str, str]] = None) -> Account:
    """The account with the environment's settings on top (an empty
    variable counts as unset): ``$SMTPSEND_URL`` (one server URL, or
    several separated by blanks, tried in order) or ``$SMTPSEND_SERVER``
    (HOST[:PORT]), and ``$SMTPSEND_FROM``, ``_USER``, ``_PASSWORD``,
    ``_TLSPOLICY``, ``_CAFILE``, ``_TIMEOUT``, ``_CLIENT``. Raises
    CLIError (64) naming the variable of a bad value (never showing a URL
    or a password)."""
    env = os.environ if environ is None else environ

    def get(name: str) -> Optional[str]:
        return env.get(name) or None
    urls, server = get("SMTPSEND_URL"), get("SMTPSEND_SERVER")
    if urls and server:
        raise CLIError("$SMTPSEND_URL and $SMTPSEND_SERVER exclude each other: set one of them", EX_USAGE)
    if urls:
        for n, entry in enumerate(urls.split(), 1):
            problem = _url_problem(entry)
            if problem:
                raise CLIError(f"$SMTPSEND_URL, URL {n}: {problem}", EX_USAGE)
        for name, value in URL_REPLACES.items():
            setattr(account, name, value)
        account.servers = urls.split()
    elif server:
        if "@" in server:
            raise CLIError("$SMTPSEND_SERVER holds an '@' (a user): put a server URL with the user in $SMTPSEND_URL "
                           "(the value is not shown: it may hold a password)", EX_USAGE)
        if is_url(server) or _server_value(server) is None:
            raise CLIError(f"$SMTPSEND_SERVER must be HOST, HOST:PORT or [ADDRESS]:PORT, not {clean(server)!r} "
                           "(a server URL goes in $SMTPSEND_URL)", EX_USAGE)
        if account.host:
            for name, value in CREDENTIALS_REPLACED.items():
                setattr(account, name, value)
        account.host, account.port, account.servers = None, None, [server]
    sender = get("SMTPSEND_FROM")
    if sender is not None:
        found = mimecompose.parseaddress(sender) if _one_line(sender) else []
        if len(found) != 1 or found[0].error or not found[0].address:
            raise CLIError(f"$SMTPSEND_FROM must be one address, not {clean(sender)!r}", EX_USAGE)
        account.sender = sender
    user = get("SMTPSEND_USER")
    if user is not None:
        if not _one_line(user):
            raise CLIError("$SMTPSEND_USER must be one line of text", EX_USAGE)
        account.user, account.auth = user, None
    password = get("SMTPSEND_PASSWORD")
    if password is not None:
        account.password, account.passwordeval = password, None
    policy = get("SMTPSEND_TLSPOLICY")
    if policy is not None:
        if policy not in ("secure", "insecure"):
            raise CLIError(f"$SMTPSEND_TLSPOLICY must be secure or insecure, not {clean(policy)!r}", EX_USAGE)
        account.tlspolicy = policy
    cafile = get("SMTPSEND_CAFILE")
    if cafile is not None:
        account.cafile = os.path.expanduser(cafile)
    timeout = get("SMTPSEND_TIMEOUT")
    if timeout is not None:
        account.timeout = _seconds_value(timeout)
        if account.timeout is None:
            raise CLIError(f"$SMTPSEND_TIMEOUT must be a positive number of seconds, not {clean(timeout)!r}",
                           EX_USAGE)
    client = get("SMTPSEND_CLIENT")
    if client is not None:
        account.client = _check_client(client)
        if account.client is None:
            raise CLIError(f"$SMTPSEND_CLIENT must be a host name or address literal, not {clean(client)!r}",
                           EX_USAGE)
    return account


def _url_problem(entry: str) -> Optional[str]:
    """What is wrong with a server URL (parse_url's UsageError, which never
    shows the URL), or None."""
    problem: Optional[str] = None
    try:
        parse_url(entry)
    except errors.UsageError as exc:
        problem = str(exc)
    return problem


# ---------------------------------------------------------------- arguments

def _flag_type(check: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    """An argparse type: ``check(text)`` returns the value or None."""
    def convert(text: str) -> Any:
        value = check(text)
        if value is None:
            raise argparse.ArgumentTypeError(f"{what}, not {text!r}")
        return value
    return convert


def _server_value(text: str) -> Optional[str]:
    try:
        parse_server(text, None, 25)
    except errors.UsageError:
        return None
    return text


def _server_flag(text: str) -> str:
    """The argparse type of --server: HOST[:PORT], [ADDRESS]:PORT or a
    server URL without a password (a command line is visible to every
    user of the machine: the password goes elsewhere). The error never
    shows a URL."""
    if not is_url(text):
        if "@" in text:
            raise argparse.ArgumentTypeError("an '@' names a user: write the server as a URL, smtp://user@host "
                                             "(the value is not shown: it may hold a password)")
        if _server_value(text) is None:
            raise argparse.ArgumentTypeError(f"must be HOST, HOST:PORT, [ADDRESS]:PORT or a server URL, "
                                             f"not {clean(text)!r}")
        return text
    problem = _url_problem(text)
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
    if not sep or not name or not all(33 <= ord(c) <= 126 for c in name) or not _one_line(value):
        return None
    return name, value


DKIM_ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
DKIM_CANONICALIZATIONS = ("relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple")
SECONDS = _flag_type(_seconds_value, "must be a positive number of seconds")
ONE_LINE = _flag_type(lambda t: t if _one_line(t) else None, "must be one line (no CR, LF or NUL)")
PORT = _flag_type(lambda t: int(t) if t.isdigit() and t.isascii() and int(t) < 65536 else None,
                  "must be a port number from 0 to 65535")


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
                   type=_flag_type(_header_value, "must be 'Name: value' on one line"),
                   help="add a header field (repeatable)")
    n = p.add_argument_group("connection (every sendmessage option)")
    n.add_argument("--server", action="append", default=[], metavar="HOST[:PORT]|URL", type=_server_flag,
                   help="server to try, in order (repeatable): HOST[:PORT], or a URL such as "
                        "smtps://user@host (no password: see $SMTPSEND_URL)")
    n.add_argument("--client", type=_flag_type(_check_client, "must be a host name or address literal"),
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
    n.add_argument("--priority", type=_flag_type(_priority_value, "must be a number from -9 to 9"),
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


def serve_parser() -> argparse.ArgumentParser:
    """The parser of ``smtpsend serve`` (never abbreviated either)."""
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


def parse_arguments(p: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argparse, with its exit turned into CLIError: 64 for a usage error
    (argparse has printed the usage), 0 for --help and --version."""
    try:
        return p.parse_args(argv)
    except SystemExit as exit_:
        raise CLIError("", EX_OK if exit_.code in (0, None) else EX_USAGE) from None


def refuse_password_flag(argv: list[str]) -> None:
    """``--password`` does not exist on purpose: say why, and what to use."""
    for arg in itertools.takewhile(lambda a: a != "--", argv):
        if arg == "--password" or arg.startswith("--password="):
            raise CLIError("there is no --password flag: a command line is visible to every user of the machine. "
                           "Use --password-command CMD, passwordeval in the configuration file, "
                           "$SMTPSEND_PASSWORD or ~/.netrc", EX_USAGE)


# ---------------------------------------------------------------- credentials

def run_password_command(command: str, timeout: float, what: str, *, env: Optional[dict[str, str]] = None,
                         noun: str = "password") -> str:
    """Run ``command`` through the shell (stdin empty, stderr the user's,
    ``env`` the environment if given) and return its output less one
    trailing LF or CRLF. Raises CLIError (77) when it fails, takes longer
    than ``timeout`` seconds, prints nothing, several lines, or text that
    is not UTF-8; the message never shows the output (the ``noun``, a
    password or a token)."""
    try:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env)
    except OSError as exc:
        raise CLIError(f"cannot run the {what}: {exc.strerror}", EX_NOPERM) from None
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CLIError(f"the {what} did not finish within {timeout:g} seconds (set --password-timeout, "
                       "or password_timeout in the configuration file)", EX_NOPERM) from None
    finally:
        if proc.returncode is None:         # timed out or interrupted: do not leave it running
            proc.kill()
            if proc.stdout:
                proc.stdout.close()
            proc.wait()
    if proc.returncode != 0:
        raise CLIError(f"the {what} failed (exit status {proc.returncode})", EX_NOPERM)
    if output.endswith(b"\r\n"):
        output = output[:-2]
    elif output.endswith(b"\n"):
        output = output[:-1]
    if not output:
        raise CLIError(f"the {what} printed no {noun}", EX_NOPERM)
    if any(c in output for c in b"\r\n\0"):
        raise CLIError(f"the {what} printed more than one line: it must print only the {noun} "
                       "(e.g. pass show NAME | head -n 1)", EX_NOPERM)
    try:
        return output.decode("utf-8")
    except UnicodeDecodeError:
        raise CLIError(f"the {what} printed a {noun} that is not UTF-8", EX_NOPERM) from None


def token_command(command: str, timeout: float) -> Callable[[str, bool], str]:
    """``--token-command``: a ``token=`` callable that runs ``command``
    through the shell with $SMTPSEND_TOKEN_USER (the user name) and
    $SMTPSEND_TOKEN_REFRESH ("1" when the server rejected the last token
    and a new one is wanted, else "0") and returns its one line of output.
    Its failures are CLIError (see run_password_command); smtpsend reports
    them as an AuthenticationError caused by it."""
    def token(username: str, refresh: bool) -> str:
        env = dict(os.environ, SMTPSEND_TOKEN_USER=username, SMTPSEND_TOKEN_REFRESH="1" if refresh else "0")
        return run_password_command(command, timeout, "token command", env=env, noun="token")
    return token


class Credentials:
    """The user name, and a password for each server: one given for all
    servers (--password-command, $SMTPSEND_PASSWORD, passwordeval, password),
    else the ~/.netrc entry of that server's own host. A password looked up
    for one host is never sent to another."""

    def __init__(self, args: argparse.Namespace, account: Account, warn: Warn, urls_name_users: bool = False
                 ) -> None:
        # $SMTPSEND_USER and $SMTPSEND_PASSWORD are in the account (apply_environment)
        user = args.user or (account.user if account.auth is not False else None)
        if args.password_command and not user and not urls_name_users:
            raise CLIError("--password-command needs a user name: --user NAME, or user in the configuration file",
                           EX_USAGE)
        if args.token_command and not user and not urls_name_users:
            raise CLIError("--token-command needs a user name: --user NAME, or user in the configuration file",
                           EX_USAGE)
        self.user: Optional[str] = user or None
        self._warn = warn
        # --token-command: run when a connection needs the token (once per connection, again to refresh)
        self.token: Optional[Callable[[str, bool], str]] = None
        if args.token_command:
            self.token = token_command(args.token_command,
                                       args.password_timeout or account.password_timeout or PASSWORD_TIMEOUT)
        self._common: Optional[str] = None
        self._netrc: Optional[dict[str, tuple[str, Optional[str]]]] = None
        if self.user is None and not urls_name_users:   # a server URL may name the user
            return
        timeout = args.password_timeout or account.password_timeout or PASSWORD_TIMEOUT
        if args.password_command:
            self._common = run_password_command(args.password_command, timeout, "password command")
        elif account.passwordeval:
            self._common = run_password_command(account.passwordeval, timeout, "passwordeval command")
        elif account.password is not None:
            self._common = account.password
        if self._common is not None:
            _check_password(self._common)

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=<redacted>)"

    def _netrc_entries(self) -> dict[str, tuple[str, Optional[str]]]:
        if self._netrc is None:
            self._netrc = {}
            try:
                found = netrc.netrc()
            except FileNotFoundError:
                return self._netrc
            except (netrc.NetrcParseError, OSError) as exc:
                line = getattr(exc, "lineno", None)
                self._warn(f"~/.netrc not used: it cannot be parsed{f' (line {line})' if line else ''}, "
                           "or others can read it")
                return self._netrc
            # only "machine" entries: a "default" entry would hand the password to any server
            self._netrc = {host.lower(): (login, password) for host, (login, _, password) in found.hosts.items()}
        return self._netrc

    def for_server(self, host: str, user: Optional[str] = None) -> tuple[Optional[str], Optional[str]]:
        """(user, password) for ``host`` -- ``user`` (a server URL's) or
        the user name; password None when there is none."""
        user = user or self.user
        if user is None:
            return None, None
        if self._common is not None:
            return user, self._common
        login, password = self._netrc_entries().get(host.lower(), (None, None))
        if login == user and password is not None:
            _check_password(password)
            return user, password
        return user, None


def _check_password(password: str) -> None:
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise CLIError("the password is not valid UTF-8 text", EX_NOPERM) from None


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
        lines += [f"  {_where(a.server, a.port)}, at {a.stage}: {_indented(a.error)}" for a in exc.attempts]
        return "\n".join(lines)
    if isinstance(exc, errors.RecipientsRefused):
        where = _where(exc.server, exc.port)
        if exc.delivered:   # LMTP: refused after the data, the others have the message
            lines = [f"smtpsend: delivered by {where} to {', '.join(clean(a) for a in exc.delivered)} only; "
                     "refused after the message data:"]
        else:
            lines = [f"smtpsend: recipients refused by {where}; nothing was sent:"]
        lines += [f"  {clean(r.address)}: {r.code} {clean(r.text)}" for r in exc.rejected]
        return "\n".join(lines)
    return f"smtpsend: {_indented(exc)}"


def _where(server: object, port: object) -> str:
    """``host port N`` for the terminal, or a Unix socket's path (port 0)."""
    return clean(str(server)) + (f" port {port}" if port else "")


def _indented(error: BaseException) -> str:
    """An error's text for the terminal: cleaned, a hint on a line of its own indented;
    a failed --token-command (the cause of an AuthenticationError) says why."""
    lines = str(error).split("\n")
    if isinstance(error.__cause__, CLIError):
        lines[0] += f": {error.__cause__}"
    return "\n    ".join(clean(line) for line in lines)


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
            print(f"* {_where(event.data['server'], event.data['port'])} failed at "
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


# ---------------------------------------------------------------- serve

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
        if not sep or not name or not _one_line(item):
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
