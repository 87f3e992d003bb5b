"""The ``smtpsend`` command's configuration: the files, the account, the
environment.

``$SMTPSEND_SYSCONFIG`` (default /etc/smtpsend.conf), then the user's file
(``--config``, ``$SMTPSEND_CONFIG``, or ~/.config/smtpsend/config; without
one, ~/.msmtprc), the user's settings winning, both in msmtp's syntax and
key names (parse_config, account_settings); the chosen account's settings
checked and converted (resolve_account, Account); the environment on top
(apply_environment). Also the value checks the flags share (one_line,
seconds_value, check_client, server_value, url_problem).

Failures are CLIError: 78 for a file that cannot be used (naming FILE:LINE),
64 for a missing file, an unknown account or a bad environment variable.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
from dataclasses import dataclass, field
from typing import Optional

import mimecompose

from . import _errors as errors
from ._cliexit import EX_CONFIG, EX_USAGE, CLIError, Warn, clean
from ._esmtp import Delivery
from ._options import parse_server
from ._url import is_url, parse_url

SYSTEM_CONFIG = "/etc/smtpsend.conf"
MAX_CONFIG = 1 << 20             # octets: a configuration file larger than this is refused


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


def seconds_value(value: str) -> Optional[float]:
    """A positive, finite number of seconds, or None."""
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def one_line(value: str) -> bool:
    """No CR, LF or NUL in ``value``."""
    return not any(c in value for c in "\r\n\0")


def check_client(name: str) -> Optional[str]:
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
            found = mimecompose.parseaddress(value) if one_line(value) else []
            if len(found) != 1 or found[0].error or not found[0].address:
                raise CLIError(f"{where}: from must be one address, not {value!r}", EX_CONFIG)
            account.sender = value
        elif key in ("from_full_name", "user", "domain"):
            if not value or not one_line(value):
                raise CLIError(f"{where}: {key} must be one line of text", EX_CONFIG)
            if key == "domain" and check_client(value) is None:
                raise CLIError(f"{where}: domain must be a host name, not {value!r}", EX_CONFIG)
            setattr(account, {"from_full_name": "fullname", "user": "user", "domain": "client"}[key], value)
        elif key == "password":
            account.password = value
        elif key == "passwordeval":
            account.passwordeval = value or None
        elif key in ("timeout", "password_timeout"):
            seconds = None if key == "timeout" and value == "off" else seconds_value(value)
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
            problem = url_problem(entry)
            if problem:
                raise CLIError(f"$SMTPSEND_URL, URL {n}: {problem}", EX_USAGE)
        for name, value in URL_REPLACES.items():
            setattr(account, name, value)
        account.servers = urls.split()
    elif server:
        if "@" in server:
            raise CLIError("$SMTPSEND_SERVER holds an '@' (a user): put a server URL with the user in $SMTPSEND_URL "
                           "(the value is not shown: it may hold a password)", EX_USAGE)
        if is_url(server) or server_value(server) is None:
            raise CLIError(f"$SMTPSEND_SERVER must be HOST, HOST:PORT or [ADDRESS]:PORT, not {clean(server)!r} "
                           "(a server URL goes in $SMTPSEND_URL)", EX_USAGE)
        if account.host:
            for name, value in CREDENTIALS_REPLACED.items():
                setattr(account, name, value)
        account.host, account.port, account.servers = None, None, [server]
    sender = get("SMTPSEND_FROM")
    if sender is not None:
        found = mimecompose.parseaddress(sender) if one_line(sender) else []
        if len(found) != 1 or found[0].error or not found[0].address:
            raise CLIError(f"$SMTPSEND_FROM must be one address, not {clean(sender)!r}", EX_USAGE)
        account.sender = sender
    user = get("SMTPSEND_USER")
    if user is not None:
        if not one_line(user):
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
        account.timeout = seconds_value(timeout)
        if account.timeout is None:
            raise CLIError(f"$SMTPSEND_TIMEOUT must be a positive number of seconds, not {clean(timeout)!r}",
                           EX_USAGE)
    client = get("SMTPSEND_CLIENT")
    if client is not None:
        account.client = check_client(client)
        if account.client is None:
            raise CLIError(f"$SMTPSEND_CLIENT must be a host name or address literal, not {clean(client)!r}",
                           EX_USAGE)
    return account


def url_problem(entry: str) -> Optional[str]:
    """What is wrong with a server URL (parse_url's UsageError, which never
    shows the URL), or None."""
    problem: Optional[str] = None
    try:
        parse_url(entry)
    except errors.UsageError as exc:
        problem = str(exc)
    return problem


def server_value(text: str) -> Optional[str]:
    """``text`` when it is HOST, HOST:PORT or [ADDRESS]:PORT, else None."""
    try:
        parse_server(text, None, 25)
    except errors.UsageError:
        return None
    return text
