"""Failover: one message, every server in turn, until one takes it.

:func:`failover` is a dialogue with no I/O in it, like Session's: it
yields Resolve, Connect and Close around each server's Session and is
pumped by sendmessage (smtpsend._sync, blocking) and asendmessage
(smtpsend._async). :func:`plan` checks sendmessage's arguments and
prepares the message once, before anything is sent.

What moves on to the next server and what is raised at once
(smtpsend._verdicts.is_message_fault decides):

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

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

from . import _verdicts as verdict
from ._channel import Event, log_sent, message_id
from ._data import MessageData
from ._driver import Close, Connect, Dialogue, Resolve, Timeouts
from ._envelope import Message, Prepared, as_part, prepare
from ._errors import AllServersFailed, Attempt, Rejected, SMTPError, TransportError, UsageError, locate
from ._esmtp import Delivery, Notify
from ._options import (Debug, EventHook, HeaderArg, Mechanisms, MonitorHook, Orcpt, Policy, Ports,
                       ProgressHook, Recipients, Servers, client_name, credentials, delivery as one_delivery,
                       implicit_tls, mechanisms as mechanism_list, parse_server, port_list, server_list,
                       tls_policy, tracer)
from ._session import Session

__all__ = ["Plan", "failover", "plan"]


@dataclass
class Plan:
    """Everything a send needs, worked out once: the envelope, the message
    data, the servers to try -- (host, port, implicit TLS) -- and how to
    talk to them."""

    prepared: Prepared
    data: MessageData
    options: Delivery
    targets: list[tuple[str, int, bool]]
    session_options: dict[str, Any]
    trace: Optional[Callable[[str], None]]
    events: Optional[Callable[[Event], None]]
    connect_timeout: float
    message_id: Optional[str] = None


def plan(part: Message, *, servers: Servers = ("localhost",), ports: Ports = None,
         client: Optional[str] = None, originator: Optional[str] = None, recipients: Recipients = None,
         header: HeaderArg = (), atleastone: bool = False, queue: bool = False, usetls: bool = True,
         tlsimport: Optional[bool] = None, tlspolicy: Policy = None, username: Optional[str] = None,
         password: Optional[str] = None, token: Optional[str] = None, mechanisms: Mechanisms = None,
         maxsecs: float = 120, timeout: Optional[float] = None, debug: Debug = False,
         ret: Optional[str] = None, envid: Optional[str] = None,
         notify: Union[Notify, Mapping[str, Notify], None] = None, orcpt: Orcpt = None,
         require_dsn: bool = False, deliverby: Optional[str] = None, priority: Optional[int] = None,
         requiretls: bool = False, mail_auth: Optional[str] = None, delivery: Optional[Delivery] = None,
         events: Optional[EventHook] = None, monitor: Optional[MonitorHook] = None,
         monitor_headers: bool = False, progress: Optional[ProgressHook] = None) -> Plan:
    """Check sendmessage's arguments (all but ``ssl_context``) and prepare
    the message. UsageError (a ValueError) for bad input, TypeError for an
    argument of the wrong shape."""
    names = server_list(servers)
    given_ports = port_list(ports)
    if tlsimport and not usetls:
        raise UsageError("tlsimport=True and usetls=False contradict each other")
    if not usetls and tlspolicy == "secure":
        raise UsageError("tlspolicy='secure' and usetls=False contradict each other")
    if maxsecs is None or maxsecs <= 0 or (timeout is not None and timeout <= 0):
        raise UsageError("timeout= and maxsecs= must be positive numbers of seconds")
    policy = tls_policy(tlspolicy)
    secret_password, secret_token = credentials(username, password, token)
    options = one_delivery(delivery, atleastone=atleastone, ret=ret, envid=envid, notify=notify, orcpt=orcpt,
                           require_dsn=require_dsn, deliverby=deliverby, priority=priority,
                           requiretls=requiretls, mail_auth=mail_auth)
    name = client_name(client, names)
    message = as_part(part)
    prepared = prepare(message, originator=originator, recipients=recipients, header=header, client=name)
    data = MessageData.from_part(message, prepared.add, prepared.omit)
    timeouts = Timeouts.make(timeout, maxsecs)
    trace, notes = tracer(debug)
    default_port = 465 if tlsimport else 25
    targets = []
    for i, entry in enumerate(names):
        host, port = parse_server(entry, given_ports[i] if i < len(given_ports) else None, default_port)
        targets.append((host, port, implicit_tls(tlsimport, usetls, port)))
    session_options = dict(client=name, usetls=usetls, tlspolicy=policy,
                           username=username, password=secret_password, token=secret_token, queue=queue,
                           mechanisms=mechanism_list(mechanisms), timeouts=timeouts, trace=trace,
                           monitor=monitor, monitor_headers=monitor_headers, events=events,
                           progress=progress, trace_notes=notes)
    return Plan(prepared, data, options, targets, session_options, trace if notes else None,
                events, timeouts.connect, message_id(prepared, message))


def failover(plan: Plan) -> Dialogue[list[Rejected]]:
    """Every server in turn (every address of each) until one takes the
    message: the dialogue that sendmessage and asendmessage both pump.
    Returns the refused recipients (with ``atleastone``); raises the
    message's own failure at once, else AllServersFailed."""
    trace, events = plan.trace, plan.events
    attempts: list[Attempt] = []
    started = time.monotonic()
    for host, port, implicit in plan.targets:
        try:
            addresses: list[tuple[int, tuple[Any, ...]]] = yield Resolve(host, port)
        except TransportError as error:
            attempts.append(Attempt(host, port, "connect", locate(error, host, port, "connect")))
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
                locate(exc, host, port, session.stage)
                if connected:
                    yield from _close(events, host, port)
                if verdict.is_message_fault(exc):
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


def _close(events: Optional[Callable[[Event], None]], host: str, port: int) -> Dialogue[None]:
    yield Close()
    if events:
        events(Event("disconnect", {"server": host, "port": port}))
