"""Run a Session against a scripted server: no sockets, every byte checked."""

from __future__ import annotations

from smtpsend._data import MessageData
from smtpsend._envelope import Envelope
from smtpsend._errors import Timeout, TransportError
from smtpsend._reply import ReplyParser
from smtpsend._session import Read, Send, Session, StartTLS, TLSInfo
from smtpsend._sync import pump


class ScriptError(AssertionError):
    pass


class Script:
    """``steps``: ("C", bytes) the client must send next (consecutive C steps
    may come in one write), ("S", bytes) the server sends, ("TLS", info or
    exception), ("EOF",) the server closes, ("TIMEOUT",) it goes silent -- and
    stays closed or silent for every read after it."""

    def __init__(self, steps, bytewise=False):
        self.steps = list(steps)
        self.bytewise = bytewise
        self.parser = ReplyParser()
        self.queued = []
        self.writes = []
        self.gone = None   # "EOF" or "TIMEOUT" once the server closed or went silent

    def perform(self, action):
        if isinstance(action, Send):
            data = action.data if isinstance(action.data, bytes) else b"".join(action.data)
            self.writes.append(data)
            rest = data
            while rest:
                if not self.steps or self.steps[0][0] != "C":
                    raise ScriptError(f"client sent {rest!r}, script expected {self.steps[:1]}")
                want = self.steps[0][1]
                if not rest.startswith(want):
                    raise ScriptError(f"client sent {rest!r}, script expected {want!r}")
                rest = rest[len(want):]
                self.steps.pop(0)
            return None
        if isinstance(action, Read):
            while len(self.queued) < action.count:
                if not self.steps and self.gone is not None:
                    step = (self.gone,)        # a closed or silent server stays so
                elif not self.steps:
                    raise ScriptError("client waits for a reply the script does not have")
                else:
                    step = self.steps.pop(0)
                if step[0] == "EOF":
                    self.gone = "EOF"
                    raise TransportError("connection closed by the server")
                if step[0] == "TIMEOUT":
                    self.gone = "TIMEOUT"
                    raise Timeout(f"no reply within {action.timeout} s")
                if step[0] != "S":
                    raise ScriptError(f"client reads, but script expects it to send {step[1]!r}")
                data = step[1]
                chunks = [data[i:i + 1] for i in range(len(data))] if self.bytewise else [data]
                for chunk in chunks:
                    self.queued.extend(self.parser.feed(chunk))
            out, self.queued = self.queued[:action.count], self.queued[action.count:]
            return out
        if isinstance(action, StartTLS):
            step = self.steps.pop(0)
            if step[0] != "TLS":
                raise ScriptError(f"client starts TLS, script expects {step}")
            self.parser = ReplyParser()
            self.queued = []
            if isinstance(step[1], BaseException):
                raise step[1]
            return step[1]
        raise ScriptError(f"unknown action {action!r}")


def message(data=b"Subject: t\r\n\r\nhello\r\n"):
    return MessageData(lambda: iter([data]))


def run(steps, *, bytewise=False, env=Envelope("a@x.org", ["b@y.org"]), data=None, **options):
    """Run a session over the script; returns (result, script, session)."""
    options.setdefault("client", "client.example")
    atleastone = options.pop("atleastone", False)
    lines = []
    session = Session(trace=lines.append, trace_notes=True, **options)
    script = Script(steps, bytewise)
    result = pump(session.run(env, data or message(), atleastone), script)
    assert not script.steps, f"script not finished: {script.steps}"
    session.lines = lines
    return result, script, session


TLS_INFO = TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", None, {})
