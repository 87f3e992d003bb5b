"""The SMTP client dialogue of one connection, written once, with no I/O in it.

A :class:`Session`'s methods are generators (dialogues): they yield the
actions of the driver contract (smtpsend._driver) -- Send some bytes, Read
some replies, StartTLS -- and receive each one's result. A driver
(``_sync.py`` with sockets, ``_async.py`` with asyncio streams, a test's
script) only moves bytes, wraps TLS and applies the timeouts; a driver
that fails throws the error into the dialogue, which decides what it means
at that point (after the message data: DeliveryUncertain).

Session puts together the parts, each in its own module:

- smtpsend._channel: commands out, replies in, the trace, notes and events;
- smtpsend._setup: greeting, EHLO, STARTTLS and its policy, AUTH;
- smtpsend._transaction: one transaction, in the shape the extensions allow;
- smtpsend._bulk: many transactions back to back;
- smtpsend._esmtp (parameters) and smtpsend._verdicts (what replies mean).

State the session keeps between calls: ``stage`` (where it is, for error
reports), ``extensions`` and ``tls`` (what the setup established). A
transaction's own state lives in its Transaction, not here.

The driver contract's names (Send, Read, StartTLS, TLSInfo, ...) live in
smtpsend._driver, Delivery in smtpsend._esmtp: import them from there.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

from . import _verdicts as verdict
from ._bulk import Outcome, deliver_many
from ._channel import Channel, Event, Hooks
from ._data import MessageData, data_blocks
from ._driver import Dialogue, Send, Timeouts, TLSInfo
from ._envelope import Envelope
from ._errors import Rejected
from ._esmtp import Delivery
from ._extensions import Extensions
from ._reply import Reply
from ._sasl import TokenArg
from ._secret import Secret
from ._setup import Policy, Setup
from ._transaction import deliver

__all__ = ["Session"]


class Session:
    """One SMTP connection's dialogue: ``open()``, then ``deliver()`` once
    or more, then ``quit()``; ``run()`` does all three for one message.

    ``password`` and ``token`` are held as Secret (no repr, vars() or
    pickle shows them; a token callable is asked once per Session); ``port`` (when known) lets the greeting wait probe
    for a TLS port (see smtpsend._setup.Setup.greeting). The hooks are
    smtpsend._channel.Hooks'. ``protocol="lmtp"``: the same dialogue in
    LMTP (RFC 2033): LHLO, and one reply per recipient after the data.
    """

    def __init__(self, *, client: str, usetls: bool = True, implicit_tls: bool = False,
                 tlspolicy: Policy = None, username: Optional[str] = None,
                 password: Union[str, Secret, None] = None, token: TokenArg = None,
                 port: Optional[int] = None, host: str = "localhost", queue: bool = False,
                 mechanisms: Optional[list[str]] = None, timeouts: Timeouts = Timeouts(),
                 trace: Optional[Callable[[str], None]] = None,
                 monitor: Optional[Callable[[str, str], None]] = None, monitor_headers: bool = False,
                 events: Optional[Callable[[Event], None]] = None,
                 progress: Optional[Callable[[int, int], None]] = None, trace_notes: bool = False,
                 protocol: str = "smtp") -> None:
        self.channel = Channel(host, Hooks(trace, trace_notes, monitor, monitor_headers, events, progress))
        self.setup = Setup(self.channel, client=client, usetls=usetls, implicit_tls=implicit_tls,
                           tlspolicy=tlspolicy, username=username, password=password, token=token, port=port,
                           host=host, queue=queue, mechanisms=mechanisms, timeouts=timeouts, protocol=protocol)
        self.timeouts = timeouts

    @property
    def stage(self) -> str:
        """Where the dialogue is: connect, greeting, ehlo, starttls, auth,
        mail, rcpt, data or quit."""
        return self.channel.stage

    @property
    def extensions(self) -> Extensions:
        """The server's extensions (asked again after STARTTLS)."""
        return self.setup.extensions

    @property
    def tls(self) -> Optional[TLSInfo]:
        """The TLS session, once encrypted."""
        return self.setup.tls

    @property
    def client(self) -> str:
        """The name the client gives in EHLO/HELO."""
        return self.setup.client

    # ------------------------------------------------------------ the connection

    def open(self) -> Dialogue[None]:
        """Greeting, EHLO, TLS, AUTH: ready for a transaction."""
        yield from self.setup.open()

    def quit(self) -> Dialogue[None]:
        """Say goodbye; a server that is already gone changes nothing."""
        yield from self.channel.quit(self.timeouts.command)

    def hello(self, name: Optional[str] = None) -> Dialogue[Extensions]:
        """EHLO again (HELO when EHLO is refused), as ``name`` from now on
        when given; returns the extensions."""
        if name is not None:
            self.setup.client = name
        return (yield from self.setup.hello())

    def starttls(self) -> Dialogue[None]:
        """STARTTLS now (if not encrypted yet), failing rather than going
        on in plaintext (TLSRequired)."""
        yield from self.setup.require_tls()

    def login(self, username: str, password: Optional[Secret], token: TokenArg) -> Dialogue[None]:
        """AUTH with these (already checked) credentials."""
        yield from self.setup.login(username, password, token)

    def command(self, line: str) -> Dialogue[Reply]:
        """One command line and its reply, whatever it is (a 421 raises
        ServerUnavailable). UsageError for CR, LF or NUL in ``line``."""
        return (yield from self.channel.command(line, self.timeouts.command))

    def data(self, message: MessageData) -> Dialogue[Reply]:
        """DATA and the message (dot-stuffed): the final reply, or the
        reply to DATA itself when it is not 354."""
        reply = yield from self.channel.command("DATA", self.timeouts.data_start)
        if not verdict.awaiting_data(reply):
            return reply
        yield Send(data_blocks(message.chunks()), self.timeouts.data_block)
        [final] = yield from self.channel.read(1, self.timeouts.final)
        return final

    # ------------------------------------------------------------ transactions

    def run(self, envelope: Envelope, message: MessageData,
            atleastone: Union[Delivery, bool] = False) -> Dialogue[list[Rejected]]:
        """Open, deliver one message, quit (QUIT pipelined when possible).
        Returns the rejected recipients (non-empty only with ``atleastone``)."""
        yield from self.open()
        return (yield from self.deliver(envelope, message, atleastone, quit=True))

    def deliver(self, envelope: Envelope, message: MessageData, options: Union[Delivery, bool] = False,
                quit: bool = False) -> Dialogue[list[Rejected]]:
        """One mail transaction (smtpsend._transaction). ``options`` is a
        :class:`Delivery` (or just ``atleastone``). With ``quit``, QUIT
        follows the message (pipelined when the server allows it) and the
        dialogue ends.

        Raises the SMTPError of the transaction, or MessageChanged (a
        UsageError) when the message's octets changed while being sent: the
        transaction is then left unfinished, and the connection must be
        closed (the server discards what it has, RFC 5321 section 4.1.1.4).
        """
        delivery = options if isinstance(options, Delivery) else Delivery(atleastone=bool(options))
        return (yield from deliver(self.channel, self.extensions, self.tls, self.timeouts, envelope, message,
                                   delivery, quit, self.setup.lmtp))

    def deliver_many(self, batch: list[tuple[Envelope, MessageData]], options: Delivery,
                     window: int = 16) -> Dialogue[list[Outcome]]:
        """Many transactions back to back (smtpsend._bulk): one outcome per
        message, its refused recipients or the error it met."""
        return (yield from deliver_many(self.channel, self.extensions, self.tls, self.timeouts, batch, options,
                                        window, self.setup.lmtp))
