"""Many messages over one connection, for bulk sending (Client.sendmessages).

With PIPELINING, CHUNKING and ``atleastone``, each message goes as MAIL,
its RCPTs and ``BDAT n LAST`` with the data, without waiting (RFC 2920:
BDAT does not end a command group; RFC 3030), up to ``window`` messages
ahead of the replies. Otherwise the messages go one transaction at a time
(smtpsend._transaction.deliver).

Each message gets one outcome: its refused recipients, or the error it met
(an SMTPError, or MessageChanged). A :class:`Batch` holds them, with the
messages written and not yet answered; what a lost connection or a 421
means for those is smtpsend._verdicts'.
"""

from __future__ import annotations

from typing import Optional, Union

from . import _verdicts as verdict
from ._channel import Channel
from ._data import MessageChanged, MessageData, bdat_blocks
from ._driver import Dialogue, Timeouts, TLSInfo
from ._envelope import Envelope
from ._errors import (DeliveryUncertain, Rejected, RemoteProtocolError, ServerUnavailable, SMTPError,
                      TransportError)
from ._esmtp import Delivery
from ._extensions import Extensions
from ._reply import Reply
from ._transaction import Transaction, deliver, prepare, read_group

__all__ = ["Batch", "Outcome", "deliver_many"]

# One message's outcome: its refused recipients, or the error it met.
Outcome = Union[list[Rejected], SMTPError, MessageChanged]


class Batch:
    """The outcomes of a batch so far, and the transactions written whose
    replies have not been read (oldest first)."""

    def __init__(self, size: int) -> None:
        self.outcomes: list[Optional[Outcome]] = [None] * size
        self.pending: list[tuple[int, Transaction, list[str]]] = []

    def results(self) -> list[Outcome]:
        """Every outcome (each message has one by the time this is asked)."""
        done = [o for o in self.outcomes if o is not None]
        assert len(done) == len(self.outcomes), "a message was left without an outcome"
        return done

    def unsent(self, first: int, why: str) -> None:
        """The messages from ``first`` on that have no outcome were never sent."""
        for m in range(first, len(self.outcomes)):
            if self.outcomes[m] is None:
                self.outcomes[m] = verdict.not_sent(why)

    def lost(self, first_unsent: int, exc: BaseException) -> None:
        """The connection was lost: the pending messages (data sent, no
        reply) are DeliveryUncertain, the unsent ones TransportError."""
        for m, _, _ in self.pending:
            self.outcomes[m] = verdict.uncertain(exc)
        self.pending.clear()
        self.unsent(first_unsent, str(exc))

    def closing(self, n: int, first_unsent: int) -> bool:
        """After a 421 as message ``n``'s outcome, the pending and unsent
        messages get the same; True when that happened."""
        closing = self.outcomes[n]
        if not isinstance(closing, ServerUnavailable) or not verdict.is_closing(closing):
            return False
        for m, _, _ in self.pending:
            self.outcomes[m] = ServerUnavailable("server closed the connection", closing.reply)
        self.pending.clear()
        for m in range(first_unsent, len(self.outcomes)):
            if self.outcomes[m] is None:
                self.outcomes[m] = ServerUnavailable("not sent: the server closed the connection", closing.reply)
        return True


def deliver_many(ch: Channel, extensions: Extensions, tls: Optional[TLSInfo], timeouts: Timeouts,
                 batch: list[tuple[Envelope, MessageData]], options: Delivery,
                 window: int = 16, lmtp: bool = False) -> Dialogue[list[Outcome]]:
    """Send every ``(envelope, message)`` of ``batch`` (see the module
    docstring); returns one outcome per message, in order. A lost
    connection makes every message whose data was sent but not answered
    DeliveryUncertain, and the rest unsent (TransportError) -- as does a
    message that changed while being sent, after which the connection must
    be closed. UsageError (CR/LF in a command) is raised, not an outcome.
    ``lmtp``: one transaction at a time (each recipient's reply after the
    data, RFC 2033 section 4.2, is read before the next message)."""
    if not lmtp and options.atleastone and "PIPELINING" in extensions and "CHUNKING" in extensions:
        return (yield from _pipelined(ch, extensions, tls, timeouts, batch, options, window))
    state = Batch(len(batch))
    for n, (env, message) in enumerate(batch):
        try:
            state.outcomes[n] = yield from deliver(ch, extensions, tls, timeouts, env, message, options,
                                                   lmtp=lmtp)
        except (TransportError, RemoteProtocolError, DeliveryUncertain, MessageChanged) as exc:
            state.outcomes[n] = exc
            state.unsent(n + 1, "the connection was lost before it")
            break
        except SMTPError as exc:
            state.outcomes[n] = exc
    return state.results()


