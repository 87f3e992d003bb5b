"""Failover: one message, every server in turn, until one takes it.

:func:`failover` is a dialogue with no I/O in it, like Session's: it
yields Resolve, Connect and Close around each server's Session and is
pumped by sendmessage (smtpsend._sync, blocking) and asendmessage
(smtpsend._async); with ``reuse=True``, by Transport and AsyncTransport
(smtpsend._transport, smtpsend._atransport), whose drivers also perform
Checkout (a kept connection's Session) and Checkin (keep it, or drop it).
:func:`plan` checks sendmessage's arguments and prepares the message once,
before anything is sent.

What moves on to the next server and what is raised at once
(smtpsend._verdicts.is_message_fault decides):

| failure | outcome |
|---|---|
| cannot resolve or connect, timeout before the data was sent | next server |
| TLS handshake or certificate failure | next server (never a downgrade) |
| TLS required (policy, or credentials to send) but not available | next server |
| greeting not 220, 421 anywhere, EHLO and HELO refused (LMTP: LHLO refused) | next server |
| AUTH: no usable mechanism, every mechanism failed | next server |
| 4xx to MAIL, DATA or the final "."; every refused RCPT a 4xx | next server |
| a server lacking an extension the message needs (SMTPUTF8) | next server |
| malformed reply, lost connection before the data was all sent | next server |
| 5xx to MAIL (SenderRefused), DATA or "." (DataRefused) | raised |
| a recipient refused with 5xx, ``atleastone`` false (RecipientsRefused) | raised |
| message larger than the server's SIZE (MessageTooBig) | raised |
| no reply after the whole message was sent (DeliveryUncertain) | raised |
| LMTP, after the data: every recipient refused with 4xx | next server (no one has it) |
| LMTP, after the data: every recipient refused, some 5xx (DataRefused) | raised |
| LMTP, after the data: some delivered, some refused, no ``atleastone`` | raised (RecipientsRefused, ``.delivered``) |

When every server has failed, AllServersFailed carries one Attempt per
try (each address a name resolves to is a try).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

from . import _verdicts as verdict
from ._channel import Event, Hooks, log_sent, message_id
from ._data import DKIM, MessageData, dkim_signers
from ._driver import Checkin, Checkout, Close, Connect, Dialogue, Resolve, Timeouts
from ._envelope import Message, Prepared, as_part, prepare
from ._errors import AllServersFailed, Attempt, Rejected, SMTPError, TransportError, UsageError, locate
from ._esmtp import Delivery, Notify
from ._options import Token
from ._options import (Debug, EventHook, HeaderArg, Mechanisms, MonitorHook, Orcpt, Policy, Ports,
                       ProgressHook, Recipients, Servers, check_port, client_name, credentials,
                       delivery as one_delivery, implicit_tls, local_usetls, mechanisms as mechanism_list,
                       parse_server, port_list, protocol_name, protocol_port, server_list, server_url,
                       tls_policy, tracer, Target, url_options)
from ._session import Session

__all__ = ["DKIM", "Plan", "Route", "failover", "plan", "route"]


@dataclass
class Plan:
    """Everything a send needs, worked out once: the envelope, the message
    data, the servers to try (smtpsend._options.Target: host, port,
    implicit TLS, what a server URL sets for its server alone) and how to
    talk to them. ``session(target)`` makes a Session for one of them."""

    prepared: Prepared
    data: MessageData
    options: Delivery
    targets: list[Target]
    session_options: dict[str, Any]
    trace: Optional[Callable[[str], None]]
    events: Optional[Callable[[Event], None]]
    connect_timeout: float
    message_id: Optional[str] = None

    def target_options(self, target: Target) -> dict[str, Any]:
        """The Session keyword options for ``target``: the call's, with
        what its URL sets on top."""
        return {**self.session_options, **target.options}

    def option(self, target: Target, name: str) -> Any:
        """One of :meth:`target_options` (without building them all)."""
        return target.options.get(name, self.session_options[name])


# Route.plan(): the Delivery of a call that sets no per-message option but atleastone, made once
_PLAIN_DELIVERY: dict[bool, Delivery] = {}


@dataclass(frozen=True)
class Route:
    """What a send's connection options work out to, checked once: the
    servers to try (smtpsend._options.Target) and the Session options
    they share. Nothing in it depends on the message, so a Transport
    makes one and plans every message with it (:meth:`plan`)."""

    targets: list[Target]
    session_options: dict[str, Any]   # all but this message's: queue, progress, the tracer
    debug: Debug
    connect_timeout: float
    client: str

    def plan(self, part: Message, *, originator: Optional[str] = None, recipients: Recipients = None,
             header: HeaderArg = (), atleastone: bool = False, queue: bool = False, ret: Optional[str] = None,
             envid: Optional[str] = None, notify: Union[Notify, Mapping[str, Notify], None] = None,
             orcpt: Orcpt = None, require_dsn: bool = False, deliverby: Optional[str] = None,
             priority: Optional[int] = None, requiretls: bool = False, mail_auth: Optional[str] = None,
             delivery: Optional[Delivery] = None, progress: Optional[ProgressHook] = None,
             dkim: DKIM = None) -> Plan:
        """One message's options checked and the message prepared for
        these servers. UsageError (a ValueError) for bad input, TypeError
        for an argument of the wrong shape; with ``dkim``, the message is
        signed here in the form it is sent in (smtpsend._data.MessageData),
        so a signing failure is raised before any connection."""
        signers = dkim_signers(dkim)
        plain = (delivery is None and (atleastone is True or atleastone is False) and ret is None
                 and envid is None and notify is None and orcpt is None and require_dsn is False
                 and deliverby is None and priority is None and requiretls is False and mail_auth is None)
        options = _PLAIN_DELIVERY.get(atleastone) if plain else None   # a Delivery is frozen: shared
        if options is None:
            options = one_delivery(delivery, atleastone=atleastone, ret=ret, envid=envid, notify=notify,
                                   orcpt=orcpt, require_dsn=require_dsn, deliverby=deliverby, priority=priority,
                                   requiretls=requiretls, mail_auth=mail_auth)
            if plain:
                _PLAIN_DELIVERY[atleastone] = options
        message = as_part(part)
        prepared = prepare(message, originator=originator, recipients=recipients, header=header,
                           client=self.client)
        data = MessageData.from_part(message, prepared.add, prepared.omit, dkim=signers)
        # decided per message: logging may be set to DEBUG while a Transport lives
        trace, notes = tracer(self.debug)
        session_options = dict(self.session_options, queue=queue, progress=progress, trace=trace,
                               trace_notes=notes)
        return Plan(prepared, data, options, self.targets, session_options, trace if notes else None,
                    session_options["events"], self.connect_timeout, message_id(prepared, message))


def route(*, servers: Servers = ("localhost",), ports: Ports = None, client: Optional[str] = None,
          usetls: bool = True, tlsimport: Optional[bool] = None, tlspolicy: Policy = None,
          username: Optional[str] = None, password: Optional[str] = None, token: Token = None,
          mechanisms: Mechanisms = None, maxsecs: float = 120, timeout: Optional[float] = None,
          debug: Debug = False, events: Optional[EventHook] = None, monitor: Optional[MonitorHook] = None,
          monitor_headers: bool = False, protocol: str = "smtp") -> Route:
    """Check sendmessage's connection options (UsageError, a ValueError,
    for bad input; TypeError for an argument of the wrong shape) and work
    out the servers to try."""
    protocol = protocol_name(protocol)
    names = server_list(servers)
    given_ports = port_list(ports)
    if tlsimport and not usetls:
        raise UsageError("tlsimport=True and usetls=False contradict each other")
    if not usetls and tlspolicy == "secure":
        raise UsageError("tlspolicy='secure' and usetls=False contradict each other")
    timeouts = Timeouts.make(timeout, maxsecs)   # UsageError for a wait no socket takes
    policy = tls_policy(tlspolicy)
    urls = [server_url(entry) for entry in names]
    secret_password, secret_token = credentials(username, password, token,
                                                urls_name_users=any(u and u.username for u in urls))
    name = client_name(client, [u.server if u else entry for u, entry in zip(urls, names)])
    default_port = protocol_port(protocol, tlsimport)
    targets = []
    for i, (url, entry) in enumerate(zip(urls, names)):
        given = given_ports[i] if i < len(given_ports) else None
        if url is None:
            host, port = parse_server(str(entry), given, default_port)   # a str: a ServerURL has its url
            check_port(protocol, port, str(entry))
            if username is None and (secret_password is not None or secret_token is not None):
                credentials(username, secret_password, secret_token)   # UsageError: this server has no user
            targets.append(Target(host, port, implicit_tls(tlsimport, usetls, port)))
            continue
        # a URL's settings are its server's alone (smtpsend._options.url_options)
        own = url_options(url, usetls=usetls, tlsimport=tlsimport, tlspolicy=policy, username=username,
                          password=password, timeout=timeout, mechanisms=mechanism_list(mechanisms),
                          protocol=protocol)
        own_protocol = own.pop("protocol", protocol)
        host, port = parse_server(url.server, given, url.default_port or protocol_port(own_protocol, tlsimport))
        check_port(own_protocol, port, url.server)
        own_timeout = own.pop("timeout", None)
        implicit = implicit_tls(own.pop("tlsimport", tlsimport), usetls, port)
        if "username" in own or "password" in own:
            own.setdefault("username", username)
            own["password"], _ = credentials(own["username"], own.get("password", secret_password), secret_token)
        elif username is None and (secret_password is not None or secret_token is not None):
            credentials(username, secret_password, secret_token)   # UsageError: this server has no user
        if own_timeout is not None:
            own["timeouts"] = Timeouts.make(own_timeout, maxsecs)
        if own_protocol != protocol:
            own["protocol"] = own_protocol
        targets.append(Target(host, port, implicit, own, own_timeout))
    session_options = dict(client=name, usetls=usetls, tlspolicy=policy,
                           username=username, password=secret_password, token=secret_token,
                           mechanisms=mechanism_list(mechanisms), timeouts=timeouts,
                           monitor=monitor, monitor_headers=monitor_headers, events=events, protocol=protocol)
    return Route(targets, session_options, debug, timeouts.connect, name)


def plan(part: Message, *, servers: Servers = ("localhost",), ports: Ports = None,
         client: Optional[str] = None, originator: Optional[str] = None, recipients: Recipients = None,
         header: HeaderArg = (), atleastone: bool = False, queue: bool = False, usetls: bool = True,
         tlsimport: Optional[bool] = None, tlspolicy: Policy = None, username: Optional[str] = None,
         password: Optional[str] = None, token: Token = None, mechanisms: Mechanisms = None,
         maxsecs: float = 120, timeout: Optional[float] = None, debug: Debug = False,
         ret: Optional[str] = None, envid: Optional[str] = None,
         notify: Union[Notify, Mapping[str, Notify], None] = None, orcpt: Orcpt = None,
         require_dsn: bool = False, deliverby: Optional[str] = None, priority: Optional[int] = None,
         requiretls: bool = False, mail_auth: Optional[str] = None, delivery: Optional[Delivery] = None,
         events: Optional[EventHook] = None, monitor: Optional[MonitorHook] = None,
         monitor_headers: bool = False, progress: Optional[ProgressHook] = None,
         dkim: DKIM = None, protocol: str = "smtp") -> Plan:
    """Check sendmessage's arguments (all but ``ssl_context``) and prepare
    the message: :func:`route` for the connection options, then
    :meth:`Route.plan` for the message's."""
    servers_route = route(servers=servers, ports=ports, client=client, usetls=usetls, tlsimport=tlsimport,
                          tlspolicy=tlspolicy, username=username, password=password, token=token,
                          mechanisms=mechanisms, maxsecs=maxsecs, timeout=timeout, debug=debug, events=events,
                          monitor=monitor, monitor_headers=monitor_headers, protocol=protocol)
    return servers_route.plan(part, originator=originator, recipients=recipients, header=header,
                              atleastone=atleastone, queue=queue, ret=ret, envid=envid, notify=notify,
                              orcpt=orcpt, require_dsn=require_dsn, deliverby=deliverby, priority=priority,
                              requiretls=requiretls, mail_auth=mail_auth, delivery=delivery, progress=progress,
                              dkim=dkim)


