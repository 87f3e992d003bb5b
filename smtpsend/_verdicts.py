"""What each reply means: go on, raise, try the next server, or deliver.

Invariant: every decision smtpsend takes on what a server said -- a reply
code, a reply that cannot answer its command, a reply that never came --
is made in this module, and only here. The setup, the transaction shapes,
failover and Client send commands, read replies and ask these functions
what they mean; none of them compares a reply code or picks an error class
for a reply itself. The functions are pure: a verdict is a return value or
a raised SMTPError, never I/O.

The verdicts, by step (RFC 5321 unless noted):

| step | reply | verdict |
|---|---|---|
| any command | 421 | ServerUnavailable: the server is closing (section 3.8) |
| greeting | not 220 | ServerUnavailable |
| EHLO | 250 / 5xx / other | extensions / try HELO (section 3.2) / ServerUnavailable |
| LHLO (LMTP) | 250 / other | extensions / ServerUnavailable: no HELO in LMTP (RFC 2033 section 4.1) |
| STARTTLS | not 220 | ask the TLS policy (RFC 3207) |
| AUTH | 235 / 334 / in NEXT_MECHANISM / other | done / challenge / next mechanism / stop (RFC 4954 section 6) |
| MAIL | 2xx / 530 / 5xx / other | go on / ServerUnavailable / SenderRefused / ServerUnavailable |
| RCPT | 250, 251 / other | accepted / Rejected, then :func:`refusal` |
| DATA | 354 / 5xx / other | send the data / DataRefused / ServerUnavailable |
| BDAT, "." | 2xx / 5xx / other | delivered / DataRefused / ServerUnavailable |
| LMTP: each recipient's reply after the data | see :func:`per_recipient` | (RFC 2033 section 4.2) |
| pipelined group | cannot answer its command | RemoteProtocolError (RFC 2920 section 3.1) |
| after all the data | none, or out of step | DeliveryUncertain: never another server |
| QUIT after the data | not 221 or 421 | DeliveryUncertain (the replies were out of step) |

And what an error means next: :func:`is_message_fault` (raise it at once,
or try the next server: the table of smtpsend._failover), :func:`stale`
(Client: the connection was found closed, open it again once),
:func:`connection_unusable` (Client: drop the connection).
"""

from __future__ import annotations

from typing import Optional, Union

from ._data import MessageChanged
from ._errors import (AuthenticationError, DataRefused, DeliveryUncertain, MessageTooBig, RecipientsRefused,
                      Rejected, RemoteProtocolError, SenderRefused, ServerUnavailable, SMTPError, Timeout,
                      TransportError)
from ._reply import Reply
from ._sasl import SASLFailure, ServerNotProven

__all__ = [
    "NEXT_MECHANISM", "answers", "auth_failure", "authenticated", "awaiting_data", "challenge", "check_data",
    "check_final", "check_mail", "closed_after_probe", "closing", "connection_unusable", "data_start",
    "delivered", "ehlo_accepted", "etrn_accepted", "final_reply", "goodbye", "greeting", "helo", "in_step",
    "is_closing", "is_message_fault", "lhlo_accepted", "lmtp_lost", "lmtp_reply", "lost_while_idle",
    "next_mechanism", "no_greeting", "not_sent", "per_recipient", "queued", "recipient_accepted", "refusal",
    "rejected", "stale", "tls_started", "turned", "uncertain",
]

# Replies to AUTH after which the next mechanism is tried: the mechanism
# failed, not the credentials (RFC 4954 section 6: 432 password transition,
# 454 temporary failure, 501 cannot decode / cancelled, 504 unknown
# mechanism, 534 too weak, 538 needs encryption). Any other refusal ends
# AUTH: 535 or 5.7.8 means the credentials were refused, and trying weaker
# mechanisms with them only adds failed logins (fail2ban counts them).
NEXT_MECHANISM = frozenset({432, 454, 501, 504, 534, 538})


# ---------------------------------------------------------------- any command

def closing(reply: Reply, command: str) -> None:
    """ServerUnavailable for a 421 (RFC 5321 section 3.8: the server is
    closing the connection) to ``command``."""
    if reply.code == 421:
        raise ServerUnavailable("server is closing the connection", reply, command)


# ---------------------------------------------------------------- setup

def greeting(reply: Reply) -> None:
    """ServerUnavailable unless the greeting is 220 (section 3.1)."""
    if reply.code != 220:
        raise ServerUnavailable("server refused the connection", reply)


def closed_after_probe(exc: TransportError, quiet: float) -> TransportError:
    """The connection closed when the client spoke first, after ``quiet``
    seconds without a greeting: the port probably expects TLS from the
    first byte (reason "implicit-tls")."""
    return TransportError(f"no greeting within {quiet:g} s, and the connection was closed when the client "
                          f"spoke first ({exc}): the server is probably waiting for a TLS handshake",
                          reason="implicit-tls")


