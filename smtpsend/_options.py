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
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, TypedDict, Union, cast

from mimecompose import DKIMSigner
from mimecompose.args import HeaderArg, one_or_many, require_str

from ._channel import Event
from ._envelope import fqdn
from ._errors import UsageError
from ._esmtp import Delivery, Notify
from ._sasl import TokenFunction, check_credentials
from ._secret import Secret, wrap
from ._setup import Policy
from ._url import ServerURL, is_url, parse_url, shown

__all__ = [
    "ConnectOptions", "Debug", "EventHook", "Token", "HeaderArg", "Mechanisms", "MonitorHook", "Notify", "Orcpt",
    "Policy", "Ports", "ProgressHook", "Recipients", "Servers", "check_port", "client_name", "credentials",
    "delivery", "implicit_tls", "is_unix_socket", "local_usetls", "mechanisms", "parse_server", "port_list",
    "port_number", "protocol_name", "protocol_port", "server_list", "tls_policy", "tracer",
    "ServerURL", "Target", "server_url", "shown", "url_options",
]

logger = logging.getLogger("smtpsend")

# The types of the public options.
# a servers= entry: "host[:port]", a socket path, a server URL, or a ServerURL (smtpsend.parse_url)
Servers = Union[str, ServerURL, Iterable[Union[str, ServerURL]]]
Ports = Union[int, str, Iterable[Union[int, str, None]], None]
Recipients = Union[str, Iterable[str], None]
Mechanisms = Union[str, Iterable[str], None]
Debug = Union[bool, Callable[[str], None]]
Orcpt = Union[bool, Mapping[str, str], None]
EventHook = Callable[[Event], None]
MonitorHook = Callable[[str, str], None]
ProgressHook = Callable[[int, int], None]
# token=: a bearer token, or a callable token(username, refresh) -> str asked
# once per connection (and once more with refresh=True when the server
# rejects the token as invalid; see smtpsend._sasl.TokenSource)
Token = Union[str, Callable[[str, bool], str], None]


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
    token: Token
    mechanisms: Mechanisms
    timeout: Optional[float]
    maxsecs: float
    debug: Debug
    events: Optional[EventHook]
    monitor: Optional[MonitorHook]
    monitor_headers: bool
    progress: Optional[ProgressHook]
    dkim: Union[DKIMSigner, Sequence[DKIMSigner], None]
    protocol: str


# RFC 2033 section 5 / IANA: LMTP has port 24, and must never use port 25.
LMTP_PORT = 24


def protocol_name(protocol: object) -> str:
    """``protocol`` checked: "smtp" or "lmtp" (RFC 2033); UsageError naming
    anything else."""
    if protocol in ("smtp", "lmtp"):
        return str(protocol)
    raise UsageError(f"protocol must be 'smtp' or 'lmtp', not {protocol!r}")


def protocol_port(protocol: str, tlsimport: Optional[bool]) -> int:
    """The port for a server entry that names none: 24 for LMTP (IANA's
    port for it), else 465 with ``tlsimport=True``, else 25."""
    if protocol == "lmtp":
        return LMTP_PORT
    return 465 if tlsimport else 25


def check_port(protocol: str, port: int, entry: str) -> None:
    """UsageError for LMTP on port 25: RFC 2033 section 5 forbids it (an
    SMTP server there would take LMTP's replies for its own)."""
    if protocol == "lmtp" and port == 25:
        raise UsageError(f"LMTP must not be used on port 25 (RFC 2033 section 5): {entry!r}")


def is_unix_socket(entry: str) -> bool:
    """True for a server entry that is the path of a Unix socket: it starts
    with "/" (``/run/dovecot/lmtp``)."""
    return entry.startswith("/")