def failover(plan: Plan, reuse: bool = False) -> Dialogue[list[Rejected]]:
    """Every server in turn (every address of each) until one takes the
    message: the dialogue that sendmessage and asendmessage both pump.
    Returns the refused recipients (with ``atleastone``); raises the
    message's own failure at once, else AllServersFailed.

    With ``reuse`` (a pool driver pumps it: smtpsend._transport), each
    server is first asked for a kept connection (Checkout): the message
    goes over it without a new setup, and a connection found closed at the
    first command (smtpsend._verdicts.lost_while_idle) is replaced --
    another kept one, or a new one -- and is no Attempt. A connection that
    carried a message is handed back (Checkin) instead of QUIT; any other
    outcome drops it (no RSET is ever needed: only a transaction that ended
    cleanly leaves a connection to reuse)."""
    trace, events = plan.trace, plan.events
    attempts: list[Attempt] = []
    started = time.monotonic()
    envelope = plan.prepared.envelope
    for target in plan.targets:
        host, port, implicit = target.host, target.port, target.implicit_tls
        if reuse:
            kept = yield from _kept(plan, target, attempts)
            if isinstance(kept, SMTPError):   # the server failed: recorded, next server
                continue
            if kept is not None:
                log_sent(plan.message_id, len(envelope.recipients), kept, host, port, started, attempts)
                return kept
        try:
            addresses: list[tuple[int, tuple[Any, ...]]] = yield Resolve(host, port)
        except TransportError as error:
            attempts.append(Attempt(host, port, "connect", locate(error, host, port, "connect")))
            continue
        for family, sockaddr in addresses:
            session = Session(host=host, implicit_tls=implicit, **_target_options(plan, target))
            connected = False
            try:
                if trace:
                    trace(f"* connecting to {sockaddr[0]}" + (f" port {port}" if port else " (Unix socket)"))
                if events:
                    events(Event("connect", {"server": host, "port": port, "address": sockaddr[0]}))
                yield Connect(family, sockaddr, host, target.connect_timeout or plan.connect_timeout)
                connected = True
                if reuse:
                    yield from session.open()
                    result = yield from session.deliver(envelope, plan.data, plan.options)
                else:
                    result = yield from session.run(envelope, plan.data, plan.options)
            except SMTPError as exc:
                locate(exc, host, port, session.stage)
                if connected:
                    yield from _drop(plan, session, host, port, reuse)
                if verdict.is_message_fault(exc):
                    raise
                _failed(plan, attempts, host, port, session.stage, exc)
                continue
            if reuse:
                yield Checkin(session, host, port, reusable=True)
            else:
                yield from _close(events, host, port)
            log_sent(plan.message_id, len(envelope.recipients), result, host, port, started, attempts)
            return result
    raise AllServersFailed(attempts)


