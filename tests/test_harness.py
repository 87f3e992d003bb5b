"""The test harness itself: transcripts fed three ways and used up, the
loopback servers waking on events, and the secret walker finding what it
must -- each check shown to fail when it should."""

from __future__ import annotations

import base64
import random
import socket
import textwrap
from typing import Any, Generator

import pytest

import smtpsend
from smtpsend._errors import ServerUnavailable
from smtpsend._reply import Reply
from smtpsend._secret import Secret
from smtpsend._driver import Read
from smtpsend._session import Session
from smtpsend._sync import pump

import transcript
from conftest import SENTINEL, assert_no_secret, find_secret, made_on_purpose, secret_forms
from faults import FaultServer
from servers import Conversation, ScriptedServer
from transcript import FEEDS, Script, ScriptError, pieces, play, run

GREET = ("S", b"220 mx.example ESMTP\r\n")
EHLO = ("C", b"EHLO client.example\r\n")
EHLO_REPLY = ("S", b"250-mx.example\r\n250 HELP\r\n")
PLAIN = [("C", b"MAIL FROM:<a@x.org>\r\n"), ("S", b"250 ok\r\n"), ("C", b"RCPT TO:<b@y.org>\r\n"),
         ("S", b"250 ok\r\n"), ("C", b"DATA\r\n"), ("S", b"354 go on\r\n"),
         ("C", b"Subject: t\r\n\r\nhello\r\n.\r\n"), ("S", b"250 2.0.0 queued\r\n"), ("C", b"QUIT\r\n"),
         ("S", b"221 bye\r\n")]
WHOLE = [GREET, EHLO, EHLO_REPLY, *PLAIN]
SERVER_BYTES = sum(len(step[1]) for step in WHOLE if step[0] == "S")


# ---------------------------------------------------------------- three feeds


def test_every_run_is_fed_whole_bytewise_and_in_random_pieces() -> None:
    result, script, _ = run(WHOLE, usetls=False)
    assert result == []
    scripts = {s.feed: s for s in transcript.LIVE}
    assert sorted(scripts) == sorted(FEEDS) and script is scripts["whole"]
    for feed, used in scripts.items():
        assert sum(used.recvs) == SERVER_BYTES, feed
        assert used.writes == script.writes, feed
    assert len(scripts["whole"].recvs) == sum(step[0] == "S" for step in WHOLE)
    assert set(scripts["bytewise"].recvs) == {1} and len(scripts["bytewise"].recvs) == SERVER_BYTES
    sizes = scripts["random"].recvs
    assert len(set(sizes)) > 2 and len(scripts["whole"].recvs) < len(sizes) < SERVER_BYTES


def test_random_pieces_are_the_same_every_time_and_cover_the_data() -> None:
    data = bytes(range(256)) * 4
    first = pieces("random", data, random.Random(transcript.SEED))
    again = pieces("random", data, random.Random(transcript.SEED))
    assert first == again and b"".join(first) == data and len(first) > 10
    assert pieces("bytewise", b"abc", random.Random(0)) == [b"a", b"b", b"c"]
    assert pieces("whole", b"abc", random.Random(0)) == [b"abc"]
    with pytest.raises(ValueError, match="feed"):
        Script([], feed="sideways")


def test_a_reply_split_anywhere_is_still_one_reply() -> None:
    # the bytewise feed really hands the parser one octet per read: a
    # multiline EHLO reply arrives in 33 pieces and is still one reply
    script = Script([GREET, EHLO, EHLO_REPLY], feed="bytewise")
    session = Session(client="client.example", usetls=False)
    pump(session.open(), script)
    script.finish()
    assert "HELP" in session.extensions
    assert script.recvs == [1] * (len(GREET[1]) + len(EHLO_REPLY[1]))


def test_an_outcome_that_depends_on_the_feed_fails() -> None:
    calls = iter(range(10))

    def dialogue(session: Session) -> Generator[Any, Any, int]:
        yield Read(1, 1.0)
        return next(calls)            # a different "result" on every feed
    with pytest.raises(ScriptError, match="fed bytewise, the result differs"):
        play([GREET], dialogue)


