"""The exit statuses of the smtpsend command, against docs/cli.md: every row
of the table there is triggered here, through the console script, and
must give its status with a message (never a traceback)."""

import io
import os
import pathlib
import re
import signal
import subprocess

import pytest

from smtpsend import cli
from smtpsend.testing import CaptureServer

from faults import FaultServer
from test_cli import COMMAND, environment, run

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "cli.md"
SIMPLE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\nbody\r\n"
TWO = b"From: a@example.com\r\nTo: b@example.com, c@example.com\r\nSubject: s\r\n\r\nbody\r\n"


def load_table():
    """(status, condition) for every row of the table headed "| status | when |"."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index("| status | when |")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        status, when = [c.strip() for c in line.strip("|").split("|", 1)]
        rows.append((int(status), when))
    return rows


ROWS = load_table()
SCENARIOS = {}


def scenario(when):
    """Register a function that triggers the condition ``when`` (a row's text)."""
    def register(fn):
        SCENARIOS.setdefault(when, []).append(fn)
        return fn
    return register


def at(server):
    return ["--server", f"127.0.0.1:{server.port}"]


def private(path, text):
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


# ------------------------------------------------------------------ 0

@scenario("the message was sent")
def sent(ctx):
    with CaptureServer() as s:
        result = run(["-t", *at(s)], SIMPLE)
        assert len(s.messages) == 1
    return result


@scenario("sent to the accepted recipients, with `--atleastone`; the refused ones are listed on stderr")
def sent_to_some(ctx):
    with CaptureServer(responses={"RCPT c@example.com": (550, "5.1.1 no such user")}) as s:
        result = run(["-t", "--atleastone", *at(s)], TWO)
        assert s.messages[0].envelope.recipients == ["b@example.com"]
    assert b"c@example.com refused: 550" in result.stderr
    return result


# ------------------------------------------------------------------ 64

@scenario("usage: an unknown or abbreviated flag")
def unknown_flag(ctx):
    return run(["--bogus", "b@example.com"], SIMPLE)


@scenario("usage: an unknown or abbreviated flag")
def abbreviated_flag(ctx):
    return run(["--time", "5", "-t"], SIMPLE)     # --timeout, abbreviated


@scenario("usage: `--password`, which does not exist")
def password_flag(ctx):
    marker = ctx.tmp_path / "ran"
    result = run(["--password", f"touch {marker}", "-t"], SIMPLE)
    assert not marker.exists()          # it was once run as --password-command
    assert b"no --password flag" in result.stderr
    return result


@scenario("usage: a malformed flag value (`--timeout nan`, `--server host:99999`, `--priority 10`, `-N maybe`)")
def bad_values(ctx):
    results = [run(args + ["-t"], SIMPLE) for args in (["--timeout", "nan"], ["--server", "host:99999"],
                                                       ["--priority", "10"], ["-N", "maybe"], ["--maxsecs", "inf"])]
    assert len({r.returncode for r in results}) == 1, [r.stderr for r in results]
    return results[0]


@scenario("usage: CR, LF or NUL in `-s` or `--header`")
def line_break_in_header(ctx):
    with CaptureServer() as s:
        subject = run(["-s", "hi\nBcc: evil@example.com", *at(s), "b@example.com"], b"body")
        header = run(["-s", "hi", "--header", "X-A: 1\r\nBcc: evil@example.com", *at(s), "b@example.com"], b"body")
        assert s.messages == [] and s.commands == []
    assert header.returncode == subject.returncode
    return subject


@scenario("usage: no recipients (no arguments and no `-t`, or `-t` and the message has none)")
def no_recipients(ctx):
    assert run(["-t", "--server", "127.0.0.1:1"], b"From: a@example.com\r\n\r\nx").returncode == 64
    return run(["--server", "127.0.0.1:1"], SIMPLE)


@scenario("usage: a file named by a flag that does not exist (`--attach`, `--html`, `--config`, `--cafile`)")
def missing_file(ctx):
    results = [run(args, b"body") for args in (["-s", "x", "--attach", "/nonexistent/a", "b@example.com"],
                                               ["-s", "x", "--html", "/nonexistent/a.html", "b@example.com"],
                                               ["--config", "/nonexistent/config", "b@example.com"],
                                               ["--cafile", "/nonexistent/ca.pem", "b@example.com"])]
    assert len({r.returncode for r in results}) == 1, [r.stderr for r in results]
    return results[0]


@scenario("usage: an unknown account")
def unknown_account(ctx):
    config = private(ctx.tmp_path / "config", "account work\nhost 127.0.0.1\n")
    return run(["--account", "play", "b@example.com"], SIMPLE, config=config)


@scenario("usage: a `-b` mode other than `-bm`")
def other_mode(ctx):
    return run(["-bp"])


# ------------------------------------------------------------------ 65

@scenario("data: a malformed message or address")
def malformed_address(ctx):
    assert run(["-t", "--server", "127.0.0.1:1"],
               b"From: a@example.com\r\nTo: not an address\r\n\r\nx").returncode == 65
    return run(["--server", "127.0.0.1:1", "not an address"], SIMPLE)


@scenario("data: no sender (no `-f`, no `from` configured, no From in the message)")
def no_sender(ctx):
    with CaptureServer() as s:
        result = run([*at(s), "root@example.com"], b"Subject: cron output\r\n\r\nall done\r\n")
        assert s.commands == []
    message = result.stderr.decode()
    assert "-f ADDRESS" in message and "from ADDRESS" in message and "originator=" not in message
    return result


@scenario("data: the server refused the sender or the message (5xx)")
def refused_content(ctx):
    with CaptureServer(responses={"DOT": (554, "5.6.0 content refused")}) as s:
        assert run(["-t", *at(s)], SIMPLE).returncode == 65
    with CaptureServer(responses={"MAIL": (550, "5.7.1 not you")}) as s:
        return run(["-t", *at(s)], SIMPLE)


# ------------------------------------------------------------------ 67, 69

@scenario("no such user: a recipient refused permanently; nothing was sent")
def no_such_user(ctx):
    with CaptureServer(responses={"RCPT c@example.com": (550, "5.1.1 no such user")}) as s:
        result = run(["-t", *at(s)], TWO)
        assert s.messages == []
    return result


@scenario("unavailable: no server could be reached")
def unreachable(ctx):
    return run(["-t", "--server", "127.0.0.1:1"], SIMPLE)


@scenario("unavailable: every server refused (a 5xx greeting, ...)")
def refused_greeting(ctx):
    with CaptureServer(responses={"GREETING": (554, "5.3.2 not today")}) as s:
        return run(["-t", *at(s)], SIMPLE)


# ------------------------------------------------------------------ 70, 74

class InProcess:
    """What cli.main returned and wrote, shaped like a CompletedProcess."""

    def __init__(self, argv, stdin=b""):
        out, err = io.StringIO(), io.StringIO()
        self.returncode = cli.main(argv, io.BytesIO(stdin), out, err)
        self.stdout, self.stderr = out.getvalue().encode(), err.getvalue().encode()


@scenario("internal error: a bug in smtpsend (the message says so; `--trace` shows the traceback)")
def internal_error(ctx):
    def broken(*args, **kwargs):
        raise KeyError("a bug")
    for name, value in environment().items():
        ctx.monkeypatch.setenv(name, value)
    ctx.monkeypatch.setattr(cli, "sendmessage", broken)
    traced = InProcess(["-t", "--trace", "--server", "127.0.0.1:1"], SIMPLE)
    assert traced.returncode == 70 and b"Traceback" in traced.stderr and b"KeyError" in traced.stderr
    result = InProcess(["-t", "--server", "127.0.0.1:1"], SIMPLE)
    assert b"internal error (KeyError)" in result.stderr and result.stderr.count(b"\n") == 1
    return result


@scenario("I/O error: the message could not be read from standard input")
def unreadable_input(ctx):
    write_only = os.open(str(ctx.tmp_path / "message"), os.O_WRONLY | os.O_CREAT)
    try:
        return subprocess.run(COMMAND + ["-t", "--server", "127.0.0.1:1"], stdin=write_only, capture_output=True,
                              env=environment(), timeout=60)
    finally:
        os.close(write_only)


# ------------------------------------------------------------------ 75

@scenario("temporary: every server answered 4xx")
def later(ctx):
    with CaptureServer(responses={"MAIL": (451, "4.3.0 try later")}) as s:
        return run(["-t", *at(s)], SIMPLE)


@scenario("temporary: every server timed out")
def timed_out(ctx):
    with FaultServer("greeting", "silence", hold=10) as s:
        return run(["-t", "--timeout", "0.3", *at(s)], SIMPLE)


@scenario("temporary: the connection was lost after the message was sent (it may have been delivered)")
def uncertain(ctx):
    with FaultServer("final", "disconnect") as s:
        result = run(["-t", *at(s)], SIMPLE)
    assert b"after the message" in result.stderr
    return result


@scenario("temporary: interrupted (Ctrl-C)")
def interrupted(ctx):
    # the password command says it is running, then waits: SIGINT arrives while smtpsend waits for it
    message = ctx.tmp_path / "message"
    message.write_bytes(SIMPLE)
    with open(message, "rb") as stdin:
        proc = subprocess.Popen(COMMAND + ["-t", "--server", "127.0.0.1:1", "--user", "u", "--password-command",
                                           "echo waiting >&2; exec sleep 30"],
                                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment())
    assert proc.stderr.readline() == b"waiting\n"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


# ------------------------------------------------------------------ 77

@scenario("permission: authentication failed")
def bad_password(ctx):
    with CaptureServer(users={"u": "right"}) as s:
        return run(["-t", *at(s), "--user", "u", "--tlspolicy", "insecure"], SIMPLE,
                   env={"SMTPSEND_PASSWORD": "wrong"})


@scenario("permission: TLS was required and could not be had")
def no_tls(ctx):
    with CaptureServer() as s:       # offers no STARTTLS
        result = run(["-t", *at(s), "--tlspolicy", "secure"], SIMPLE)
        assert s.messages == []
    return result


@scenario("permission: no password, or the password command failed")
def no_password(ctx):
    with CaptureServer(users={"u": "pw"}) as s:
        assert run(["-t", *at(s), "--user", "u", "--password-command", "exit 3"], SIMPLE).returncode == 77
        result = run(["-t", *at(s), "--user", "u"], SIMPLE)
        assert s.commands == []
    return result


@scenario("permission: the password command did not finish in time")
def password_timeout(ctx):
    result = run(["-t", "--server", "127.0.0.1:1", "--user", "u", "--password-command", "exec sleep 30",
                  "--password-timeout", "0.3"], SIMPLE)
    assert b"did not finish within 0.3 seconds" in result.stderr
    return result


# ------------------------------------------------------------------ 78

@scenario("configuration: a configuration file that cannot be read, is not UTF-8, or is malformed")
def bad_config(ctx):
    latin1 = ctx.tmp_path / "latin1"
    latin1.write_bytes(b"account work\nfrom J\xf6rg <j@example.com>\n")
    nameless = ctx.tmp_path / "nameless"
    nameless.write_text("account\nhost x\n")
    quotes = ctx.tmp_path / "quotes"
    quotes.write_text('account default\nhost "mail.example.com\n')
    port = ctx.tmp_path / "port"
    port.write_text("host mail.example.com\nport 99999\n")
    results = [run(["-t"], SIMPLE, config=str(path)) for path in (latin1, nameless, quotes, port, ctx.tmp_path)]
    assert b"latin1:2: not valid UTF-8" in results[0].stderr
    assert len({r.returncode for r in results}) == 1, [r.stderr for r in results]
    return results[0]


@scenario("configuration: a configuration file holding a password that others can read or write")
def public_password(ctx):
    config = ctx.tmp_path / "config"
    config.write_text("host 127.0.0.1\nuser u\npassword hunter2\n")
    results = []
    for mode in (0o644, 0o620, 0o602):
        config.chmod(mode)
        results.append(run(["-t"], SIMPLE, config=str(config)))
        assert b"hunter2" not in results[-1].stderr
    assert len({r.returncode for r in results}) == 1, [r.stderr for r in results]
    return results[0]


# ------------------------------------------------------------------ the table

def test_every_row_has_a_scenario_and_every_scenario_a_row():
    documented = {when for _, when in ROWS}
    assert documented == set(SCENARIOS), (documented ^ set(SCENARIOS))
    assert {status for status, _ in ROWS} == {0, 64, 65, 67, 69, 70, 74, 75, 77, 78}


class Context:
    def __init__(self, tmp_path, monkeypatch):
        self.tmp_path, self.monkeypatch = tmp_path, monkeypatch


@pytest.mark.parametrize("status,when", ROWS, ids=[f"{s}-{re.sub(r'[^a-z]+', '-', w.lower())[:40]}" for s, w in ROWS])
def test_exit_status(status, when, tmp_path, monkeypatch):
    for fn in SCENARIOS.get(when, []):
        result = fn(Context(tmp_path, monkeypatch))
        err = result.stderr.decode("utf-8", "replace")
        assert result.returncode == status, f"{fn.__name__}: {result.returncode} {err}"
        assert "Traceback" not in err or fn is internal_error, err
        if status:
            assert err.startswith("smtpsend: ") or "usage:" in err, err
    assert SCENARIOS.get(when), f"no scenario triggers {when!r}"


@scenario("configuration: DKIM signing asked for (`--dkim-key`, `dkim_key`) and the `cryptography` package "
          "(the dkim extra) not installed")
def dkim_without_cryptography(ctx):
    # a package of that name that fails to import, ahead of site-packages
    stub = ctx.tmp_path / "hidden" / "cryptography"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('hidden for the test')\n")
    with CaptureServer() as s:
        result = run(["-t", *at(s), "--dkim-domain", "example.com", "--dkim-selector", "s", "--dkim-key", "k.pem"],
                     SIMPLE, env={"PYTHONPATH": os.pathsep.join([str(stub.parent), environment()["PYTHONPATH"]])})
        assert s.commands == []
    assert b"pip install 'mimecompose-smtpsend[dkim]'" in result.stderr
    return result
