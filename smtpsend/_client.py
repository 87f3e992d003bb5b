"""``smtpsend.connect``: one connection, many messages.

::

    with smtpsend.connect("mail.example.com", username="u", password="p") as smtp:
        for part in parts:
            smtp.sendmessage(part)

The connection is opened (greeting, EHLO, STARTTLS, AUTH) once; each
message is one transaction of the same dialogue sendmessage uses
(smtpsend._session.Session, pumped by the blocking driver). A connection
the server closed between messages is opened again.
"""

from __future__ import annotations

import email.message
import ssl
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, TypeVar, Union

from mimecompose import DKIMSigner, Part
from mimecompose.args import one_or_many

from . import _verdicts as verdict
from ._bulk import Outcome
from ._channel import log_sent, message_id
from ._data import DKIM, MessageChanged, MessageData, dkim_signers
from ._driver import Dialogue, Timeouts
from ._envelope import HIDDEN, Message, as_part, prepare
from ._errors import AllServersFailed, Attempt, NotSupported, Rejected, ReplyError, SMTPError, UsageError, locate
from ._esmtp import Delivery, Notify
from ._extensions import Extensions
from ._deprecated import keyword_only
from ._options import ServerURL, Token
from ._options import (ConnectOptions, Debug, EventHook, HeaderArg, Mechanisms, MonitorHook, Orcpt, Policy,
                       ProgressHook, check_port, client_name, credentials, delivery as one_delivery,
                       implicit_tls, local_usetls, mechanisms as mechanism_list, parse_server, protocol_name,
                       protocol_port, server_url, tls_policy, tracer, url_options)
from ._reply import Reply
from ._session import Session
from ._sync import SyncConnection, pump, resolve

if sys.version_info >= (3, 11):
    from typing import Unpack
elif TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack   # for type checkers on 3.10 (the annotations are strings)

__all__ = ["Client", "connect", "etrn", "expand", "smtp_help", "verify"]

T = TypeVar("T")


