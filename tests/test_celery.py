"""smtpsend.celery: the classification of errors, the payload, the task's
retry policy (eagerly, in this process), and the whole thing with a real
Celery worker (prefork, 2 processes) and a real Redis broker.

The worker tests need ``redis-server`` (Debian's redis-server package;
tests/rig/rig.py install puts it on CI machines); without it they are
skipped with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any, Callable, Iterator, Optional

import pytest

pytest.importorskip("celery", reason="the [celery] extra: pip install -e '.[celery]'")

import celery_app_harness as harness  # noqa: E402


# The broker's address is fixed before the app is made: a Celery app keeps
# the result backend it made first (the eager tests make one), so the Redis
# of the redis_url fixture is started on this port later.
REDIS_PORT = harness.free_port()
os.environ["SMTPSEND_TEST_BROKER"] = f"redis://127.0.0.1:{REDIS_PORT}/0"

import celery_app  # noqa: E402 - tests/celery_app.py, the app the worker runs
import mimecompose  # noqa: E402
import smtpsend  # noqa: E402
import smtpsend.celery as sc  # noqa: E402
from faults import FaultServer  # noqa: E402
from smtpsend import (AllServersFailed, Attempt, AuthenticationError, DataRefused,  # noqa: E402
                      DeliveryUncertain, MessageTooBig, NotSupported, RecipientsRefused, Rejected,
                      RemoteProtocolError, Reply, ReplyError, SenderRefused, ServerUnavailable, SMTPError,
                      Timeout, TLSError, TLSRequired, TransportError, UsageError)
from smtpsend.testing import CaptureServer, Captured  # noqa: E402


def message(n: int = 0, to: str = "rcpt@example.test", **header: str) -> mimecompose.Part:
    fields = [("From", "app@example.test"), ("To", to), ("Subject", f"message {n}")]
    fields += [(name.replace("_", "-"), value) for name, value in header.items()]
    return mimecompose.initialize("text/plain", string=f"body of message {n}\n", header=fields)


def reply(code: int, text: str = "x") -> Reply:
    return Reply(code, (text,))


def rejected(address: str, code: int) -> Rejected:
    return Rejected(address, code, "refused", None)


def message_id(data: bytes) -> str:
    [value] = mimecompose.initialize(string=data).getheader("Message-ID")
    return str(value)


# ---------------------------------------------------------------- classify: every error class

TRANSIENT_ATTEMPT = Attempt("a.example", 25, "mail", ServerUnavailable("busy", reply(451)))
CERTIFICATE_ATTEMPT = Attempt("b.example", 25, "starttls", TLSError("certificate"))
PASSWORD_ATTEMPT = Attempt("c.example", 25, "auth", AuthenticationError("no", [("PLAIN", reply(535))]))

CASES: list[tuple[str, BaseException, str]] = [
    ("ReplyError 4xx", ReplyError("x", reply(450)), "transient"),
    ("ReplyError 5xx", ReplyError("x", reply(550)), "permanent"),
    ("SenderRefused 5xx", SenderRefused("x", reply(553)), "permanent"),
    ("SenderRefused 4xx", SenderRefused("x", reply(451)), "transient"),
    ("RecipientsRefused 5xx", RecipientsRefused("x", [rejected("a@x", 550)], reply(550)), "permanent"),
    ("RecipientsRefused 4xx", RecipientsRefused("x", [rejected("a@x", 450), rejected("b@x", 452)],
                                                reply(450)), "transient"),
    ("RecipientsRefused mixed", RecipientsRefused("x", [rejected("a@x", 450), rejected("b@x", 550)],
                                                  reply(450)), "permanent"),
    ("DataRefused", DataRefused("x", reply(554)), "permanent"),
    ("ServerUnavailable 4xx", ServerUnavailable("x", reply(421)), "transient"),
    ("ServerUnavailable 5xx", ServerUnavailable("x", reply(554)), "permanent"),
    ("AuthenticationError", AuthenticationError("x", [("PLAIN", reply(535))]), "permanent"),
    ("AuthenticationError 4xx", AuthenticationError("x", [("PLAIN", reply(454))]), "transient"),
    ("MessageTooBig", MessageTooBig(20, 10), "permanent"),
    ("NotSupported", NotSupported("no SMTPUTF8"), "permanent"),
    ("TLSRequired", TLSRequired("no STARTTLS"), "permanent"),
    ("RemoteProtocolError", RemoteProtocolError("garbage"), "permanent"),
    ("TransportError", TransportError("refused"), "transient"),
    ("Timeout", Timeout("silence"), "transient"),
    ("TLSError", TLSError("certificate"), "permanent"),
    ("DeliveryUncertain", DeliveryUncertain("lost after the data"), "uncertain"),
    ("SMTPError", SMTPError("unknown"), "permanent"),
    ("AllServersFailed transient", AllServersFailed([TRANSIENT_ATTEMPT]), "transient"),
    ("AllServersFailed one transient", AllServersFailed([CERTIFICATE_ATTEMPT, TRANSIENT_ATTEMPT]), "transient"),
    ("AllServersFailed none transient", AllServersFailed([CERTIFICATE_ATTEMPT, PASSWORD_ATTEMPT]), "permanent"),
    ("AllServersFailed empty", AllServersFailed([]), "permanent"),
    ("UsageError", UsageError("bad address"), "permanent"),
    ("TypeError", TypeError("bad argument"), "permanent"),
    ("RuntimeError", RuntimeError("a bug"), "uncertain"),
]


@pytest.mark.parametrize("error,kind", [(e, k) for _, e, k in CASES], ids=[n for n, _, _ in CASES])
def test_classify(error: BaseException, kind: str) -> None:
    assert sc.classify(error) == kind


def test_classify_has_a_case_for_every_error_class() -> None:
    tree = smtpsend._errors
    public = {name for name in tree.__all__ if isinstance(getattr(tree, name), type)
              and issubclass(getattr(tree, name), (SMTPError, UsageError))}
    assert public - {type(e).__name__ for _, e, _ in CASES} == set()


# ---------------------------------------------------------------- the retry policy

def test_delays_grow_exponentially_with_jitter_up_to_the_cap() -> None:
    policy = sc.RetryPolicy(backoff=10, backoff_max=100)
    low = [policy.delay(n, lambda a, b: a) for n in range(6)]
    high = [policy.delay(n, lambda a, b: b) for n in range(6)]
    assert high == [10, 20, 40, 80, 100, 100]
    assert low == [5, 10, 20, 40, 50, 50]
    assert all(5 <= policy.delay(0) <= 10 for _ in range(100))
    assert policy.delay(10_000, lambda a, b: b) == 100     # no overflow for a huge count


@pytest.mark.parametrize("settings", [{"max_retries": -1}, {"max_retries": 1.5}, {"backoff": "1"},
                                      {"backoff_max": float("inf")}, {"retry_uncertain": "yes"},
                                      {"retries": 3}, ["max_retries"]])
def test_bad_policy_settings_are_refused(settings: Any) -> None:
    with pytest.raises(UsageError):
        sc.RetryPolicy.of(settings)


def test_policy_from_settings() -> None:
    assert sc.RetryPolicy.of(None) == sc.RetryPolicy()
    assert sc.RetryPolicy.of({"max_retries": 2, "retry_uncertain": True}) == \
        sc.RetryPolicy(max_retries=2, retry_uncertain=True)


# ---------------------------------------------------------------- the payload

def test_the_payload_carries_the_transmitted_bytes_and_envelope_as_json() -> None:
    part = message(1, Bcc="hidden@example.test")
    payload = sc.encode(part, transport="bulk", ret="hdrs", notify=["SUCCESS", "FAILURE"])
    wire = json.loads(json.dumps(payload))          # what Celery's JSON serializer hands the worker
    job = sc.decode(wire)
    assert job.transport == "bulk"
    assert job.originator == "app@example.test"
    assert job.recipients == ["rcpt@example.test", "hidden@example.test"]
    assert b"hidden@example.test" not in job.data and b"\r\nBcc:" not in job.data
    assert job.message_id == message_id(job.data)
    assert job.options == {"ret": "HDRS", "notify": ["SUCCESS", "FAILURE"]}
    # sent again, the bytes are those very bytes: nothing is stamped twice
    envelope, again = smtpsend.transmitted(job.data, originator=job.originator, recipients=job.recipients)
    assert again == job.data and envelope.recipients == job.recipients
    assert mimecompose.initialize(string=job.data).getheader("Subject") == ["message 1"]
    assert part.getheader("Message-ID") == []       # the caller's part is not changed


def test_each_message_gets_its_own_message_id_once() -> None:
    part = message(2)
    ids = {sc.decode(sc.encode(part)).message_id for _ in range(5)}
    assert len(ids) == 5
    given = sc.decode(sc.encode(message(3, Message_ID="<given@example.test>")))
    assert given.message_id == "<given@example.test>"


def test_eight_bit_and_binary_bytes_survive_the_json_trip() -> None:
    blob = bytes(range(256)) * 4
    part = mimecompose.initialize("multipart/mixed", header=[("From", "app@example.test"),
                                                             ("To", "rcpt@example.test")], parts=[
        mimecompose.initialize("text/plain", string="grüße\n", encoding="8bit"),
        mimecompose.initialize("application/octet-stream", string=blob)])
    payload = sc.encode(part)
    job = sc.decode(json.loads(json.dumps(payload)))
    assert job.data == smtpsend.transmitted(job.data, originator=job.originator,
                                            recipients=job.recipients)[1]
    assert "grüße".encode() in job.data


def test_options_that_do_not_belong_to_a_message_are_refused_before_enqueueing() -> None:
    with pytest.raises(TypeError, match="password"):
        sc.encode(message(), password="secret")
    with pytest.raises(TypeError, match="servers"):
        sc.encode(message(), servers=["mail.example.test"])
    with pytest.raises(UsageError):
        sc.encode(message(), ret="ALL")
    with pytest.raises(UsageError):
        sc.encode(message(), priority=12)
    with pytest.raises(UsageError):
        sc.encode(message(), delivery=smtpsend.Delivery(ret="FULL"), envid="x")
    with pytest.raises(UsageError):
        sc.encode(mimecompose.initialize("text/plain", string="no envelope"))
    with pytest.raises(UsageError):
        sc.encode(message(), recipients=["bad\r\nRCPT TO:<x@example.test>"])
    with pytest.raises(TypeError):
        sc.encode(message(), transport="")


def test_delivery_options_travel_as_plain_data() -> None:
    payload = sc.encode(message(), delivery=smtpsend.Delivery(atleastone=True, envid="e-1",
                                                             orcpt={"rcpt@example.test": "rfc822;x@y"}),
                        queue=False)
    assert sc.decode(payload).options == {"atleastone": True, "envid": "e-1",
                                          "orcpt": {"rcpt@example.test": "rfc822;x@y"}}
    json.dumps(payload)


@pytest.mark.parametrize("payload", [None, {}, {"v": 99}, {"v": 1, "message": "!!", "recipients": [],
                                                                "transport": "t", "originator": ""},
                                     {"v": 1, "message": "", "recipients": [], "transport": "t",
                                      "originator": "", "options": {"servers": ["x"]}},
                                     {"v": 1, "message": "", "recipients": "a@example.test", "transport": "t",
                                      "originator": ""},
                                     {"v": 1, "message": "", "recipients": [], "transport": "t",
                                      "originator": "", "options": ["ret"]}])
def test_a_malformed_payload_is_a_usage_error(payload: Any) -> None:
    with pytest.raises(UsageError):
        sc.decode(payload)


# ---------------------------------------------------------------- the final error through Celery's JSON

def test_delivery_failed_survives_celerys_json_result_serializer() -> None:
    error = RecipientsRefused("refused", [rejected("a@example.test", 550)], reply(550, "5.1.1 unknown"))
    smtpsend._errors.locate(error, "mail.example.test", 25, "rcpt")
    info = sc.describe(error, "permanent", message_id="<m@example.test>", transport="default", retries=0)
    from celery.backends.base import BaseBackend
    backend = BaseBackend(celery_app.app)          # the JSON result serializer of celery_app (no server)
    assert backend.serializer == "json"
    stored = json.loads(json.dumps(backend.prepare_exception(sc.DeliveryFailed(info), "json")))
    again = backend.exception_to_python(stored)
    assert type(again) is sc.DeliveryFailed
    assert again.info == info
    assert again.kind == "permanent" and again.message_id == "<m@example.test>"
    assert again.info["rejected"] == [{**vars(rejected("a@example.test", 550))}]
    assert again.info["code"] == 550 and again.info["server"] == "mail.example.test"
    assert "RecipientsRefused" in str(again) and "<m@example.test>" in str(again)
    assert isinstance(again, SMTPError) and again.is_permanent and not again.is_transient


def test_delivery_failed_lists_every_attempt() -> None:
    info = sc.describe(AllServersFailed([TRANSIENT_ATTEMPT, CERTIFICATE_ATTEMPT]), "transient", retries=3)
    assert [(a["server"], a["error"], a["kind"], a["code"]) for a in info["attempts"]] == [
        ("a.example", "ServerUnavailable", "transient", 451), ("b.example", "TLSError", "permanent", None)]
    json.dumps(info)


# ---------------------------------------------------------------- the task, eagerly in this process

@pytest.fixture
def policy() -> Iterator[Callable[..., None]]:
    """Set app.conf.smtpsend_retry for the eager tests; restored after."""
    conf = celery_app.app.conf
    old = conf.get("smtpsend_retry")

    def set_policy(**settings: Any) -> None:
        conf.smtpsend_retry = settings
    yield set_policy
    conf.smtpsend_retry = old


@pytest.fixture
def capture() -> Iterator[Callable[..., CaptureServer]]:
    """CaptureServers for the eager tests, each registered as a transport of its own name."""
    servers: list[CaptureServer] = []

    def make(name: str, **kwargs: Any) -> CaptureServer:
        server = CaptureServer(**kwargs).start()
        servers.append(server)
        sc.register_transport(name, {"servers": [server.host], "ports": [server.port], "timeout": 5})
        return server
    yield make
    sc.close_transports()
    for server in servers:
        server.stop()


def run(part: mimecompose.Part, transport: str, **options: Any) -> Any:
    """send_task applied eagerly (retries are applied at once, without the delay)."""
    return sc.send_task.apply(args=[sc.encode(part, transport=transport, **options)])


def test_eager_delivery_returns_no_refusals(capture: Callable[..., CaptureServer]) -> None:
    server = capture("eager-ok")
    assert run(message(1), "eager-ok").get() == []
    [got] = server.messages
    assert got.envelope.recipients == ["rcpt@example.test"]


def test_sendmessage_later_hands_task_options_to_celery(capture: Callable[..., CaptureServer],
                                                        eager: None) -> None:
    server = capture("eager-later")
    result = sc.sendmessage_later(message(1, Bcc="hidden@example.test"), transport="eager-later",
                                  header=[("X-Campaign", "spring")], task_options={"task_id": "mail-1"})
    assert result.id == "mail-1" and result.get() == []
    [got] = server.messages
    assert got.envelope.recipients == ["rcpt@example.test", "hidden@example.test"]
    assert got.part.getheader("X-Campaign") == ["spring"] and got.part.getheader("Bcc") == []


def test_a_transient_error_is_retried_up_to_the_limit(capture: Callable[..., CaptureServer],
                                                      policy: Callable[..., None]) -> None:
    policy(max_retries=3, backoff=0, backoff_max=0)
    server = capture("eager-busy", responses={"MAIL": (451, "4.3.2 try later")})
    result = run(message(1), "eager-busy")
    with pytest.raises(sc.DeliveryFailed) as raised:
        result.get()
    assert raised.value.kind == "transient" and raised.value.info["retries"] == 3
    assert raised.value.info["error"] == "AllServersFailed"
    assert sum(c.startswith("MAIL") for c in server.commands) == 4
    assert server.received == 0


def test_a_permanent_error_is_not_retried(capture: Callable[..., CaptureServer],
                                          policy: Callable[..., None]) -> None:
    policy(max_retries=3, backoff=0, backoff_max=0)
    server = capture("eager-refuse", responses={"DOT": (554, "5.6.0 not this")})
    with pytest.raises(sc.DeliveryFailed) as raised:
        run(message(1), "eager-refuse").get()
    assert raised.value.kind == "permanent" and raised.value.info["retries"] == 0
    assert raised.value.info["error"] == "DataRefused" and raised.value.info["code"] == 554
    assert sum(c.startswith("MAIL") for c in server.commands) == 1


class SilentAfterData(FaultServer):
    """Says nothing after the whole message came (``whole`` counts how often
    it came): the client cannot know whether it was delivered."""

    def __init__(self) -> None:
        super().__init__("final", "silence", hold=30)
        self.whole = 0

    def _fault(self, conn: Any, stage: str) -> bool:
        if stage == "final":
            self.whole += 1
        return super()._fault(conn, stage)


@pytest.fixture
def silent() -> Iterator[SilentAfterData]:
    with SilentAfterData() as server:
        yield server


@pytest.mark.parametrize("retry_uncertain,copies", [(False, 1), (True, 3)])
def test_an_uncertain_delivery_is_retried_only_when_configured(silent: SilentAfterData,
                                                               policy: Callable[..., None],
                                                               retry_uncertain: bool, copies: int) -> None:
    policy(max_retries=2, backoff=0, backoff_max=0, retry_uncertain=retry_uncertain)
    sc.register_transport("eager-silent", {"servers": ["127.0.0.1"], "ports": [silent.port],
                                           "timeout": 1, "maxsecs": 0.5})
    payload = sc.encode(message(1), transport="eager-silent")
    try:
        with pytest.raises(sc.DeliveryFailed) as raised:
            sc.send_task.apply(args=[payload]).get()
    finally:
        sc.close_transports()
    assert raised.value.kind == "uncertain" and raised.value.info["error"] == "DeliveryUncertain"
    assert raised.value.message_id == payload["message_id"]
    assert silent.whole == copies


def test_atleastone_retries_only_the_transiently_refused(capture: Callable[..., CaptureServer],
                                                         policy: Callable[..., None]) -> None:
    policy(max_retries=2, backoff=0, backoff_max=0)
    server = capture("eager-partial", responses={"RCPT busy@example.test": (450, "4.2.1 mailbox busy"),
                                                 "RCPT gone@example.test": (550, "5.1.1 no such user")})
    part = message(1, to="ok@example.test, busy@example.test, gone@example.test")
    refused = run(part, "eager-partial", atleastone=True).get()
    assert sorted((r["address"], r["code"]) for r in refused) == [("busy@example.test", 450),
                                                                    ("gone@example.test", 550)]
    [got] = server.messages                       # the accepted recipient got exactly one copy
    assert got.envelope.recipients == ["ok@example.test"]
    rcpts = Counter(c.split(":", 1)[1].split(">")[0] for c in server.commands if c.startswith("RCPT"))
    assert rcpts == {"<ok@example.test": 1, "<gone@example.test": 1, "<busy@example.test": 3}


class Scripted:
    """A transport that answers each send from a script (an error to raise
    or a list of refusals to return) and records the recipients of each."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: list[list[str]] = []

    def sendmessage(self, part: bytes, *, originator: Optional[str] = None, recipients: Any = None,
                    **options: Any) -> list[Rejected]:
        self.sent.append(list(recipients))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return list(answer)

    def close(self) -> None:
        pass