def _target_options(plan: Plan, target: Target) -> dict[str, Any]:
    """The session options for one server (with what its URL sets): a
    Unix socket (port 0) has no port for the greeting's TLS probe, and uses
    TLS only when required (smtpsend._options.local_usetls)."""
    o = plan.target_options(target)
    return dict(o, port=target.port or None,
                usetls=local_usetls(target.host, o["usetls"], target.implicit_tls, o["tlspolicy"]))


def _kept(plan: Plan, target: Target,
          attempts: list[Attempt]) -> Dialogue[Union[list[Rejected], None, SMTPError]]:
    """The message over kept connections to one server: its result; None
    when no kept connection is left (connect anew); or the server's error
    (recorded in ``attempts``: try the next server). Raises the message's
    own failure. A connection lost while idle is replaced, never an Attempt."""
    host, port = target.host, target.port
    wanted = (plan.option(target, "queue"), plan.option(target, "username"))
    while True:
        session: Optional[Session] = yield Checkout(host, port)
        if session is None:
            return None
        if (session.setup.queue, session.setup.username) != wanted:
            # set up for another queue= or another user (two URLs naming one server): not this send's
            yield Checkin(session, host, port, reusable=False)
            continue
        session.channel.hooks = _hooks(plan)   # this message's hooks, not the first one's
        if plan.trace:
            plan.trace(f"* reusing the connection to {host} port {port}")
        try:
            result: list[Rejected] = yield from session.deliver(plan.prepared.envelope, plan.data, plan.options)
        except SMTPError as exc:
            locate(exc, host, port, session.stage)
            if verdict.lost_while_idle(exc, session.stage):
                if plan.trace:
                    plan.trace(f"* the kept connection to {host} port {port} was closed: replacing it")
                yield Checkin(session, host, port, reusable=False, stale=True)
                continue
            yield from _drop(plan, session, host, port, True)
            if verdict.is_message_fault(exc):
                raise
            _failed(plan, attempts, host, port, session.stage, exc)
            return exc
        yield Checkin(session, host, port, reusable=True)
        return result


def _hooks(plan: Plan) -> Hooks:
    """The hooks of this send, for a session made by an earlier one."""
    o = plan.session_options
    return Hooks(o["trace"], o["trace_notes"], o["monitor"], o["monitor_headers"], o["events"], o["progress"])


def _failed(plan: Plan, attempts: list[Attempt], host: str, port: int, stage: str, exc: SMTPError) -> None:
    """Record a server given up on."""
    attempts.append(Attempt(host, port, stage, exc))
    if plan.trace:
        plan.trace(f"* {host} port {port} failed at {stage}: {exc.summary()}")
    if plan.events:
        plan.events(Event("failed", {"server": host, "port": port, "stage": stage, "error": exc}))


def _drop(plan: Plan, session: Session, host: str, port: int, reuse: bool) -> Dialogue[None]:
    """Close a connection after a failure (a pool driver drops it)."""
    if reuse:
        yield Checkin(session, host, port, reusable=False)
        if plan.events:
            plan.events(Event("disconnect", {"server": host, "port": port}))
    else:
        yield from _close(plan.events, host, port)


def _close(events: Optional[Callable[[Event], None]], host: str, port: int) -> Dialogue[None]:
    yield Close()
    if events:
        events(Event("disconnect", {"server": host, "port": port}))