class Client:
    """An open SMTP connection to one server. Use :func:`connect`.

    ``tlsimport=None``: implicit TLS on port 465, STARTTLS elsewhere. The
    password and token are held as Secret: no repr, vars() or pickle of a
    Client shows them (pickling one raises TypeError). ``session`` is the
    dialogue of the open connection (None while closed). ``dkim``: the
    signers of every message sent (see sendmessage).
    """

    def __init__(self, host: str, port: int, *, client: str, usetls: bool, tlsimport: Optional[bool],
                 tlspolicy: Policy, ssl_context: Optional[ssl.SSLContext], username: Optional[str],
                 password: Optional[str], token: Token, timeouts: Timeouts,
                 trace: Optional[Callable[[str], None]], mechanisms: Optional[list[str]] = None,
                 events: Optional[EventHook] = None, monitor: Optional[MonitorHook] = None,
                 monitor_headers: bool = False, progress: Optional[ProgressHook] = None,
                 trace_notes: bool = False, dkim: DKIM = None, protocol: str = "smtp") -> None:
        self.host = host
        self._dkim = dkim_signers(dkim)
        self.port = port
        secret_password, secret_token = credentials(username, password, token)
        implicit = implicit_tls(tlsimport, usetls, port)
        self._options: dict[str, Any] = dict(
            client=client, usetls=local_usetls(host, usetls, implicit, tlspolicy), implicit_tls=implicit,
            tlspolicy=tlspolicy, username=username, password=secret_password, token=secret_token, host=host,
            port=port or None, mechanisms=mechanisms, timeouts=timeouts, trace=trace, events=events,
            monitor=monitor, monitor_headers=monitor_headers, progress=progress, trace_notes=trace_notes,
            protocol=protocol_name(protocol))
        self._ssl_context = ssl_context
        self._timeouts = timeouts
        self._note = trace if trace_notes else None   # where "* " notes go
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
                if self._note:
                    self._note(f"* connecting to {sockaddr[0]} port {self.port}")
                connection = SyncConnection.open(sockaddr, family, self._timeouts.connect, self.host,
                                                 self._ssl_context)
            except SMTPError as exc:
                last = locate(exc, self.host, self.port, session.stage)
                continue
            try:
                pump(session.open(), connection)
            except SMTPError as exc:
                connection.close()
                raise locate(exc, self.host, self.port, session.stage)
            self._connection, self.session = connection, session
            return self
        assert last is not None   # resolve() returns at least one address or raises
        raise last

    def _open_session(self) -> tuple[Session, SyncConnection]:
        """The open connection's session and socket, opened when closed."""
        if self._connection is None or self.session is None:
            self.open()
        assert self.session is not None and self._connection is not None
        return self.session, self._connection

    def sendmessage(self, part: Message, *, originator: Optional[str] = None,
                    recipients: Union[str, Iterable[str], None] = None, header: HeaderArg = (),
                    atleastone: bool = False, delivery: Optional[Delivery] = None, ret: Optional[str] = None,
                    envid: Optional[str] = None, notify: Union[Notify, Mapping[str, Notify], None] = None,
                    orcpt: Orcpt = None, require_dsn: bool = False, deliverby: Optional[str] = None,
                    priority: Optional[int] = None, requiretls: bool = False,
                    mail_auth: Optional[str] = None, dkim: DKIM = None) -> list[Rejected]:
        """Send one message over this connection (as smtpsend.sendmessage,
        without failover; the Delivery options -- ret, envid, notify, orcpt,
        require_dsn, deliverby, priority, requiretls, mail_auth -- one by
        one or all as one ``delivery=``). ``dkim``: this message's signers
        (None: the connection's, from connect(); ``[]``: none). A
        connection found closed before any of the message was sent is
        opened again once."""
        signers = self._signers(dkim)
        options = one_delivery(delivery, atleastone=atleastone, ret=ret, envid=envid, notify=notify,
                               orcpt=orcpt, require_dsn=require_dsn, deliverby=deliverby, priority=priority,
                               requiretls=requiretls, mail_auth=mail_auth)
        message = as_part(part)
        prepared = prepare(message, originator=originator, recipients=recipients, header=header,
                           client=self._options["client"])
        data = MessageData.from_part(message, prepared.add, prepared.omit, dkim=signers)
        started = time.monotonic()
        for retry in (True, False):
            session, connection = self._open_session()
            try:
                rejected = pump(session.deliver(prepared.envelope, data, options), connection)
            except SMTPError as exc:
                locate(exc, self.host, self.port, session.stage)
                self._drop()
                if not (retry and verdict.stale(exc, session.stage)):
                    raise
                if self._note:
                    self._note("* connection was closed by the server; opening it again")
                continue
            except MessageChanged:
                self._drop()   # the transaction is unfinished: closing makes the server discard it
                raise
            log_sent(message_id(prepared, message), len(prepared.envelope.recipients), rejected,
                     self.host, self.port, started, [])
            return rejected
        raise AssertionError("unreachable: the second try raises or returns")

    def sendmessages(self, parts: Iterable[Message], *, atleastone: bool = True, window: int = 16,
                     ret: Optional[str] = None, envid: Optional[str] = None,
                     notify: Union[Notify, Mapping[str, Notify], None] = None, orcpt: Orcpt = None,
                     require_dsn: bool = False, deliverby: Optional[str] = None, priority: Optional[int] = None,
                     requiretls: bool = False, mail_auth: Optional[str] = None,
                     dkim: DKIM = None) -> list[Outcome]:
        """Send many messages, pipelined back to back where the server
        allows (PIPELINING and CHUNKING, with ``atleastone``), else one
        after the other. Returns one outcome per message, in order: its
        rejected-recipients list, or the SMTPError it met (nothing is
        raised for a single message's failure; bad input raises
        UsageError before anything is sent). ``dkim``: as for sendmessage,
        for every message; each is signed before anything is sent."""
        signers = self._signers(dkim)
        options = Delivery(atleastone=atleastone, ret=ret, envid=envid, notify=notify, orcpt=orcpt,
                           require_dsn=require_dsn, deliverby=deliverby, priority=priority,
                           requiretls=requiretls, mail_auth=mail_auth)
        if isinstance(parts, (str, bytes, bytearray, Part, email.message.Message)):
            raise TypeError("sendmessages() takes a list of messages (one message: sendmessage())")
        batch = []
        for part in parts:
            message = as_part(part)
            prepared = prepare(message, client=self._options["client"])
            batch.append((prepared.envelope, MessageData.from_part(message, prepared.add, prepared.omit,
                                                                   dkim=signers)))
        session, _ = self._open_session()
        outcomes = self._run(session.deliver_many(batch, options, window))
        for outcome in outcomes:
            if isinstance(outcome, SMTPError):
                locate(outcome, self.host, self.port, outcome.stage or "data")
        if any(verdict.connection_unusable(o) for o in outcomes):
            self._drop()
        return outcomes

    def _signers(self, dkim: DKIM) -> tuple[DKIMSigner, ...]:
        """A message's signers: ``dkim`` checked, or the connection's when None."""
        return self._dkim if dkim is None else dkim_signers(dkim)

    # ------------------------------------------------------------ seed commands
    # Each returns the server's Reply, positive or not (scsh and smtplib
    # style); only the connection's own failures raise.

    def _run(self, dialogue: Dialogue[T]) -> T:
        """Pump ``dialogue`` over the open connection; an error that leaves
        the connection unusable closes it."""
        session, connection = self._open_session()
        try:
            return pump(dialogue, connection)
        except SMTPError as exc:
            locate(exc, self.host, self.port, session.stage)
            if verdict.connection_unusable(exc):
                self._drop()
            raise
        except MessageChanged:
            self._drop()   # in the middle of the message data: only closing ends it
            raise

    def command(self, line: str) -> Reply:
        """Send one command line; returns the reply. UsageError for CR/LF/NUL."""
        session, _ = self._open_session()
        return self._run(session.command(line))

    def ehlo(self, name: Optional[str] = None) -> Extensions:
        """EHLO again (HELO when EHLO is refused); returns the extensions."""
        session, _ = self._open_session()
        return self._run(session.hello(name))

    def helo(self, name: Optional[str] = None) -> Reply:
        """HELO (as ``name``, else the client name); returns the reply."""
        session, _ = self._open_session()
        return self.command(f"HELO {name or session.client}")

    def starttls(self) -> None:
        """Upgrade now with STARTTLS (if not encrypted yet); fails rather
        than going on in plaintext."""
        session, _ = self._open_session()
        self._run(session.starttls())

    def login(self, username: str, password: Optional[str] = None, *, token: Token = None) -> None:
        """AUTH with the strongest mechanism offered (see sendmessage).
        UsageError, before anything is sent, for credentials that cannot be
        sent (the message never shows them)."""
        secret_password, secret_token = credentials(username, password, token)
        session, _ = self._open_session()
        self._run(session.login(username, secret_password, secret_token))

    def mail(self, sender: str, *, params: Iterable[str] = ()) -> Reply:
        """MAIL FROM:<sender> with ``params`` (one str or a list); returns the reply."""
        return self.command(f"MAIL FROM:<{sender}>" + _parameters(params))

    def rcpt(self, address: str, *, params: Iterable[str] = ()) -> Reply:
        """RCPT TO:<address> with ``params`` (one str or a list); returns the reply."""
        return self.command(f"RCPT TO:<{address}>" + _parameters(params))

    def data(self, message: Message) -> Reply:
        """DATA and the message (dot-stuffed, CRLF); returns the final
        reply, or the refusal of DATA itself."""
        part = as_part(message)
        data = MessageData.from_part(part, omit=HIDDEN)   # Bcc is never transmitted
        session, _ = self._open_session()
        return self._run(session.data(data))

    def rset(self) -> Reply:
        """RSET; returns the reply."""
        return self.command("RSET")

    def noop(self) -> Reply:
        """NOOP; returns the reply."""
        return self.command("NOOP")

    def vrfy(self, address: str) -> Reply:
        """VRFY (RFC 5321 section 3.5): many servers answer 252 ("cannot
        verify, will try") by policy."""
        return self.command(f"VRFY {address}")

    def expn(self, name: str) -> Reply:
        """EXPN (RFC 5321 section 3.5): the members of a mailing list."""
        return self.command(f"EXPN {name}")

    def help(self, topic: Optional[str] = None) -> Reply:
        """HELP [topic]; returns the reply."""
        return self.command("HELP" + (f" {topic}" if topic else ""))

    def etrn(self, node: str) -> Reply:
        """ETRN (RFC 1985): ask the server to run its queue for ``node``
        (a domain, ``@domain`` or ``#queue``). NotSupported if not offered."""
        session, _ = self._open_session()
        if "ETRN" not in session.extensions:
            raise NotSupported("the server does not offer ETRN")
        return self.command(f"ETRN {node}")

    def quit(self) -> None:
        """QUIT and close (as close())."""
        self.close()

    # SEND, SOML, SAML and TURN (RFC 821 section 4.1.1): the seed systems'
    # command set. RFC 2821 left them out (appendix F.1, F.6); they are sent as the seeds send
    # them. A positive reply is returned; a refusal -- nearly always 502,
    # "command not implemented" -- raises ReplyError with the reply, since
    # going on as if a transaction had begun would be wrong.

    def send(self, sender: str, *, params: Iterable[str] = ()) -> Reply:
        """SEND FROM:<sender> (RFC 821 section 4.1.1): begin a transaction
        like MAIL, for delivery to the recipients' terminals instead of
        their mailboxes; returns the positive reply. A refusal raises
        ReplyError with ``.reply`` (a server that does not implement SEND,
        which RFC 5321 dropped, answers 502). As with mail(), ``rcpt()``
        and ``data()`` continue the transaction: this is one command, as
        scsh's ``smtp-send`` is, not a whole send. UsageError for CR/LF/NUL."""
        return self._reverse_path("SEND", sender, params)

    def soml(self, sender: str, *, params: Iterable[str] = ()) -> Reply:
        """SOML FROM:<sender> (RFC 821): "send or mail" -- to the
        recipients' terminals when they are logged in, else to their
        mailboxes. A transaction begun like MAIL; returns the positive
        reply, ReplyError for a refusal (502 from a server without SOML)."""
        return self._reverse_path("SOML", sender, params)

    def saml(self, sender: str, *, params: Iterable[str] = ()) -> Reply:
        """SAML FROM:<sender> (RFC 821): "send and mail" -- to the
        recipients' terminals and mailboxes. A transaction begun like MAIL;
        returns the positive reply, ReplyError for a refusal (502 from a
        server without SAML)."""
        return self._reverse_path("SAML", sender, params)

    def _reverse_path(self, verb: str, sender: str, params: Iterable[str]) -> Reply:
        """``VERB FROM:<sender>`` and the parameters, as mail() writes MAIL."""
        return self._rfc821(verb, f"{verb} FROM:<{sender}>" + _parameters(params))

    def _rfc821(self, verb: str, line: str) -> Reply:
        """One of the commands RFC 5321 dropped: the reply when positive;
        otherwise ReplyError carrying it (``.reply``, ``.command``) -- almost
        every server answers 502, and that must not pass for a step of a
        transaction that went on."""
        reply = self.command(line)
        if not reply.is_positive:
            raise ReplyError(f"the server refused {verb}", reply, command=line)
        return reply

    def turn(self, *, i_know_turn_is_obsolete: bool = False) -> Reply:
        """TURN (RFC 821 section 4.1.1): ask the server to swap roles and
        send *us* the mail it holds for this host. Sent only with
        ``i_know_turn_is_obsolete=True``; without it, UsageError.

        RFC 2821 (appendix F.1) removed TURN for
        security reasons: the client becomes the server on a connection
        that nothing authenticates -- the server hands over the mail it
        holds to whoever is on the connection, and nothing proves the
        client is the host it claims to be, so anyone could collect
        another host's mail. ETRN (RFC 1985,
        :meth:`etrn`) replaced it: the server opens a new connection to the
        domain's real mail host. A refusal (502 from nearly every server)
        raises ReplyError with ``.reply``. A server that accepts (250) now
        waits for this client to act as an SMTP server, which smtpsend is
        not: the connection is closed (without QUIT), and the reply
        returned."""
        if not i_know_turn_is_obsolete:
            raise UsageError("TURN is not sent unless you pass i_know_turn_is_obsolete=True: RFC 2821 removed it "
                             "for security reasons -- the client becomes the server on a connection where "
                             "nothing proves who it is, and is handed the mail held for the host it claims to "
                             "be; use etrn() (RFC 1985) instead")
        reply = self._rfc821("TURN", "TURN")
        if verdict.turned(reply):
            if self._note:
                self._note("* the server accepted TURN and now waits for us to be the server: closing")
            self._drop()
        return reply

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None
        self.session = None

    def close(self) -> None:
        """QUIT and close the connection (quietly if it is already gone)."""
        if self._connection is not None and self.session is not None:
            try:
                pump(self.session.quit(), self._connection)
            finally:
                self._drop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parameters(params: Union[str, Iterable[str]]) -> str:
    """ESMTP parameters as they follow the address: one given as a str is
    one parameter (``"SIZE=1000"``), never one per character."""
    return "".join(" " + p for p in one_or_many(params, "params="))