def _pipelined(ch: Channel, extensions: Extensions, tls: Optional[TLSInfo], t: Timeouts,
               batch: list[tuple[Envelope, MessageData]], options: Delivery,
               window: int) -> Dialogue[list[Outcome]]:
    """Whole transactions written back to back, ``window`` ahead of their replies."""
    state = Batch(len(batch))
    next_index = 0
    while next_index < len(batch) or state.pending:
        while next_index < len(batch) and len(state.pending) < window:
            n = next_index
            next_index += 1
            env, message = batch[n]
            try:
                tx = prepare(ch, extensions, tls, env, message, options, chunking=True)
            except SMTPError as exc:
                state.outcomes[n] = exc
                continue
            lines = tx.group + [f"BDAT {tx.size} LAST"]
            ch.hold(lines)
            ch.log_data(tx.message, tx.size, b"")
            try:
                yield from ch.send_data(bdat_blocks(ch.take_held(), tx.message.chunks()), tx.size,
                                        t.data_block)
            except (TransportError, RemoteProtocolError) as exc:
                state.lost(n, exc)
                return state.results()
            except MessageChanged as exc:
                # the server waits for the rest of this BDAT: take the
                # answers to the messages before it, then give up
                state.outcomes[n] = exc
                yield from _settle(ch, state, n + 1, t)
                return state.results()
            state.pending.append((n, tx, lines))
        if not state.pending:
            continue
        if not (yield from _answer(ch, state, next_index, t)):
            return state.results()
    return state.results()


def _answer(ch: Channel, state: Batch, first_unsent: int, t: Timeouts) -> Dialogue[bool]:
    """Read the oldest pending transaction's replies into its outcome;
    False when the connection is gone (lost, or closing with a 421)."""
    n, tx, lines = state.pending[0]
    try:
        state.outcomes[n] = yield from _collect(ch, tx, lines, t)
    except (TransportError, RemoteProtocolError) as exc:
        state.lost(first_unsent, exc)
        return False
    state.pending.pop(0)
    return not state.closing(n, first_unsent)


def _settle(ch: Channel, state: Batch, first_unsent: int, t: Timeouts) -> Dialogue[None]:
    """Collect the outcome of every pending transaction, then mark the
    messages from ``first_unsent`` on as not sent: the connection is
    being given up."""
    while state.pending:
        if not (yield from _answer(ch, state, first_unsent, t)):
            return
    state.unsent(first_unsent, "the connection was given up before it")


def _collect(ch: Channel, tx: Transaction, lines: list[str], t: Timeouts) -> Dialogue[Outcome]:
    """The outcome of one pipelined MAIL, RCPT..., BDAT LAST group from
    its replies (a 421 among them: that ServerUnavailable). Raises
    TransportError or RemoteProtocolError when they do not come."""
    try:
        replies = yield from read_group(ch, lines, t.final)
    except ServerUnavailable as exc:   # a 421: the server is closing
        return exc
    return _outcome(ch, tx, replies)


def _outcome(ch: Channel, tx: Transaction, replies: list[Reply]) -> Outcome:
    """The outcome of one pipelined BDAT LAST transaction from its replies."""
    mail_reply, rcpt_replies, final = replies[0], replies[1:-1], replies[-1]
    try:
        verdict.check_mail(mail_reply, "MAIL")
        refused = verdict.rejected(tx.envelope.recipients, rcpt_replies)
        for address, reply in zip(tx.envelope.recipients, rcpt_replies):
            ch.event("rcpt", address=address, reply=reply)
        if len(refused) == len(rcpt_replies):
            error = verdict.refusal(0, refused, rcpt_replies, atleastone=True)
            if error is not None:
                raise error
        verdict.check_data(final, "BDAT", "message refused")
    except SMTPError as exc:
        return exc
    ch.event("accepted", reply=final, size=None)
    return refused