def local_usetls(host: str, usetls: bool, tlsimport: Optional[bool], tlspolicy: Policy) -> bool:
    """Whether to use TLS with ``host``: over a Unix socket only when
    required (``tlsimport=True`` or ``tlspolicy="secure"``) -- the kernel
    already keeps a local socket private, so STARTTLS there is pointless;
    elsewhere ``usetls``."""
    if is_unix_socket(host):
        return usetls and (bool(tlsimport) or tlspolicy == "secure")
    return usetls


def parse_server(entry: str, port: Optional[int], default: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port);
    ``port`` when the entry names none, else ``default``. A Unix socket's
    path (see :func:`is_unix_socket`) -> (path, 0). UsageError for a
    malformed entry or port, or a port given for a Unix socket."""
    entry = entry.strip()
    if is_unix_socket(entry):
        if any(c in entry for c in "\r\n\0"):
            raise UsageError(f"malformed Unix socket path {entry!r}")
        if port:
            raise UsageError(f"server {entry!r} is a Unix socket: it takes no port (ports= gave {port})")
        return entry, 0
    if port:
        port = port_number(port)   # 1 to 65535: the resolver would take 70000 as 4464
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


def server_list(servers: Servers) -> list[Union[str, ServerURL]]:
    """The servers to try, blank entries left out; UsageError for none. A
    ServerURL stays one (its password is a Secret), anything else is str()
    (an ipaddress address, say) -- but None or a number is a TypeError, not
    the host "None" or "7"."""
    entries = one_or_many(servers, "servers=", single=(str, ServerURL))
    for entry in entries:
        if entry is None or isinstance(entry, (int, float)):
            raise TypeError(f"servers= entries are host names, addresses or URLs, not {entry!r}")
    names = [s if isinstance(s, ServerURL) else str(s) for s in entries]
    names = [s for s in names if isinstance(s, ServerURL) or s.strip()]
    if not names:
        raise UsageError("no servers given")
    return names


def _place(entry: Union[str, ServerURL]) -> str:
    """The host[:port] or socket path an entry names (for client_name)."""
    if isinstance(entry, ServerURL):
        return entry.server
    url: Optional[ServerURL] = None
    if is_url(entry):
        try:
            url = parse_url(entry.strip())
        except UsageError:
            pass
    return url.server if url is not None else entry


@dataclasses.dataclass(frozen=True)
class Target:
    """One server to try: where, whether with implicit TLS, and the
    Session options its URL sets for it alone (``tlspolicy``,
    ``username``, ``password``, ``mechanisms``, ``timeouts``,
    ``protocol``: see :func:`url_options`); ``connect_timeout`` is the
    URL's, None for the call's."""

    host: str
    port: int
    implicit_tls: bool
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    connect_timeout: Optional[float] = None


def server_url(entry: Union[str, ServerURL]) -> Optional[ServerURL]:
    """The ServerURL of a ``servers=`` entry that is a URL (holds "://")
    or is one; None for a plain ``host[:port]`` entry. UsageError for a
    bad URL, and for an entry with an "@" that is not a URL (a user and
    password without a scheme: the error does not show it)."""
    if isinstance(entry, ServerURL):
        return entry
    if is_url(entry):
        return parse_url(entry.strip())
    if "@" in entry:   # "user:password@host" without a scheme: refused, and never shown
        raise UsageError("a server entry with an '@' names a user: write it as a URL, smtp://user@host "
                         "(the entry is not shown: it may hold a password)")
    return None


def url_options(url: ServerURL, *, usetls: bool, tlsimport: Optional[bool], tlspolicy: Policy,
                username: Optional[str], password: object, timeout: Optional[float],
                mechanisms: Optional[list[str]], protocol: str) -> dict[str, Any]:
    """What ``url`` sets for its server, as keyword arguments (those of
    ServerURL.keywords()), checked against the call's own.

    A URL's settings apply to its server only. A setting given both ways
    must agree: UsageError naming the URL's part and the keyword that
    contradict each other (``tlsimport=False`` with smtps://, ``usetls=False``
    with a URL that requires TLS, a different ``tlspolicy=``, ``timeout=``
    or ``mechanisms=``, ``protocol="lmtp"`` with smtp://). Credentials come
    from one place: a URL's user and ``username=``, or a URL's password and
    ``password=``, are a UsageError even when equal (the message never
    shows them)."""
    scheme = f"the URL's scheme {url.scheme}://"
    if url.username is not None and username is not None:
        raise UsageError("a user name in the URL and username= exclude each other: give the credentials one way")
    if url.password is not None and password is not None:
        raise UsageError("a password in the URL and password= exclude each other: give the credentials one way")
    if (url.tlsimport or url.tlspolicy == "secure") and not usetls:
        raise UsageError(f"usetls=False contradicts {scheme if url.tlsimport else 'the URL'}, which requires TLS")
    if url.tlsimport is not None and tlsimport is not None and bool(tlsimport) != url.tlsimport:
        raise UsageError(f"tlsimport={tlsimport} contradicts {scheme}")
    if url.tlspolicy is not None and tlspolicy is not None and tlspolicy != url.tlspolicy:
        source = "the URL's tlspolicy option" if "tlspolicy" in url.options else scheme
        raise UsageError(f"tlspolicy= contradicts {source} (tlspolicy {url.tlspolicy})")
    if url.timeout is not None and timeout is not None and timeout != url.timeout:
        raise UsageError("timeout= contradicts the URL's timeout option")
    if (url.mechanisms is not None and mechanisms is not None
            and [m.upper() for m in mechanisms] != list(url.mechanisms)):
        raise UsageError("mechanisms= contradicts the URL's mechanisms option")
    if protocol != "smtp" and url.protocol != protocol:
        raise UsageError(f"protocol={protocol!r} contradicts {scheme}")
    return url.keywords()


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


def credentials(username: Optional[str], password: object, token: object, *, urls_name_users: bool = False
                ) -> tuple[Optional[Secret], Union[Secret, TokenFunction, None]]:
    """Check the credentials before connecting (UsageError that never
    shows a password or token; see smtpsend._sasl.check_credentials) and
    return the password and token as Secret -- a token callable as it is,
    called when a connection needs its token. ``urls_name_users``: a
    server URL gives the user name, so a password or token without
    ``username`` is checked for each server instead (plan())."""
    secret_password = _secret(password, "password")
    secret_token = cast(TokenFunction, token) if callable(token) else _secret(token, "token")
    check_credentials(username, secret_password, secret_token)
    if username is None and (password is not None or token is not None) and not urls_name_users:
        raise UsageError("password= or token= needs username=")
    return secret_password, secret_token


def _secret(value: object, name: str) -> Optional[Secret]:
    if value is not None and not isinstance(value, (str, Secret)):
        kind = " or a callable token(username, refresh)" if name == "token" else ""
        raise UsageError(f"{name}= must be a str{kind}, not {type(value).__name__}")
    return wrap(value)


def implicit_tls(tlsimport: Optional[bool], usetls: bool, port: int) -> bool:
    """Implicit TLS for this port: as forced by ``tlsimport``, else on port
    465 (RFC 8314 section 3.3 assigns it to submission over implicit TLS)."""
    if tlsimport is not None:
        return bool(tlsimport)
    return usetls and port == 465


def client_name(client: Optional[str], servers: Iterable[Union[str, ServerURL]]) -> str:
    """The name to give in EHLO: ``client``, else (as tcllib) "localhost"
    when talking to localhost only, else this host's fully qualified name
    (or "localhost" when it has none). UsageError for a name that cannot be
    sent."""
    if client is None:
        places = [_place(s) for s in servers]
        if all(s.strip().lower() in ("localhost", "127.0.0.1", "[::1]") or is_unix_socket(s.strip())
               for s in places):
            return "localhost"
        client = fqdn()
        if "." not in client:
            client = "localhost"
    if not require_str(client, "client=") or any(c.isspace() or c in "\0<>" for c in client):
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