def lmtp_refusal(delivered: tuple[str, ...], *refused: Rejected) -> RecipientsRefused:
    """What an LMTP server's per-recipient replies after the data raise:
    some recipients got the message, these did not."""
    error = RecipientsRefused("refused after the data", list(refused), reply(refused[0].code))
    error.delivered = delivered
    return error


def test_after_a_partial_lmtp_delivery_only_the_transient_refusals_are_tried_again(
        policy: Callable[..., None]) -> None:
    policy(max_retries=3, backoff=0, backoff_max=0)
    scripted = Scripted(lmtp_refusal(("a@example.test",), rejected("b@example.test", 452),
                                     rejected("c@example.test", 550)), [])
    sc.register_transport("scripted", lambda: scripted)
    try:
        part = message(1, to="a@example.test, b@example.test, c@example.test")
        with pytest.raises(sc.DeliveryFailed) as raised:
            run(part, "scripted").get()
    finally:
        sc.close_transports()
    # a@ had it, c@ refused it for good: only b@ is tried again, and delivered
    assert scripted.sent == [["a@example.test", "b@example.test", "c@example.test"], ["b@example.test"]]
    info = raised.value.info
    assert info["error"] == "RecipientsRefused" and info["kind"] == "permanent"
    assert info["delivered"] == ["a@example.test", "b@example.test"]
    assert [(r["address"], r["code"]) for r in info["rejected"]] == [("c@example.test", 550)]


