"""The caller's options, checked and turned into what the dialogue takes.

One place for what sendmessage, asendmessage, connect() and Client share:
the types of their options, and the helpers that check them (UsageError,
a ValueError, for a value that cannot be used; TypeError for one of the
wrong shape) before anything is sent.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
from typing import Any, Callable, Iterable, Mapping, Optional, TypedDict, Union, cast

from mimecompose.args import HeaderArg, one_or_many

from ._channel import Event
from ._envelope import fqdn
from ._errors import UsageError
from ._esmtp import Delivery, Notify
from ._sasl import check_credentials
from ._secret import Secret, wrap
from ._setup import Policy

__all__ = [
    "ConnectOptions", "Debug", "EventHook", "HeaderArg", "Mechanisms", "MonitorHook", "Notify", "Orcpt",
    "Policy", "Ports", "ProgressHook", "Recipients", "Servers", "client_name", "credentials", "delivery",
    "implicit_tls", "mechanisms", "parse_server", "port_list", "port_number", "server_list", "tls_policy",
    "tracer",
]

logger = logging.getLogger("smtpsend")

# The types of the public options.
Servers = Union[str, Iterable[str]]
Ports = Union[int, str, Iterable[Union[int, str, None]], None]
Recipients = Union[str, Iterable[str], None]
Mechanisms = Union[str, Iterable[str], None]
Debug = Union[bool, Callable[[str], None]]
Orcpt = Union[bool, Mapping[str, str], None]
EventHook = Callable[[Event], None]
MonitorHook = Callable[[str, str], None]
ProgressHook = Callable[[int, int], None]


class ConnectOptions(TypedDict, total=False):
    """The keyword options of :func:`smtpsend.connect` (after ``port``), for
    the one-shot commands (verify, expand, smtp_help, etrn) that pass them on."""

    client: Optional[str]
    usetls: bool
    tlsimport: Optional[bool]
    tlspolicy: Policy
    ssl_context: Optional[ssl.SSLContext]
    username: Optional[str]
    password: Optional[str]
    token: Optional[str]
    mechanisms: Mechanisms
    timeout: Optional[float]
    maxsecs: float
    debug: Debug
    events: Optional[EventHook]
    monitor: Optional[MonitorHook]
    monitor_headers: bool
    progress: Optional[ProgressHook]


def parse_server(entry: str, port: Optional[int], default: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port);
    ``port`` when the entry names none, else ``default``. UsageError for a
    malformed entry or port."""
    entry = entry.strip()
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket:
            raise UsageError(f"malformed server {entry!r}: missing ']'")
        if rest.startswith(":"):
            port = port_number(rest[1:])
        elif rest:
            raise UsageError(f"malformed server {entry!r}")
    elif entry.count(":") == 1:
        host, text = entry.split(":")
        port = port_number(text)
    else:
        host = entry
    if not host or any(c in host for c in " \r\n\0/"):
        raise UsageError(f"malformed server {entry!r}")
    return host, port if port else default


def server_list(servers: Servers) -> list[str]:
    """The servers to try, blank entries left out; UsageError for none."""
    names = [str(s) for s in one_or_many(servers, "servers=")]
    names = [s for s in names if s.strip()]
    if not names:
        raise UsageError("no servers given")
    return names


def port_list(ports: Ports) -> list[Optional[int]]:
    """One port (or None: the default) per server, in tandem; UsageError
    for a port that is not a number from 1 to 65535."""
    return [port_number(p) if p not in (None, "") else None
            for p in one_or_many(ports, "ports=", single=(int, str))]


def port_number(text: object) -> int:
    """A port (int or digits) from 1 to 65535; UsageError otherwise."""
    try:
        port: int = int(text)   # type: ignore[call-overload]  # any value: refused below if not a number
    except (TypeError, ValueError):
        raise UsageError(f"port must be a number, not {text!r}") from None
    if not 0 < port < 65536:
        raise UsageError(f"port {port} out of range")
    return port


def _log_line(line: str) -> None:
    """A transcript line to the smtpsend logger at DEBUG."""
    logger.debug("%s", line)


def _log_line_always(line: str) -> None:
    """A transcript line to the smtpsend logger's handlers, whatever its level (debug=True)."""
    if not logger.disabled:
        logger.handle(logger.makeRecord(logger.name, logging.DEBUG, __file__, 0, "%s", (line,), None))


