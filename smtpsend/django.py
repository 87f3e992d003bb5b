"""A Django email backend on a process-wide :class:`smtpsend.Transport`.

::

    # settings.py
    EMAIL_BACKEND = "smtpsend.django.EmailBackend"
    EMAIL_HOST = "mail.example.com"
    EMAIL_PORT = 587
    EMAIL_USE_TLS = True                 # STARTTLS required
    EMAIL_HOST_USER = "app"
    EMAIL_HOST_PASSWORD = "..."
    SMTPSEND = {"servers": ["mail.example.com", "backup.example.com"], "max_connections": 8}

Django's own settings are read as Django's SMTP backend reads them (the
constructor takes the same keyword arguments, so
``mail.get_connection("smtpsend.django.EmailBackend", host=...)`` works);
``SMTPSEND`` holds every other :class:`smtpsend.Transport` option and the
per-message options of ``Transport.sendmessage``. One Transport is kept
per distinct configuration for the life of the process, so connections
(and their TLS and AUTH) are reused across requests: ``open()`` and
``close()`` of a backend do not close it; :func:`close_transports` does,
and runs at interpreter exit. A child process (gunicorn, uwsgi, Celery
prefork) never uses its parent's connections: it opens its own.

Each EmailMessage becomes a mimecompose Part (:func:`to_part`): its body,
alternatives, attachments, headers; the envelope is ``from_email`` and
``message.recipients()`` (Bcc included; no Bcc field is sent). Refused
recipients do not fail a message that reached the others; they are
logged on the ``smtpsend.django`` logger with the server's reason.
See docs/integrations.md.
"""

from __future__ import annotations

import atexit
import email.errors
import email.message
import functools
import hmac
import inspect
import logging
import mimetypes
import os
import secrets
import ssl
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Sequence, Union

from django.conf import settings  # type: ignore[import-untyped,unused-ignore]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped,unused-ignore]
from django.core.mail import EmailMessage, EmailMultiAlternatives  # type: ignore[import-untyped,unused-ignore]
from django.core.mail.backends.base import BaseEmailBackend  # type: ignore[import-untyped,unused-ignore]

import mimecompose
from mimecompose import Part
from mimecompose.args import one_or_many

import smtpsend

__all__ = ["CeleryEmailBackend", "Converted", "EmailBackend", "close_transports", "to_part", "transport_options"]

logger = logging.getLogger("smtpsend.django")

Message = Union[Part, email.message.Message]


# ---------------------------------------------------------------- EmailMessage -> Part

class Converted(NamedTuple):
    """An EmailMessage as smtpsend sends it: the message (a Part, or the
    email.message.Message of a subclass that builds its own), and the
    envelope Django's SMTP backend would use."""

    part: Message
    originator: str
    recipients: list[str]


# The methods of Django's EmailMessage and EmailMultiAlternatives that build
# the MIME tree. A subclass that overrides any of them builds its own
# message: that message (message.message()) is sent as it is.
_BUILDERS = ("message", "_create_message", "_create_attachments", "_create_alternatives",
             "_create_mime_attachment", "_create_attachment")


def _builds_its_own(message: Any) -> bool:
    ours = (EmailMessage, EmailMultiAlternatives)
    for name in _BUILDERS:
        found = inspect.getattr_static(type(message), name, None)
        if found is None:
            continue
        if not any(vars(cls).get(name) is found for cls in ours):
            return True
    return False


def _charset(text: str, encoding: str) -> str:
    """``encoding`` when it can carry ``text``, else UTF-8 (the charset is
    declared either way, so nothing is lost)."""
    try:
        text.encode(encoding)
    except (UnicodeError, LookupError):
        return "utf-8"
    return encoding


def _text(subtype: str, text: str, encoding: str, **options: Any) -> Part:
    return mimecompose.initialize(f"text/{subtype}", string=text, params={"charset": _charset(text, encoding)},
                                  **options)


def _message_bytes(message: Any) -> bytes:
    """The bytes of an email.message.Message (Django's SafeMIME classes and
    the standard ones alike); UsageError when it cannot be written."""
    try:
        return bytes(message.as_bytes())
    except (email.errors.MessageError, UnicodeError, LookupError, TypeError, ValueError) as exc:
        raise smtpsend.UsageError(f"cannot serialise a {type(message).__name__} of the message: {exc}") from None