def test_after_a_partial_lmtp_delivery_with_atleastone_the_refusals_are_the_result(
        policy: Callable[..., None]) -> None:
    policy(max_retries=1, backoff=0, backoff_max=0)
    scripted = Scripted(lmtp_refusal(("a@example.test",), rejected("b@example.test", 452)),
                        lmtp_refusal(("x@example.test",), rejected("b@example.test", 452)))
    sc.register_transport("scripted", lambda: scripted)
    try:
        refused = run(message(1, to="a@example.test, b@example.test"), "scripted", atleastone=True).get()
    finally:
        sc.close_transports()
    assert scripted.sent == [["a@example.test", "b@example.test"], ["b@example.test"]]
    assert [(r["address"], r["code"]) for r in refused] == [("b@example.test", 452)]


def test_no_credential_reaches_the_payload_or_the_final_error(capture: Callable[..., CaptureServer],
                                                              policy: Callable[..., None]) -> None:
    from conftest import SENTINEL, assert_no_secret
    policy(max_retries=0)
    server = capture("eager-auth", users={"app": "another password"})
    sc.register_transport("eager-auth", {"servers": [server.host], "ports": [server.port], "timeout": 5,
                                         "username": "app", "password": SENTINEL, "tlspolicy": "insecure"})
    payload = sc.encode(message(1), transport="eager-auth")
    with pytest.raises(sc.DeliveryFailed) as raised:
        sc.send_task.apply(args=[payload]).get()
    assert raised.value.kind == "permanent" and raised.value.info["error"] == "AllServersFailed"
    assert raised.value.info["attempts"][0]["error"] == "AuthenticationError"
    assert_no_secret(payload, what="the payload")
    assert_no_secret(raised.value, what="DeliveryFailed")
    assert_no_secret(json.dumps(raised.value.info), what="DeliveryFailed's JSON")


