"""From a message's header to its SMTP envelope, and what is added to or
left out of the copy that is transmitted.

Rules (RFC 5321 section 3.3, RFC 5322 section 3.6.6):

- originator: ``originator=``, else Sender, else From (of the newest
  Resent- block when the message has one);
- recipients: ``recipients=``, else every address of To, Cc and Bcc (or of
  the newest block's Resent-To, -Cc, -Bcc), groups expanded, duplicates
  removed (local parts compared exactly, domains without regard to case);
- ``header=`` fields replace the message's fields of the same name;
- Bcc and Resent-Bcc are never transmitted; a missing Date, Message-ID,
  From (and MIME-Version) is added to the transmitted copy, never to the
  caller's part.
"""

from __future__ import annotations

import email.message
import functools
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Iterable, Union

import mimecompose
from mimecompose import Part, formatdate, parseaddress
from mimecompose._headers import check_name, check_value

from ._errors import UsageError

__all__ = ["Envelope", "Prepared", "as_part", "envelope", "prepare", "transmitted"]

_RESERVED = ("content-type", "content-transfer-encoding", "content-md5", "mime-version")
_TRACE = ("received", "return-path")
Message = Union[Part, bytes, bytearray, str, email.message.Message]


@dataclass(frozen=True)
class Envelope:
    """The SMTP envelope: the reverse-path (``""`` is the null path ``<>``)
    and the forward-paths, in order, without duplicates."""

    originator: str
    recipients: list = field(default_factory=list)


@dataclass(frozen=True)
class Prepared:
    """An envelope plus the changes to the header of the transmitted copy."""

    envelope: Envelope
    add: list
    omit: frozenset


def as_part(message: Message) -> Part:
    """Accept a Part, raw message bytes (or str) or an email.message.Message."""
    if isinstance(message, Part):
        return message
    if isinstance(message, email.message.Message):
        policy = message.policy.clone(linesep="\r\n")
        try:
            raw = message.as_bytes(policy=policy)
        except (UnicodeEncodeError, LookupError) as exc:
            raise UsageError(f"cannot serialise the email.message.Message: {exc}") from None
        return mimecompose.initialize(string=raw)
    if isinstance(message, (bytes, bytearray, str)):
        return mimecompose.initialize(string=message)
    raise UsageError(f"cannot send a {type(message).__name__}: give a mimecompose Part, bytes, "
                     "or an email.message.Message")


