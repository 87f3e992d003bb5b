"""Run a Session against a scripted server: no sockets, every byte checked.

A script is a list of steps: ("C", bytes) the client must send next
(consecutive C steps may come in one write), ("S", bytes) the server sends,
("TLS", info or exception), ("EOF",) the server closes, ("TIMEOUT",) it
goes silent -- and stays closed or silent for every read after the end of
the script; ("LEFT", bytes), only at the end, the server sent these bytes
too but the client must give up before reading them (after a reply out of
step, say): reading into them is an error, leaving them is not.

:func:`run` and :func:`play` play every script three times: with each
server step arriving whole, one byte at a time, and in random pieces (a
fixed seed, so a failure can be replayed) -- and fail unless the three give
the same outcome: the same result or error, the same bytes written, the
same transcript, the same calls of the test's callbacks. What they return
(or raise) is the outcome of the first feed. A script must be used up:
unsent client lines, unread server bytes or unread replies fail the test
(:meth:`Script.finish`, which run() and play() call); a Script that a test
pumps by hand fails the test, when it ends, if the client never reached
some of its steps (tests/conftest.py), and can call finish() itself.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterable, Optional, Sequence, Union

from smtpsend._data import MessageData
from smtpsend._envelope import Envelope
from smtpsend._errors import Timeout, TransportError
from smtpsend._reply import Reply, ReplyParser
from smtpsend._driver import Read, Send, StartTLS, TLSInfo
from smtpsend._session import Session
from smtpsend._sync import pump

Step = tuple[Any, ...]
Dialogue = Callable[[Session], Generator[Any, Any, Any]]

FEEDS = ("whole", "bytewise", "random")
SEED = 14            # the random pieces: the same for every run of the suite

# Every Script made since the last clear(): tests/conftest.py checks at the
# end of each test that each one was used up.
LIVE: list["Script"] = []


class ScriptError(AssertionError):
    """The client did something the script does not say, or left part of it."""


def pieces(feed: str, data: bytes, rng: random.Random) -> list[bytes]:
    """``data`` (one server step) cut as ``feed`` says: what successive recv
    calls of the client would return."""
    if feed == "whole" or not data:
        return [data] if data else []
    if feed == "bytewise":
        return [data[i:i + 1] for i in range(len(data))]
    if feed == "random":
        out, i = [], 0
        while i < len(data):
            n = rng.choice((1, 1, 2, 3, 5, 8, 13, 64))
            out.append(data[i:i + n])
            i += n
        return out
    raise ValueError(f"unknown feed {feed!r}: one of {FEEDS}")


class Script:
    """Performs a Session's actions from a script (see the module docstring).

    ``feed`` says how each server step arrives ("whole", "bytewise",
    "random"; ``bytewise=True`` is short for "bytewise"). ``writes`` lists
    what each Send wrote, ``recvs`` the size of each piece the client took.
    """

    def __init__(self, steps: Iterable[Step], bytewise: bool = False, *, feed: Optional[str] = None,
                 seed: int = SEED) -> None:
        self.steps: list[Step] = list(steps)
        self.total = len(self.steps)
        self.feed = feed or ("bytewise" if bytewise else "whole")
        if self.feed not in FEEDS:
            raise ValueError(f"unknown feed {self.feed!r}: one of {FEEDS}")
        self.bytewise = self.feed == "bytewise"
        self._rng = random.Random(seed)
        self.parser = ReplyParser()
        self.queued: list[Reply] = []       # replies parsed, not yet read by the client
        self.pending: deque[bytes] = deque()   # server bytes not yet taken by the client
        self.writes: list[bytes] = []
        self.recvs: list[int] = []
        self.gone: Optional[str] = None   # "EOF" or "TIMEOUT" once the server closed or went silent
        self.failed = False               # a ScriptError was raised: the test knows
        self.checked = False              # finish() was called
        LIVE.append(self)

    # ------------------------------------------------------------ the driver side

    def _error(self, text: str) -> ScriptError:
        self.failed = True
        done = self.total - len(self.steps)
        where = f" (fed {self.feed}, after {done} of {self.total} steps)"
        return ScriptError(text + where)

    def perform(self, action: Any) -> Any:
        """Do what the driver would: Send, Read, StartTLS."""
        if isinstance(action, Send):
            return self._send(action)
        if isinstance(action, Read):
            return self._read(action)
        if isinstance(action, StartTLS):
            return self._starttls()
        raise self._error(f"unknown action {action!r}")

    def _send(self, action: Send) -> None:
        data = action.data if isinstance(action.data, bytes) else b"".join(action.data)
        self.writes.append(data)
        rest = data
        while rest:
            if not self.steps or self.steps[0][0] != "C":
                expected = repr(self.steps[0]) if self.steps else "the end of the script"
                raise self._error(f"unexpected client command: it sent {rest!r}, the script expects {expected}")
            want = self.steps[0][1]
            if not rest.startswith(want):
                raise self._error(f"client sent {rest!r}, script expected {want!r}")
            rest = rest[len(want):]
            self.steps.pop(0)

    def _read(self, action: Read) -> list[Reply]:
        while len(self.queued) < action.count:
            if self.pending:
                piece = self.pending.popleft()
                self.recvs.append(len(piece))
                self.queued.extend(self.parser.feed(piece))
                continue
            if not self.steps and self.gone is not None:
                step: Step = (self.gone,)        # a closed or silent server stays so
            elif not self.steps:
                raise self._error("client waits for a reply the script does not have")
            else:
                step = self.steps.pop(0)
            if step[0] == "EOF":
                self.gone = "EOF"
                raise TransportError("connection closed by the server"
                                     + (" in the middle of a reply" if self.parser.pending else ""))
            if step[0] == "TIMEOUT":
                self.gone = "TIMEOUT"
                raise Timeout(f"no reply within {action.timeout} s")
            if step[0] == "LEFT":
                raise self._error(f"client reads on, but the script says it leaves {step[1]!r} unread")
            if step[0] != "S":
                raise self._error(f"client reads, but the script expects {step!r}")
            self.pending.extend(pieces(self.feed, step[1], self._rng))
        out, self.queued = self.queued[:action.count], self.queued[action.count:]
        return out

    def _starttls(self) -> TLSInfo:
        if not self.steps or self.steps[0][0] != "TLS":
            raise self._error(f"client starts TLS, the script expects {self.steps[:1] or 'the end'}")
        step = self.steps.pop(0)
        # RFC 3207 section 4.2: what arrived before the handshake is discarded
        self.parser = ReplyParser()
        self.queued = []
        self.pending.clear()
        if isinstance(step[1], BaseException):
            raise step[1]
        info: TLSInfo = step[1]
        return info

    # ------------------------------------------------------------ the check

    def unreached(self) -> list[Step]:
        """The steps the client never got to (the closing LEFT steps aside)."""
        steps = list(self.steps)
        while steps and steps[-1][0] == "LEFT":
            steps.pop()
        return steps

    def leftovers(self, *, unread: bool = True) -> list[str]:
        """What of the script was not used: empty when all of it was. With
        ``unread=False`` only the steps never reached count, not replies or
        bytes left unread in a step the client did reach."""
        found: list[str] = []
        steps = self.unreached()
        if steps:
            found.append(f"{len(steps)} steps never reached: {steps[:3]!r}" + (" ..." if len(steps) > 3 else ""))
        if not unread:
            return found
        if self.queued:
            found.append(f"replies the client never read: {[str(r) for r in self.queued]!r}")
        left = b"".join(self.pending)
        if left or self.parser.pending:
            found.append(f"server bytes the client never read: {left!r}"
                         + (" (after part of a reply)" if self.parser.pending else ""))
        return found

    def finish(self) -> None:
        """Raise ScriptError unless the whole script was used: every client
        line sent, every server byte read, every reply taken."""
        self.checked = True
        found = self.leftovers()
        if found:
            raise self._error("script not finished: " + "; ".join(found))


def clear() -> None:
    """Forget the Scripts made so far (at the start of a test)."""
    LIVE.clear()


def unfinished() -> list[str]:
    """For every Script made since clear() that nobody checked with
    finish() and that did not fail already: the steps it never reached. (A
    test that pumps a Script by hand may stop reading a step part way, as a
    client that gives up does: finish() checks that too; run() and play()
    always call it.)"""
    out = []
    for script in LIVE:
        if script.failed or script.checked:
            continue
        found = script.leftovers(unread=False)
        if found:
            out.append(f"a script fed {script.feed} was not used up: " + "; ".join(found))
    return out


# ---------------------------------------------------------------- callbacks replayed

class _Calls:
    """A callback of the test, called for real in the first feed; in the
    others its calls are checked (same arguments, same order) and answered
    from the recording, so a test sees each call once."""

    def __init__(self, name: str, function: Callable[..., Any]) -> None:
        self.name = name
        self.function = function
        self.recorded: list[tuple[str, bool, Any]] = []

    def live(self, *args: Any, **kwargs: Any) -> Any:
        key = repr((args, kwargs))
        try:
            result = self.function(*args, **kwargs)
        except BaseException as exc:
            self.recorded.append((key, False, exc))
            raise
        self.recorded.append((key, True, result))
        return result

    def replay(self, feed: str) -> "_Replay":
        return _Replay(self, feed)


class _Replay:
    """A recorded callback answering from its recording (see _Calls)."""

    def __init__(self, calls: _Calls, feed: str) -> None:
        self.calls = calls
        self.feed = feed
        self.left = deque(calls.recorded)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = repr((args, kwargs))
        name, total = self.calls.name, len(self.calls.recorded)
        if not self.left:
            raise ScriptError(f"fed {self.feed}, {name} was called once more, with {key}; "
                              f"fed whole it was called {total} times")
        want, ok, value = self.left.popleft()
        if key != want:
            raise ScriptError(f"fed {self.feed}, {name} was called with {key}; fed whole with {want}")
        if not ok:
            raise value
        return value

    def check(self) -> None:
        """ScriptError unless every recorded call was made."""
        if self.left:
            total = len(self.calls.recorded)
            raise ScriptError(f"fed {self.feed}, {self.calls.name} was called {total - len(self.left)} times; "
                              f"fed whole {total}")


# ---------------------------------------------------------------- one outcome per feed

@dataclass
class Outcome:
    """What one feed of a script gave."""

    feed: str
    script: Script
    session: Session
    lines: list[str]
    result: Any = None
    error: Optional[BaseException] = None

    def summary(self) -> dict[str, Any]:
        """What must be the same whatever the feed."""
        return {"result": repr(self.result), "error": describe(self.error), "writes": self.script.writes,
                "transcript": self.lines, "stage": getattr(self.session, "stage", None)}


def describe(error: Optional[BaseException]) -> Optional[tuple[str, str, dict[str, str]]]:
    """An error as type, text and attributes (what a test could assert on)."""
    if error is None:
        return None
    attributes = {name: repr(value) for name, value in vars(error).items()
                  if not name.startswith("__") and not callable(value)}
    if error.__cause__ is not None:
        attributes["__cause__"] = repr(error.__cause__)
    return type(error).__name__, str(error), attributes


def _once(steps: Sequence[Step], dialogue: Dialogue, feed: str, options: dict[str, Any],
          calls: dict[str, _Calls], first: bool) -> Outcome:
    lines: list[str] = []
    replays = {name: recorder.replay(feed) for name, recorder in calls.items()}
    kwargs = dict(options)
    for name, recorder in calls.items():
        kwargs[name] = recorder.live if first else replays[name]
    kwargs.setdefault("client", "client.example")
    session = Session(trace=lines.append, trace_notes=True, **kwargs)
    script = Script(steps, feed=feed)
    outcome = Outcome(feed, script, session, lines)
    try:
        outcome.result = pump(dialogue(session), script)
    except ScriptError:
        raise
    except Exception as exc:   # noqa: BLE001 - compared across feeds, then raised to the test
        outcome.error = exc
    script.finish()
    if not first:
        for replay in replays.values():
            replay.check()
    return outcome


def play(steps: Sequence[Step], dialogue: Dialogue, *, feed: Optional[str] = None,
         **options: Any) -> tuple[Any, Script, Session]:
    """Pump ``dialogue(session)`` over the script once per feed, each time
    with a new ``Session(**options)`` (``client`` defaults to
    client.example; the session's trace is kept as ``session.lines``).

    Returns (result, script, session) of the first feed (``feed``, else
    "whole"), or raises its error. Raises ScriptError when a feed left part
    of the script or did something another did not.
    """
    first = feed or "whole"
    order = [first] + [f for f in FEEDS if f != first]
    calls = {name: _Calls(name, value) for name, value in options.items()
             if callable(value) and not isinstance(value, type)}
    outcomes = [_once(steps, dialogue, f, options, calls, i == 0) for i, f in enumerate(order)]
    base = outcomes[0]
    for other in outcomes[1:]:
        want, got = base.summary(), other.summary()
        for key in want:
            if want[key] != got[key]:
                raise ScriptError(f"fed {other.feed}, the {key} differs from fed {base.feed}:\n"
                                  f"  {base.feed}: {want[key]!r}\n  {other.feed}: {got[key]!r}")
    base.session.lines = base.lines   # type: ignore[attr-defined]
    if base.error is not None:
        raise base.error
    return base.result, base.script, base.session


def message(data: bytes = b"Subject: t\r\n\r\nhello\r\n") -> MessageData:
    """A small message (produced again for each feed)."""
    return MessageData(lambda: iter([data]))


def run(steps: Sequence[Step], *, bytewise: bool = False, feed: Optional[str] = None,
        env: Envelope = Envelope("a@x.org", ["b@y.org"]), data: Optional[MessageData] = None,
        **options: Any) -> tuple[Any, Script, Session]:
    """Run ``Session.run`` for one message over the script, once per feed
    (see :func:`play`); returns (rejected, script, session) or raises.
    ``atleastone`` goes to ``run``, every other option to the Session."""
    atleastone: Union[bool, Any] = options.pop("atleastone", False)
    body = data or message()

    def dialogue(session: Session) -> Generator[Any, Any, Any]:
        return session.run(env, body, atleastone)
    return play(steps, dialogue, feed=feed or ("bytewise" if bytewise else None), **options)


TLS_INFO = TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", None, {})