@pytest.mark.parametrize("field,value", [("originator", "app@example.test>\r\nRCPT TO:<x@example.test"),
                                         ("recipients", ["rcpt@example.test\r\nDATA"]),
                                         ("options", {"envid": "e\r\nRSET"})])
def test_a_forged_payload_cannot_inject_commands(capture: Callable[..., CaptureServer],
                                                  policy: Callable[..., None], field: str, value: Any) -> None:
    """Whoever can write to the broker can enqueue a payload by hand: the
    worker's send checks it as sendmessage checks its arguments."""
    policy(max_retries=3)
    server = capture("eager-forged")
    payload = {**sc.encode(message(1), transport="eager-forged"), field: value}
    with pytest.raises(sc.DeliveryFailed) as raised:
        sc.send_task.apply(args=[payload]).get()
    assert raised.value.kind == "permanent" and raised.value.info["error"] == "UsageError"
    assert server.commands == [] and server.received == 0


def test_an_unknown_transport_fails_at_once(policy: Callable[..., None]) -> None:
    policy(max_retries=3)
    with pytest.raises(sc.DeliveryFailed) as raised:
        run(message(1), "nowhere").get()
    assert raised.value.kind == "permanent" and "nowhere" in raised.value.info["message"]


@pytest.mark.parametrize("setting,said", [({"servers": ["127.0.0.1"], "no_such_option": 1}, "no_such_option"),
                                          ({"servers": ["127.0.0.1"], "max_connections": 0}, "max_connections"),
                                          ("a string", "'broken' must be a dict")])