def _leaf(content: Any, mimetype: Optional[str], encoding: str, filename: Optional[str] = None) -> Part:
    """A part from Django's (content, mimetype) pair, as Django's
    ``_create_mime_attachment`` makes it: text in ``encoding``,
    message/rfc822 from an EmailMessage, an email.message.Message or its
    bytes, anything else as bytes (str as UTF-8)."""
    if not mimetype:
        mimetype = (mimetypes.guess_type(filename)[0] if filename else None) or "application/octet-stream"
    mimetype = str(mimetype).strip().lower()
    options: dict[str, Any] = {"disposition": "attachment", "filename": str(filename)} if filename else {}
    basetype, _, subtype = mimetype.partition("/")
    if basetype == "text" and isinstance(content, (bytes, bytearray)):
        try:
            content = bytes(content).decode("utf-8")
        except UnicodeDecodeError:
            mimetype, basetype = "application/octet-stream", "application"
    if basetype == "text":
        return _text(subtype, str(content), encoding, **options)
    if mimetype == "message/rfc822":
        if isinstance(content, EmailMessage):
            content = content.message()
        if isinstance(content, email.message.Message):
            content = _message_bytes(content)
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        return mimecompose.initialize("message/rfc822", string=data, **options)
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    return mimecompose.initialize(mimetype, string=data, **options)


def _attachment(item: Any, encoding: str) -> Part:
    """An entry of ``EmailMessage.attachments``: a MIME object (MIMEBase, or
    MIMEPart in newer Django), kept as it is, or a (filename, content,
    mimetype) triple."""
    if isinstance(item, email.message.Message):
        return mimecompose.initialize(string=_message_bytes(item))
    filename, content, mimetype = (tuple(item) + (None, None, None))[:3]
    return _leaf(content, mimetype, encoding, filename or None)


def _body(message: Any, encoding: str) -> Part:
    """The MIME tree of the message's content, in the shape Django builds:
    the body; multipart/alternative with the alternatives; multipart/mixed
    (``mixed_subtype``) with the attachments."""
    text = str(message.body or "")
    body = _text(str(message.content_subtype), text, encoding)
    alternatives = list(getattr(message, "alternatives", None) or [])
    multipart = False
    if alternatives:
        parts = ([body] if text else []) + [_leaf(alt[0], alt[1], encoding) for alt in alternatives]
        subtype = getattr(message, "alternative_subtype", "alternative")
        body = mimecompose.initialize(f"multipart/{subtype}", parts=parts)
        multipart = True
    if message.attachments:
        parts = ([body] if text or multipart else []) + [_attachment(a, encoding) for a in message.attachments]
        body = mimecompose.initialize(f"multipart/{message.mixed_subtype}", parts=parts)
    return body


def _address(value: Any) -> str:
    """One address of an EmailMessage as header text: a ``(name, address)``
    pair is formatted; a non-ASCII domain behind an ASCII local part is
    written as its IDNA A-label (RFC 5890), as Django does, so that the
    header stays ASCII for servers without SMTPUTF8."""
    if isinstance(value, tuple) and len(value) == 2:
        text = mimecompose.formataddress(str(value[0]), str(value[1]))
    else:
        text = str(value)
    if text.isascii():
        return text
    found = list(mimecompose.iter_addresses(text))
    if len(found) != 1 or found[0].error or found[0].group or not found[0].local.isascii():
        return text
    local, _, domain = found[0].address.rpartition("@")
    try:
        ace = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return text
    return mimecompose.formataddress(found[0].friendly, f"{local}@{ace}")


def _addresses(values: Iterable[Any]) -> str:
    return ", ".join(_address(v) for v in values if v)


