"""The mail transaction: every reply of a pipelined group used, replies
out of step noticed, the same octets over DATA and BDAT, and a message that
changes while it is sent never delivered -- transcripts fed whole and one
byte at a time, and end to end against the capture server."""

import asyncio
import pickle

import pytest

import mimecompose
import smtpsend
import smtpsend._data
from smtpsend import _cliexit
from smtpsend._data import MessageChanged, MessageData
from smtpsend._envelope import Envelope
from smtpsend._reply import EnhancedStatus, ReplyParser
from smtpsend._esmtp import Delivery
from smtpsend._session import Session
from smtpsend._sync import pump
from smtpsend.testing import CaptureServer

from servers import Conversation
from transcript import Script, message

GREET = ("S", b"220 mx.example ESMTP\r\n")
EHLO = ("C", b"EHLO client.example\r\n")
BODY = b"Subject: t\r\n\r\nhello\r\n"
ONE = Envelope("a@x.org", ["b@y.org"])
TWO = Envelope("a@x.org", ["b@y.org", "c@y.org"])


def ehlo(*keywords):
    lines = ["mx.example"] + list(keywords)
    return ("S", b"".join(f"250{'-' if i < len(lines) - 1 else ' '}{l}\r\n".encode()
                          for i, l in enumerate(lines)))


def play(steps, dialogue, bytewise):
    """Pump ``dialogue(session)`` over the script; returns (result or the
    error raised, script, session). Every step of the script must be used."""
    session = Session(client="client.example", usetls=False)
    script = Script(steps, bytewise)
    try:
        result = pump(dialogue(session), script)
    except (smtpsend.SMTPError, ValueError) as exc:
        result = exc
    assert not script.steps, f"script not finished: {script.steps}"
    return result, script, session


def send_one(env=ONE, data=None, atleastone=False, quit=True):
    def dialogue(session):
        yield from session.open()
        return (yield from session.deliver(env, data or message(), Delivery(atleastone=atleastone), quit=quit))
    return dialogue


both = pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])


# ---------------------------------------------------------------- a 421 inside a group (issue 11, item 10)