def test_a_misconfigured_transport_fails_at_once(policy: Callable[..., None], setting: Any, said: str) -> None:
    policy(max_retries=3)
    conf = celery_app.app.conf
    old = conf.get("smtpsend_transports")
    conf.smtpsend_transports = {"broken": setting}
    try:
        with pytest.raises(sc.DeliveryFailed) as raised:
            run(message(1), "broken").get()
    finally:
        conf.smtpsend_transports = old
    assert raised.value.kind == "permanent" and raised.value.info["error"] == "UsageError"
    assert said in raised.value.info["message"]


def test_a_transport_is_made_once_per_process_and_anew_after_a_fork() -> None:
    made: list[int] = []

    class Fake:
        def sendmessage(self, part: bytes, **options: Any) -> list[Rejected]:
            return []

        def close(self) -> None:
            pass

    def factory() -> Fake:
        made.append(os.getpid())
        return Fake()
    sc.register_transport("counted", factory)
    try:
        first = sc.transport("counted")
        assert sc.transport("counted") is first and made == [os.getpid()]
        read, write = os.pipe()
        child = os.fork()
        if child == 0:   # pragma: no cover - the child reports through the pipe
            fresh = sc.transport("counted") is not first and len(made) == 2
            os.write(write, b"1" if fresh else b"0")
            os._exit(0)
        os.close(write)
        assert os.read(read, 1) == b"1"
        os.close(read)
        os.waitpid(child, 0)
        assert sc.transport("counted") is first
    finally:
        sc.close_transports()


