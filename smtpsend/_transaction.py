"""The mail transaction (RFC 5321 section 3.3), in the shapes the server's
extensions allow -- one code path per shape:

| shape | PIPELINING | CHUNKING | the writes |
|---|---|---|---|
| :func:`plain` | no | no | MAIL; each RCPT; DATA; the data and "." |
| :func:`chunked` | no | yes | MAIL; each RCPT; BDAT n LAST with the data |
| :func:`pipelined` | yes | no | MAIL, RCPT..., DATA; the data, "." (and QUIT) |
| :func:`pipelined_chunks` | yes | yes | MAIL, RCPT..., BDAT n with the data; BDAT 0 LAST (and QUIT) |
| :func:`pipelined_last` | yes | yes, ``atleastone`` | MAIL, RCPT..., BDAT n LAST with the data (and QUIT) |

(Many messages back to back: smtpsend._bulk.)

LMTP (RFC 2033) uses the same shapes: what changes is how many replies
follow the message data -- one per recipient accepted at RCPT, in RCPT
order (section 4.2; after ``BDAT ... LAST`` too, section 4.3) instead of
one. The shapes ask the Transaction (``lmtp``, :meth:`Transaction.accepted`)
and read them with :func:`_final_replies`; what they mean is
smtpsend._verdicts.per_recipient's. The replies are read one at a time,
each within the final-reply timeout (the server delivers to one mailbox
after another), and a 421 ends them.

:func:`prepare` does what every shape needs first, once: the 7-bit
downgrade, the SIZE check (RFC 1870: before any data) and the MAIL and
RCPT commands (smtpsend._esmtp). The result, a :class:`Transaction`, is the
per-transaction state; nothing of it stays on the session afterwards.

``atleastone=False``: nothing is delivered unless every recipient is
accepted. If a refusal arrives after DATA was already accepted (354), the
connection is dropped without the final "." -- the server then discards
the transaction (RFC 5321 section 4.1.1.4); a BDAT chunk without LAST is
discarded by RSET (RFC 3030 section 3).

Each shape raises the SMTPError of the transaction (what each reply means
is smtpsend._verdicts'), or MessageChanged (a UsageError) when the
message's octets changed while being sent: the transaction is then left
unfinished, and the connection must be closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from . import _verdicts as verdict
from ._channel import Channel
from ._data import MessageData, bdat_blocks, data_blocks
from ._driver import Dialogue, Timeouts, TLSInfo
from ._envelope import Envelope
from ._errors import MessageTooBig, Rejected, RemoteProtocolError, SMTPError, TransportError
from ._esmtp import Delivery, mail_command, rcpt_command, wire_form
from ._extensions import Extensions
from ._reply import Reply

__all__ = ["Shape", "Transaction", "chunked", "deliver", "pipelined", "pipelined_chunks", "pipelined_last",
           "plain", "prepare", "read_group", "shape_for"]

_STAGES = {"MAIL": "mail", "RCPT": "rcpt", "DATA": "data", "BDAT": "data"}
_QUIT = b"QUIT\r\n"


@dataclass(frozen=True)
class Transaction:
    """One message's transaction, worked out for one server: the envelope,
    the message in the form this server takes, the options and the
    commands."""

    envelope: Envelope
    message: MessageData
    options: Delivery
    mail: str
    rcpts: list[str]
    lmtp: bool = False   # RFC 2033: one reply per accepted recipient after the data

    @property
    def size(self) -> int:
        return self.message.size

    @property
    def group(self) -> list[str]:
        """MAIL and every RCPT: the start of every pipelined group."""
        return [self.mail] + self.rcpts

    def accepted(self, refused: list[Rejected]) -> list[str]:
        """The recipients accepted at RCPT, in RCPT order: the envelope's
        recipients without ``refused`` (which lists refusals in the same
        order). An LMTP server answers each of them after the data."""
        out: list[str] = []
        left = iter(refused)
        skip = next(left, None)
        for address in self.envelope.recipients:
            if skip is not None and skip.address == address:
                skip = next(left, None)
            else:
                out.append(address)
        return out

    def result(self, refused: list[Rejected]) -> list[Rejected]:
        """What a delivered transaction returns: the refused recipients
        with ``atleastone`` (else there are none)."""
        return refused if self.options.atleastone else []


def prepare(ch: Channel, extensions: Extensions, tls: Optional[TLSInfo], env: Envelope,
            message: MessageData, options: Delivery, chunking: bool, lmtp: bool = False) -> Transaction:
    """Everything before the first command (stage "mail"): the form of the
    message this server takes (a note when downgraded to 7 bits), the SIZE
    check, the MAIL and RCPT commands (notes for options left out); ``lmtp``
    for an LMTP server (RFC 2033). Raises NotSupported, MessageTooBig, or
    UsageError (an invalid IDN)."""
    ch.stage = "mail"
    message, note = wire_form(message, extensions, chunking)
    if note:
        ch.note(note)
    if extensions.size is not None and message.size > extensions.size:
        raise MessageTooBig(message.size, extensions.size)
    mail, notes = mail_command(env, message, options, extensions, tls, chunking)
    for text in notes:
        ch.note(text)
    rcpts = [rcpt_command(address, options, extensions) for address in env.recipients]
    return Transaction(env, message, options, mail, rcpts, lmtp)


Shape = Callable[[Channel, Transaction, Timeouts, bool], Dialogue[list[Rejected]]]


def shape_for(extensions: Extensions, options: Delivery) -> Shape:
    """The shape of a transaction with this server (see the table above)."""
    if "PIPELINING" in extensions:
        if "CHUNKING" in extensions:
            return pipelined_last if options.atleastone else pipelined_chunks
        return pipelined
    return chunked if "CHUNKING" in extensions else plain


def deliver(ch: Channel, extensions: Extensions, tls: Optional[TLSInfo], timeouts: Timeouts, env: Envelope,
            message: MessageData, options: Delivery, quit: bool = False,
            lmtp: bool = False) -> Dialogue[list[Rejected]]:
    """One mail transaction in the shape the server allows. With ``quit``,
    QUIT follows the message (pipelined when the server allows it) and the
    dialogue ends; ``lmtp``: an LMTP server, answering each recipient after
    the data. Returns the refused recipients (with ``atleastone``)."""
    chunking = "CHUNKING" in extensions
    tx = prepare(ch, extensions, tls, env, message, options, chunking, lmtp)
    ch.event("mail", command=tx.mail)
    return (yield from shape_for(extensions, options)(ch, tx, timeouts, quit))


# ---------------------------------------------------------------- the shapes

def plain(ch: Channel, tx: Transaction, t: Timeouts, quit: bool) -> Dialogue[list[Rejected]]:
    """Neither PIPELINING nor CHUNKING: one command at a time, then DATA."""
    rcpt_replies = yield from _one_by_one(ch, tx, t)
    refused = yield from _recipients(ch, tx, rcpt_replies, t, quit, abandon=True)
    ch.stage = "data"
    verdict.data_start((yield from ch.command("DATA", t.data_start)))
    ch.log_data(tx.message, tx.size, b"", dot=True)
    yield from ch.send_data(data_blocks(tx.message.chunks()), tx.size, t.data_block)
    finals = yield from _final_replies(ch, tx, refused, t.final)
    return (yield from _finish(ch, tx, refused, finals, b"", quit, t))


def chunked(ch: Channel, tx: Transaction, t: Timeouts, quit: bool) -> Dialogue[list[Rejected]]:
    """CHUNKING without PIPELINING: one command at a time, then the whole
    message as one BDAT LAST chunk (RFC 3030)."""
    rcpt_replies = yield from _one_by_one(ch, tx, t)
    refused = yield from _recipients(ch, tx, rcpt_replies, t, quit, abandon=True)
    ch.stage = "data"
    ch.hold([f"BDAT {tx.size} LAST"])
    ch.log_data(tx.message, tx.size, b"")
    yield from ch.send_data(bdat_blocks(ch.take_held(), tx.message.chunks()), tx.size, t.data_block)
    finals = yield from _final_replies(ch, tx, refused, t.final)
    return (yield from _finish(ch, tx, refused, finals, b"", quit, t))


def pipelined(ch: Channel, tx: Transaction, t: Timeouts, quit: bool) -> Dialogue[list[Rejected]]:
    """PIPELINING (RFC 2920): MAIL, every RCPT and DATA in one write, the
    replies in order; then the data, "." and QUIT in one more."""
    trailer = _QUIT if quit else b""
    ch.hold(tx.group)
    yield from ch.send(["DATA"], t.command)
    replies = yield from read_group(ch, tx.group + ["DATA"], t.command)
    data_reply = replies[-1]
    _mail(ch, tx, replies[0])
    # with DATA accepted (354) a refusal drops the connection without "."
    refused = yield from _recipients(ch, tx, replies[1:-1], t, quit,
                                     abandon=not verdict.awaiting_data(data_reply))
    ch.stage = "data"
    verdict.data_start(data_reply)
    ch.log_data(tx.message, tx.size, trailer, dot=True)
    yield from ch.send_data(data_blocks(tx.message.chunks(), trailer), tx.size, t.data_block)
    finals = yield from _final_replies(ch, tx, refused, t.final)
    return (yield from _finish(ch, tx, refused, finals, trailer, quit, t))


def pipelined_chunks(ch: Channel, tx: Transaction, t: Timeouts, quit: bool) -> Dialogue[list[Rejected]]:
    """PIPELINING and CHUNKING, every recipient needed: MAIL, every RCPT and
    ``BDAT n`` with the data in one write (RFC 3030 section 4.2); once
    every recipient is accepted, ``BDAT 0 LAST`` (and QUIT) ends it."""
    command = f"BDAT {tx.size}"
    ch.hold(tx.group + [command])
    ch.log_data(tx.message, tx.size, b"")
    yield from ch.send_data(bdat_blocks(ch.take_held(), tx.message.chunks()), tx.size, t.data_block)
    replies = yield from read_group(ch, tx.group + [command], t.command)
    _mail(ch, tx, replies[0])
    refused = yield from _recipients(ch, tx, replies[1:-1], t, quit, abandon=True)
    ch.stage = "data"
    verdict.check_data(replies[-1], "BDAT", "message data refused")
    trailer = _QUIT if quit else b""
    yield from ch.send(["BDAT 0 LAST"] + (["QUIT"] if quit else []), t.command)
    finals = yield from _final_replies(ch, tx, refused, t.final)
    return (yield from _finish(ch, tx, refused, finals, trailer, quit, t))


def pipelined_last(ch: Channel, tx: Transaction, t: Timeouts, quit: bool) -> Dialogue[list[Rejected]]:
    """PIPELINING and CHUNKING with ``atleastone``: the whole transaction --
    MAIL, every RCPT, ``BDAT n LAST`` with the data (and QUIT) -- in one
    write. From the moment it is written the server may hold the message:
    a reply that does not come is DeliveryUncertain. (LMTP: the replies to
    MAIL and RCPT first; the number after the data depends on them.)"""
    command = f"BDAT {tx.size} LAST"
    trailer = _QUIT if quit else b""
    ch.hold(tx.group + [command])
    ch.log_data(tx.message, tx.size, trailer)
    yield from ch.send_data(bdat_blocks(ch.take_held(), tx.message.chunks(), trailer), tx.size, t.data_block)
    group = tx.group if tx.lmtp else tx.group + [command]
    try:
        replies = yield from read_group(ch, group, t.command)
        if tx.lmtp and not tx.accepted(verdict.rejected(tx.envelope.recipients, replies[1:])):
            yield from read_group(ch, [command], t.command)   # no recipient: one refusal of the BDAT
    except (TransportError, RemoteProtocolError) as exc:
        raise verdict.uncertain(exc, "no reply after the message was sent") from exc
    _mail(ch, tx, replies[0])
    refused = yield from _recipients(ch, tx, replies[1:len(tx.group)], t, quit, abandon=True)
    ch.stage = "data"
    finals = (yield from _final_replies(ch, tx, refused, t.final)) if tx.lmtp else replies[-1:]
    return (yield from _finish(ch, tx, refused, finals, trailer, quit, t))


# ---------------------------------------------------------------- their steps

def _one_by_one(ch: Channel, tx: Transaction, t: Timeouts) -> Dialogue[list[Reply]]:
    """MAIL (its verdict at once), then each RCPT: their replies."""
    verdict.check_mail((yield from ch.command(tx.mail, t.command)), tx.mail)
    ch.stage = "rcpt"
    replies = []
    for line in tx.rcpts:
        replies.append((yield from ch.command(line, t.command)))
    return replies


def _mail(ch: Channel, tx: Transaction, reply: Reply) -> None:
    """The verdict on a pipelined MAIL's reply."""
    ch.stage = "mail"
    verdict.check_mail(reply, tx.mail)