def no_greeting(exc: Timeout) -> Timeout:
    """A greeting that never came: reason "no-greeting" (unless known)."""
    exc.reason = exc.reason or "no-greeting"
    return exc


def ehlo_accepted(reply: Reply) -> bool:
    """True for 250 (the extensions follow); False when HELO is to be
    tried -- a 5xx, a server that does not know EHLO (section 3.2);
    ServerUnavailable for anything else."""
    if reply.code == 250:
        return True
    if reply.code // 100 != 5:
        raise ServerUnavailable("EHLO refused", reply, "EHLO")
    return False


def lhlo_accepted(reply: Reply) -> None:
    """ServerUnavailable unless LHLO got 250. LMTP has no HELO to fall back
    to (RFC 2033 section 4.1)."""
    if reply.code != 250:
        raise ServerUnavailable("LHLO refused", reply, "LHLO")


def helo(reply: Reply) -> None:
    """ServerUnavailable unless HELO got 250."""
    if reply.code != 250:
        raise ServerUnavailable("HELO refused", reply, "HELO")


def tls_started(reply: Reply) -> bool:
    """True when the server agreed to STARTTLS (220, RFC 3207 section 4);
    otherwise the TLS policy decides."""
    return reply.code == 220


def queued(reply: Reply) -> bool:
    """True when QUED (XQUE) was accepted; otherwise the message is sent unqueued."""
    return reply.is_positive


def challenge(reply: Reply) -> bool:
    """True for a SASL challenge (334, RFC 4954 section 4)."""
    return reply.code == 334


def authenticated(reply: Reply) -> bool:
    """True when AUTH succeeded (235)."""
    return reply.code == 235


def next_mechanism(outcome: Union[Reply, SASLFailure]) -> bool:
    """Whether a failed SASL exchange lets the next mechanism be tried: a
    reply in NEXT_MECHANISM, or a malformed challenge -- never a server that
    failed to prove itself (it may be an impostor)."""
    if isinstance(outcome, ServerNotProven):
        return False
    return not isinstance(outcome, Reply) or outcome.code in NEXT_MECHANISM


def auth_failure(failures: list[tuple[str, Union[Reply, SASLFailure]]], untried: list[str]) -> SMTPError:
    """The error AUTH ends with when no mechanism succeeded: ``failures``
    is (mechanism, refusing reply or SASLFailure) per mechanism tried.
    RemoteProtocolError when the server never refused with a reply or
    failed to prove itself; AuthenticationError otherwise, naming the
    mechanisms not tried with the same credentials."""
    replies = [(name, r) for name, r in failures if isinstance(r, Reply)]
    summary = "; ".join(f"{name}: {r}" for name, r in failures)
    last = failures[-1][1]
    if not replies or isinstance(last, ServerNotProven):
        return RemoteProtocolError(f"authentication failed: {summary}")
    if isinstance(last, Reply) and last.code not in NEXT_MECHANISM:
        rest = f"; not tried with the same credentials: {' '.join(untried)}" if untried else ""
        return AuthenticationError(f"authentication refused ({summary}{rest})", replies)
    return AuthenticationError(f"every mechanism failed ({summary})", replies)


# ---------------------------------------------------------------- the transaction

def check_mail(reply: Reply, command: str) -> None:
    """The reply to MAIL FROM: go on for 2xx; SenderRefused for 5xx (the
    message's fault); ServerUnavailable for 530 and 4xx (try another)."""
    if reply.code // 100 == 2:
        return
    if reply.code == 530:
        # RFC 3207 / RFC 4954: "Must issue a STARTTLS command first",
        # "Authentication required" -- the server's terms, not the message
        raise ServerUnavailable("server requires TLS or authentication first", reply, command)
    if reply.code // 100 == 5:
        raise SenderRefused("originator refused", reply, command)
    raise ServerUnavailable("MAIL FROM refused for now", reply, command)


def check_data(reply: Reply, command: str, what: str) -> None:
    """A reply to DATA, BDAT or the final ".": go on for 2xx; DataRefused
    for 5xx; ServerUnavailable otherwise."""
    if reply.code // 100 == 2:
        return
    if reply.code // 100 == 5:
        raise DataRefused(what, reply, command)
    raise ServerUnavailable(f"{what} for now", reply, command)


def check_final(reply: Reply) -> None:
    """The reply to the whole message (after "." or BDAT LAST)."""
    check_data(reply, "DATA", "message refused")


def data_start(reply: Reply) -> None:
    """The reply to DATA: go on for 354 (send the data); DataRefused,
    ServerUnavailable, or -- for a positive reply that is not 354 --
    RemoteProtocolError."""
    if reply.code != 354:
        check_data(reply, "DATA", "DATA refused")
        raise RemoteProtocolError(f"unexpected reply to DATA: {reply}")