# ---------------------------------------------------------------- a real worker and a real broker

def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of its own on 127.0.0.1 (nothing saved to disk)."""
    if harness.redis_binary() is None:
        if _ci():
            pytest.fail("redis-server is not installed: tests/rig/rig.py install puts it on CI machines")
        pytest.skip("redis-server is not installed (Debian's redis-server package)")
    with harness.redis(REDIS_PORT, tmp_path_factory.mktemp("redis")) as url:
        yield url


class Servers:
    """The loopback servers the worker sends to, one per transport name."""

    def __init__(self) -> None:
        self.first_seen: Counter[str] = Counter()
        self.default = CaptureServer(keep=1000, keep_commands=5000)
        self.flaky = CaptureServer(on_message=self._fail_first)
        self.refusing = CaptureServer(responses={"RCPT": (550, "5.1.1 no such user here")})
        self.silent = SilentAfterData()

    def _fail_first(self, captured: Captured) -> None:
        """on_message of the flaky server: the first copy of each Message-ID
        is refused (the server answers 451), later ones are kept."""
        mid = message_id(captured.data)
        self.first_seen[mid] += 1
        if self.first_seen[mid] == 1:
            raise RuntimeError("a fault of the test: 451 to the first attempt")

    def transports(self) -> dict[str, dict[str, Any]]:
        def at(port: int, **extra: Any) -> dict[str, Any]:
            return {"servers": ["127.0.0.1"], "ports": [port], "timeout": 5, **extra}
        return {"default": at(self.default.port), "flaky": at(self.flaky.port),
                "refusing": at(self.refusing.port), "silent": at(self.silent.port, timeout=2, maxsecs=1)}

    def __enter__(self) -> "Servers":
        for server in (self.default, self.flaky, self.refusing):
            server.start()
        self.silent.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self.default, self.flaky, self.refusing):
            server.stop()
        self.silent.__exit__()


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with Servers() as made:
        yield made


@pytest.fixture(scope="module")
def worker(redis_url: str, servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``celery -A celery_app worker --pool prefork --concurrency 2``, as a
    child process with the test's broker and transports (tests/celery_app_harness.py);
    stopped at the end. Yields the app, configured in this process the same way."""
    app = celery_app.app
    assert app.conf.broker_url == redis_url
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    try:
        with harness.worker(redis_url, servers.transports(), log, concurrency=2,
                            retry={"max_retries": 3, "backoff": 0.05, "backoff_max": 0.2}):
            yield app
    finally:
        app.pool.force_close_all()


