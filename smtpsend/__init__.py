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

from ._async import asendmessage
from ._client import Client, connect, etrn, expand, help, verify
from ._envelope import Envelope, envelope, transmitted
from ._errors import (AllServersFailed, Attempt, AuthenticationError, DataRefused,
                      DeliveryUncertain, MessageTooBig, NotSupported, RecipientsRefused, Rejected,
                      RemoteProtocolError, ReplyError, SenderRefused, ServerUnavailable, SMTPError,
                      Timeout, TLSError, TLSRequired, TransportError, UsageError)
from ._reply import EnhancedStatus, Reply
from ._send import sendmessage
from ._session import Delivery, Event

__all__ = [
    "AllServersFailed",
    "Attempt",
    "AuthenticationError",
    "Client",
    "DataRefused",
    "Delivery",
    "DeliveryUncertain",
    "EnhancedStatus",
    "Envelope",
    "Event",
    "MessageTooBig",
    "NotSupported",
    "RecipientsRefused",
    "Rejected",
    "RemoteProtocolError",
    "Reply",
    "ReplyError",
    "SMTPError",
    "SenderRefused",
    "ServerUnavailable",
    "TLSError",
    "TLSRequired",
    "Timeout",
    "TransportError",
    "UsageError",
    "asendmessage",
    "connect",
    "envelope",
    "etrn",
    "expand",
    "help",
    "sendmessage",
    "transmitted",
    "verify",
]

__version__ = "0.1.0"
