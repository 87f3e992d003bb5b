"""ESMTP parameters: how a transaction's commands are written for one server.

Pure functions of the server's extensions, the caller's options
(:class:`Delivery`) and whether the connection is encrypted: they return
command lines and the form of the message to send, plus the notes that say
what was left out -- and raise NotSupported when the message needs what the
server lacks. Nothing here sends, reads or remembers anything.

A new MAIL or RCPT parameter (an extension) goes here: a field on Delivery,
checked in ``__post_init__``, written by :func:`mail_command` or
:func:`rcpt_command` when the server announces its keyword.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Union

from mimecompose.args import require_str

from ._data import MessageData, xtext
from ._driver import TLSInfo
from ._envelope import Envelope
from ._errors import NotSupported, UsageError
from ._extensions import Extensions

__all__ = ["Delivery", "Notify", "mail_command", "path", "rcpt_command", "wire_form"]

_NOTIFY = ("NEVER", "SUCCESS", "FAILURE", "DELAY")

# NOTIFY= as given: "NEVER", "SUCCESS,DELAY", or a list of words
Notify = Union[str, Iterable[str]]


@dataclass(frozen=True)
class Delivery:
    """Per-message options of a transaction.

    - ``atleastone``: deliver to the accepted recipients even if some are refused.
    - DSN (RFC 3461): ``ret`` ("FULL" or "HDRS"), ``envid``, ``notify`` ("NEVER",
      or any of "SUCCESS", "FAILURE", "DELAY": a string, a list, or a dict by
      recipient), ``orcpt`` (True: each recipient's own address; or a dict);
      ``require_dsn``: a server without DSN fails instead of ignoring them.
    - ``deliverby`` (RFC 2852): "seconds;R" or "seconds;N" (T for trace).
    - ``priority`` (RFC 6710 MT-PRIORITY): -9 to 9.
    - ``requiretls`` (RFC 8689): only over TLS to a server that offers it.
    - ``mail_auth`` (RFC 4954 section 5): the AUTH= mailbox on MAIL ("<>" for none).

    Raises UsageError for a value the RFC does not allow.
    """

    atleastone: bool = False
    ret: Optional[str] = None
    envid: Optional[str] = None
    notify: Union[Notify, Mapping[str, Notify], None] = None
    orcpt: Union[bool, Mapping[str, str], None] = None
    require_dsn: bool = False
    deliverby: Optional[str] = None
    priority: Optional[int] = None
    requiretls: bool = False
    mail_auth: Optional[str] = None

    def __post_init__(self) -> None:
        if self.ret is not None:
            object.__setattr__(self, "ret", require_str(self.ret, "ret=").upper())
            if self.ret not in ("FULL", "HDRS"):
                raise UsageError(f"ret must be FULL or HDRS, not {self.ret!r}")
        if self.envid is not None and (not self.envid or len(self.envid) > 100
                                       or not all(32 <= ord(c) < 127 for c in self.envid)):
            raise UsageError("envid must be 1 to 100 printable ASCII characters (RFC 3461 section 4.4)")
        if self.notify is not None:
            values = self.notify.values() if isinstance(self.notify, Mapping) else [self.notify]
            for value in values:
                self._notify_text(value)
        if self.priority is not None and (not isinstance(self.priority, int) or not -9 <= self.priority <= 9):
            raise UsageError("priority must be an integer from -9 to 9 (RFC 6710)")
        if self.deliverby is not None:
            if not re.fullmatch(r"-?\d{1,9};[RN]T?", str(self.deliverby)):
                raise UsageError("deliverby must look like '3600;R' or '600;NT' (RFC 2852)")
        if self.mail_auth is not None and any(c in self.mail_auth for c in "\r\n\0 "):
            raise UsageError(f"invalid mail_auth {self.mail_auth!r}")

    @staticmethod
    def _notify_text(value: Any) -> str:
        items = [value] if isinstance(value, str) else list(value)
        items = [w.strip().upper() for item in items for w in str(item).split(",") if w.strip()]
        if not items or any(w not in _NOTIFY for w in items) or ("NEVER" in items and len(items) > 1):
            raise UsageError(f"notify must be NEVER or any of SUCCESS, FAILURE, DELAY, not {value!r}")
        return ",".join(items)

    @property
    def wants_dsn(self) -> bool:
        """Whether any DSN option (RFC 3461) is set."""
        return any(v is not None for v in (self.ret, self.envid, self.notify, self.orcpt))

    def notify_for(self, address: str) -> Optional[str]:
        """The NOTIFY= value for ``address``, or None."""
        value = self.notify.get(address) if isinstance(self.notify, Mapping) else self.notify
        return self._notify_text(value) if value is not None else None

    def orcpt_for(self, address: str) -> Optional[str]:
        """The ORCPT= address for ``address``, or None."""
        if isinstance(self.orcpt, Mapping):
            return self.orcpt.get(address)
        return address if self.orcpt else None


def path(address: str, extensions: Extensions) -> tuple[str, bool]:
    """The address as sent, and whether it needs SMTPUTF8 (RFC 6531).
    UsageError for a non-ASCII domain that is not a valid IDN."""
    if address.isascii():
        return address, False
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        return address, True
    if "SMTPUTF8" in extensions:
        return address, True
    try:
        # RFC 5890: a non-ASCII domain goes as A-labels to a server without SMTPUTF8
        return f"{local}@{domain.encode('idna').decode('ascii')}", False
    except UnicodeError:
        raise UsageError(f"domain of {address!r} is not a valid IDN") from None


def wire_form(message: MessageData, extensions: Extensions, chunking: bool
              ) -> tuple[MessageData, Optional[str]]:
    """The form of ``message`` this server can take, and a note when it was
    re-encoded. Binary parts need BINARYMIME with CHUNKING (RFC 3030
    section 3) and 8-bit octets 8BITMIME (RFC 6152 section 3); without
    them, the 7-bit form (binary parts as base64, 8-bit ones as
    quoted-printable or base64) -- never the same octets under the same
    label. NotSupported when a binary message has no 7-bit form."""
    if message.binary:
        if chunking and "BINARYMIME" in extensions:
            return message, None
        seven = message.seven_bit()
        if seven.binary:
            raise NotSupported("the message has binary parts and no 7-bit form, and the server "
                               "lacks BINARYMIME with CHUNKING (RFC 3030)")
        return seven, None
    if message.eightbit and "8BITMIME" not in extensions:
        return message.seven_bit(), "server lacks 8BITMIME: 8-bit parts re-encoded as quoted-printable/base64"
    return message, None


def mail_command(env: Envelope, message: MessageData, options: Delivery, extensions: Extensions,
                 tls: Optional[TLSInfo], chunking: bool) -> tuple[str, list[str]]:
    """MAIL FROM with its parameters for this server, and the notes on what
    was left out. NotSupported when the message or the options need an
    extension the server lacks (SMTPUTF8, a required DSN, DELIVERBY,
    REQUIRETLS)."""
    ext = extensions
    notes: list[str] = []
    sender, utf8 = path(env.originator, ext)
    needs_utf8 = utf8 or any(path(r, ext)[1] for r in env.recipients)
    if needs_utf8 and "SMTPUTF8" not in ext:
        raise NotSupported("a non-ASCII address needs SMTPUTF8, which this server lacks")
    params = []
    if "SIZE" in ext:
        params.append(f"SIZE={message.size}")
    if message.binary and chunking and "BINARYMIME" in ext:
        params.append("BODY=BINARYMIME")
    elif message.eightbit and "8BITMIME" in ext:
        params.append("BODY=8BITMIME")
    if "SMTPUTF8" in ext and (needs_utf8 or message.header_utf8):
        params.append("SMTPUTF8")
    if options.wants_dsn:
        if "DSN" in ext:
            if options.ret:
                params.append(f"RET={options.ret}")
            if options.envid:
                params.append(f"ENVID={xtext(options.envid)}")
        elif options.require_dsn:
            raise NotSupported("DSN was required but the server does not offer it (RFC 3461)")
        else:
            notes.append("server lacks DSN: RET, ENVID, NOTIFY and ORCPT left out")
    if options.deliverby is not None:
        if "DELIVERBY" not in ext:
            raise NotSupported("DELIVERBY was asked for but the server does not offer it (RFC 2852)")
        params.append(f"BY={options.deliverby}")
    if options.priority is not None:
        if "MT-PRIORITY" in ext:
            params.append(f"MT-PRIORITY={options.priority}")
        else:
            notes.append("server lacks MT-PRIORITY: priority left out")
    if options.requiretls:
        # RFC 8689 section 4.1: only over TLS, only to a server that offers it
        if tls is None or "REQUIRETLS" not in ext:
            raise NotSupported("REQUIRETLS needs a TLS connection to a server that offers it")
        params.append("REQUIRETLS")
    if options.mail_auth is not None and "AUTH" in ext:
        params.append("AUTH=" + ("<>" if options.mail_auth in ("", "<>") else xtext(options.mail_auth)))
    return f"MAIL FROM:<{sender}>" + "".join(" " + p for p in params), notes


def rcpt_command(address: str, options: Delivery, extensions: Extensions) -> str:
    """RCPT TO with its DSN parameters (RFC 3461 section 4) when the server offers DSN."""
    line = f"RCPT TO:<{path(address, extensions)[0]}>"
    if options.wants_dsn and "DSN" in extensions:
        notify = options.notify_for(address)
        if notify:
            line += f" NOTIFY={notify}"
        orcpt = options.orcpt_for(address)
        if orcpt:
            line += f" ORCPT=rfc822;{xtext(orcpt)}"
    return line