@both
def test_421_in_a_pipelined_group_is_the_error_not_the_lost_connection(bytewise):
    steps = [GREET, EHLO, ehlo("PIPELINING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
             ("S", b"250 2.1.0 ok\r\n421 4.3.2 shutting down\r\n"), ("EOF",)]
    error, _, session = play(steps, send_one(), bytewise)
    assert isinstance(error, smtpsend.ServerUnavailable), error
    assert error.reply.code == 421 and error.is_transient and error.command == "RCPT"
    assert session.stage == "rcpt"


@both
def test_421_in_a_pipelined_group_then_silence_is_the_error(bytewise):
    steps = [GREET, EHLO, ehlo("PIPELINING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n"),
             ("S", b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n421 4.4.2 timeout\r\n"), ("TIMEOUT",)]
    error, _, session = play(steps, send_one(env=TWO), bytewise)
    assert isinstance(error, smtpsend.ServerUnavailable) and error.reply.code == 421
    assert session.stage == "rcpt"


@both
def test_421_to_mail_in_a_bdat_last_group_is_not_an_uncertain_delivery(bytewise):
    steps = [GREET, EHLO, ehlo("PIPELINING", "CHUNKING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\n"),
             ("C", b"BDAT %d LAST\r\n" % len(BODY) + BODY + b"QUIT\r\n"),
             ("S", b"421 4.3.2 going down\r\n"), ("EOF",)]
    error, _, session = play(steps, send_one(atleastone=True), bytewise)
    assert isinstance(error, smtpsend.ServerUnavailable) and error.reply.code == 421
    assert session.stage == "mail"


@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_421_in_a_group_makes_the_cli_say_temporary(driver):
    with Conversation([("S", b"220 mx ESMTP\r\n"), ("C", b"EHLO localhost\r\n"),
                       ("S", b"250-mx\r\n250 PIPELINING\r\n"),
                       ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
                       ("S", b"250 2.1.0 ok\r\n421 4.7.0 too busy\r\n"), ("CLOSE",)]) as server:
        send = smtpsend.sendmessage if driver == "sync" else \
            (lambda *args, **kwargs: asyncio.run(smtpsend.asendmessage(*args, **kwargs)))
        with pytest.raises(smtpsend.AllServersFailed) as info:
            send(b"Subject: t\r\n\r\nhi\r\n", servers=["127.0.0.1"], ports=[server.port],
                 originator="a@x.org", recipients=["b@y.org"], usetls=False)
    [attempt] = info.value.attempts
    assert isinstance(attempt.error, smtpsend.ServerUnavailable) and attempt.stage == "rcpt"
    assert _cliexit.exit_code(info.value) == _cliexit.EX_TEMPFAIL


@both
def test_421_in_a_bulk_group_ends_the_batch(bytewise):
    body = b"BDAT %d LAST\r\n" % len(BODY) + BODY
    steps = [GREET, EHLO, ehlo("PIPELINING", "CHUNKING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\n" + body),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\n" + body),
             ("S", b"250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n250 ok\r\n421 4.3.2 bye now\r\n"), ("EOF",)]

    def dialogue(session):
        yield from session.open()
        return (yield from session.deliver_many([(ONE, message()), (ONE, message())], Delivery(atleastone=True)))
    outcomes, _, _ = play(steps, dialogue, bytewise)
    assert outcomes[0] == []
    assert isinstance(outcomes[1], smtpsend.ServerUnavailable) and outcomes[1].reply.code == 421


# ---------------------------------------------------------------- replies out of step (issue 11, item 10)

@both
def test_an_unsolicited_reply_before_data_is_a_protocol_error_and_no_data_goes(bytewise):
    steps = [GREET, EHLO, ehlo("PIPELINING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
             ("S", b"250 2.0.0 hello again\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n")]
    error, script, _ = play(steps, send_one(), bytewise)
    assert isinstance(error, smtpsend.RemoteProtocolError), error
    assert not any(BODY in write for write in script.writes)


@both
@pytest.mark.parametrize("replies", [
    b"250 2.0.0 stray\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n554 5.6.0 refused\r\n221 bye\r\n",
    b"250 stray\r\n250 ok\r\n250 ok\r\n554 refused\r\n221 bye\r\n",       # no enhanced codes: QUIT tells
], ids=["enhanced", "plain"])
def test_an_unsolicited_reply_is_never_taken_for_the_final_one(bytewise, replies):
    steps = [GREET, EHLO, ehlo("PIPELINING", "CHUNKING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\n"),
             ("C", b"BDAT %d LAST\r\n" % len(BODY) + BODY + b"QUIT\r\n"), ("S", replies)]
    error, _, _ = play(steps, send_one(atleastone=True), bytewise)
    assert isinstance(error, smtpsend.DeliveryUncertain), error        # not "delivered"
    assert isinstance(error.__cause__, smtpsend.RemoteProtocolError)


@both
def test_an_address_status_cannot_answer_the_message_data(bytewise):
    steps = [GREET, EHLO, ehlo("PIPELINING", "CHUNKING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\n"),
             ("C", b"BDAT %d\r\n" % len(BODY) + BODY),
             ("S", b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.0.0 got it\r\n"),
             ("C", b"BDAT 0 LAST\r\n"), ("S", b"250 2.1.5 ok\r\n")]
    error, _, _ = play(steps, send_one(quit=False), bytewise)
    assert isinstance(error, smtpsend.DeliveryUncertain) and isinstance(error.__cause__, smtpsend.RemoteProtocolError)


@both
def test_a_goodbye_that_is_not_221_after_a_pipelined_quit_is_uncertain(bytewise):
    steps = [GREET, EHLO, ehlo("PIPELINING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
             ("S", b"250 ok\r\n250 ok\r\n354 go\r\n"), ("C", BODY + b".\r\nQUIT\r\n"),
             ("S", b"250 ok\r\n250 queued\r\n")]
    error, _, _ = play(steps, send_one(), bytewise)
    assert isinstance(error, smtpsend.DeliveryUncertain)


@both
def test_a_lost_goodbye_after_a_pipelined_quit_is_still_delivered(bytewise):
    steps = [GREET, EHLO, ehlo("PIPELINING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
             ("S", b"250 ok\r\n250 ok\r\n354 go\r\n"), ("C", BODY + b".\r\nQUIT\r\n"),
             ("S", b"250 queued\r\n"), ("EOF",)]
    result, _, session = play(steps, send_one(), bytewise)
    assert result == [] and session.stage == "quit"


# ---------------------------------------------------------------- one message, one set of bytes (issue 11, item 18)

@both
def test_a_body_without_a_final_crlf_is_the_same_octets_over_data_and_bdat(bytewise):
    raw = b"Subject: t\r\n\r\nno line break at the end"
    wire = raw + b"\r\n"
    bdat = [GREET, EHLO, ehlo("CHUNKING"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
            ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"),
            ("C", b"BDAT %d LAST\r\n" % len(wire) + wire), ("S", b"250 ok\r\n"),
            ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    data = [GREET, EHLO, ehlo("HELP"), ("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"),
            ("C", b"RCPT TO:<b@y.org>\r\n"), ("S", b"250 ok\r\n"), ("C", b"DATA\r\n"), ("S", b"354 go\r\n"),
            ("C", wire + b".\r\n"), ("S", b"250 ok\r\n"), ("C", b"QUIT\r\n"), ("S", b"221 bye\r\n")]
    for steps in (bdat, data):
        result, _, _ = play(steps, send_one(data=message(raw)), bytewise)
        assert result == []


def test_the_capture_server_gets_the_same_message_by_data_and_by_bdat():
    part = mimecompose.initialize("application/octet-stream", string=b"x", encoding="7bit",
                                  header=[("From", "a@x.org"), ("To", "b@y.org"), ("Date", "Mon, 1 Jan 2024 00:00:00 +0000"),
                                          ("Message-ID", "<same@x.org>")])
    received = []
    for extensions in (["PIPELINING"], ["PIPELINING", "CHUNKING"]):
        with CaptureServer(extensions=extensions) as server:
            smtpsend.sendmessage(part, servers=["127.0.0.1"], ports=[server.port])
        received.append((server.messages[0].via, server.messages[0].data))
    (via1, data1), (via2, data2) = received
    assert (via1, via2) == ("DATA", "BDAT") and data1 == data2 and data1.endswith(b"\r\nx\r\n")


def test_enhanced_status_is_its_text():
    status = EnhancedStatus(5, 7, 1)
    assert status == "5.7.1" and "5.7.1" == status and hash(status) == hash("5.7.1")
    assert str(status) == "5.7.1" and f"{status}" == "5.7.1" and status in {"5.7.1"}
    assert (status.klass, status.subject, status.detail) == (5, 7, 1)
    assert repr(status) == "EnhancedStatus(5, 7, 1)"
    assert pickle.loads(pickle.dumps(status)) == status and status != "5.7.2"
    [reply] = ReplyParser().feed(b"550 5.7.1 relaying denied\r\n")
    assert reply.status == "5.7.1" and isinstance(reply.status, EnhancedStatus)
    for bad in [(3, 0, 0), (5, 1000, 0), (5, -1, 0), ("5", 1, 1)]:
        with pytest.raises(ValueError):
            EnhancedStatus(*bad)


def test_reply_status_and_rejected_status_agree():
    steps = [GREET, EHLO, ehlo("PIPELINING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n"),
             ("S", b"250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n354 go\r\n"),
             ("C", BODY + b".\r\nQUIT\r\n"), ("S", b"250 ok\r\n221 bye\r\n")]
    [rejected], _, _ = play(steps, send_one(env=TWO, atleastone=True), False)
    assert rejected.status == "5.1.1" == EnhancedStatus(5, 1, 1)


# ---------------------------------------------------------------- a message that changes while it is sent (issue 11, item 3)

def _log_part(path):
    return mimecompose.compose("the log is attached", attachments=[str(path)],
                               header=[("From", "a@x.org"), ("To", "b@y.org"), ("Subject", "log")])


def _grow(path):
    with open(path, "ab") as fh:
        fh.write(b"\r\nRSET\r\nMAIL FROM:<evil@x.org>\r\nRCPT TO:<victim@x.org>\r\n" * 50)


EXTENSIONS = {"bdat": ["PIPELINING", "CHUNKING"], "bdat-no-pipelining": ["CHUNKING"],
              "data": ["PIPELINING"], "data-no-pipelining": []}


@pytest.mark.parametrize("atleastone", [True, False])
@pytest.mark.parametrize("when", ["between", "during"])
@pytest.mark.parametrize("shape", sorted(EXTENSIONS))
def test_a_file_that_grows_while_sent_is_never_delivered(monkeypatch, tmp_path, shape, when, atleastone):
    monkeypatch.setattr(smtpsend._data, "_KEEP", 4096)   # serialised again to be sent, as above 4 MiB
    path = tmp_path / "disk.bin"
    path.write_bytes(bytes(range(256)) * 800)
    grown = []

    def grow_once(*args):
        if not grown:
            grown.append(True)
            _grow(path)
    events = (lambda event: event.name == "mail" and grow_once()) if when == "between" else None
    progress = grow_once if when == "during" else None
    with CaptureServer(extensions=EXTENSIONS[shape]) as server:
        with pytest.raises(MessageChanged):
            smtpsend.sendmessage(_log_part(path), servers=["127.0.0.1"], ports=[server.port],
                                 atleastone=atleastone, events=events, progress=progress)
        # the same server takes the next message: nothing was left behind
        smtpsend.sendmessage(b"Subject: next\r\n\r\nok\r\n", servers=["127.0.0.1"], ports=[server.port],
                             originator="a@x.org", recipients=["b@y.org"])
    assert grown and len(server.messages) == 1 and server.messages[0].data.endswith(b"\r\n\r\nok\r\n")
    assert not any("evil" in c or "victim" in c for c in server.commands), server.commands


def test_a_large_file_that_grows_between_measuring_and_sending(tmp_path):
    # the real threshold: over 4 MiB the message is serialised a second time
    path = tmp_path / "disk.bin"
    path.write_bytes(b"\x00\xff" * (4200 << 10))
    grown = []

    def events(event):
        if event.name == "mail":
            grown.append(True)
            _grow(path)
    with CaptureServer(extensions=["PIPELINING", "CHUNKING", "SIZE 100000000"]) as server:
        with pytest.raises(MessageChanged):
            smtpsend.sendmessage(_log_part(path), servers=["127.0.0.1"], ports=[server.port], atleastone=True,
                                 events=events)
    assert grown and server.messages == []
    bdat = [c for c in server.commands if c.startswith("BDAT")]
    assert len(bdat) == 1 and server.commands[-1] == bdat[0]      # nothing after it was read as a command


def test_an_unchanged_large_file_is_delivered_as_measured(monkeypatch, tmp_path):
    monkeypatch.setattr(smtpsend._data, "_KEEP", 4096)
    path = tmp_path / "disk.bin"
    path.write_bytes(bytes(range(256)) * 800)
    part = _log_part(path)
    with CaptureServer(extensions=["PIPELINING", "CHUNKING", "SIZE 1000000"]) as server:
        smtpsend.sendmessage(part, servers=["127.0.0.1"], ports=[server.port])
    got = server.messages[0]
    assert f"SIZE={len(got.data)}" in got.esmtp_params
    assert got.part.getproperty("parts")[1].getbody() == path.read_bytes()


def test_the_client_drops_a_connection_left_in_the_middle_of_a_message(monkeypatch, tmp_path):
    monkeypatch.setattr(smtpsend._data, "_KEEP", 4096)
    path = tmp_path / "disk.bin"
    path.write_bytes(bytes(range(256)) * 800)
    armed = []

    def progress(sent, total):
        if armed:
            armed.pop()
            _grow(path)
    following = [b"From: a@x.org\r\nTo: b@y.org\r\n\r\nnext %d\r\n" % n for n in range(3)]
    with CaptureServer(extensions=["PIPELINING", "CHUNKING"]) as server:
        with smtpsend.connect("127.0.0.1", port=server.port, usetls=False, progress=progress) as smtp:
            armed.append(True)
            with pytest.raises(MessageChanged):
                smtp.sendmessage(_log_part(path))
            assert smtp.sendmessage(following[0]) == []            # on a fresh connection
            armed.append(True)
            outcomes = smtp.sendmessages([_log_part(path), following[1]])
            assert isinstance(outcomes[0], MessageChanged) and isinstance(outcomes[1], smtpsend.TransportError)
            assert smtp.sendmessage(following[2]) == []
    assert [m.data.endswith(b"next %d\r\n" % n) for n, m in zip((0, 2), server.messages)] == [True, True]
    assert len(server.messages) == 2


def test_bulk_sending_stops_at_a_changed_message(monkeypatch):
    monkeypatch.setattr(smtpsend._data, "_KEEP", 1000)
    versions = [[b"Subject: t\r\n\r\n", b"a" * 70000 + b"\r\n", b"b" * 70000 + b"\r\n"]]
    versions.append(versions[0] + [b"MAIL FROM:<evil@x.org>\r\n"])
    changing = MessageData(lambda: iter(versions.pop(0) if len(versions) > 1 else versions[0]))
    first = b"BDAT %d LAST\r\n" % len(BODY) + BODY
    steps = [GREET, EHLO, ehlo("PIPELINING", "CHUNKING"),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\n" + first),
             ("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nBDAT %d LAST\r\nSubject: t\r\n\r\n"
              % changing.size + b"a" * 70000 + b"\r\n"),
             ("S", b"250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n")]

    def dialogue(session):
        yield from session.open()
        return (yield from session.deliver_many([(ONE, message()), (ONE, changing), (ONE, message())],
                                                Delivery(atleastone=True)))
    outcomes, script, _ = play(steps, dialogue, False)
    assert outcomes[0] == [] and isinstance(outcomes[1], MessageChanged)
    assert isinstance(outcomes[2], smtpsend.TransportError)
    sent = script.writes[-1].split(b"BDAT %d LAST\r\n" % changing.size, 1)[1]
    assert 0 < len(sent) < changing.size                           # the changed one never complete


# ---------------------------------------------------------------- per-transaction state (issue 14)

def _holds(value, target, seen=None):
    """Whether ``target`` is reachable from ``value`` through attributes,
    lists, tuples and dicts."""
    seen = set() if seen is None else seen
    if value is target:
        return True
    if id(value) in seen or isinstance(value, (str, bytes, int, float, type(None))):
        return False
    seen.add(id(value))
    if isinstance(value, dict):
        return any(_holds(v, target, seen) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_holds(v, target, seen) for v in value)
    return hasattr(value, "__dict__") and _holds(vars(value), target, seen)


@pytest.mark.parametrize("keywords,atleastone", [((), False), (("PIPELINING",), False),
                                                 (("PIPELINING", "CHUNKING"), True)])
def test_nothing_of_a_transaction_stays_on_the_session(keywords, atleastone):
    env = Envelope("a@x.org", ["b@y.org"])
    data = message()
    group = [("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"), ("C", b"RCPT TO:<b@y.org>\r\n"),
             ("S", b"250 ok\r\n")]
    if "CHUNKING" in keywords:
        steps = [("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nBDAT %d LAST\r\n" % len(BODY) + BODY),
                 ("S", b"250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n")]
    elif "PIPELINING" in keywords:
        steps = [("C", b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
                 ("S", b"250 ok\r\n250 ok\r\n354 go\r\n"), ("C", BODY + b".\r\n"), ("S", b"250 2.0.0 queued\r\n")]
    else:
        steps = group + [("C", b"DATA\r\n"), ("S", b"354 go\r\n"), ("C", BODY + b".\r\n"),
                         ("S", b"250 2.0.0 queued\r\n")]

    def dialogue(session):
        yield from session.open()
        return (yield from session.deliver(env, data, Delivery(atleastone=atleastone)))
    result, _, session = play([GREET, EHLO, ehlo(*keywords)] + steps, dialogue, bytewise=False)
    assert result == []
    assert not _holds(session, env) and not _holds(session, data)


def test_the_bulk_path_checks_its_commands_as_every_path_does():
    """A command that is not valid text (a lone surrogate) is a UsageError
    on the pipelined bulk path too, never a bare UnicodeEncodeError."""
    odd = Envelope("a@x.org", ["b\udc80@y.org"])

    def dialogue(session):
        yield from session.open()
        return (yield from session.deliver_many([(odd, message())], Delivery(atleastone=True)))
    result, script, _ = play([GREET, EHLO, ehlo("PIPELINING", "CHUNKING", "SMTPUTF8")], dialogue, bytewise=False)
    assert type(result) is smtpsend.UsageError and "not valid text" in str(result)
    assert script.writes == [b"EHLO client.example\r\n"]   # nothing of the transaction was sent
