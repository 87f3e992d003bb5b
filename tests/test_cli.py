"""The smtpsend command, run as a real subprocess against the capture server
and against Postfix."""

import mailbox
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from smtpsend.testing import CaptureServer

from conftest import SENTINEL

COMMAND = [shutil.which("smtpsend")] if shutil.which("smtpsend") else [sys.executable, "-m", "smtpsend"]
MESSAGE = (b"From: Ops <ops@example.com>\r\nTo: admin@example.com\r\nCc: team@example.com\r\n"
           b"Bcc: audit@example.com\r\nSubject: nightly\r\n\r\nAll good.\r\n.\r\nafter the dot\r\n")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# an empty home: no ~/.netrc, ~/.msmtprc or ~/.config of the machine's user leaks into a test
EMPTY_HOME = tempfile.TemporaryDirectory(prefix="smtpsend-test-home-")
OWN_VARIABLES = ("SMTPSEND_PASSWORD", "SMTPSEND_USER", "SMTPSEND_FROM", "SMTPSEND_SERVER", "XDG_CONFIG_HOME",
                 "SMTPSEND_URL", "SMTPSEND_TLSPOLICY", "SMTPSEND_CAFILE", "SMTPSEND_TIMEOUT", "SMTPSEND_CLIENT")


def environment(env=None, home=None, config=None, sysconfig=None):
    """The environment a test runs the command in: this tree's code, an
    empty home, no configuration file unless one is given."""
    variables = {k: v for k, v in os.environ.items() if k not in OWN_VARIABLES}
    # PYTHONPATH comes before site-packages: the console script runs this tree's code
    variables.update(HOME=home or EMPTY_HOME.name, SMTPSEND_CONFIG=config or "/nonexistent/smtpsend-config",
                     SMTPSEND_SYSCONFIG=sysconfig or "/nonexistent/smtpsend.conf",
                     PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    variables.update(env or {})
    return variables


def run(args, stdin=b"", env=None, home=None, config=None, sysconfig=None, timeout=60):
    """The smtpsend console script, as a real subprocess."""
    return subprocess.run(COMMAND + args, input=stdin, capture_output=True, timeout=timeout,
                          env=environment(env, home, config, sysconfig))


@pytest.fixture
def server():
    with CaptureServer() as s:
        yield s


def test_sendmail_t(server):
    result = run(["-t", "--server", f"127.0.0.1:{server.port}"], MESSAGE)
    assert result.returncode == 0, result.stderr
    [got] = server.messages
    assert got.envelope.recipients == ["admin@example.com", "team@example.com", "audit@example.com"]
    assert b"Bcc" not in got.data
    # without -i a line with a single "." ends the input, as with sendmail
    assert b"after the dot" not in got.data


def test_sendmail_f_i_and_arguments(server):
    result = run(["-f", "bounces@example.com", "-oi", "--server", f"127.0.0.1:{server.port}", "x@example.com"],
                 MESSAGE)
    assert result.returncode == 0, result.stderr
    [got] = server.messages
    assert got.envelope.originator == "bounces@example.com"
    assert got.envelope.recipients == ["x@example.com"]
    assert b"after the dot" in got.data     # -i: the "." line is data


def test_t_adds_argument_recipients(server):
    assert run(["-t", "--server", f"127.0.0.1:{server.port}", "extra@example.com"], MESSAGE).returncode == 0
    assert server.messages[0].envelope.recipients[-1] == "extra@example.com"


def test_compose_mode(server, tmp_path):
    log = tmp_path / "disk.txt"
    log.write_text("sda1 91%\n")
    html = tmp_path / "body.html"
    html.write_text("<p>disk <b>full</b></p>")
    result = run(["-s", "alert: disk ✓", "--from", "ops@example.com", "--cc", "b@example.com", "--bcc",
                  "c@example.com", "--attach", str(log), "--html", str(html), "--header", "X-Priority: 1",
                  "--server", f"127.0.0.1:{server.port}", "admin@example.com"], "disk full\n".encode())
    assert result.returncode == 0, result.stderr
    [got] = server.messages
    part = got.part
    assert got.envelope.recipients == ["admin@example.com", "b@example.com", "c@example.com"]
    assert part.getheader("Subject") == ["alert: disk ✓"] and part.getheader("X-Priority") == ["1"]
    assert part.getheader("Bcc") == []
    kinds = [p.getproperty("content") for p in part.getproperty("parts")]
    assert kinds == ["multipart/alternative", "text/plain"]
    assert part.getproperty("parts")[1].getbody() == b"sda1 91%\r\n"   # text: CRLF on the wire


def test_dry_run_sends_nothing(server):
    result = run(["-t", "--dry-run", "--server", f"127.0.0.1:{server.port}"], MESSAGE)
    assert result.returncode == 0
    out = result.stdout
    assert out.startswith(b"MAIL FROM:<ops@example.com>\nRCPT TO:<admin@example.com>\n")
    assert b"Subject: nightly" in out and b"Bcc" not in out.split(b"\n\n", 1)[1]
    assert server.messages == [] and server.commands == []


def test_trace_and_progress(server):
    result = run(["-t", "--trace", "--progress", "--server", f"127.0.0.1:{server.port}"], MESSAGE)
    err = result.stderr.decode()
    assert "> MAIL FROM:<ops@example.com>" in err and "< 220" in err
    assert "100%" in err


@pytest.mark.parametrize("args,stdin,code", [
    (["--server", "127.0.0.1:1"], MESSAGE, 64),                                  # no recipients, no -t
    (["--bogus-option"], b"", 64),
    (["-t"], b"From: a@example.com\r\nTo: not an address\r\n\r\nx", 65),
    (["--attach", "/nonexistent", "-s", "x", "x@example.com"], b"", 64),
])
def test_usage_and_data_errors(args, stdin, code):
    result = run(args, stdin)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith(b"smtpsend: ") or b"usage" in result.stderr


def test_exit_codes_from_servers():
    closed = run(["-t", "--server", "127.0.0.1:1"], MESSAGE)
    assert closed.returncode == 69 and b"127.0.0.1 port 1, at connect" in closed.stderr
    with CaptureServer(responses={"RCPT audit@example.com": (550, "5.1.1 no such user")}) as s:
        refused = run(["-t", "--server", f"127.0.0.1:{s.port}"], MESSAGE)
        assert refused.returncode == 67 and b"audit@example.com: 550" in refused.stderr
    with CaptureServer(responses={"MAIL": (451, "4.3.0 try later")}) as s:
        assert run(["-t", "--server", f"127.0.0.1:{s.port}"], MESSAGE).returncode == 75
    with CaptureServer(users={"u": "right"}) as s:
        bad = run(["-t", "--server", f"127.0.0.1:{s.port}", "--user", "u", "--tlspolicy", "insecure"],
                  MESSAGE, env={"SMTPSEND_PASSWORD": SENTINEL})
        assert bad.returncode == 77 and SENTINEL.encode() not in bad.stderr + bad.stdout


def test_config_accounts_password_command_and_netrc(server, tmp_path):
    config = tmp_path / "config"
    config.write_text(f"""# smtpsend accounts
defaults
tlspolicy insecure

account work
host 127.0.0.1
port {server.port}
from work@example.com
user u
passwordeval echo pw

account other : work
from other@example.com

account default : work
""")
    config.chmod(0o600)     # it holds a passwordeval: anything more open is refused
    with CaptureServer(users={"u": "pw"}) as auth:
        config.write_text(config.read_text().replace(f"port {server.port}", f"port {auth.port}"))
        result = run(["--account", "other", "b@example.com"], b"Subject: s\r\n\r\nbody\r\n", config=str(config))
        assert result.returncode == 0, result.stderr
        assert auth.messages[0].envelope.originator == "other@example.com"
        assert auth.messages[0].authenticated_as == "u"
        (tmp_path / ".netrc").write_text("machine 127.0.0.1 login u password pw\n")
        (tmp_path / ".netrc").chmod(0o600)
        result = run(["-f", "a@example.com", "--server", f"127.0.0.1:{auth.port}", "--user", "u",
                      "--tlspolicy", "insecure", "b@example.com"], b"Subject: s\r\n\r\nbody\r\n", home=str(tmp_path))
        assert result.returncode == 0, result.stderr
        result = run(["-f", "a@example.com", "--server", f"127.0.0.1:{auth.port}", "--user", "u",
                      "--password-command", "printf pw", "--tlspolicy", "insecure", "b@example.com"],
                     b"Subject: s\r\n\r\nbody\r\n")
        assert result.returncode == 0, result.stderr
        assert len(auth.messages) == 3
    assert run(["--account", "nope", "b@example.com"], b"x", config=str(config)).returncode == 64


@pytest.mark.parametrize("store", ["--maildir", "--mbox"])
def test_serve(tmp_path, store):
    path = tmp_path / "captured"
    proc = subprocess.Popen(COMMAND + ["serve", "--port", "0", store, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=environment())
    try:
        line = proc.stdout.readline().decode()
        port = int(re.search(r"port (\d+)", line).group(1))
        assert "loopback only" in line
        assert run(["-t", "--server", f"127.0.0.1:{port}", "-N", "SUCCESS", "-V", "id 1", "--orcpt"],
                   MESSAGE).returncode == 0
        header = proc.stdout.readline().decode()
        assert header.startswith("--- message from <ops@example.com> to <admin@example.com>")
        box = mailbox.Maildir(str(path), create=False) if store == "--maildir" else mailbox.mbox(str(path))
        messages = list(box)
        assert len(messages) == 1 and messages[0]["Subject"] == "nightly"
    finally:
        proc.terminate()
        proc.wait(10)


def test_dsn_flags(server):
    result = run(["-t", "-N", "success,failure", "-R", "hdrs", "-V", "batch 7", "--orcpt",
                  "--server", f"127.0.0.1:{server.port}"], MESSAGE)
    assert result.returncode == 0, result.stderr
    got = server.messages[0]
    assert "RET=HDRS" in got.esmtp_params and "ENVID=batch+207" in got.esmtp_params
    assert got.rcpt_params["admin@example.com"] == ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;admin@example.com"]


def test_demo():
    result = run(["demo"])
    assert result.returncode == 0
    assert b"--- what the server received" in result.stdout and b"BDAT" in result.stdout


def test_against_postfix(rig):
    subject = f"cli-{uuid.uuid4().hex[:8]}"
    message = (f"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: {subject}\r\n\r\nvia the CLI\r\n"
               ).encode()
    result = run(["-t", "--server", f"localhost:{rig.ports['submission']}", "--cafile", rig.ca,
                  "--user", "carol@example.test", "--password-command", "printf pässwörd", "--trace"], message)
    assert result.returncode == 0, result.stderr
    assert b"authenticated with SCRAM-SHA-256" in result.stderr and "pässwörd".encode() not in result.stderr
    from test_realserver import fetch
    assert len(fetch(rig, subject, "bob@example.test")) == 1
    unknown = run(["-f", "alice@example.test", "--server", f"localhost:{rig.ports['smtp']}", "--cafile", rig.ca,
                   "nobody@example.test"], message)
    assert unknown.returncode == 67