def _recipients(ch: Channel, tx: Transaction, replies: list[Reply], t: Timeouts, quit: bool,
                abandon: bool) -> Dialogue[list[Rejected]]:
    """The verdict on the RCPT replies: the refused recipients, or the
    transaction's error -- after RSET (and QUIT) when ``abandon``; without,
    the server is waiting for the data and the connection is dropped."""
    ch.stage = "rcpt"
    refused = verdict.rejected(tx.envelope.recipients, replies)
    for address, reply in zip(tx.envelope.recipients, replies):
        ch.event("rcpt", address=address, reply=reply)
    error = verdict.refusal(len(replies) - len(refused), refused, replies, tx.options.atleastone)
    if error is not None:
        if abandon:
            yield from ch.quietly(["RSET"] + (["QUIT"] if quit else []), t.command)
        raise error
    return refused


def _final_replies(ch: Channel, tx: Transaction, refused: list[Rejected], timeout: float
                   ) -> Dialogue[list[Reply]]:
    """The reply to the message data -- LMTP: one per recipient accepted at
    RCPT, read one at a time, until a 421. From here on the server may
    hold the message: no reply, or one out of step, is DeliveryUncertain."""
    if not tx.lmtp:
        try:
            [final] = yield from ch.read(1, timeout)
        except (TransportError, RemoteProtocolError) as exc:
            raise verdict.uncertain(exc) from exc
        verdict.final_reply(final)
        return [final]
    accepted = tx.accepted(refused)
    replies: list[Reply] = []
    for address in accepted:
        try:
            [reply] = yield from ch.read(1, timeout)
        except (TransportError, RemoteProtocolError) as exc:
            raise verdict.lmtp_lost(exc, accepted, replies) from exc
        closing = verdict.lmtp_reply(reply, accepted, replies)
        replies.append(reply)
        ch.event("delivery", address=address, reply=reply)
        if closing:
            break
    return replies


