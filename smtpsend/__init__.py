"""smtpsend: send MIME messages over SMTP in one call (tcllib ``smtp`` style).

::

    import mimecompose, smtpsend

    part = mimecompose.initialize("text/plain", string="Disk almost full",
                                  header=[("From", "ops@example.com"),
                                          ("To", "admin@example.com"),
                                          ("Subject", "alert")])
    rejected = smtpsend.sendmessage(part, servers=["mail.example.com"],
                                    username="ops", password="...")
"""

import importlib as _importlib
import logging as _logging
import typing as _typing

from mimecompose import __version__

from ._bulk import Outcome
from ._channel import Event
from ._client import Client, connect, etrn, expand, smtp_help, verify
from ._data import MessageChanged
from ._driver import TLSInfo
from ._envelope import Envelope, envelope, transmitted
from ._errors import (AllServersFailed, Attempt, AuthenticationError, DataRefused,
                      DeliveryUncertain, MessageTooBig, NotSupported, RecipientsRefused, Rejected,
                      RemoteProtocolError, ReplyError, SenderRefused, ServerUnavailable, SMTPError,
                      Timeout, TLSError, TLSRequired, TransportError, UsageError)
from ._esmtp import Delivery
from ._extensions import Extensions
from ._pool import TransportStats
from ._reply import EnhancedStatus, Reply
from ._sync import sendmessage
from ._transport import Transport
from ._url import ServerURL, parse_url

if _typing.TYPE_CHECKING:   # for type checkers only: at run time it loads on first use (below)
    from ._async import asendmessage
    from ._atransport import AsyncTransport

# The library convention (urllib3, httpx): smtpsend logs to the "smtpsend"
# logger (INFO per message sent, WARNING for a backup server, a downgrade, a
# refused recipient, DEBUG the redacted transcript) and stays silent until
# the application configures logging.
_logging.getLogger("smtpsend").addHandler(_logging.NullHandler())

__all__ = [
    "AllServersFailed",
    "AsyncTransport",
    "Attempt",
    "AuthenticationError",
    "Client",
    "DataRefused",
    "Delivery",
    "DeliveryUncertain",
    "EnhancedStatus",
    "Envelope",
    "Event",
    "Extensions",
    "MessageChanged",
    "MessageTooBig",
    "NotSupported",
    "Outcome",
    "RecipientsRefused",
    "Rejected",
    "RemoteProtocolError",
    "Reply",
    "ReplyError",
    "SMTPError",
    "SenderRefused",
    "ServerURL",
    "ServerUnavailable",
    "TLSError",
    "TLSInfo",
    "TLSRequired",
    "Timeout",
    "Transport",
    "TransportError",
    "TransportStats",
    "UsageError",
    "asendmessage",
    "connect",
    "envelope",
    "etrn",
    "expand",
    "parse_url",
    "sendmessage",
    "smtp_help",
    "transmitted",
    "verify",
]


# asyncio costs tens of milliseconds to import: only the async API needs it,
# so asendmessage and AsyncTransport are loaded on first use (PEP 562).
_LAZY = {"asendmessage": "._async", "AsyncTransport": "._atransport"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