def awaiting_data(reply: Reply) -> bool:
    """True when DATA was answered 354: the server waits for the message
    (refusing the transaction now means dropping the connection without
    the final ".", RFC 5321 section 4.1.1.4)."""
    return reply.code == 354


def recipient_accepted(reply: Reply) -> bool:
    """True for a RCPT accepted: 250, or 251 (forwarded, RFC 5321 section 3.4)."""
    return reply.code in (250, 251)


def rejected(recipients: list[str], replies: list[Reply]) -> list[Rejected]:
    """The recipients whose RCPT was not accepted."""
    return [Rejected(address, reply.code, reply.text, str(reply.status) if reply.status else None)
            for address, reply in zip(recipients, replies) if not recipient_accepted(reply)]


def refusal(accepted: int, refused: list[Rejected], replies: list[Reply],
            atleastone: bool) -> Optional[SMTPError]:
    """The error that ends the transaction after the RCPT replies, or None
    to go on and send the data: with ``atleastone``, any accepted recipient
    is enough; without, every one must be."""
    if not refused or (atleastone and accepted):
        return None
    first = next(r for r in replies if not recipient_accepted(r))
    if first.code == 421:
        return ServerUnavailable("server is closing the connection", first, "RCPT")
    if all(r.is_transient for r in refused):
        return RecipientsRefused("recipients refused for now", refused, first, "RCPT")
    return RecipientsRefused(f"{len(refused)} of {len(refused) + accepted} recipients refused",
                             refused, first, "RCPT")