@keyword_only("port")
def connect(server: Union[str, ServerURL] = "localhost", *, port: Optional[int] = None, client: Optional[str] = None,
            usetls: bool = True, tlsimport: Optional[bool] = None, tlspolicy: Policy = None,
            ssl_context: Optional[ssl.SSLContext] = None, username: Optional[str] = None,
            password: Optional[str] = None, token: Token = None, mechanisms: Mechanisms = None,
            timeout: Optional[float] = None, maxsecs: float = 120, debug: Debug = False,
            events: Optional[EventHook] = None, monitor: Optional[MonitorHook] = None,
            monitor_headers: bool = False, progress: Optional[ProgressHook] = None,
            dkim: DKIM = None, protocol: str = "smtp") -> Client:
    """Open a connection to ``server`` (``host``, ``host:port``,
    ``[v6]:port`` or a server URL, see smtpsend.parse_url) for several
    messages. The options mean what they mean
    for sendmessage (``tlsimport=None``: implicit TLS on port 465, STARTTLS
    elsewhere); ``dkim`` signs every message sent over it unless a
    message names its own. Raises UsageError (TypeError for a ``dkim``
    that is not signers) for bad options and the connection's SMTPError
    when it cannot be opened. ``protocol="lmtp"``: LMTP (RFC 2033; default
    port 24, and ``server`` may be a Unix socket's path), see sendmessage."""
    if tlsimport and not usetls:
        raise UsageError("tlsimport=True and usetls=False contradict each other")
    protocol = protocol_name(protocol)
    default_port: Optional[int] = None
    url = server_url(server)
    place = url.server if url is not None else str(server)   # a str: a ServerURL has its url
    if url is not None:
        # a URL's settings, checked against the keywords (smtpsend._options.url_options)
        own = url_options(url, usetls=usetls, tlsimport=tlsimport, tlspolicy=tlspolicy, username=username,
                          password=password, timeout=timeout, mechanisms=mechanism_list(mechanisms),
                          protocol=protocol)
        default_port = url.default_port
        protocol, tlsimport = own.get("protocol", protocol), own.get("tlsimport", tlsimport)
        tlspolicy, timeout = own.get("tlspolicy", tlspolicy), own.get("timeout", timeout)
        username, password = own.get("username", username), own.get("password", password)
        mechanisms = own.get("mechanisms", mechanisms)
    host, port = parse_server(place, port, default_port or protocol_port(protocol, tlsimport))
    check_port(protocol, port, place)
    trace, notes = tracer(debug)
    opened = Client(host, port, client=client_name(client, [host]), usetls=usetls, tlsimport=tlsimport,
                    tlspolicy=tls_policy(tlspolicy), ssl_context=ssl_context, username=username,
                    password=password, token=token, timeouts=Timeouts.make(timeout, maxsecs),
                    trace=trace, mechanisms=mechanism_list(mechanisms), events=events,
                    monitor=monitor, monitor_headers=monitor_headers, progress=progress,
                    trace_notes=notes, dkim=dkim, protocol=protocol)
    return opened.open()


