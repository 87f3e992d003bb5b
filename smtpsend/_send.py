"""``sendmessage``: one message, every server in turn, until one takes it.

What moves on to the next server and what is raised at once:

| failure | outcome |
|---|---|
| cannot resolve or connect, timeout before the data was sent | next server |
| TLS handshake or certificate failure | next server (never a downgrade) |
| TLS required (policy, or credentials to send) but not available | next server |
| greeting not 220, 421 anywhere, EHLO and HELO refused | next server |
| AUTH: no usable mechanism, every mechanism failed | next server |
| 4xx to MAIL, DATA or the final "."; every refused RCPT a 4xx | next server |
| a server lacking an extension the message needs (SMTPUTF8) | next server |
| malformed reply, lost connection before the data was all sent | next server |
| 5xx to MAIL (SenderRefused), DATA or "." (DataRefused) | raised |
| a recipient refused with 5xx, ``atleastone`` false (RecipientsRefused) | raised |
| message larger than the server's SIZE (MessageTooBig) | raised |
| no reply after the whole message was sent (DeliveryUncertain) | raised |

When every server has failed, AllServersFailed carries one Attempt per
try (each address a name resolves to is a try).
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable, Generator, Iterable, Optional, Union

from mimecompose._args import HeaderArg, one_or_many

from ._data import MessageData
from ._envelope import Message, Prepared, _fqdn, as_part, prepare
from ._errors import (AllServersFailed, Attempt, DataRefused, DeliveryUncertain, MessageTooBig,
                      RecipientsRefused, Rejected, SenderRefused, SMTPError, TransportError,
                      UsageError)
from ._sasl import check_credentials
from ._secret import Secret, wrap
from ._session import Close, Connect, Delivery, Event, Resolve, Session, Timeouts
from ._sync import SyncDriver, pump

__all__ = ["Plan", "failover", "parse_server", "resolve", "sendmessage"]

logger = logging.getLogger("smtpsend")


def parse_server(entry: str, port: Optional[int], default: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port)."""
    entry = entry.strip()
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket:
            raise UsageError(f"malformed server {entry!r}: missing ']'")
        if rest.startswith(":"):
            port = _port(rest[1:])
        elif rest:
            raise UsageError(f"malformed server {entry!r}")
    elif entry.count(":") == 1:
        host, text = entry.split(":")
        port = _port(text)
    else:
        host = entry
    if not host or any(c in host for c in " \r\n\0/"):
        raise UsageError(f"malformed server {entry!r}")
    return host, port if port else default


def _port(text) -> int:
    try:
        port = int(text)
    except (TypeError, ValueError):
        raise UsageError(f"port must be a number, not {text!r}") from None
    if not 0 < port < 65536:
        raise UsageError(f"port {port} out of range")
    return port