def per_recipient(accepted: list[str], replies: list[Reply], refused: list[Rejected],
                  atleastone: bool) -> list[Rejected]:
    """LMTP: the replies after the message data, one per recipient accepted
    at RCPT, in RCPT order (RFC 2033 section 4.2); ``refused`` are those
    refused at RCPT. Each 2xx is a delivery; any other reply refuses that
    recipient (a Rejected with stage "data"). A 421 ends the replies --
    the server is closing -- and refuses the recipients it left unanswered.

    - every accepted recipient delivered: returns ``refused``;
    - some delivered, some refused: with ``atleastone``, returns ``refused``
      and then those refused after the data; without, RecipientsRefused
      whose ``delivered`` names the recipients that have the message (it
      cannot be taken back from them);
    - none delivered: ServerUnavailable when every refusal is a 4xx (no
      one has the message: the next server may take it), else DataRefused
      with the first 5xx -- as for the reply to SMTP's final ".".
    """
    after: list[Rejected] = []
    got: list[str] = []
    first: Optional[Reply] = None
    for i, address in enumerate(accepted):
        reply = replies[i] if i < len(replies) else replies[-1]   # past a 421: that 421
        if reply.code // 100 == 2:
            got.append(address)
            continue
        first = first or reply
        after.append(Rejected(address, reply.code, reply.text, str(reply.status) if reply.status else None,
                              "data"))
    if first is None:
        return refused
    if not got:
        if all(r.is_transient for r in after):
            raise ServerUnavailable(f"message refused for now for every recipient ({len(after)})", first,
                                    "DATA")
        permanent = next(r for r in replies if r.code // 100 == 5)
        raise DataRefused(f"message refused for every recipient ({len(after)})", permanent, "DATA")
    if atleastone:
        return refused + after
    raise RecipientsRefused(f"{len(after)} of {len(accepted)} recipients refused after the message data; "
                            f"the other {len(got)} have the message", after, first, "DATA", delivered=tuple(got))


def lmtp_reply(reply: Reply, accepted: list[str], replies: list[Reply]) -> bool:
    """One LMTP reply after the data (``replies``: those before it):
    DeliveryUncertain when it cannot answer the data -- a 1xx or 3xx: the
    replies are out of step; unlike :func:`final_reply`, a 2xx with an
    address status (X.1.Y) is taken, since each reply answers for one
    recipient -- and True when it ends the replies: a 421, the server is
    closing (RFC 5321 section 3.8)."""
    if reply.code // 100 not in (2, 4, 5):
        problem = RemoteProtocolError(f"reply {reply} cannot answer the message data: the server's "
                                      "replies are out of step with the commands")
        raise lmtp_lost(problem, accepted, replies) from problem
    return reply.code == 421


def delivered(reply: Reply) -> bool:
    """True for an LMTP reply after the data that delivered to its recipient (2xx)."""
    return reply.code // 100 == 2


def lmtp_lost(exc: BaseException, accepted: list[str], replies: list[Reply]) -> DeliveryUncertain:
    """The connection was lost (or the replies went out of step) before
    every recipient's reply after the data came: the others may have the
    message too. The message names those known to have it."""
    done = [a for a, r in zip(accepted, replies) if r.code // 100 == 2]
    known = f" (delivered to {', '.join(done)})" if done else ""
    return uncertain(exc, f"{len(replies)} of {len(accepted)} replies after the message data{known}")


def answers(verb: str, reply: Reply) -> bool:
    """Whether ``reply`` can be the answer to ``verb`` (BDAT also stands for
    the final "."). A 2xx to DATA, a 3xx to anything but DATA, or a positive
    reply to the message data with an address status (RFC 3463 section
    3.2: X.1.Y answers MAIL or RCPT) is another command's reply."""
    kind = reply.code // 100
    if kind in (4, 5):
        return True
    if verb in ("MAIL", "RCPT"):
        return kind == 2
    if reply.status is not None and reply.status.subject == 1:
        return False
    if verb == "DATA":
        return reply.code == 354
    return kind == 2


def in_step(verb: str, reply: Reply) -> None:
    """One reply of a pipelined group, against its command (RFC 2920
    section 3.1): ServerUnavailable for a 421 (the group ends: the server
    is closing), RemoteProtocolError for a reply that cannot answer it (an
    unsolicited reply put the server out of step; never taken for another
    command's answer)."""
    if reply.code == 421:
        raise ServerUnavailable("server is closing the connection", reply, verb)
    if not answers(verb, reply):
        raise RemoteProtocolError(f"reply {reply} cannot answer {verb}: the server's replies "
                                  "are out of step with the commands")


def uncertain(exc: BaseException, what: str = "no reply after the message data was sent") -> DeliveryUncertain:
    """From here on the server may hold the message: never try another server."""
    return DeliveryUncertain(f"{what}: {exc}")


def final_reply(reply: Reply) -> None:
    """DeliveryUncertain when the reply to the message data cannot be its
    answer (the replies are out of step: it may be another command's)."""
    if not answers("BDAT", reply):
        problem = RemoteProtocolError(f"reply {reply} cannot answer the message data: the server's "
                                      "replies are out of step with the commands")
        raise uncertain(problem, "no reply to the message data") from problem


def goodbye(reply: Reply) -> None:
    """The reply to a QUIT pipelined after the data. Anything but 221 (or
    421) means the replies were out of step -- an unsolicited one earlier
    -- so the one taken for the message's may have been another's:
    DeliveryUncertain. (A lost goodbye changes nothing: delivered.)"""
    if reply.code not in (221, 421):
        problem = RemoteProtocolError(f"reply {reply} to QUIT: the server's replies are out of step "
                                      "with the commands")
        raise uncertain(problem, "whether the message was accepted is unknown") from problem


def is_closing(outcome: object) -> bool:
    """True for a message's outcome that is a 421: the server is closing,
    and every message after it gets the same."""
    return isinstance(outcome, ServerUnavailable) and outcome.reply.code == 421


def not_sent(why: str) -> TransportError:
    """The outcome of a message never sent because the connection went."""
    return TransportError(f"not sent: {why}")


# ---------------------------------------------------------------- what an error means next

def is_message_fault(exc: SMTPError) -> bool:
    """True when the failure belongs to the message, not to the server:
    raise it at once rather than try the next server (the refusals, a
    message too big, one that may have been delivered)."""
    if isinstance(exc, RecipientsRefused):
        # a partial LMTP delivery: the others have the message, never resend it
        return bool(exc.delivered) or any(r.is_permanent for r in exc.rejected)
    return isinstance(exc, (SenderRefused, DataRefused, MessageTooBig, DeliveryUncertain))


def stale(exc: SMTPError, stage: str) -> bool:
    """True when a connection kept open between messages turned out to be
    closed before any of the message was sent (lost at MAIL): opening it
    again and retrying once cannot deliver twice."""
    return isinstance(exc, TransportError) and stage == "mail"


def lost_while_idle(exc: SMTPError, stage: str) -> bool:
    """True when a connection a pool kept idle turned out closed at the
    first command of the next message -- lost (see :func:`stale`), or a 421
    (the server closed it while idle, RFC 5321 section 3.8) -- before any of
    the message was sent: it is replaced, and the message is not at risk."""
    return stale(exc, stage) or (is_closing(exc) and stage == "mail")


def connection_unusable(outcome: object) -> bool:
    """True when, after this error, the connection cannot carry another
    command: it was lost, the message's fate is unknown, or the message
    changed mid-data (only closing makes the server discard it)."""
    return isinstance(outcome, (TransportError, DeliveryUncertain, MessageChanged))


def etrn_accepted(reply: Reply) -> bool:
    """ETRN accepted (RFC 1985 section 5: 250 to 253)."""
    return 250 <= reply.code <= 253


def turned(reply: Reply) -> bool:
    """TURN accepted (RFC 821 section 4.1.1: 250): the server now expects
    the client to act as the server, so the connection is no longer ours."""
    return reply.code == 250