def outcomes(results: list[Any], timeout: float = 60) -> list[Any]:
    """Each result's value, or its exception (without raising)."""
    return [r.get(timeout=timeout, propagate=False) for r in results]


def test_500_messages_are_delivered_exactly_once(worker: Any, servers: Servers) -> None:
    before = servers.default.received
    results = [sc.sendmessage_later(message(n), transport="default") for n in range(500)]
    expected = list(results)
    values = outcomes(results)
    assert values == [[]] * 500
    assert servers.default.received - before == 500
    got = Counter(message_id(m.data) for m in list(servers.default.messages)[-500:])
    assert len(got) == 500 and set(got.values()) == {1}
    assert {r.state for r in expected} == {"SUCCESS"}
    # one Transport per worker process, its connections reused across tasks
    # (a new one at most every max_messages=100 messages)
    greetings = sum(c.upper().startswith("EHLO") for c in servers.default.commands)
    assert 2 <= greetings <= 20, greetings


def test_a_451_to_the_first_attempt_is_delivered_on_retry(worker: Any, servers: Servers) -> None:
    payloads = [sc.encode(message(n), transport="flaky") for n in range(20)]
    results = [sc.send_task.apply_async(args=[p]) for p in payloads]
    assert outcomes(results) == [[]] * 20
    sent = {p["message_id"] for p in payloads}
    kept = Counter(message_id(m.data) for m in servers.flaky.messages)
    assert {mid: kept[mid] for mid in sent} == dict.fromkeys(sent, 1)         # delivered once each
    assert {mid: servers.first_seen[mid] for mid in sent} == dict.fromkeys(sent, 2)   # on the retry


def test_a_550_fails_without_retry_and_carries_the_error(worker: Any, servers: Servers) -> None:
    results = [sc.sendmessage_later(message(n, to=f"user{n}@example.test"), transport="refusing")
               for n in range(5)]
    errors = outcomes(results)
    assert all(isinstance(e, sc.DeliveryFailed) for e in errors), errors
    for n, error in enumerate(errors):
        assert error.kind == "permanent" and error.info["error"] == "RecipientsRefused"
        assert error.info["retries"] == 0 and error.info["code"] == 550
        assert [r["address"] for r in error.info["rejected"]] == [f"user{n}@example.test"]
        assert error.message_id is not None
    rcpts = Counter(c for c in servers.refusing.commands if c.startswith("RCPT"))
    assert rcpts == {f"RCPT TO:<user{n}@example.test>": 1 for n in range(5)}
    assert servers.refusing.received == 0


def test_silence_after_the_data_is_uncertain_and_not_sent_again(worker: Any, servers: Servers) -> None:
    payload = sc.encode(message(1), transport="silent")
    [error] = outcomes([sc.send_task.apply_async(args=[payload])])
    assert isinstance(error, sc.DeliveryFailed), error
    assert error.kind == "uncertain" and error.info["error"] == "DeliveryUncertain"
    assert error.message_id == payload["message_id"] and error.info["retries"] == 0
    assert servers.silent.whole == 1


