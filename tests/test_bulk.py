"""Client.sendmessages / Session.deliver_many: whole transactions pipelined."""

import uuid

import pytest

import mimecompose
import smtpsend
from smtpsend._envelope import Envelope
from smtpsend._esmtp import Delivery
from smtpsend._session import Session
from smtpsend._sync import pump
from smtpsend.testing import CaptureServer

from transcript import Script, message

EHLO_REPLY = b"250-mx.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
BODY = b"Subject: t\r\n\r\nhello\r\n"


def run_batch(steps, batch, window=16):
    session = Session(client="client.example", usetls=False)
    script = Script([("S", b"220 mx ESMTP\r\n"), ("C", b"EHLO client.example\r\n"), ("S", EHLO_REPLY)] + steps)
    pump(session.open(), script)
    outcomes = pump(session.deliver_many(batch, Delivery(atleastone=True), window), script)
    assert not script.steps, script.steps
    return outcomes, script


def txn(sender, rcpt):
    return ("C", f"MAIL FROM:<{sender}> \r\n".replace(" \r", "\r").encode() + f"RCPT TO:<{rcpt}>\r\n".encode()
            + b"BDAT %d LAST\r\n" % len(BODY) + BODY)


def test_transactions_go_back_to_back_before_any_reply():
    batch = [(Envelope("a@x.org", ["b@y.org"]), message()), (Envelope("c@x.org", ["d@y.org"]), message())]
    steps = [txn("a@x.org", "b@y.org"), txn("c@x.org", "d@y.org"),
             ("S", b"250 ok\r\n250 ok\r\n250 queued 1\r\n250 ok\r\n250 ok\r\n250 queued 2\r\n")]
    outcomes, script = run_batch(steps, batch)
    assert outcomes == [[], []]
    assert len(script.writes) == 1 + 2          # EHLO, then one write per message, no read in between


def test_one_failure_does_not_stop_the_others():
    batch = [(Envelope("a@x.org", ["b@y.org"]), message()), (Envelope("bad@x.org", ["d@y.org"]), message()),
             (Envelope("a@x.org", ["nobody@y.org"]), message())]
    steps = [txn("a@x.org", "b@y.org"), txn("bad@x.org", "d@y.org"), txn("a@x.org", "nobody@y.org"),
             ("S", b"250 ok\r\n250 ok\r\n250 queued\r\n"
                   b"550 5.7.1 sender refused\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n"
                   b"250 ok\r\n550 5.1.1 unknown\r\n554 5.5.1 no valid recipients\r\n")]
    outcomes, _ = run_batch(steps, batch)
    assert outcomes[0] == []
    assert isinstance(outcomes[1], smtpsend.SenderRefused)
    assert isinstance(outcomes[2], smtpsend.RecipientsRefused) and outcomes[2].rejected[0].status == "5.1.1"


def test_lost_connection_leaves_sent_messages_uncertain():
    batch = [(Envelope("a@x.org", ["b@y.org"]), message()) for _ in range(3)]
    steps = [txn("a@x.org", "b@y.org"), txn("a@x.org", "b@y.org"), ("S", b"250 ok\r\n250 ok\r\n250 queued\r\n"),
             txn("a@x.org", "b@y.org"), ("EOF",)]
    outcomes, _ = run_batch(steps, batch, window=2)
    assert outcomes[0] == []
    assert isinstance(outcomes[1], smtpsend.DeliveryUncertain)
    assert isinstance(outcomes[2], smtpsend.DeliveryUncertain)


def test_421_ends_the_batch():
    batch = [(Envelope("a@x.org", ["b@y.org"]), message()) for _ in range(3)]
    steps = [txn("a@x.org", "b@y.org"), ("S", b"421 4.3.2 shutting down\r\n250 ok\r\n250 ok\r\n")]
    outcomes, _ = run_batch(steps, batch, window=1)
    assert all(isinstance(o, smtpsend.ServerUnavailable) for o in outcomes)


def _parts(n, bad=None):
    return [mimecompose.compose(f"message {i}", header=[
        ("From", "a@example.com"), ("To", bad if i == 3 and bad else "b@example.com")]) for i in range(n)]


@pytest.mark.parametrize("extensions", [None, ["PIPELINING", "8BITMIME"]], ids=["pipelined", "one by one"])
def test_client_sendmessages(extensions):
    options = {} if extensions is None else {"extensions": extensions}
    with CaptureServer(responses={"RCPT nobody@example.com": (550, "5.1.1 no")}, **options) as server:
        with smtpsend.connect("localhost", port=server.port) as smtp:
            outcomes = smtp.sendmessages(_parts(50, bad="nobody@example.com"))
        assert len(server.messages) == 49
        assert isinstance(outcomes[3], smtpsend.RecipientsRefused) and outcomes[3].port == server.port
        assert all(o == [] for i, o in enumerate(outcomes) if i != 3)
        # (over DATA the message gains the line break SMTP needs before the final ".")
        bodies = sorted(m.part.getbody().rstrip(b"\r\n") for m in server.messages)
        assert bodies == sorted(f"message {i}".encode() for i in range(50) if i != 3)


def test_sendmessages_to_postfix(rig):
    tag = uuid.uuid4().hex[:8]
    parts = [mimecompose.compose(f"bulk {i}", header=[("From", "bob@example.test"), ("To", "alice@example.test"),
                                                    ("Subject", f"bulk-{tag}-{i}")]) for i in range(20)]
    with smtpsend.connect("localhost", port=rig.ports["smtp"], ssl_context=rig.context) as smtp:
        assert smtp.sendmessages(parts) == [[]] * 20
    from test_realserver import fetch
    assert len(fetch(rig, f"bulk-{tag}-")) == 20
