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

import email.errors
import email.message
import functools
import inspect
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Union

import mimecompose
from mimecompose import Part, checkheader, formatdate, iter_addresses

from mimecompose.args import HeaderArg, header_fields, one_or_many
from ._data import DKIM, MessageData, dkim_signers
from ._errors import UsageError

__all__ = ["HIDDEN", "Envelope", "Prepared", "as_part", "envelope", "fqdn", "prepare", "transmitted"]

_RESERVED = ("content-type", "content-transfer-encoding", "content-md5", "mime-version")
_TRACE = ("received", "return-path")
Message = Union[Part, bytes, bytearray, str, email.message.Message]


@dataclass(frozen=True)
class Envelope:
    """The SMTP envelope: the reverse-path (``""`` is the null path ``<>``)
    and the forward-paths, in order, without duplicates."""

    originator: str
    recipients: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Prepared:
    """An envelope plus the changes to the header of the transmitted copy."""

    envelope: Envelope
    add: list[tuple[str, str]]
    omit: frozenset[str]


def as_part(message: Message) -> Part:
    """Accept a Part, raw message bytes (or str) or an email.message.Message
    (any subclass: Django's, whose ``as_bytes()`` takes no policy, too).

    Raises UsageError when an email.message.Message cannot be serialised
    (CR/LF injected into a header, a charset it cannot encode) and for any
    other type.
    """
    if isinstance(message, Part):
        return message
    if isinstance(message, email.message.Message):
        return mimecompose.initialize(string=_email_bytes(message))
    if isinstance(message, (bytes, bytearray, str)):
        return mimecompose.initialize(string=bytes(message) if isinstance(message, bytearray) else message)
    raise UsageError(f"cannot send a {type(message).__name__}: give a mimecompose Part, bytes, "
                     "or an email.message.Message")


def _email_bytes(message: email.message.Message) -> bytes:
    """Serialise an email.message.Message with CRLF line breaks, through
    whatever ``as_bytes`` its class has: the standard one takes ``policy``,
    Django's ``linesep`` only; a class with neither gets ``as_bytes()``.
    The parser that reads the result accepts either line break."""
    as_bytes: Any = message.as_bytes
    try:
        accepted = set(inspect.signature(as_bytes).parameters)
    except (TypeError, ValueError):   # a builtin or otherwise opaque callable
        accepted = set()
    try:
        if "policy" in accepted:
            return bytes(as_bytes(policy=message.policy.clone(linesep="\r\n")))
        if "linesep" in accepted:
            return bytes(as_bytes(linesep="\r\n"))
        return bytes(message)
    except email.errors.HeaderParseError as exc:
        # raised for a header value with CR/LF not followed by white space:
        # the header injection class, refused as it is for Parts
        raise UsageError(f"cannot send the email.message.Message: {exc}") from None
    except (email.errors.MessageError, UnicodeError, LookupError, TypeError, ValueError) as exc:
        raise UsageError(f"cannot serialise the email.message.Message: {exc}") from None


# RFC 5322 section 3.6.3: the Bcc field exists so that its recipients are
# not shown to the others; we never transmit it (nor Resent-Bcc), whichever
# way it came in (the part, header=, a parsed message).
HIDDEN = frozenset({"bcc", "resent-bcc"})


