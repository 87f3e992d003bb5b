"""``smtpsend.connect``: one connection, many messages.

::

    with smtpsend.connect("mail.example.com", username="u", password="p") as smtp:
        for part in parts:
            smtp.sendmessage(part)

The connection is opened (greeting, EHLO, STARTTLS, AUTH) once; each
message is one transaction of the same dialogue sendmessage uses. A
connection the server closed between messages is opened again.
"""

from __future__ import annotations

import ssl
import time
from typing import Any, Iterable, Optional

from mimecompose._args import HeaderArg

from ._data import MessageChanged, MessageData, data_blocks
from ._envelope import HIDDEN, Message, as_part, prepare
from ._errors import (AllServersFailed, Attempt, DeliveryUncertain, NotSupported, Rejected, SMTPError,
                      TransportError, UsageError)
from ._extensions import Extensions
from ._reply import Reply
from ._send import (_client_name, _credentials, _delivery, _implicit, _mechanisms, _policy_arg, _tracer,
                    log_sent, message_id, parse_server, resolve)
from ._session import Delivery, Send, Session, Timeouts
from ._sync import SyncConnection, pump

__all__ = ["Client", "connect", "etrn", "expand", "help", "verify"]


class Client:
    """An open SMTP connection to one server. Use :func:`connect`.

    ``tlsimport=None``: implicit TLS on port 465, STARTTLS elsewhere. The
    password and token are held as Secret: no repr, vars() or pickle of a
    Client shows them (pickling one raises TypeError).
    """

    def __init__(self, host: str, port: int, *, client: str, usetls: bool, tlsimport: Optional[bool],
                 tlspolicy, ssl_context: Optional[ssl.SSLContext], username: Optional[str],
                 password: Any, token: Any, timeouts: Timeouts, trace,
                 mechanisms: Optional[list[str]] = None, **hooks) -> None:
        self.host = host
        self.port = port
        password, token = _credentials(username, password, token)
        self._options = dict(client=client, usetls=usetls, implicit_tls=_implicit(tlsimport, usetls, port),
                             tlspolicy=tlspolicy, username=username, password=password, token=token,
                             host=host, port=port, mechanisms=mechanisms, timeouts=timeouts, trace=trace,
                             **hooks)
        self._ssl_context = ssl_context
        self._timeouts = timeouts
        self._trace = trace
        self._connection: Optional[SyncConnection] = None
        self.session: Optional[Session] = None

    def open(self) -> "Client":
        """Connect and get ready for transactions. Raises the SMTPError of
        the last address tried (with ``.server``, ``.port``, ``.stage``)."""
        self.close()
        last: Optional[SMTPError] = None
        for family, sockaddr in resolve(self.host, self.port):
            session = Session(**self._options)
            try:
                if self._options.get("trace_notes") and self._trace:
                    self._trace(f"* connecting to {sockaddr[0]} port {self.port}")
                connection = SyncConnection.open(sockaddr, family, self._timeouts.connect, self.host,
                                                 self._ssl_context)
            except SMTPError as exc:
                exc.server, exc.port, exc.stage = self.host, self.port, session.stage
                last = exc
                continue
            try:
                pump(session.open(), connection)
            except SMTPError as exc:
                connection.close()
                exc.server, exc.port, exc.stage = self.host, self.port, session.stage
                raise
            self._connection, self.session = connection, session
            return self
        raise last

    def sendmessage(self, part: Message, originator: Optional[str] = None, recipients=None,
                    header: HeaderArg = (), atleastone: bool = False,
                    delivery: Optional[Delivery] = None, **esmtp) -> list[Rejected]:
        """Send one message over this connection (as smtpsend.sendmessage,
        without failover; ``esmtp`` takes the Delivery options: ret, envid,
        notify, orcpt, require_dsn, deliverby, priority, requiretls,
        mail_auth, or all of them as one ``delivery=``). A connection found
        closed before any of the message was sent is opened again once."""
        options = _delivery(delivery, atleastone=atleastone, **esmtp)
        message = as_part(part)
        prepared = prepare(message, originator, recipients, header, client=self._options["client"])
        data = MessageData.from_part(message, prepared.add, prepared.omit)
        started = time.monotonic()
        for retry in (True, False):
            if self._connection is None:
                self.open()
            session = self.session
            try:
                rejected = pump(session.deliver(prepared.envelope, data, options), self._connection)
                log_sent(message_id(prepared, message), len(prepared.envelope.recipients), rejected,
                         self.host, self.port, started, [])
                return rejected
            except SMTPError as exc:
                exc.server, exc.port, exc.stage = self.host, self.port, session.stage
                stale = isinstance(exc, TransportError) and session.stage == "mail"
                self._drop()
                if not (stale and retry):
                    raise
                if self._options.get("trace_notes") and self._trace:
                    self._trace("* connection was closed by the server; opening it again")
            except MessageChanged:
                self._drop()   # the transaction is unfinished: closing makes the server discard it
                raise
        raise AssertionError("unreachable")

    def sendmessages(self, parts: Iterable[Message], atleastone: bool = True, window: int = 16,
                     **esmtp) -> list:
        """Send many messages, pipelined back to back where the server
        allows (PIPELINING and CHUNKING, with ``atleastone``), else one
        after the other. Returns one outcome per message, in order: its
        rejected-recipients list, or the SMTPError it met (nothing is
        raised for a single message's failure; bad input raises
        UsageError before anything is sent)."""
        options = Delivery(atleastone=atleastone, **esmtp)
        batch = []
        for part in parts:
            message = as_part(part)
            prepared = prepare(message, client=self._options["client"])
            batch.append((prepared.envelope, MessageData.from_part(message, prepared.add, prepared.omit)))
        if self._connection is None:
            self.open()
        session = self.session
        outcomes = self._run(session.deliver_many(batch, options, window))
        for outcome in outcomes:
            if isinstance(outcome, SMTPError):
                outcome.server, outcome.port = self.host, self.port
                outcome.stage = outcome.stage or "data"
        if any(isinstance(o, (TransportError, DeliveryUncertain, MessageChanged)) for o in outcomes):
            self._drop()
        return outcomes

    # ------------------------------------------------------------ seed commands
    # Each returns the server's Reply, positive or not (scsh and smtplib
    # style); only the connection's own failures raise.

    def _run(self, dialogue):
        if self._connection is None:
            self.open()
        try:
            return pump(dialogue, self._connection)
        except SMTPError as exc:
            exc.server, exc.port, exc.stage = self.host, self.port, self.session.stage
            if isinstance(exc, TransportError):
                self._drop()
            raise
        except MessageChanged:
            self._drop()   # in the middle of the message data: only closing ends it
            raise

    def command(self, line: str) -> Reply:
        """Send one command line; returns the reply. UsageError for CR/LF/NUL."""
        return self._run(self.session._command(line, self._timeouts.command))

    def ehlo(self, name: Optional[str] = None) -> Extensions:
        """EHLO again (HELO when EHLO is refused); returns the extensions."""
        if name is not None:
            self.session.client = name
        self._run(self.session._hello())
        return self.session.extensions

    def helo(self, name: Optional[str] = None) -> Reply:
        return self.command(f"HELO {name or self.session.client}")

    def starttls(self) -> None:
        """Upgrade now with STARTTLS (if not encrypted yet); fails rather
        than going on in plaintext."""
        session = self.session
        session.usetls, policy = True, session.tlspolicy
        session.tlspolicy = "secure"
        try:
            self._run(session._negotiate_tls())
        finally:
            session.tlspolicy = policy

    def login(self, username: str, password: Optional[str] = None, token: Optional[str] = None) -> None:
        """AUTH with the strongest mechanism offered (see sendmessage).
        UsageError, before anything is sent, for credentials that cannot be
        sent (the message never shows them)."""
        secret_password, secret_token = _credentials(username, password, token)
        session = self.session
        session.username, session._password, session._token = username, secret_password, secret_token
        self._run(session._authenticate())

    def mail(self, sender: str, params: Iterable[str] = ()) -> Reply:
        return self.command(f"MAIL FROM:<{sender}>" + "".join(" " + p for p in params))

    def rcpt(self, address: str, params: Iterable[str] = ()) -> Reply:
        return self.command(f"RCPT TO:<{address}>" + "".join(" " + p for p in params))

    def data(self, message: Message) -> Reply:
        """DATA and the message (dot-stuffed, CRLF); returns the final
        reply, or the refusal of DATA itself."""
        part = as_part(message)
        data = MessageData.from_part(part, omit=HIDDEN)   # Bcc is never transmitted

        def dialogue():
            reply = yield from self.session._command("DATA", self._timeouts.data_start)
            if reply.code != 354:
                return reply
            yield Send(data_blocks(data.chunks()), self._timeouts.data_block)
            [final] = yield from self.session._read(1, self._timeouts.final)
            return final
        return self._run(dialogue())

    def rset(self) -> Reply:
        return self.command("RSET")

    def noop(self) -> Reply:
        return self.command("NOOP")

    def vrfy(self, address: str) -> Reply:
        """VRFY (RFC 5321 section 3.5): many servers answer 252 ("cannot
        verify, will try") by policy."""
        return self.command(f"VRFY {address}")

    def expn(self, name: str) -> Reply:
        return self.command(f"EXPN {name}")

    def help(self, topic: Optional[str] = None) -> Reply:
        return self.command("HELP" + (f" {topic}" if topic else ""))

    def etrn(self, node: str) -> Reply:
        """ETRN (RFC 1985): ask the server to run its queue for ``node``
        (a domain, ``@domain`` or ``#queue``). NotSupported if not offered."""
        if "ETRN" not in self.session.extensions:
            raise NotSupported("the server does not offer ETRN")
        return self.command(f"ETRN {node}")

    def quit(self) -> None:
        self.close()

    def _obsolete(self, verb: str, why: str):
        raise NotSupported(f"{verb} is not supported: {why}")

    def send(self, *args):
        self._obsolete("SEND", "RFC 5321 removed SEND, SOML and SAML (terminal delivery is gone)")

    def soml(self, *args):
        self._obsolete("SOML", "RFC 5321 removed SEND, SOML and SAML (terminal delivery is gone)")

    def saml(self, *args):
        self._obsolete("SAML", "RFC 5321 removed SEND, SOML and SAML (terminal delivery is gone)")

    def turn(self, *args):
        self._obsolete("TURN", "RFC 2821 removed TURN: it let anyone take another host's mail; "
                               "use ETRN (RFC 1985)")

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None
        self.session = None

    def close(self) -> None:
        """QUIT and close the connection (quietly if it is already gone)."""
        if self._connection is not None:
            try:
                pump(self.session.quit(), self._connection)
            finally:
                self._drop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(server: str = "localhost", port: Optional[int] = None, *, client: Optional[str] = None,
            usetls: bool = True, tlsimport: Optional[bool] = None, tlspolicy=None,
            ssl_context: Optional[ssl.SSLContext] = None, username: Optional[str] = None,
            password: Optional[str] = None, token: Optional[str] = None, mechanisms=None,
            timeout: Optional[float] = None, maxsecs: float = 120, debug=False, events=None,
            monitor=None, monitor_headers: bool = False, progress=None) -> Client:
    """Open a connection to ``server`` (``host``, ``host:port`` or
    ``[v6]:port``) for several messages. The options mean what they mean
    for sendmessage (``tlsimport=None``: implicit TLS on port 465, STARTTLS
    elsewhere). Raises UsageError for bad options and the connection's
    SMTPError when it cannot be opened."""
    if tlsimport and not usetls:
        raise UsageError("tlsimport=True and usetls=False contradict each other")
    host, port = parse_server(server, port, 465 if tlsimport else 25)
    trace, notes = _tracer(debug)
    client = Client(host, port, client=_client_name(client, [host]), usetls=usetls, tlsimport=tlsimport,
                    tlspolicy=_policy_arg(tlspolicy), ssl_context=ssl_context, username=username,
                    password=password, token=token, timeouts=Timeouts.make(timeout, maxsecs),
                    trace=trace, mechanisms=_mechanisms(mechanisms), events=events,
                    monitor=monitor, monitor_headers=monitor_headers, progress=progress,
                    trace_notes=notes)
    return client.open()