def test_a_result_the_feeds_agree_on_is_returned_once() -> None:
    def dialogue(session: Session) -> Generator[Any, Any, str]:
        [reply] = yield Read(1, 1.0)
        text: str = reply.text
        return text
    result, script, _ = play([GREET], dialogue, feed="bytewise")
    assert result == "mx.example ESMTP" and script.feed == "bytewise"


def test_callbacks_are_called_once_and_replayed_for_the_other_feeds() -> None:
    calls: list[tuple[int, str]] = []

    def policy(code: int, text: str) -> str:
        calls.append((code, text))
        return "insecure"
    steps = [GREET, EHLO, ("S", b"250-mx.example\r\n250 STARTTLS\r\n"), ("C", b"STARTTLS\r\n"),
             ("S", b"454 4.7.0 TLS not available\r\n"), *PLAIN]
    run(steps, tlspolicy=policy)
    assert calls == [(454, "4.7.0 TLS not available")]       # three feeds, one call


class Options:
    """Stands in for Session: keeps the options it is given."""

    def __init__(self, **options: Any) -> None:
        self.options = options


def test_a_callback_called_differently_in_another_feed_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transcript, "Session", Options)
    seen: list[int] = []

    def dialogue(session: Any) -> Generator[Any, Any, None]:
        [reply] = yield Read(1, 1.0)
        session.options["tlspolicy"](len(seen), reply.text)     # an argument that changes between feeds
        seen.append(1)
    with pytest.raises(ScriptError, match="fed bytewise, tlspolicy was called with"):
        play([GREET], dialogue, tlspolicy=lambda n, text: "insecure")


def test_a_callback_called_fewer_times_in_another_feed_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transcript, "Session", Options)
    feeds: list[int] = []

    def dialogue(session: Any) -> Generator[Any, Any, None]:
        yield Read(1, 1.0)
        feeds.append(1)
        if len(feeds) == 1:
            session.options["events"]("only once")
    with pytest.raises(ScriptError, match="fed bytewise, events was called 0 times; fed whole 1"):
        play([GREET], dialogue, events=lambda event: None)


def test_the_same_error_from_every_feed_is_raised() -> None:
    with pytest.raises(ServerUnavailable) as info:
        run([GREET, EHLO, ("S", b"421 4.3.2 going down\r\n")], usetls=False)
    assert info.value.reply.code == 421


# ---------------------------------------------------------------- the whole script used


def test_a_script_with_unread_server_lines_fails() -> None:
    steps = [GREET, EHLO, ("S", b"421 4.3.2 going down\r\n"), ("S", b"250 never read\r\n")]
    with pytest.raises(ScriptError, match=r"script not finished: 1 steps never reached.*never read"):
        run(steps, usetls=False)


def test_a_script_with_unread_replies_in_a_step_fails() -> None:
    steps = [GREET, EHLO, ("S", b"421 4.3.2 going down\r\n250 extra\r\n")]
    with pytest.raises(ScriptError, match=r"replies the client never read: \['250 extra'\]"):
        run(steps, usetls=False)


def test_a_script_whose_client_lines_are_never_sent_fails() -> None:
    steps = [GREET, EHLO, ("S", b"421 4.3.2 going down\r\n"), ("C", b"QUIT\r\n")]
    with pytest.raises(ScriptError, match="never reached.*QUIT"):
        run(steps, usetls=False)


def test_an_unexpected_client_command_fails() -> None:
    with pytest.raises(ScriptError, match=r"unexpected client command: it sent b'EHLO client.example\\r\\n'"):
        run([GREET], usetls=False)
    with pytest.raises(ScriptError, match="script expected b'HELO"):
        run([GREET, ("C", b"HELO client.example\r\n")], usetls=False)


def test_part_of_a_reply_left_unread_fails() -> None:
    script = Script([GREET, EHLO, ("S", b"250 mx\r\n250-half")], feed="whole")
    session = Session(client="client.example", usetls=False)
    pump(session.open(), script)
    assert transcript.unfinished() == []     # every step reached: only finish() looks inside them
    with pytest.raises(ScriptError, match="after part of a reply"):
        script.finish()


def test_bytes_the_client_must_leave_unread_are_said_so() -> None:
    with pytest.raises(ServerUnavailable):
        run([GREET, EHLO, ("S", b"421 4.3.2 going down\r\n"), ("LEFT", b"250 never read\r\n")], usetls=False)
    with pytest.raises(ScriptError, match="leaves b'220 hi.*unread"):
        run([("LEFT", b"220 hi\r\n")], usetls=False)