def _fields(part: Part, header: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The header as transmitted: header= fields, then the part's own fields
    whose names header= does not replace."""
    replaced = {name.lower() for name, _ in header}
    # the part's own fields, as written (Content-Type and the like do not matter here)
    own = [(f.name, f.value) for f in part._headers.fields if f.lname not in replaced]
    return list(header) + own


def _resent_block(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The newest Resent- block: the first run of Resent-* fields (trace
    fields may sit between them), ending where a name repeats."""
    block: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in fields:
        lname = name.lower()
        if lname.startswith("resent-"):
            if lname in seen:
                break
            seen.add(lname)
            block.append((name, value))
        elif block and lname not in _TRACE:
            break
    return block


def _addresses(text: str, what: str) -> list[str]:
    found = []
    for addr in parseaddress(text):
        if addr.error:
            raise UsageError(f"malformed address in {what}: {addr.proper!r}: {addr.error}")
        if addr.address:
            found.append(addr.address)
    return found


def _check_path(address: str, what: str) -> str:
    if any(c in address for c in "\r\n\x00<> "):
        # RFC 5321 section 4.1.2: a path has no such characters; a CR or LF
        # here would inject SMTP commands (the bpo-43124 class)
        if any(c in address for c in "\r\n\x00"):
            raise UsageError(f"CR, LF or NUL in {what}: {address!r}")
        if '"' not in address:
            raise UsageError(f"malformed {what}: {address!r}")
    return address


def envelope(part: Message, originator: str | None = None,
             recipients: Union[str, Iterable[str], None] = None,
             header: Iterable[tuple[str, str]] = ()) -> Envelope:
    """Work out the SMTP envelope of a message (see the module docstring).

    ``recipients`` is a list of addresses or a comma-separated string; each
    entry may be ``Name <addr>`` or a group. Raises UsageError (a
    ValueError) for a malformed address, more than one From mailbox without
    Sender, no originator at all, or no recipients.
    """
    return prepare(part, originator, recipients, header, stamp=False).envelope


def prepare(part: Message, originator: str | None = None,
            recipients: Union[str, Iterable[str], None] = None,
            header: Iterable[tuple[str, str]] = (), client: str | None = None,
            stamp: bool = True) -> Prepared:
    """The envelope plus the header changes for the transmitted copy.

    With ``stamp`` (what sendmessage does) a fresh Message-ID and the Date
    are added when missing.
    """
    part = as_part(part)
    header = [(str(n), str(v)) for n, v in header]
    for name, value in header:
        try:
            check_name(name)
            check_value(name, value)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if name.lower() in _RESERVED:
            raise UsageError(f"header= may not set {name}: it follows from the message content")
    fields = _fields(part, header)
    block = _resent_block(fields)
    resent = bool(block)
    source = block if resent else fields
    prefix = "Resent-" if resent else ""

    lowered = [(n.lower(), v) for n, v in source]

    def values(name: str) -> list[str]:
        lname = (prefix + name).lower()
        return [v for n, v in lowered if n == lname]

    if originator is not None:
        found = _addresses(originator, "originator") if originator.strip() else [""]
        if len(found) != 1:
            raise UsageError(f"originator must be one address, not {originator!r}")
        sender = found[0]
    else:
        senders = [a for v in values("Sender") for a in _addresses(v, prefix + "Sender")]
        froms = [a for v in values("From") for a in _addresses(v, prefix + "From")]
        if senders:
            sender = senders[0]
        elif len(froms) > 1:
            raise UsageError(f"too many mailboxes in {prefix}From: and no {prefix}Sender")
        elif froms:
            sender = froms[0]
        else:
            raise UsageError(f"no originator: give originator= or a {prefix}From header")
    _check_path(sender, "originator")

    if recipients is not None:
        if isinstance(recipients, str):
            recipients = [recipients]
        wanted = [a for r in recipients for a in _addresses(str(r), "recipients")]
    else:
        wanted = [a for name in ("To", "Cc", "Bcc") for v in values(name)
                  for a in _addresses(v, prefix + name)]
    unique, seen = [], set()
    for addr in wanted:
        _check_path(addr, "recipient")
        local, _, domain = addr.rpartition("@")
        key = (local, domain.lower())
        if key not in seen:
            seen.add(key)
            unique.append(addr)
    if not unique:
        raise UsageError("no recipients: give recipients= or To/Cc/Bcc headers")

    add = list(header)
    have = {n.lower() for n, _ in (block if resent else fields)}
    stamps = []
    if stamp and (prefix + "Date").lower() not in have:
        stamps.append((prefix + "Date", formatdate()))
    if (prefix + "From").lower() not in have:
        if not sender:
            raise UsageError(f"a message with the null originator needs a {prefix}From header")
        stamps.append((prefix + "From", f"<{sender}>"))
    if stamp and (prefix + "Message-ID").lower() not in have:
        stamps.append((prefix + "Message-ID", _message_id(client)))
    add = stamps + add
    if stamp and part._parsed is not None and "mime-version" not in {n.lower() for n, _ in fields}:
        if part.getheader("Content-Type"):
            add.append(("MIME-Version", "1.0"))
    omit = {"bcc", "resent-bcc"} | {n.lower() for n, _ in header}
    return Prepared(Envelope(sender, unique), add, frozenset(omit))


def transmitted(part: Message, originator: str | None = None,
                recipients: Union[str, Iterable[str], None] = None,
                header: Iterable[tuple[str, str]] = (), client: str | None = None) -> tuple[Envelope, bytes]:
    """What sendmessage would send: the envelope and the message bytes
    (CRLF, before dot-stuffing), with Date and Message-ID stamped, Bcc
    removed and ``header=`` applied. The caller's part is not changed."""
    from mimecompose._serialize import iter_part
    message = as_part(part)
    prepared = prepare(message, originator, recipients, header, client=client)
    data = b"".join(iter_part(message, root=True, add=prepared.add, omit=prepared.omit))
    return prepared.envelope, data


@functools.lru_cache(maxsize=1)
def _fqdn() -> str:
    return socket.getfqdn() or "localhost"


def _message_id(client: str | None) -> str:
    host = client or _fqdn()
    if not host or any(c in host for c in "<>@ \r\n"):
        host = "localhost"
    return f"<{int(time.time())}.{os.getpid()}.{secrets.token_hex(8)}@{host}>"