def _one(server: str, port: Optional[int], options: ConnectOptions, call: Callable[[Client], Reply]) -> Reply:
    with connect(server, port=port, **options) as client:
        return call(client)


def verify(address: str, *, server: str = "localhost", port: Optional[int] = None,
           **options: Unpack[ConnectOptions]) -> Reply:
    """VRFY ``address`` at one server (connect options as for connect)."""
    return _one(server, port, options, lambda c: c.vrfy(address))


def expand(name: str, *, server: str = "localhost", port: Optional[int] = None,
           **options: Unpack[ConnectOptions]) -> Reply:
    """EXPN ``name`` (a mailing list) at one server."""
    return _one(server, port, options, lambda c: c.expn(name))


def smtp_help(topic: Optional[str] = None, *, server: str = "localhost", port: Optional[int] = None,
              **options: Unpack[ConnectOptions]) -> Reply:
    """HELP [topic] at one server (``Client.help`` on an open connection)."""
    return _one(server, port, options, lambda c: c.help(topic))


def etrn(node: str, *, servers: Union[str, Iterable[str]] = ("localhost",),
         ports: Union[int, Iterable[Optional[int]], None] = None, **options: Unpack[ConnectOptions]) -> Reply:
    """ETRN ``node`` (RFC 1985) at each server in turn until one accepts
    (250-253); returns that reply. AllServersFailed when none does."""
    names = [servers] if isinstance(servers, str) else list(servers)
    given_ports = [ports] if isinstance(ports, int) else list(ports or [])
    attempts = []
    for i, server in enumerate(names):
        port = given_ports[i] if i < len(given_ports) else None
        try:
            with connect(server, port=port, **options) as client:
                reply = client.etrn(node)
        except SMTPError as exc:
            attempts.append(Attempt(exc.server or server, exc.port or port or 25, exc.stage or "connect", exc))
            continue
        if verdict.etrn_accepted(reply):
            return reply
        error = locate(NotSupported(f"ETRN {node} refused: {reply}"), client.host, client.port, "etrn")
        attempts.append(Attempt(client.host, client.port, "etrn", error))
    raise AllServersFailed(attempts)