# ---------------------------------------------------------------- Django: send_mail() enqueues

def django_mail() -> Any:
    """django.core.mail, with settings configured (as tests/test_django.py does)."""
    pytest.importorskip("django")
    from django.conf import settings
    if not settings.configured:
        settings.configure(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
    from django.core import mail
    return mail


CELERY_BACKEND = "smtpsend.django.CeleryEmailBackend"


@pytest.fixture
def eager() -> Iterator[None]:
    """Tasks run at once in this process (task_always_eager), no broker."""
    conf = celery_app.app.conf
    conf.task_always_eager = True
    yield
    conf.task_always_eager = False


def test_django_send_mail_enqueues_the_converted_message(capture: Callable[..., CaptureServer],
                                                         eager: None) -> None:
    mail = django_mail()
    from django.test import override_settings
    server = capture("django-eager")
    with override_settings(EMAIL_BACKEND=CELERY_BACKEND, SMTPSEND_CELERY={"transport": "django-eager"}):
        connection = mail.get_connection()
        message = mail.EmailMessage("Grüße", "body text\n", "app@example.test", ["to@example.test"],
                                    bcc=["hidden@example.test"], connection=connection,
                                    headers={"X-Order": "42"})
        message.attach("data.bin", bytes(range(256)), "application/octet-stream")
        assert message.send() == 1
    assert type(connection).__name__ == "CeleryEmailBackend" and connection.transport_name == "django-eager"
    [result] = connection.results
    assert result.get() == []
    [got] = server.messages
    assert got.envelope.originator == "app@example.test"
    assert got.envelope.recipients == ["to@example.test", "hidden@example.test"]
    part = got.part
    assert part.getheader("Subject") == ["Grüße"] and part.getheader("X-Order") == ["42"]
    assert part.getheader("Bcc") == [] and b"hidden@example.test" not in got.data
    assert bytes(range(256)) in [p.getbody() for p in part.getproperty("parts")]


def test_django_backend_settings(eager: None) -> None:
    mail = django_mail()
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings
    with override_settings(SMTPSEND_CELERY={"transport": "bulk", "atleastone": True,
                                            "task_options": {"queue": "mail"}}):
        backend = mail.get_connection(CELERY_BACKEND, host="ignored.example.test")
        assert (backend.transport_name, backend.task_options, backend.message_options) == \
            ("bulk", {"queue": "mail"}, {"atleastone": True})
        assert mail.get_connection(CELERY_BACKEND, transport="other").transport_name == "other"
    with override_settings(SMTPSEND_CELERY={"servers": ["mail.example.test"], "password": "x"}):
        with pytest.raises(ImproperlyConfigured, match="password"):
            mail.get_connection(CELERY_BACKEND)


def test_django_backend_fail_silently_skips_a_message_it_cannot_enqueue(
        capture: Callable[..., CaptureServer], eager: None, caplog: pytest.LogCaptureFixture) -> None:
    mail = django_mail()
    from django.test import override_settings
    server = capture("django-silent")
    with override_settings(EMAIL_BACKEND=CELERY_BACKEND, SMTPSEND_CELERY={"transport": "django-silent"}):
        bad = mail.EmailMessage("bad", "x", "app@example.test", ["to@example.test"],
                                headers={"X-Bad": "a\r\nBcc: injected@example.test"})
        good = mail.EmailMessage("good", "x", "app@example.test", ["to@example.test"])
        with pytest.raises(ValueError):
            mail.get_connection().send_messages([bad, good])
        assert server.received == 0
        assert mail.get_connection(fail_silently=True).send_messages([bad, good]) == 1
    assert [m.part.getheader("Subject") for m in server.messages] == [["good"]]
    assert "not enqueued" in caplog.text


def test_django_send_mail_through_a_real_worker(worker: Any, servers: Servers) -> None:
    mail = django_mail()
    from django.test import override_settings
    with override_settings(EMAIL_BACKEND=CELERY_BACKEND, SMTPSEND_CELERY={"transport": "default"}):
        connection = mail.get_connection()
        sent = mail.send_mail("from django", "hello\n", "app@example.test", ["to@example.test"],
                              connection=connection)
    assert sent == 1
    [result] = connection.results
    assert result.get(timeout=60) == []
    subjects = [m.part.getheader("Subject") for m in list(servers.default.messages)[-5:]]
    assert ["from django"] in subjects