def _finish(ch: Channel, tx: Transaction, refused: list[Rejected], finals: list[Reply], trailer: bytes,
            quit: bool, t: Timeouts) -> Dialogue[list[Rejected]]:
    """The verdict on the message's reply (LMTP: on each recipient's,
    smtpsend._verdicts.per_recipient); then the goodbye: the reply to a
    pipelined QUIT in ``trailer`` (DeliveryUncertain when out of step), or
    QUIT now with ``quit``."""
    final = finals[0]
    if tx.lmtp:
        refused = verdict.per_recipient(tx.accepted(refused), finals, refused, tx.options.atleastone)
        final = next((r for r in finals if verdict.delivered(r)), final)
    else:
        verdict.check_final(final)
    if trailer:
        ch.stage = "quit"
        try:
            [bye] = yield from ch.read(1, t.command)
        except SMTPError:
            bye = None   # delivered; a lost goodbye changes nothing
        if bye is not None:
            verdict.goodbye(bye)
    ch.event("accepted", reply=final, size=tx.size)
    if quit and not trailer:
        yield from ch.quit(t.command)
    return tx.result(refused)


def read_group(ch: Channel, commands: list[str], timeout: float) -> Dialogue[list[Reply]]:
    """The replies to a pipelined group of ``commands``, each checked
    against its command in order (RFC 2920 section 3.1; the stage follows
    the command whose reply is checked).

    A 421 ends the group -- the server is closing (RFC 5321 section
    3.8) -- and is the error, ServerUnavailable, even when the
    connection closed (or went silent) before the rest: the replies that
    arrived before are read back from what the driver holds (a Read
    with no time to wait returns them, and fails at once after). A
    reply that cannot answer its command (an unsolicited reply put the
    server out of step) is a RemoteProtocolError, never taken for
    another command's answer."""
    try:
        replies = yield from ch.read(len(commands), timeout)
    except TransportError:
        arrived: list[Reply] = []
        while len(arrived) < len(commands):
            try:
                arrived += yield from ch.read(1, 0.0)
            except SMTPError:
                break
        _in_step(ch, commands, arrived)
        raise
    _in_step(ch, commands, replies)
    return replies


def _in_step(ch: Channel, commands: list[str], replies: list[Reply]) -> None:
    for line, reply in zip(commands, replies):
        verb = line[:4]   # MAIL, RCPT, DATA or BDAT
        ch.stage = _STAGES[verb]
        verdict.in_step(verb, reply)