def _envelope_address(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        return mimecompose.formataddress(str(value[0]), str(value[1]))
    return str(value)


def to_part(message: Any) -> Converted:
    """Convert a Django EmailMessage (or EmailMultiAlternatives) into what
    smtpsend sends: a mimecompose Part and the envelope.

    The Part has the body (``content_subtype``), the alternatives, the
    attachments (MIME objects as they are; ``(filename, content,
    mimetype)`` triples with RFC 2231 file names), From (the ``From`` of
    ``extra_headers``, else ``from_email``), To, Cc and Reply-To (each
    replaced by ``extra_headers`` of that name, as in Django), Subject,
    Date (local time with ``EMAIL_USE_LOCALTIME``) and the other
    ``extra_headers``; an ``extra_headers`` field replaces the field of the
    same name. Bodies are in ``message.encoding`` (else
    ``DEFAULT_CHARSET``; UTF-8 when that charset cannot carry the text);
    header text is RFC 2047 encoded. The originator is ``from_email`` and
    the recipients are ``message.recipients()`` (To, Cc and Bcc), as
    Django's SMTP backend has them; Bcc is in no header.

    A subclass that overrides how Django builds the MIME message
    (``message()`` or a ``_create_*`` method) gets that message sent
    instead, with the same envelope.

    Raises ValueError (mimecompose's HeaderInjectionError and MimeError,
    smtpsend.UsageError) for a header value with CR/LF, a field that
    cannot be set (Content-Type in ``extra_headers``), a bad MIME type.
    """
    originator = _envelope_address(message.from_email)
    recipients = [_envelope_address(r) for r in message.recipients()]
    if _builds_its_own(message):
        return Converted(message.message(), originator, recipients)
    encoding = str(message.encoding or settings.DEFAULT_CHARSET)
    extra = {str(name): value for name, value in (message.extra_headers or {}).items()}
    given = {name.lower(): value for name, value in extra.items()}
    fields: list[tuple[str, str]] = []
    for name, values in (("From", [message.from_email]), ("To", message.to), ("Cc", message.cc),
                         ("Reply-To", message.reply_to)):
        text = str(given[name.lower()]) if name.lower() in given else _addresses(values)
        if text:
            fields.append((name, text))
    if "subject" not in given:
        fields.append(("Subject", str(message.subject or "")))
    if "date" not in given:
        now = None if settings.EMAIL_USE_LOCALTIME else datetime.now(timezone.utc)
        fields.append(("Date", mimecompose.formatdate(now)))
    fields += [(name, str(value)) for name, value in extra.items()
               if name.lower() not in ("from", "to", "cc", "reply-to")]
    part = _body(message, encoding)
    for name, value in fields:
        part.setheader(name, value, mode="append")
    return Converted(part, originator, recipients)


# ---------------------------------------------------------------- the shared transports

_lock = threading.Lock()
_transports: dict[str, Any] = {}
_SALT = secrets.token_bytes(16)


def _after_fork() -> None:
    """In a child process: a new lock (a thread of the parent may have held
    it). The transports stay: a Transport never uses its parent's
    connections in a child, it opens its own."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _shared(key: str, make: Callable[[], Any]) -> Any:
    """The transport for ``key``, made by ``make`` the first time (and again
    when someone closed it)."""
    with _lock:
        transport = _transports.get(key)
        if transport is None or transport.closed:
            transport = _transports[key] = make()
        return transport


def close_transports() -> None:
    """Close every transport the backends share (QUIT on their idle
    connections). The next message opens a new one. Runs at interpreter
    exit; call it yourself when a worker stops."""
    with _lock:
        transports = list(_transports.values())
        _transports.clear()
    for transport in transports:
        try:
            transport.close()
        except Exception:   # noqa: BLE001 - closing is best effort; say what happened
            logger.warning("closing a shared smtpsend transport failed", exc_info=True)


atexit.register(close_transports)


def _fingerprint(value: Any) -> str:
    """A stable text for a configuration value; objects (an ssl_context, a
    signer, a callable) by identity."""
    if value is None or isinstance(value, (str, bytes, int, float, bool)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_fingerprint(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ",".join(f"{k!r}:{_fingerprint(v)}" for k, v in items) + "}"
    return f"<{type(value).__qualname__}@{id(value):x}>"


_PER_MESSAGE_EXCLUDED = ("self", "part", "originator", "recipients", "header")


@functools.lru_cache(maxsize=None)
def _parameters(function: Any, excluded: tuple[str, ...] = ("self",)) -> frozenset[str]:
    """The keyword parameters ``function`` takes, but ``excluded``."""
    return frozenset({name for name, p in inspect.signature(function).parameters.items()
            if name not in excluded and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)})


def transport_options(host: Optional[str] = None, port: Optional[int] = None, username: Optional[str] = None,
                      password: Optional[str] = None, use_tls: Optional[bool] = None,
                      use_ssl: Optional[bool] = None, timeout: Optional[float] = None,
                      ssl_keyfile: Optional[str] = None, ssl_certfile: Optional[str] = None,
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Transport options and the per-message options for Django's
    email settings, as the backend's arguments (None: the setting) give them.

    Precedence: an argument, then ``SMTPSEND``, then ``EMAIL_*``
    (``host=`` replaces ``SMTPSEND["servers"]`` too).
    ``EMAIL_USE_SSL``: TLS from the first byte (``tlsimport=True``).
    ``EMAIL_USE_TLS``: STARTTLS required (``tlspolicy="secure"``; port
    465 speaks TLS at once). Neither: no STARTTLS, as in Django
    (``usetls=False``), and so no credentials either unless
    ``SMTPSEND["tlspolicy"]`` is ``"insecure"``. A client certificate
    (``EMAIL_SSL_CERTFILE``/``KEYFILE``) goes into ``SMTPSEND["ssl_context"]``,
    else into a default, verifying context; and ``SMTPSEND["dkim"]`` may be a dict of DKIMSigner
    arguments: the options returned hold ``certfile``/``keyfile`` and the
    dict, and the objects are made with the transport. ``atleastone`` is
    on for each message (Django counts a message sent when any recipient
    took it) unless ``SMTPSEND`` says otherwise.

    Raises ValueError for EMAIL_USE_TLS with EMAIL_USE_SSL (as Django
    does); ImproperlyConfigured for an SMTPSEND that is not a dict, has a
    key neither Transport nor Transport.sendmessage takes, and for a key
    file without a certificate file.
    """
    given = getattr(settings, "SMTPSEND", None) or {}
    if not isinstance(given, Mapping):
        raise ImproperlyConfigured("SMTPSEND must be a dict of smtpsend.Transport options")
    extra = dict(given)
    transport_keys = _parameters(smtpsend.Transport)
    message_keys = _parameters(smtpsend.Transport.sendmessage, _PER_MESSAGE_EXCLUDED)
    unknown = sorted(str(key) for key in set(extra) - transport_keys - message_keys)
    if unknown:
        raise ImproperlyConfigured(
            f"SMTPSEND: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the Transport takes {', '.join(sorted(transport_keys))}; each message "
            f"{', '.join(sorted(message_keys))}")
    use_tls = settings.EMAIL_USE_TLS if use_tls is None else use_tls
    use_ssl = settings.EMAIL_USE_SSL if use_ssl is None else use_ssl
    if use_tls and use_ssl:
        raise ValueError("EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive, so only set "
                         "one of those settings to True.")
    username = settings.EMAIL_HOST_USER if username is None else username
    password = settings.EMAIL_HOST_PASSWORD if password is None else password
    login = bool(username and password)   # Django logs in only with both
    certfile = settings.EMAIL_SSL_CERTFILE if ssl_certfile is None else ssl_certfile
    keyfile = settings.EMAIL_SSL_KEYFILE if ssl_keyfile is None else ssl_keyfile
    # one server or a list, as Transport takes them: a str is never taken apart into characters
    servers = one_or_many(extra.pop("servers", None), "SMTPSEND['servers']", single=(str, smtpsend.ServerURL))
    ports = one_or_many(extra.pop("ports", None), "SMTPSEND['ports']", single=(str, int))
    if host:
        servers, ports = [host], []
    elif not servers:
        servers = [settings.EMAIL_HOST]
    if not ports:
        # a URL names its own port (or its scheme's: smtps:// is 465);
        # EMAIL_PORT is for plain host names
        ports = [port if port else None if _is_url(s) else settings.EMAIL_PORT for s in servers]
    options: dict[str, Any] = {
        "servers": list(servers), "ports": list(ports),
        # Django speaks plaintext unless told otherwise; a URL's scheme says
        # for itself (smtps://, smtp+starttls://; smtp:// as sendmessage)
        "usetls": bool(use_tls or use_ssl or any(_is_url(s) for s in servers)),
        "tlsimport": True if use_ssl else None,
        "tlspolicy": "secure" if use_tls else None,
        "timeout": settings.EMAIL_TIMEOUT if timeout is None else timeout,
        "username": str(username) if login else None,
        "password": str(password) if login else None,
    }
    if certfile or keyfile:
        if not certfile:
            raise ImproperlyConfigured("EMAIL_SSL_KEYFILE needs EMAIL_SSL_CERTFILE")
        options["certfile"], options["keyfile"] = str(certfile), (str(keyfile) if keyfile else None)
    per_message: dict[str, Any] = {"atleastone": True}
    for key, value in extra.items():
        (options if key in transport_keys else per_message)[key] = value
    return options, per_message


def _make(options: dict[str, Any]) -> Callable[[], Any]:
    """A function that makes the Transport for ``options`` (a closure, so
    that the password shows in no attribute, repr or vars() of the backend)."""
    options = dict(options)

    def make() -> Any:
        given = dict(options)
        certfile, keyfile = given.pop("certfile", None), given.pop("keyfile", None)
        if certfile:
            context = given.get("ssl_context") or ssl.create_default_context()
            context.load_cert_chain(certfile, keyfile)
            given["ssl_context"] = context
        if isinstance(given.get("dkim"), Mapping):
            given["dkim"] = mimecompose.DKIMSigner(**given["dkim"])
        return smtpsend.Transport(**given)
    return make


def _is_url(entry: object) -> bool:
    return isinstance(entry, smtpsend.ServerURL) or "://" in str(entry)


def _shown(entry: object) -> str:
    """A ``servers`` entry as a repr may show it: a URL without its
    password (smtpsend.ServerURL's str), anything else as it is."""
    if isinstance(entry, smtpsend.ServerURL):
        return str(entry)
    text = str(entry)
    if "://" not in text:
        return text if "@" not in text else "<malformed URL>"
    try:
        return str(smtpsend.parse_url(text.strip()))
    except smtpsend.UsageError:
        return "<malformed URL>"


class EmailBackend(BaseEmailBackend):  # type: ignore[misc,unused-ignore]
    """``EMAIL_BACKEND = "smtpsend.django.EmailBackend"``: Django's SMTP
    backend on a shared :class:`smtpsend.Transport` (see the module
    docstring and docs/integrations.md).

    The arguments are those of Django's SMTP backend; ``None`` means the
    setting. ValueError for EMAIL_USE_TLS with EMAIL_USE_SSL,
    ImproperlyConfigured for a bad ``SMTPSEND``.
    """

    def __init__(self, host: Optional[str] = None, port: Optional[int] = None, username: Optional[str] = None,
                 password: Optional[str] = None, use_tls: Optional[bool] = None, fail_silently: bool = False,
                 use_ssl: Optional[bool] = None, timeout: Optional[float] = None,
                 ssl_keyfile: Optional[str] = None, ssl_certfile: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        options, self.message_options = transport_options(host, port, username, password, use_tls, use_ssl,
                                                           timeout, ssl_keyfile, ssl_certfile)
        self.servers: list[str] = [_shown(s) for s in options["servers"]]   # a URL without its password
        self.ports: list[Optional[int]] = list(options["ports"])
        # keyed with a secret of this process: the key depends on the password without revealing it
        self._key = hmac.new(_SALT, _fingerprint(options).encode("utf-8", "surrogatepass"), "sha256").hexdigest()
        self._make = _make(options)
        self._opened = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} servers={self.servers!r} ports={self.ports!r}>"

    @property
    def transport(self) -> Any:
        """The process-wide smtpsend.Transport for this configuration."""
        return _shared(self._key, self._make)

    def open(self) -> Optional[bool]:  # pyright: ignore[reportIncompatibleMethodOverride] (as Django's SMTP backend)
        """Make sure the shared transport exists (it connects when a message
        is sent). True the first time for this backend, False after; None
        when it failed and ``fail_silently`` is set."""
        if self._opened:
            return False
        try:
            self.transport
        except (smtpsend.SMTPError, ValueError, OSError):
            if not self.fail_silently:
                raise
            logger.error("cannot set up the smtpsend transport", exc_info=True)
            return None
        self._opened = True
        return True

    def close(self) -> None:
        """Done with this backend. The shared transport and its connections
        stay open for the next messages (see :func:`close_transports`)."""
        self._opened = False

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Send each message; return how many were sent (to at least one
        recipient). With ``fail_silently`` errors are logged on the
        ``smtpsend.django`` logger, and the other messages still go;
        without, the first error is raised: an smtpsend.SMTPError, or a
        ValueError for a message that cannot be sent as it is."""
        if not email_messages:
            return 0
        try:
            transport = self.transport
        except (smtpsend.SMTPError, ValueError, OSError):
            if not self.fail_silently:
                raise
            logger.error("cannot set up the smtpsend transport", exc_info=True)
            return 0
        return sum(1 for message in email_messages if self._send(transport, message))

    def _send(self, transport: Any, message: Any) -> bool:
        if not message.recipients():
            return False
        try:
            part, originator, recipients = to_part(message)
            rejected = transport.sendmessage(part, originator=originator, recipients=recipients,
                                             **self.message_options)
        except (smtpsend.SMTPError, ValueError, OSError) as exc:
            if not self.fail_silently:
                raise
            logger.error("message %r to %d recipients not sent: %s", str(message.subject), len(message.recipients()),
                         exc, exc_info=True)
            return False
        if rejected:
            logger.warning("message %r: %d of %d recipients refused: %s", str(message.subject), len(rejected),
                           len(recipients), "; ".join(f"{r.address}: {r.code} {r.text}" for r in rejected))
        return True


# ---------------------------------------------------------------- enqueueing on Celery (smtpsend.celery)

class CeleryEmailBackend(BaseEmailBackend):  # type: ignore[misc,unused-ignore]
    """``EMAIL_BACKEND = "smtpsend.django.CeleryEmailBackend"``: Django's
    ``send_mail()`` enqueues each message for :data:`smtpsend.celery.send_task`
    instead of sending it (the ``[celery]`` extra; docs/scaling.md).

    Each EmailMessage is converted here (:func:`to_part`) and fixed -- Date
    and Message-ID stamped, Bcc left out -- by
    :func:`smtpsend.celery.sendmessage_later`; a Celery worker sends it
    with its own transport, so no credential goes through the broker.
    ``SMTPSEND_CELERY = {"transport": "default", "task_options": {...},
    ...}``: the worker's transport name, Celery's ``apply_async`` options
    (``queue``, ``expires``...), and per-message options of sendmessage
    (``atleastone``, ``notify``, ...); the constructor's keyword arguments
    of the same names take precedence.

    ``send_messages()`` returns how many messages were enqueued and keeps
    their AsyncResults in ``results``. With ``fail_silently`` a message
    that cannot be enqueued (a bad header, the broker down) is logged on
    the ``smtpsend.django`` logger and the others still go; without, the
    first such error is raised.
    """

    def __init__(self, fail_silently: bool = False, *, transport: Optional[str] = None,
                 task_options: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        # imported here: smtpsend.django works without Celery installed
        import smtpsend.celery
        super().__init__(fail_silently=fail_silently)
        self._later = smtpsend.celery.sendmessage_later
        configured = dict(getattr(settings, "SMTPSEND_CELERY", None) or {})
        # Django passes get_connection()'s keywords; those of the SMTP backend (host...) mean nothing here
        configured.update({name: value for name, value in kwargs.items()
                           if name in smtpsend.celery.MESSAGE_OPTIONS or name == "delivery"})
        self.transport_name = str(transport or configured.pop("transport", None) or "default")
        configured.pop("transport", None)
        self.task_options: dict[str, Any] = dict(task_options or configured.pop("task_options", None) or {})
        configured.pop("task_options", None)
        unknown = set(configured) - smtpsend.celery.MESSAGE_OPTIONS - {"delivery"}
        if unknown:
            raise ImproperlyConfigured(f"SMTPSEND_CELERY has settings that are not per-message options: "
                                       f"{', '.join(sorted(unknown))} (servers and credentials belong to "
                                       f"the worker's app.conf.smtpsend_transports)")
        self.message_options: dict[str, Any] = configured
        self.results: list[Any] = []

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Enqueue each message that has recipients; return how many were."""
        from kombu.exceptions import KombuError  # type: ignore[import-untyped,unused-ignore]
        count = 0
        for message in email_messages:
            if not message.recipients():
                continue
            try:
                part, originator, recipients = to_part(message)
                result = self._later(part, transport=self.transport_name, originator=originator,
                                     recipients=recipients, task_options=self.task_options,
                                     **self.message_options)
            except (ValueError, TypeError, OSError, smtpsend.SMTPError, KombuError, RuntimeError) as exc:
                # a message that cannot be sent as it is, or the broker out of reach (kombu's
                # OperationalError; Celery's RuntimeError when its Redis result store is)
                if not self.fail_silently:
                    raise
                logger.error("message %r not enqueued: %s", str(message.subject), exc, exc_info=True)
                continue
            self.results.append(result)
            count += 1
        return count