def _one(server: str, port: Optional[int], options: dict, call) -> Reply:
    with connect(server, port, **options) as client:
        return call(client)


def verify(address: str, server: str = "localhost", port: Optional[int] = None, **options) -> Reply:
    """VRFY ``address`` at one server (connect options as for connect)."""
    return _one(server, port, options, lambda c: c.vrfy(address))


def expand(name: str, server: str = "localhost", port: Optional[int] = None, **options) -> Reply:
    """EXPN ``name`` (a mailing list) at one server."""
    return _one(server, port, options, lambda c: c.expn(name))


def help(topic: Optional[str] = None, server: str = "localhost", port: Optional[int] = None,
         **options) -> Reply:
    """HELP [topic] at one server."""
    return _one(server, port, options, lambda c: c.help(topic))


def etrn(node: str, servers=("localhost",), ports=None, **options) -> Reply:
    """ETRN ``node`` (RFC 1985) at each server in turn until one accepts
    (250-253); returns that reply. AllServersFailed when none does."""
    servers = [servers] if isinstance(servers, str) else list(servers)
    ports = [ports] if isinstance(ports, int) else list(ports or [])
    attempts = []
    for i, server in enumerate(servers):
        port = ports[i] if i < len(ports) else None
        try:
            with connect(server, port, **options) as client:
                reply = client.etrn(node)
        except SMTPError as exc:
            attempts.append(Attempt(exc.server or server, exc.port or port or 25, exc.stage or "connect", exc))
            continue
        if 250 <= reply.code <= 253:
            return reply
        error = NotSupported(f"ETRN {node} refused: {reply}")
        error.server, error.port, error.stage = client.host, client.port, "etrn"
        attempts.append(Attempt(client.host, client.port, "etrn", error))
    raise AllServersFailed(attempts)
