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
from typing import Iterable, Optional

from mimecompose._serialize import iter_part

from ._data import MessageData
from ._envelope import Message, as_part, prepare
from ._errors import Rejected, SMTPError, TransportError, UsageError
from ._send import _client_name, _mechanisms, _policy_arg, _tracer, parse_server, resolve
from ._session import Session, Timeouts
from ._sync import SyncConnection, pump

__all__ = ["Client", "connect"]


class Client:
    """An open SMTP connection to one server. Use :func:`connect`."""

    def __init__(self, host: str, port: int, *, client: str, usetls: bool, tlsimport: bool,
                 tlspolicy, ssl_context: Optional[ssl.SSLContext], username: Optional[str],
                 password: Optional[str], token: Optional[str], timeouts: Timeouts, trace,
                 mechanisms: Optional[list[str]] = None) -> None:
        self.host = host
        self.port = port
        self._options = dict(client=client, usetls=usetls, implicit_tls=tlsimport, tlspolicy=tlspolicy,
                             username=username, password=password, token=token, host=host,
                             mechanisms=mechanisms, timeouts=timeouts, trace=trace)
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
                if self._trace:
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
                    header: Iterable[tuple[str, str]] = (), atleastone: bool = False) -> list[Rejected]:
        """Send one message over this connection (as smtpsend.sendmessage,
        without failover). A connection found closed before any of the
        message was sent is opened again once."""
        message = as_part(part)
        prepared = prepare(message, originator, recipients, header, client=self._options["client"])
        data = MessageData(lambda: iter_part(message, root=True, add=prepared.add, omit=prepared.omit))
        for retry in (True, False):
            if self._connection is None:
                self.open()
            session = self.session
            try:
                return pump(session.deliver(prepared.envelope, data, atleastone), self._connection)
            except SMTPError as exc:
                exc.server, exc.port, exc.stage = self.host, self.port, session.stage
                stale = isinstance(exc, TransportError) and session.stage == "mail"
                self._drop()
                if not (stale and retry):
                    raise
                if self._trace:
                    self._trace("* connection was closed by the server; opening it again")
        raise AssertionError("unreachable")

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
            usetls: bool = True, tlsimport: bool = False, tlspolicy=None,
            ssl_context: Optional[ssl.SSLContext] = None, username: Optional[str] = None,
            password: Optional[str] = None, token: Optional[str] = None, mechanisms=None,
            timeout: Optional[float] = None, maxsecs: float = 120, debug=False) -> Client:
    """Open a connection to ``server`` (``host``, ``host:port`` or
    ``[v6]:port``) for several messages. The options mean what they mean
    for sendmessage. Raises UsageError for bad options and the connection's
    SMTPError when it cannot be opened."""
    if tlsimport and not usetls:
        raise UsageError("tlsimport=True and usetls=False contradict each other")
    host, port = parse_server(server, port, 465 if tlsimport else 25)
    client = Client(host, port, client=_client_name(client, [host]), usetls=usetls, tlsimport=tlsimport,
                    tlspolicy=_policy_arg(tlspolicy), ssl_context=ssl_context, username=username,
                    password=password, token=token, timeouts=Timeouts.make(timeout, maxsecs),
                    trace=_tracer(debug), mechanisms=_mechanisms(mechanisms))
    return client.open()