def resolve(host: str, port: int) -> list[tuple[int, tuple]]:
    """Every (family, address) ``host`` resolves to, IPv6 and IPv4 alike.
    Raises TransportError when the name does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        error = TransportError(f"cannot resolve {host!r}: {exc}")
        error.server, error.port, error.stage = host, port, "connect"
        raise error from None
    return [(family, sockaddr) for family, _type, _proto, _name, sockaddr in infos]


def _message_fault(exc: SMTPError) -> bool:
    """True when the failure belongs to the message, not to the server."""
    if isinstance(exc, RecipientsRefused):
        return any(r.is_permanent for r in exc.rejected)
    return isinstance(exc, (SenderRefused, DataRefused, MessageTooBig, DeliveryUncertain))


def _tracer(debug: object) -> tuple[Optional[Callable[[str], None]], bool]:
    """Where the transcript goes, decided once per call: ``(trace, notes)``.

    The smtpsend logger gets the redacted transcript at DEBUG, with
    smtpsend's "* " notes, whenever it is enabled for DEBUG -- or always
    with ``debug=True`` (the records then bypass the logger's level; its
    handlers still decide). ``debug=callable`` also gets the protocol lines
    ("> " sent, "< " received). ``notes`` says whether "* " lines are wanted.
    When nothing wants the transcript, ``trace`` is None and no line is built.
    """
    callback = debug if callable(debug) else None
    to_log: Optional[Callable[[str], None]] = None
    if logger.isEnabledFor(logging.DEBUG):
        def to_log(line: str) -> None:
            logger.debug("%s", line)
    elif debug is True:
        def to_log(line: str) -> None:
            if not logger.disabled:
                logger.handle(logger.makeRecord(logger.name, logging.DEBUG, __file__, 0, "%s", (line,), None))
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


def _credentials(username: Optional[str], password: object, token: object
                 ) -> tuple[Optional[Secret], Optional[Secret]]:
    """Check the credentials before connecting (UsageError that never
    shows a password or token; see smtpsend._sasl.check_credentials) and
    return the password and token as Secret."""
    secret_password, secret_token = _wrap(password, "password"), _wrap(token, "token")
    check_credentials(username, secret_password, secret_token)
    if username is None and (password is not None or token is not None):
        raise UsageError("password= or token= needs username=")
    return secret_password, secret_token


def _wrap(value: object, name: str) -> Optional[Secret]:
    if value is not None and not isinstance(value, (str, Secret)):
        raise UsageError(f"{name}= must be a str, not {type(value).__name__}")
    return wrap(value)


def _implicit(tlsimport: Optional[bool], usetls: bool, port: int) -> bool:
    """Implicit TLS for this port: as forced by ``tlsimport``, else on port
    465 (RFC 8314 section 3.3 assigns it to submission over implicit TLS)."""
    if tlsimport is not None:
        return bool(tlsimport)
    return usetls and port == 465


def message_id(prepared: Prepared, part: object) -> Optional[str]:
    """The Message-ID the transmitted copy carries (for the log)."""
    for name, value in getattr(prepared, "add", ()):
        if name.lower() in ("message-id", "resent-message-id"):
            return str(value)
    getheader = getattr(part, "getheader", None)
    found = getheader("Message-ID") if getheader else []
    return found[0] if found else None


def log_sent(msgid: Optional[str], recipients: int, rejected: list[Rejected], host: str, port: int,
             started: float, attempts: list[Attempt]) -> None:
    """INFO for a message sent, and WARNING when a backup server took it."""
    elapsed = time.monotonic() - started
    refused = f", {len(rejected)} refused" if rejected else ""
    logger.info("sent %s to %d recipient(s)%s via %s port %d in %.2f s", msgid or "a message",
                recipients - len(rejected), refused, host, port, elapsed)
    if attempts:
        tried = ", ".join(f"{a.server} port {a.port} ({a.stage})" for a in attempts)
        logger.warning("%s went to backup server %s port %d: %s could not take it", msgid or "a message",
                       host, port, tried)


def _client_name(client: Optional[str], servers: list[str]) -> str:
    if client is None:
        # tcllib: "localhost" when talking to localhost only, else our own name
        if all(s.strip().lower() in ("localhost", "127.0.0.1", "[::1]") for s in servers):
            return "localhost"
        client = _fqdn()
        if "." not in client:
            client = "localhost"
    if not client or any(c.isspace() or c in "\0<>" for c in client):
        raise UsageError(f"client= must be a host name or address literal, not {client!r}")
    return client


def _mechanisms(mechanisms) -> Optional[list[str]]:
    if mechanisms is None:
        return None
    if isinstance(mechanisms, str):
        mechanisms = mechanisms.replace(",", " ").split()
    return [str(m) for m in mechanisms]


def _policy_arg(tlspolicy):
    if tlspolicy is None or callable(tlspolicy) or tlspolicy in ("secure", "insecure"):
        return tlspolicy
    raise UsageError(f"tlspolicy must be None, 'secure', 'insecure' or a callable, not {tlspolicy!r}")


def _delivery(delivery: Optional[Delivery], **options) -> Delivery:
    """The per-message options: ``delivery=`` or the individual options
    (``atleastone``, ``ret``...), never both. Raises UsageError naming the
    individual options given (not at their defaults) beside ``delivery=``,
    TypeError for a ``delivery`` that is not a Delivery or an unknown option."""
    known = {f.name for f in dataclasses.fields(Delivery)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown delivery option(s): {', '.join(unknown)}")
    if delivery is None:
        return Delivery(**options)
    if not isinstance(delivery, Delivery):
        raise TypeError(f"delivery= takes a smtpsend.Delivery, not a {type(delivery).__name__}")
    defaults = Delivery()
    given = [name for name, value in options.items() if value != getattr(defaults, name)]
    if given:
        raise UsageError(f"delivery= and {', '.join(n + '=' for n in given)} exclude each other: "
                         "put every option in the Delivery")
    return delivery


def sendmessage(part: Message, servers: Union[str, Iterable[str]] = ("localhost",),
                ports: Union[int, Iterable[int], None] = None, client: Optional[str] = None,
                originator: Optional[str] = None, recipients=None,
                header: HeaderArg = (), atleastone: bool = False,
                queue: bool = False, usetls: bool = True, tlsimport: Optional[bool] = None,
                tlspolicy=None, ssl_context: Optional[ssl.SSLContext] = None,
                username: Optional[str] = None, password: Optional[str] = None,
                token: Optional[str] = None, mechanisms: Optional[Iterable[str]] = None,
                maxsecs: float = 120, timeout: Optional[float] = None, debug=False,
                ret: Optional[str] = None, envid: Optional[str] = None, notify=None, orcpt=None,
                require_dsn: bool = False, deliverby: Optional[str] = None, priority: Optional[int] = None,
                requiretls: bool = False, mail_auth: Optional[str] = None,
                delivery: Optional[Delivery] = None,
                events=None, monitor=None, monitor_headers: bool = False, progress=None) -> list[Rejected]:
    """Send ``part`` (a mimecompose Part, raw bytes, or an email.message.Message).

    The envelope comes from the header unless ``originator`` and
    ``recipients`` are given (see :func:`smtpsend.envelope`); ``header``
    adds or replaces fields in the transmitted copy. Each server is tried in
    turn, in tandem with ``ports`` (default 25, or 465 with ``tlsimport=True``);
    ``tlsimport=None`` (the default) speaks TLS from the first byte on port
    465 and uses STARTTLS elsewhere, True/False force it;
    a server may be ``host:port`` or ``[v6]:port``. ``mechanisms`` limits
    SASL to the named mechanisms (still strongest first).

    ESMTP options (see :class:`smtpsend.Delivery`): ``ret``, ``envid``,
    ``notify``, ``orcpt``, ``require_dsn`` (DSN, RFC 3461); ``deliverby``
    (RFC 2852); ``priority`` (MT-PRIORITY, RFC 6710); ``requiretls`` (RFC
    8689); ``mail_auth`` (AUTH= on MAIL, RFC 4954); or all of them (and
    ``atleastone``) as one ``delivery=Delivery(...)``, which excludes the
    individual options (UsageError when both are given). Hooks: ``events``
    receives an :class:`Event` at each step, ``monitor(direction, line)``
    every protocol line (credentials redacted; message headers too with
    ``monitor_headers``), ``progress(sent, total)`` the octets of message
    data sent.

    Returns ``[]`` when every recipient was accepted; with ``atleastone``,
    the list of refused recipients when the message went to the others.
    A message that was not delivered always raises: UsageError (a
    ValueError) for bad input; the message's own failures directly
    (SenderRefused, RecipientsRefused, DataRefused, MessageTooBig,
    DeliveryUncertain), each with ``.server``/``.port``; otherwise
    AllServersFailed with every attempt.
    """
    arguments = dict(locals())
    ssl_context = arguments.pop("ssl_context")
    plan = _plan(**arguments)
    driver = SyncDriver(ssl_context)
    try:
        return pump(failover(plan), driver)
    finally:
        driver.close()


@dataclass
class Plan:
    """Everything a send needs, worked out once: the envelope, the message
    data, the servers to try and how to talk to them."""

    prepared: Prepared
    data: MessageData
    options: Delivery
    targets: list
    session_options: dict
    trace: Optional[Callable[[str], None]]
    events: Optional[Callable[[Event], None]]
    connect_timeout: float
    message_id: Optional[str] = None


def _plan(part, servers, ports, client, originator, recipients, header, atleastone, queue, usetls,
          tlsimport, tlspolicy, username, password, token, mechanisms, maxsecs, timeout, debug, ret,
          envid, notify, orcpt, require_dsn, deliverby, priority, requiretls, mail_auth, delivery, events,
          monitor, monitor_headers, progress) -> Plan:
    """Check the arguments and prepare the message (UsageError for bad input)."""
    servers = [str(s) for s in one_or_many(servers, "servers=")]
    servers = [s for s in servers if s.strip()]
    if not servers:
        raise UsageError("no servers given")
    ports = [_port(p) if p not in (None, "") else None
             for p in one_or_many(ports, "ports=", single=(int, str))]
    if tlsimport and not usetls:
        raise UsageError("tlsimport=True and usetls=False contradict each other")
    if not usetls and tlspolicy == "secure":
        raise UsageError("tlspolicy='secure' and usetls=False contradict each other")
    if maxsecs is None or maxsecs <= 0 or (timeout is not None and timeout <= 0):
        raise UsageError("timeout= and maxsecs= must be positive numbers of seconds")
    policy = _policy_arg(tlspolicy)
    password, token = _credentials(username, password, token)
    options = _delivery(delivery, atleastone=atleastone, ret=ret, envid=envid, notify=notify, orcpt=orcpt,
                        require_dsn=require_dsn, deliverby=deliverby, priority=priority,
                        requiretls=requiretls, mail_auth=mail_auth)
    name = _client_name(client, servers)
    message = as_part(part)
    prepared = prepare(message, originator, recipients, header, client=name)
    data = MessageData.from_part(message, prepared.add, prepared.omit)
    timeouts = Timeouts.make(timeout, maxsecs)
    trace, notes = _tracer(debug)
    default_port = 465 if tlsimport else 25
    targets = []
    for i, s in enumerate(servers):
        host, port = parse_server(s, ports[i] if i < len(ports) else None, default_port)
        targets.append((host, port, _implicit(tlsimport, usetls, port)))
    session_options = dict(client=name, usetls=usetls, tlspolicy=policy,
                           username=username, password=password, token=token, queue=queue,
                           mechanisms=_mechanisms(mechanisms), timeouts=timeouts, trace=trace, monitor=monitor,
                           monitor_headers=monitor_headers, events=events, progress=progress,
                           trace_notes=notes)
    return Plan(prepared, data, options, targets, session_options, trace if notes else None,
                events, timeouts.connect, message_id(prepared, message))


def failover(plan: Plan) -> Generator:
    """Every server in turn (every address of each) until one takes the
    message: the dialogue that sendmessage and asendmessage both pump."""
    trace, events = plan.trace, plan.events
    attempts: list[Attempt] = []
    started = time.monotonic()
    for host, port, implicit in plan.targets:
        try:
            addresses = yield Resolve(host, port)
        except TransportError as error:
            error.server, error.port, error.stage = host, port, "connect"
            attempts.append(Attempt(host, port, "connect", error))
            continue
        for family, sockaddr in addresses:
            session = Session(host=host, port=port, implicit_tls=implicit, **plan.session_options)
            connected = False
            try:
                if trace:
                    trace(f"* connecting to {sockaddr[0]} port {port}")
                if events:
                    events(Event("connect", {"server": host, "port": port, "address": sockaddr[0]}))
                yield Connect(family, sockaddr, host, plan.connect_timeout)
                connected = True
                result = yield from session.run(plan.prepared.envelope, plan.data, plan.options)
            except SMTPError as exc:
                exc.server, exc.port, exc.stage = host, port, session.stage
                if connected:
                    yield from _close(events, host, port)
                if _message_fault(exc):
                    raise
                attempts.append(Attempt(host, port, session.stage, exc))
                if trace:
                    trace(f"* {host} port {port} failed at {session.stage}: {exc.summary()}")
                if events:
                    events(Event("failed", {"server": host, "port": port, "stage": session.stage, "error": exc}))
                continue
            yield from _close(events, host, port)
            log_sent(plan.message_id, len(plan.prepared.envelope.recipients), result, host, port, started,
                     attempts)
            return result
    raise AllServersFailed(attempts)


def _close(events, host: str, port: int) -> Generator:
    yield Close()
    if events:
        events(Event("disconnect", {"server": host, "port": port}))