def tracer(debug: object) -> tuple[Optional[Callable[[str], None]], bool]:
    """Where the transcript goes, decided once per call: ``(trace, notes)``.

    The smtpsend logger gets the redacted transcript at DEBUG, with
    smtpsend's "* " notes, whenever it is enabled for DEBUG -- or always
    with ``debug=True`` (the records then bypass the logger's level; its
    handlers still decide). ``debug=callable`` also gets the protocol lines
    ("> " sent, "< " received). ``notes`` says whether "* " lines are wanted.
    When nothing wants the transcript, ``trace`` is None and no line is built.
    """
    # a callable debug= takes each line (the public type, Debug, says so)
    callback = cast(Callable[[str], None], debug) if callable(debug) else None
    to_log: Optional[Callable[[str], None]] = None
    if logger.isEnabledFor(logging.DEBUG):
        to_log = _log_line
    elif debug is True:
        to_log = _log_line_always
    if to_log is None:
        return callback, False
    if callback is None:
        return to_log, True
    log_line, lines = to_log, callback

    def both(line: str) -> None:
        log_line(line)
        if not line.startswith("* "):   # a debug callable gets protocol lines only
            lines(line)
    return both, True


def credentials(username: Optional[str], password: object, token: object
                ) -> tuple[Optional[Secret], Optional[Secret]]:
    """Check the credentials before connecting (UsageError that never
    shows a password or token; see smtpsend._sasl.check_credentials) and
    return the password and token as Secret."""
    secret_password, secret_token = _secret(password, "password"), _secret(token, "token")
    check_credentials(username, secret_password, secret_token)
    if username is None and (password is not None or token is not None):
        raise UsageError("password= or token= needs username=")
    return secret_password, secret_token


def _secret(value: object, name: str) -> Optional[Secret]:
    if value is not None and not isinstance(value, (str, Secret)):
        raise UsageError(f"{name}= must be a str, not {type(value).__name__}")
    return wrap(value)


def implicit_tls(tlsimport: Optional[bool], usetls: bool, port: int) -> bool:
    """Implicit TLS for this port: as forced by ``tlsimport``, else on port
    465 (RFC 8314 section 3.3 assigns it to submission over implicit TLS)."""
    if tlsimport is not None:
        return bool(tlsimport)
    return usetls and port == 465


def client_name(client: Optional[str], servers: list[str]) -> str:
    """The name to give in EHLO: ``client``, else (as tcllib) "localhost"
    when talking to localhost only, else this host's fully qualified name
    (or "localhost" when it has none). UsageError for a name that cannot be
    sent."""
    if client is None:
        if all(s.strip().lower() in ("localhost", "127.0.0.1", "[::1]") for s in servers):
            return "localhost"
        client = fqdn()
        if "." not in client:
            client = "localhost"
    if not client or any(c.isspace() or c in "\0<>" for c in client):
        raise UsageError(f"client= must be a host name or address literal, not {client!r}")
    return client


def mechanisms(value: Mechanisms) -> Optional[list[str]]:
    """The SASL mechanisms to allow: a list, or a string of names separated
    by spaces or commas; None for every one."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    return [str(m) for m in value]


def tls_policy(tlspolicy: object) -> Policy:
    """``tlspolicy`` checked: None, "secure", "insecure" or a callable."""
    if tlspolicy is None or tlspolicy in ("secure", "insecure"):
        return str(tlspolicy) if tlspolicy is not None else None
    if callable(tlspolicy):
        # a callable tlspolicy= is called as policy(code, message) (the public type, Policy)
        return cast(Callable[[int, str], str], tlspolicy)
    raise UsageError(f"tlspolicy must be None, 'secure', 'insecure' or a callable, not {tlspolicy!r}")


def delivery(given: Optional[Delivery], **options: Any) -> Delivery:
    """The per-message options: ``given`` (delivery=) or the individual
    options (``atleastone``, ``ret``...), never both. Raises UsageError
    naming the individual options given (not at their defaults) beside
    ``delivery=``, TypeError for a ``delivery`` that is not a Delivery or an
    unknown option."""
    known = {f.name for f in dataclasses.fields(Delivery)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown delivery option(s): {', '.join(unknown)}")
    if given is None:
        return Delivery(**options)
    if not isinstance(given, Delivery):
        raise TypeError(f"delivery= takes a smtpsend.Delivery, not a {type(given).__name__}")
    defaults = Delivery()
    named = [name for name, value in options.items() if value != getattr(defaults, name)]
    if named:
        raise UsageError(f"delivery= and {', '.join(n + '=' for n in named)} exclude each other: "
                         "put every option in the Delivery")
    return given