def test_a_hand_pumped_script_is_checked_when_the_test_ends() -> None:
    script = Script([GREET, EHLO, EHLO_REPLY, ("C", b"QUIT\r\n")])
    pump(Session(client="client.example", usetls=False).open(), script)
    [left] = transcript.unfinished()
    assert "never reached" in left and "QUIT" in left
    script.checked = True            # this test is about the check, not a failure of its own


def test_the_checks_fail_a_real_test_run(pytester: pytest.Pytester) -> None:
    # our conftest in a sandbox: a test that catches an error carrying the
    # secret, one that leaves it on a Session and one that leaves a script
    # unfinished all fail at teardown
    here = pytester.path
    source = __import__("pathlib").Path(__file__).parent
    for name in ("conftest.py", "transcript.py"):
        (here / name).write_text((source / name).read_text(encoding="utf-8"), encoding="utf-8")
    leaked = "AUTH PLAIN " + base64.b64encode(b"\0u\0" + SENTINEL.encode()).decode()
    pytester.makepyfile(test_sandbox=textwrap.dedent(f"""
        import pytest, smtpsend
        from smtpsend._reply import Reply
        from smtpsend._session import Session
        from smtpsend._sync import pump
        from transcript import Script

        def test_caught_error_with_the_secret():
            with pytest.raises(smtpsend.ServerUnavailable) as info:
                raise smtpsend.ServerUnavailable("lost", Reply(421, ("bye",)), command="{leaked}")
            assert info.value.command

        def test_unfinished_script():
            script = Script([("S", b"220 hi\\r\\n"), ("C", b"EHLO c\\r\\n"), ("S", b"250 ok\\r\\n"),
                             ("C", b"QUIT\\r\\n")])
            pump(Session(client="c", usetls=False).open(), script)

        def test_session_left_with_the_secret():
            session = Session(client="c", usetls=False)
            session.remembered = "{SENTINEL}"

        def test_clean():
            script = Script([("S", b"220 hi\\r\\n"), ("C", b"EHLO c\\r\\n"), ("S", b"250 ok\\r\\n")])
            pump(Session(client="c", usetls=False).open(), script)
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=4, errors=3)
    result.stdout.fnmatch_lines(["*the secret shows in a ServerUnavailable*command*",
                                 "*script fed whole was not used up*QUIT*",
                                 "*the secret shows in a Session*remembered*"])


# ---------------------------------------------------------------- the secret walker


class Holder:
    def __init__(self, **values: Any) -> None:
        vars(self).update(values)


class Slotted:
    __slots__ = ("kept",)

    def __init__(self, kept: Any) -> None:
        self.kept = kept


def test_the_walker_finds_the_secret_in_a_cause_attribute() -> None:
    inner = smtpsend.ServerUnavailable("lost", Reply(421, ("bye",)), command=f"PASS {SENTINEL}")
    outer = smtpsend.TransportError("every server failed")
    outer.__cause__ = inner
    made_on_purpose(inner, outer)
    found = find_secret(outer)
    assert any(path.startswith("obj.__cause__.command") for path in found), found
    with pytest.raises(AssertionError, match="the secret shows in TransportError"):
        assert_no_secret(outer)


def test_the_walker_finds_the_secret_in_vars_slots_containers_and_context() -> None:
    assert find_secret(Holder(options={"password": SENTINEL}))[0].startswith("obj.options['password']")
    assert find_secret(Holder(values=[("x", {SENTINEL.encode()})]))[0].startswith("obj.values[0][1][0]")
    assert find_secret(Slotted(SENTINEL.encode()))[0].startswith("obj.kept")
    assert find_secret(Holder(keys={SENTINEL: 1}))
    try:
        try:
            raise KeyError(SENTINEL)
        except KeyError:
            raise smtpsend.TransportError("lost") from None
    except smtpsend.TransportError as exc:
        caught = exc
    made_on_purpose(caught)
    assert any(".__context__.args[0]" in path for path in find_secret(caught))


def test_the_walker_finds_the_secret_in_base64_at_any_offset() -> None:
    for prefix in (b"", b"\0", b"\0u", b"\0us", b"\0user\0"):
        line = "AUTH PLAIN " + base64.b64encode(prefix + SENTINEL.encode()).decode()
        assert find_secret(Holder(command=line)), prefix
    assert len(secret_forms()) == 4


def test_the_walker_stops_at_cycles_and_sees_no_secret_in_a_secret() -> None:
    a = Holder(secret=Secret(SENTINEL))
    vars(a).update(me=a, pair=[a, (a,)])
    assert find_secret(a) == []
    error = smtpsend.TransportError("x")
    error.__context__ = error
    assert find_secret(error) == []


def test_the_walker_reads_reprs_of_our_objects() -> None:
    class Leaky(smtpsend.SMTPError):
        def __str__(self) -> str:
            return f"failed with {SENTINEL}"
    leaky = Leaky()
    made_on_purpose(leaky)
    assert any(path.startswith("str(obj)") for path in find_secret(leaky))


def test_the_walker_finds_a_secret_left_on_a_session() -> None:
    session = Session(client="c.example", username="u", password=SENTINEL)
    assert find_secret(session) == []
    setattr(session, "note", SENTINEL)         # as a careless refactor might
    assert find_secret(Holder(kept=session))[0].startswith("obj.kept.note")
    delattr(session, "note")          # this test made a Session: it is walked at the end too


# ---------------------------------------------------------------- servers that wait on events


def test_a_conversation_flags_a_command_after_the_end_of_its_script() -> None:
    server = Conversation([("S", b"220 hi\r\n"), ("C", b"EHLO c\r\n"), ("S", b"250 ok\r\n")])
    with pytest.raises(AssertionError, match=r"sent b'QUIT\\r\\n' after the end of the script"):
        with server:
            with socket.create_connection(("127.0.0.1", server.port)) as conn:
                conn.sendall(b"EHLO c\r\n")
                assert conn.recv(100).startswith(b"220")
                conn.sendall(b"QUIT\r\n")
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(100):
                    pass


def test_a_conversation_the_client_left_early_fails() -> None:
    server = Conversation([("S", b"220 hi\r\n"), ("C", b"EHLO c\r\n"), ("S", b"250 ok\r\n")])
    with pytest.raises(AssertionError, match="expected b'EHLO c"):
        with server:
            with socket.create_connection(("127.0.0.1", server.port)) as conn:
                conn.recv(100)


def test_hold_ends_when_the_client_closes() -> None:
    # the hold is a minute; the server thread ends as soon as the client goes
    server = Conversation([("S", b"220 hi\r\n"), ("HOLD", 60)])
    with server:
        with socket.create_connection(("127.0.0.1", server.port)) as conn:
            assert conn.recv(100) == b"220 hi\r\n"
        server.thread.join(10)
        assert not server.thread.is_alive()
    with ScriptedServer(b"554 no\r\n", hold=60) as scripted:
        with socket.create_connection(("127.0.0.1", scripted.port)) as conn:
            assert conn.recv(100) == b"554 no\r\n"
        with socket.create_connection(("127.0.0.1", scripted.port)) as conn:   # served: the first hold ended
            assert conn.recv(100) == b"554 no\r\n"
        assert scripted.connections == 2


def test_a_fault_server_says_when_a_client_connected_and_closed() -> None:
    with FaultServer("greeting", "silence", hold=60) as server:
        with socket.create_connection(("127.0.0.1", server.port)):
            assert server.connected.wait(10)
        assert server.client_closed.wait(10)


def test_a_message_silence_holds_until_the_client_has_returned() -> None:
    # the server reads nothing of the message until the test, after the
    # client's call, waits for client_closed: the client times out sending
    import mimecompose
    part = mimecompose.compose("x" * 8_000_000, header=[("From", "a@example.com"), ("To", "b@example.com")])
    with FaultServer("message", "silence", hold=60) as server:
        with pytest.raises(smtpsend.AllServersFailed) as info:
            smtpsend.sendmessage(part, servers=["127.0.0.1"], ports=[server.port], usetls=False,
                                 timeout=1, maxsecs=1)
        assert isinstance(info.value.attempts[0].error, smtpsend.Timeout)
        assert server.client_closed.wait(10)
        assert server.delivered == []