def _fields(part: Part, header: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The header as transmitted: header= fields, then the part's own fields
    whose names header= does not replace."""
    replaced = {name.lower() for name, _ in header}
    # the part's own fields, as written (Content-Type and the like do not matter here)
    own = [(name, value) for name, value in part.fields(decode=False) if name.lower() not in replaced]
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
    for addr in iter_addresses(text):   # one record at a time: memory for the addresses kept only
        if addr.error:
            raise UsageError(f"malformed address in {what}: {addr.proper!r}: {addr.error}")
        if addr.address:
            found.append(addr.address)
    return found


def _check_path(address: str, what: str) -> str:
    if _PATH_SPECIALS.search(address):
        # RFC 5321 section 4.1.2: a path has no such characters; a CR or LF
        # here would inject SMTP commands (the bpo-43124 class)
        if any(c in address for c in "\r\n\x00"):
            raise UsageError(f"CR, LF or NUL in {what}: {address!r}")
        if '"' not in address:
            raise UsageError(f"malformed {what}: {address!r}")
    return address


_PATH_SPECIALS = re.compile("[\r\n\x00<> ]")


def _header_option(header: HeaderArg) -> list[tuple[str, str]]:
    """header= checked: pairs of str (TypeError otherwise), valid names,
    no CR/LF/NUL, none of the fields that follow from the content."""
    fields = header_fields(header)
    for name, value in fields:
        try:
            checkheader(name, value)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if name.lower() in _RESERVED:
            raise UsageError(f"header= may not set {name}: it follows from the message content")
    return fields


@dataclass(frozen=True)
class _Header:
    """The fields the envelope is read from: header= applied, and the
    newest Resent- block when there is one (``prefix`` is then "Resent-").
    ``names`` maps each lower-cased name of ``fields`` to its values, and
    ``named`` the same for ``source``: each field's name is lowered once."""

    fields: list[tuple[str, str]]
    source: list[tuple[str, str]]
    prefix: str
    names: dict[str, list[str]]
    named: dict[str, list[str]]

    @classmethod
    def of(cls, part: Part, header: list[tuple[str, str]]) -> "_Header":
        fields = _fields(part, header)
        names = _by_name(fields)
        block = _resent_block(fields) if any(n.startswith("resent-") for n in names) else []
        return cls(fields, block or fields, "Resent-" if block else "", names,
                   _by_name(block) if block else names)

    def values(self, name: str) -> list[str]:
        return self.named.get((self.prefix + name).lower(), [])

    def has(self, name: str) -> bool:
        return (self.prefix + name).lower() in self.named


def _by_name(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The values of each (lower-cased) field name, in order."""
    found: dict[str, list[str]] = {}
    for name, value in fields:
        found.setdefault(name.lower(), []).append(value)
    return found


def _envelope(head: _Header, originator: str | None,
              recipients: Union[str, Iterable[str], None]) -> Envelope:
    """The envelope from the fields and the options (see envelope())."""
    prefix = head.prefix
    if originator is not None:
        if not isinstance(originator, str):
            raise TypeError(f"originator= is a str, not a {type(originator).__name__}")
        found = _addresses(originator, "originator") if originator.strip() else [""]
        if len(found) != 1:
            raise UsageError(f"originator must be one address, not {originator!r}")
        sender = found[0]
    else:
        senders = [a for v in head.values("Sender") for a in _addresses(v, prefix + "Sender")]
        froms = [a for v in head.values("From") for a in _addresses(v, prefix + "From")]
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
        wanted = [a for r in one_or_many(recipients, "recipients=")
                  for a in _addresses(str(r), "recipients")]
    else:
        wanted = [a for name in ("To", "Cc", "Bcc") for v in head.values(name)
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
    return Envelope(sender, unique)


def envelope(part: Message, *, originator: str | None = None,
             recipients: Union[str, Iterable[str], None] = None,
             header: HeaderArg = ()) -> Envelope:
    """Work out the SMTP envelope of a message (see the module docstring).

    A pure function of its arguments: it needs no From when ``originator``
    is given (``""`` included); what a transmission needs besides is
    checked by :func:`transmitted` and sendmessage. ``recipients`` is a
    list of addresses or a comma-separated string; each entry may be
    ``Name <addr>`` or a group; ``header`` pairs or a mapping. Raises
    UsageError (a ValueError) for a malformed address, more than one From
    mailbox without Sender, no originator at all, or no recipients;
    TypeError for arguments of the wrong shape.
    """
    return _envelope(_Header.of(as_part(part), _header_option(header)), originator, recipients)


def prepare(part: Message, originator: str | None = None,
            recipients: Union[str, Iterable[str], None] = None,
            header: HeaderArg = (), client: str | None = None,
            stamp: bool = True) -> Prepared:
    """The envelope plus the header changes for the transmitted copy.

    With ``stamp`` (what sendmessage does) a fresh Message-ID and the Date
    are added when missing. Raises what envelope() raises, and UsageError
    for a message that has no From to send with the null originator
    (RFC 5322 section 3.6: From is required, and ``<>`` cannot stand in).
    """
    part = as_part(part)
    header = _header_option(header)
    head = _Header.of(part, header)
    found = _envelope(head, originator, recipients)
    prefix = head.prefix
    stamps = []
    if stamp and not head.has("Date"):
        stamps.append((prefix + "Date", formatdate()))
    if not head.has("From"):
        if not found.originator:
            raise UsageError(f"a message with the null originator needs a {prefix}From header")
        stamps.append((prefix + "From", f"<{found.originator}>"))
    if stamp and not head.has("Message-ID"):
        stamps.append((prefix + "Message-ID", _message_id(client)))
    add = stamps + [(n, v) for n, v in header if n.lower() not in HIDDEN]
    if stamp and part.parsed and "mime-version" not in head.names:
        if part.getheader("Content-Type"):
            add.append(("MIME-Version", "1.0"))
    omit = HIDDEN | {n.lower() for n, _ in header}
    return Prepared(found, add, frozenset(omit))


def transmitted(part: Message, *, originator: str | None = None,
                recipients: Union[str, Iterable[str], None] = None,
                header: HeaderArg = (), client: str | None = None, dkim: DKIM = None) -> tuple[Envelope, bytes]:
    """What sendmessage would send: the envelope and the message bytes
    (before dot-stuffing), with Date and Message-ID stamped, Bcc removed
    and ``header=`` applied. Every line ends in CRLF -- the bytes are the
    very ones the sender transmits -- except inside a part labelled
    ``Content-Transfer-Encoding: binary``, whose octets are carried as they
    are. The caller's part is not changed. With ``dkim`` (as for
    sendmessage) the message as signed for a server with 8BITMIME. Raises
    what prepare() and the signers raise."""
    signers = dkim_signers(dkim)
    message = as_part(part)
    prepared = prepare(message, originator, recipients, header, client=client)
    data = MessageData.from_part(message, prepared.add, prepared.omit, dkim=signers)
    return prepared.envelope, b"".join(data.chunks())


@functools.lru_cache(maxsize=1)
def fqdn() -> str:
    """This host's fully qualified name (for Message-IDs and the EHLO name), once per process."""
    return socket.getfqdn() or "localhost"


def _message_id(client: str | None) -> str:
    host = client or fqdn()
    if not host or any(c in host for c in "<>@ \r\n"):
        host = "localhost"
    return f"<{int(time.time())}.{os.getpid()}.{secrets.token_hex(8)}@{host}>"
