"""Sending on Celery: a task that retries what is transient and never sends
twice what may already have been delivered (the ``[celery]`` extra).

::

    from smtpsend.celery import sendmessage_later

    result = sendmessage_later(part, transport="default")   # a celery AsyncResult
    result.get(timeout=60)    # [] -- or the refused recipients, as dicts

The message is fixed when it is enqueued: :func:`smtpsend.transmitted`
stamps its Date and Message-ID, takes the Bcc header out and works out the
envelope, and those bytes (base64, so that Celery's JSON serializer carries
them) and the envelope travel through the broker. A retry therefore sends
the very same message, with the same Message-ID.

Credentials never travel: ``transport="default"`` names a transport that
each worker configures for itself, in the Celery app's configuration::

    app.conf.smtpsend_transports = {
        "default": {"servers": ["relay.example.com"], "username": "app", "password": "..."},
        "bulk": make_bulk_transport,        # or a callable returning a smtpsend.Transport
    }
    app.conf.smtpsend_retry = {"max_retries": 10, "backoff": 30.0, "backoff_max": 900.0,
                               "retry_uncertain": False}

(or :func:`register_transport` in the worker's code). Each worker process
makes its own :class:`smtpsend.Transport` the first time a name is used --
after the fork, so a prefork child never shares its parent's connections --
keeps it for every later task, and closes it when the process ends.

What the task does with each error is :func:`classify`'s answer:

- ``"transient"`` (a 4xx, a lost connection; AllServersFailed when a server
  may take the message later): retried with exponential backoff and jitter,
  up to ``max_retries``;
- ``"permanent"`` (a 5xx to MAIL, RCPT or the data, MessageTooBig, bad
  input): the task fails at once;
- ``"uncertain"`` (DeliveryUncertain: the whole message was sent and its
  reply never came): the task fails at once, with the Message-ID, so that
  a copy that did arrive can be recognised; ``retry_uncertain`` makes
  these transient instead (the retry may deliver a second copy).

The task's result is the list of refused recipients as dicts (the fields
of :class:`smtpsend.Rejected`); its final error is :class:`DeliveryFailed`,
which holds plain data only, so Celery's JSON result serializer stores it
and ``AsyncResult.get()`` raises it again in the caller. See
docs/scaling.md for the failure guarantees, the policy and the sizing.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email.message
import os
import random
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Mapping, Optional, Protocol, Union

from celery import shared_task, signals  # type: ignore[import-untyped]

import mimecompose
from mimecompose.args import HeaderArg

import smtpsend
from smtpsend import (AllServersFailed, DeliveryUncertain, Delivery, RecipientsRefused, Rejected,
                      ReplyError, SMTPError, UsageError)

__all__ = ["DeliveryFailed", "Kind", "MESSAGE_OPTIONS", "Payload", "RetryPolicy", "Sender", "TASK_NAME", "classify",
           "close_transports", "decode", "describe", "encode", "register_transport", "send_task",
           "sendmessage_later", "transport"]

TASK_NAME = "smtpsend.send"
SCHEMA = 1          # the version of the payload's layout

Kind = Literal["transient", "permanent", "uncertain"]
Message = Union[mimecompose.Part, bytes, bytearray, str, email.message.Message]

# the options of one message that may travel with it: the fields of
# Delivery (DSN, DELIVERBY, MT-PRIORITY, REQUIRETLS, AUTH=, atleastone) and
# tcllib's queue; everything about servers and credentials stays in the worker
_DELIVERY = tuple(f.name for f in dataclasses.fields(Delivery))
MESSAGE_OPTIONS = frozenset(_DELIVERY) | {"queue"}


# ---------------------------------------------------------------- what an error means

def classify(error: BaseException) -> Kind:
    """What to do about an error of a send: ``"transient"`` (try again
    later), ``"permanent"`` (give up now) or ``"uncertain"`` (the message
    may have been delivered: sending it again may duplicate it).

    - DeliveryUncertain: uncertain.
    - AllServersFailed: transient when at least one attempt's error is
      transient -- that server may take the message later (a certificate
      or password refused by the others does not change that); otherwise
      permanent (every server refused for a reason that repeats).
    - RecipientsRefused: transient when every refusal is a 4xx, else
      permanent (a retry would meet the same 5xx).
    - Any other SMTPError: its own ``is_transient``; otherwise permanent
      (SenderRefused, DataRefused, MessageTooBig, TLS and protocol failures).
    - ValueError and TypeError (UsageError is one: the caller's input):
      permanent, nothing was sent.
    - Anything else -- no error of the library's tree, so nothing says
      how far the send got: uncertain.
    """
    if isinstance(error, DeliveryUncertain):
        return "uncertain"
    if isinstance(error, AllServersFailed):
        transient = any(classify(a.error) == "transient" for a in error.attempts)
        return "transient" if transient else "permanent"
    if isinstance(error, RecipientsRefused):
        refusals = error.rejected or []
        if refusals and all(r.is_transient for r in refusals):
            return "transient"
        return "transient" if not refusals and error.is_transient else "permanent"
    if isinstance(error, SMTPError):
        return "transient" if error.is_transient else "permanent"
    if isinstance(error, (ValueError, TypeError)):
        return "permanent"
    return "uncertain"


@dataclass(frozen=True)
class RetryPolicy:
    """How the task retries: at most ``max_retries`` times, the n-th retry
    (from 0) after a delay drawn from [d/2, d] with
    ``d = min(backoff_max, backoff * 2**n)`` ("equal jitter": the delays
    grow, and workers that failed together do not retry together).
    ``retry_uncertain`` makes DeliveryUncertain transient (a second copy
    may then be delivered: the Message-ID is the same, so a receiver that
    deduplicates by Message-ID drops it).

    Read from ``app.conf.smtpsend_retry`` (a dict of these fields). With a
    Redis or SQS broker keep ``backoff_max`` below the broker's
    ``visibility_timeout`` (one hour by default): a retry waiting longer
    than that is handed to a second worker as well.
    """

    max_retries: int = 10
    backoff: float = 30.0
    backoff_max: float = 900.0
    retry_uncertain: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise UsageError(f"max_retries must be an integer of 0 or more, not {self.max_retries!r}")
        for name in ("backoff", "backoff_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise UsageError(f"{name} must be a number of seconds of 0 or more, not {value!r}")
        if not isinstance(self.retry_uncertain, bool):
            raise UsageError(f"retry_uncertain must be True or False, not {self.retry_uncertain!r}")

    @classmethod
    def of(cls, settings: Union["RetryPolicy", Mapping[str, Any], None]) -> "RetryPolicy":
        """A policy from ``app.conf.smtpsend_retry``: None (the defaults),
        a RetryPolicy or a dict of its fields. Raises UsageError for an
        unknown field or a bad value."""
        if settings is None:
            return cls()
        if isinstance(settings, RetryPolicy):
            return settings
        if not isinstance(settings, Mapping):
            raise UsageError(f"smtpsend_retry must be a dict, not a {type(settings).__name__}")
        unknown = set(settings) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UsageError(f"smtpsend_retry has unknown settings: {', '.join(sorted(map(str, unknown)))}")
        return cls(**settings)

    def delay(self, retries: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
        """Seconds to wait before retry number ``retries`` (0 for the first)."""
        ceiling = min(self.backoff_max, self.backoff * 2.0 ** min(retries, 64))
        return uniform(ceiling / 2, ceiling)


# ---------------------------------------------------------------- the final error, as plain data

class DeliveryFailed(SMTPError):
    """The final error of :data:`send_task`: the message was not (or may not
    have been) delivered, and will not be tried again.

    ``info`` is plain data (what Celery's JSON serializer can carry, and
    what ``AsyncResult.get()`` raises again as ``DeliveryFailed(info)``):

    - ``kind``: ``"transient"`` (retries used up), ``"permanent"`` or
      ``"uncertain"`` (see :func:`classify`);
    - ``error``: the class name of the error (``"RecipientsRefused"``),
      ``message``: its text, ``hint``: its hint or None;
    - ``message_id``: the Message-ID of the message sent;
    - ``transport``: the transport's name; ``retries``: how many retries
      were made before this end;
    - ``server``, ``port``, ``stage``, ``code``, ``status``: where it
      happened and the server's reply code and enhanced status (or None);
    - ``rejected``: the refused recipients (dicts of Rejected's fields);
      ``delivered``: the recipients that did get the message (only after
      an LMTP server accepted some of them);
    - ``attempts``: for AllServersFailed, one dict per server tried
      (server, port, stage, error, message, kind).
    """

    def __init__(self, info: Mapping[str, Any]) -> None:
        super().__init__(dict(info))
        self.info: dict[str, Any] = dict(info)

    @property
    def kind(self) -> str:
        """``"transient"``, ``"permanent"`` or ``"uncertain"``."""
        return str(self.info.get("kind", "permanent"))

    @property
    def message_id(self) -> Optional[str]:
        """The Message-ID of the message, or None when it is not known."""
        value = self.info.get("message_id")
        return value if isinstance(value, str) else None

    @property
    def is_transient(self) -> bool:
        """True when the retries ran out on an error that was transient."""
        return self.kind == "transient"

    @property
    def is_permanent(self) -> bool:
        """True when the error was permanent."""
        return self.kind == "permanent"

    @property
    def hint(self) -> Optional[str]:
        """The hint of the original error, or None."""
        value = self.info.get("hint")
        return value if isinstance(value, str) else None

    def summary(self) -> str:
        """The error's class and message, the kind and the Message-ID."""
        retries = self.info.get("retries") or 0
        after = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
        return (f"{self.info.get('error', 'error')} ({self.kind}{after}, Message-ID "
                f"{self.message_id or 'unknown'}): {self.info.get('message', '')}")


def _rejected(rejected: Iterable[Rejected]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(r) for r in rejected]


def _reply_fields(error: BaseException) -> dict[str, Any]:
    reply = getattr(error, "reply", None) if isinstance(error, ReplyError) else None
    return {"code": reply.code if reply is not None else None,
            "status": str(reply.status) if reply is not None and reply.status is not None else None}


def describe(error: BaseException, kind: Kind, *, message_id: Optional[str] = None, transport: str = "",
             retries: int = 0, rejected: Iterable[Rejected] = ()) -> dict[str, Any]:
    """The plain-data ``info`` of :class:`DeliveryFailed` for ``error``;
    ``rejected`` adds refusals of earlier tries (narrowed retries)."""
    info: dict[str, Any] = {
        "kind": kind, "error": type(error).__name__,
        "message": error.summary() if isinstance(error, SMTPError) else str(error),
        "hint": error.hint if isinstance(error, SMTPError) else None,
        "message_id": message_id, "transport": transport, "retries": retries,
        "server": getattr(error, "server", None), "port": getattr(error, "port", None),
        "stage": getattr(error, "stage", None), **_reply_fields(error),
        "rejected": _rejected(rejected) + _rejected(getattr(error, "rejected", None) or []),
        "delivered": list(getattr(error, "delivered", None) or []),
    }
    if isinstance(error, AllServersFailed):
        info["attempts"] = [{"server": a.server, "port": a.port, "stage": a.stage,
                             "error": type(a.error).__name__,
                             "message": a.error.summary() if isinstance(a.error, SMTPError) else str(a.error),
                             "kind": classify(a.error), **_reply_fields(a.error)} for a in error.attempts]
    return info


# ---------------------------------------------------------------- the message as plain data

@dataclass(frozen=True)
class Payload:
    """What travels through the broker for one message (see :func:`encode`).

    ``rejected`` and ``delivered`` are empty but for a narrowed retry: the
    message already went to the ``delivered`` recipients, the ``rejected``
    ones refused it for good, and this try is for ``recipients`` only."""

    transport: str
    data: bytes
    originator: str
    recipients: list[str]
    options: dict[str, Any]
    message_id: Optional[str]
    rejected: list[Rejected] = dataclasses.field(default_factory=list)
    delivered: list[str] = dataclasses.field(default_factory=list)

    def narrowed(self, refused: list[Rejected], delivered: Iterable[str]) -> dict[str, Any]:
        """The payload of a retry to the transiently ``refused`` recipients
        only: the permanent refusals and the ``delivered`` recipients are
        carried along, so the message goes to no one a second time."""
        again = [r.address for r in refused if r.is_transient]
        kept = self.rejected + [r for r in refused if not r.is_transient]
        return _pack(self.transport, self.data, self.originator, again, self.options, self.message_id,
                     kept, self.delivered + [a for a in delivered if a not in self.delivered])


def _pack(transport: str, data: bytes, originator: str, recipients: list[str], options: Mapping[str, Any],
          message_id: Optional[str], rejected: Iterable[Rejected] = (),
          delivered: Iterable[str] = ()) -> dict[str, Any]:
    return {"v": SCHEMA, "transport": transport, "message": base64.b64encode(data).decode("ascii"),
            "originator": originator, "recipients": list(recipients), "options": dict(options),
            "message_id": message_id, "rejected": _rejected(rejected), "delivered": list(delivered)}


def _plain(value: Any) -> Any:
    """An option's value as JSON data: lists for iterables, dicts for mappings."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_plain(v) for v in value]
    raise TypeError(f"a message option cannot be a {type(value).__name__}")


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The per-message options checked (as Delivery checks them) and made plain."""
    unknown = set(options) - MESSAGE_OPTIONS - {"delivery"}
    if unknown:
        raise TypeError(f"sendmessage_later() got options that cannot travel with a message: "
                        f"{', '.join(sorted(unknown))} (servers and credentials are the worker's transport's)")
    given = dict(options)
    delivery = given.pop("delivery", None)
    queue = given.pop("queue", False)
    if delivery is not None:
        if not isinstance(delivery, Delivery):
            raise TypeError(f"delivery= is a smtpsend.Delivery, not a {type(delivery).__name__}")
        if given:
            raise UsageError(f"delivery= excludes the options {', '.join(sorted(given))}")
        checked = delivery
    else:
        checked = Delivery(**given)      # raises UsageError for a value the RFCs do not allow
    plain: dict[str, Any] = {name: _plain(getattr(checked, name)) for name in _DELIVERY
                             if getattr(checked, name) != getattr(Delivery(), name)}
    if queue:
        plain["queue"] = bool(queue)
    return plain


def _message_id(data: bytes) -> Optional[str]:
    """The Message-ID of the transmitted bytes: the newest Resent-Message-ID
    when the message was resent, else Message-ID."""
    end = data.find(b"\r\n\r\n")
    head = mimecompose.initialize(string=data[:end + 4] if end >= 0 else data)
    for name in ("Resent-Message-ID", "Message-ID"):
        values = head.getheader(name)
        if values:
            return str(values[0]).strip()
    return None


def encode(part: Message, *, transport: str = "default", originator: Optional[str] = None,
           recipients: Union[str, Iterable[str], None] = None, header: HeaderArg = (),
           **options: Any) -> dict[str, Any]:
    """The JSON-serialisable payload of one message: its transmitted bytes
    (Date and Message-ID stamped, Bcc removed, ``header=`` applied; base64),
    its envelope, its per-message options and its Message-ID.

    Raises what :func:`smtpsend.transmitted` raises (UsageError for a
    message that cannot be sent), UsageError for a bad option value and
    TypeError for an option that does not belong to a message (servers,
    credentials: those are the worker's).
    """
    if not isinstance(transport, str) or not transport:
        raise TypeError(f"transport= names a transport configured in the worker, not {transport!r}")
    plain = _options(options)
    envelope, data = smtpsend.transmitted(part, originator=originator, recipients=recipients, header=header)
    return _pack(transport, data, envelope.originator, envelope.recipients, plain, _message_id(data))


def decode(payload: Any) -> Payload:
    """The payload :func:`encode` made, checked; UsageError when it is not one."""
    if not isinstance(payload, Mapping) or payload.get("v") != SCHEMA:
        raise UsageError("not a smtpsend.celery payload (or one of another version)")
    try:
        data = base64.b64decode(payload["message"], validate=True)
        if not isinstance(payload["recipients"], list) or not isinstance(payload.get("options") or {}, Mapping):
            raise TypeError("recipients must be a list and options a dict")
        recipients = [str(r) for r in payload["recipients"]]
        options = dict(payload.get("options") or {})
        rejected = [Rejected(**r) for r in payload.get("rejected") or []]
        delivered = [str(a) for a in payload.get("delivered") or []]
        transport, originator = str(payload["transport"]), str(payload["originator"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise UsageError(f"malformed smtpsend.celery payload: {exc}") from None
    if set(options) - MESSAGE_OPTIONS:
        raise UsageError("malformed smtpsend.celery payload: unknown options")
    message_id = payload.get("message_id")
    return Payload(transport, data, originator, recipients, options,
                   message_id if isinstance(message_id, str) else None, rejected, delivered)


# ---------------------------------------------------------------- the worker's transports

class Sender(Protocol):
    """What a transport must do for the task: :class:`smtpsend.Transport`."""

    def sendmessage(self, part: bytes, *, originator: Optional[str] = None,
                    recipients: Union[str, Iterable[str], None] = None, atleastone: bool = False,
                    queue: bool = False) -> list[Rejected]:
        """Send ``part`` to ``recipients`` (the per-message options as
        keywords, as smtpsend.Transport.sendmessage takes them)."""
        ...

    def close(self) -> None:
        """Close the connections."""
        ...


Factory = Callable[[], Sender]

_factories: dict[str, Factory] = {}
_live: dict[str, Sender] = {}
_owner = os.getpid()
_lock = threading.Lock()


def register_transport(name: str, factory: Union[Factory, Mapping[str, Any]]) -> None:
    """Make ``name`` a transport of this worker: ``factory`` is a callable
    returning a :class:`smtpsend.Transport` (called once per process, on
    first use), or the Transport's keyword arguments. Takes precedence over
    ``app.conf.smtpsend_transports``; a transport of that name already made
    in this process is closed and made anew on next use."""
    with _lock:
        _factories[name] = _factory(name, factory)
        old = _live.pop(name, None) if _owner == os.getpid() else None
    if old is not None:
        old.close()


def _factory(name: str, setting: Any) -> Factory:
    if callable(setting):
        return setting  # type: ignore[no-any-return]
    if isinstance(setting, Mapping):
        settings = dict(setting)
        return lambda: _make(name, settings)
    raise UsageError(f"transport {name!r} must be a dict of smtpsend.Transport arguments or a callable "
                     f"returning a Transport, not a {type(setting).__name__}")


def _make(name: str, settings: dict[str, Any]) -> Sender:
    """A smtpsend.Transport from its keyword arguments; UsageError for one
    it does not take (a worker's configuration error: no retry helps)."""
    try:
        return smtpsend.Transport(**settings)
    except TypeError as exc:
        raise UsageError(f"transport {name!r}: {exc}") from None


def transport(name: str, app: Any = None) -> Sender:
    """This process's transport ``name``, made on first use from
    :func:`register_transport` or ``app.conf.smtpsend_transports``. A
    process forked from one that had made it makes its own (the parent's
    object and its sockets are left alone). Raises UsageError for a name
    that is configured nowhere."""
    global _owner
    with _lock:
        if _owner != os.getpid():     # a forked child: nothing inherited is used
            _live.clear()
            _owner = os.getpid()
        live = _live.get(name)
        if live is not None:
            return live
        factory = _factories.get(name)
        if factory is None:
            configured = (app.conf.get("smtpsend_transports") if app is not None else None) or {}
            if name not in configured:
                raise UsageError(f"no transport named {name!r} in this worker: set "
                                 f"app.conf.smtpsend_transports[{name!r}] or call register_transport()")
            factory = _factory(name, configured[name])
        made = _live[name] = factory()
        return made


def close_transports(**_signal: Any) -> None:
    """Close this process's transports (connected to Celery's
    worker_process_shutdown and worker_shutdown signals)."""
    with _lock:
        mine = list(_live.values()) if _owner == os.getpid() else []
        _live.clear()
    for each in mine:
        try:
            each.close()
        except (OSError, SMTPError):
            pass    # the process is ending: a QUIT that fails loses nothing


signals.worker_process_shutdown.connect(close_transports, weak=False)
signals.worker_shutdown.connect(close_transports, weak=False)


# ---------------------------------------------------------------- the task

def _refusals(error: BaseException) -> Optional[list[Rejected]]:
    """The recipients' refusals that ended a send, or None when it ended
    otherwise (directly, or as the last server's attempt)."""
    if isinstance(error, AllServersFailed) and error.attempts:
        error = error.attempts[-1].error
    return list(error.rejected) if isinstance(error, RecipientsRefused) else None


def _send(task: Any, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The body of :data:`send_task`: send one payload, retry or fail as
    :func:`classify` says; return the refused recipients as dicts.

    A message that reached some recipients (``atleastone``, or an LMTP
    server's replies per recipient) is tried again for the transiently
    refused ones only. When their retries run out, with ``atleastone`` it
    is a success whose refusals list them (as sendmessage(atleastone=True)
    returns them) if the last try ended in refusals; otherwise it raises
    DeliveryFailed, whose ``delivered`` names who did get the message.
    """
    retries = int(task.request.retries or 0)
    name = str(payload.get("transport", "")) if isinstance(payload, Mapping) else ""
    message_id = payload.get("message_id") if isinstance(payload, Mapping) else None
    try:
        job = decode(payload)
        policy = RetryPolicy.of(task.app.conf.get("smtpsend_retry"))
        sender = transport(job.transport, task.app)
    except UsageError as error:    # a malformed payload or the worker's configuration: no retry helps
        raise DeliveryFailed(describe(error, "permanent", message_id=message_id, transport=name,
                                      retries=retries)) from error

    def retry(new_payload: Mapping[str, Any]) -> BaseException:
        return task.retry(args=[dict(new_payload)], countdown=policy.delay(retries),  # type: ignore[no-any-return]
                          max_retries=None)

    may_retry = retries < policy.max_retries
    try:
        refused = sender.sendmessage(job.data, originator=job.originator, recipients=job.recipients,
                                     **job.options)
    except Exception as error:   # noqa: BLE001 - every error is classified; see classify()
        kind = classify(error)
        delivered = list(getattr(error, "delivered", None) or [])
        refusals = _refusals(error)
        if delivered and refusals is not None:
            # an LMTP server delivered to some: the others are what is left to do
            if may_retry and any(r.is_transient for r in refusals):
                raise retry(job.narrowed(refusals, delivered)) from None
        elif kind == "transient" or (kind == "uncertain" and policy.retry_uncertain):
            if may_retry:
                raise retry(payload) from None
        if job.options.get("atleastone") and job.delivered and refusals is not None:
            return _rejected(job.rejected) + _rejected(refusals)
        info = describe(error, kind, message_id=job.message_id, transport=job.transport, retries=retries,
                        rejected=job.rejected)
        info["delivered"] = job.delivered + [a for a in info["delivered"] if a not in job.delivered]
        raise DeliveryFailed(info) from error
    refused_now = {r.address for r in refused}
    if may_retry and any(r.is_transient for r in refused):
        # atleastone: delivered to the others; the 4xx ones are tried again
        raise retry(job.narrowed(refused, [a for a in job.recipients if a not in refused_now]))
    if job.rejected and not job.options.get("atleastone"):
        # the end of a narrowed retry after an LMTP server's partial delivery:
        # without atleastone, refusals are a failure (as sendmessage raises them)
        delivered = job.delivered + [a for a in job.recipients if a not in refused_now]
        raise DeliveryFailed(_refused_info(job, job.rejected + refused, delivered, retries))
    return _rejected(job.rejected) + _rejected(refused)


def _refused_info(job: Payload, refused: list[Rejected], delivered: list[str], retries: int) -> dict[str, Any]:
    """DeliveryFailed's info for recipients refused over several tries."""
    first = refused[0]
    kind: Kind = "permanent" if any(not r.is_transient for r in refused) else "transient"
    text = "; ".join(f"{r.address}: {r.code} {r.text}" for r in refused)
    return {"kind": kind, "error": "RecipientsRefused", "message": f"recipients refused: {text}", "hint": None,
            "message_id": job.message_id, "transport": job.transport, "retries": retries, "server": None,
            "port": None, "stage": None, "code": first.code, "status": first.status,
            "rejected": _rejected(refused), "delivered": delivered}


send_task: Any = shared_task(bind=True, name=TASK_NAME, max_retries=None, throws=(DeliveryFailed,))(_send)
"""The Celery task: ``send_task.delay(encode(part, ...))``; see :func:`sendmessage_later`."""


def sendmessage_later(part: Message, *, transport: str = "default", originator: Optional[str] = None,
                      recipients: Union[str, Iterable[str], None] = None, header: HeaderArg = (),
                      task_options: Optional[Mapping[str, Any]] = None, **options: Any) -> Any:
    """Enqueue ``part`` for :data:`send_task` and return its celery AsyncResult.

    The message is fixed now (see :func:`encode`): Date and Message-ID are
    stamped, Bcc removed, the envelope worked out, as
    :func:`smtpsend.sendmessage` would. ``options`` are the per-message
    options of sendmessage (``atleastone``, ``queue``, ``ret``, ``envid``,
    ``notify``, ``orcpt``, ``require_dsn``, ``deliverby``, ``priority``,
    ``requiretls``, ``mail_auth``, or ``delivery=``); ``task_options`` go
    to Celery's ``apply_async`` (``queue``, ``countdown``, ``expires``,
    ``priority``...). The AsyncResult's ``get()`` returns the refused
    recipients as dicts, or raises :class:`DeliveryFailed`.

    Raises UsageError or TypeError, before anything is enqueued, for a
    message or an option that cannot be sent.
    """
    payload = encode(part, transport=transport, originator=originator, recipients=recipients, header=header,
                     **options)
    return send_task.apply_async(args=[payload], **dict(task_options or {}))
