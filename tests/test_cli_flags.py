"""The smtpsend command's flags: no abbreviations, the sendmail flags other
programs pass, --version, and `smtpsend serve` with TLS and AUTH."""

import io
import re
import subprocess

import pytest

import mimecompose
from smtpsend import _cliserve, cli
from smtpsend.testing import CaptureServer

from test_cli import COMMAND, environment, run

NO_FROM = b"To: root@example.com\r\nSubject: cron output\r\n\r\nline one\r\n.\r\nafter the dot\r\n"
SIMPLE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\nbody\r\n"


def long_options(p):
    return sorted({o for a in p._actions for o in a.option_strings if o.startswith("--")})


def refused_prefixes(p):
    """Every prefix of every long option that is not itself an option."""
    options = set(long_options(p))
    return sorted({o[:n] for o in options for n in range(3, len(o)) if o[:n] not in options})


@pytest.mark.parametrize("subcommand,make", [([], cli.parser), (["serve"], _cliserve.serve_parser)], ids=["send", "serve"])
def test_no_long_option_is_abbreviated(subcommand, make, capsys, monkeypatch):
    monkeypatch.setenv("SMTPSEND_CONFIG", "/nonexistent/config")
    monkeypatch.setenv("SMTPSEND_SYSCONFIG", "/nonexistent/smtpsend.conf")
    prefixes = refused_prefixes(make())
    assert "--password" in prefixes or subcommand       # the one that ran a shell command
    assert len(prefixes) > (150 if not subcommand else 20)
    for prefix in prefixes:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(subcommand + [prefix, "1", "--dry-run", "x@example.com"], io.BytesIO(SIMPLE), out, err)
        printed = capsys.readouterr().err + err.getvalue()      # argparse writes to sys.stderr
        assert code == 64, (prefix, printed)
        assert "usage:" in printed or "no --password flag" in printed, (prefix, printed)


def test_version():
    result = run(["--version"])
    assert result.returncode == 0
    assert re.fullmatch(rb"smtpsend \d+\.\d+\.\d+\S* \(Python [\d.]+\S*\)\n", result.stdout), result.stdout
    assert mimecompose.__version__.encode() in result.stdout


def test_sendmail_flags_other_programs_pass():
    with CaptureServer() as s:
        result = run(["-oem", "-oep", "-odi", "-odb", "-om", "-bm", "-v", "-F", "Cron Daemon",
                      "-f", "cron@host.example.com", "--server", f"127.0.0.1:{s.port}", "root@example.com"], NO_FROM)
        assert result.returncode == 0, result.stderr
        [got] = s.messages
    assert b"> MAIL FROM:<cron@host.example.com>" in result.stderr         # -v: the transcript
    [sender] = mimecompose.parseaddress(got.part.getheader("From")[0])
    assert (sender.friendly, sender.address) == ("Cron Daemon", "cron@host.example.com")
    # -odi is not -i: the "." line still ends the input
    assert b"line one" in got.data and b"after the dot" not in got.data


def test_o_i_forms_are_i():
    with CaptureServer() as s:
        for flags in (["-oi"], ["-o", "i"], ["-i"]):
            assert run([*flags, "-f", "a@example.com", "--server", f"127.0.0.1:{s.port}", "x@example.com"],
                       NO_FROM).returncode == 0
        assert all(b"after the dot" in m.data for m in s.messages) and len(s.messages) == 3


@pytest.mark.parametrize("mode", ["-bs", "-bp", "-bt", "-bv"])
def test_other_b_modes_are_refused(mode):
    result = run([mode, "x@example.com"], SIMPLE)
    assert result.returncode == 64 and b"only -bm" in result.stderr


def test_non_utf8_argument_is_a_usage_error():
    result = run(["-s", b"caf\xe9".decode("utf-8", "surrogateescape"), "--server", "127.0.0.1:1",
                  "x@example.com"], b"body")
    assert result.returncode == 64 and b"not valid UTF-8" in result.stderr and b"Traceback" not in result.stderr


def test_server_text_cannot_reach_the_terminal_raw():
    with CaptureServer(responses={"MAIL": (550, "5.7.1 \x1b]0;owned\x07\x1b[2J refused")}) as s:
        result = run(["-t", "--server", f"127.0.0.1:{s.port}"], SIMPLE)
    assert result.returncode == 65
    assert b"\x1b" not in result.stderr and b"\x07" not in result.stderr
    assert b"\\x1b]0;owned\\x07" in result.stderr


# ------------------------------------------------------------------ serve

class Serve:
    """`smtpsend serve` as a subprocess; ``port`` from its first line."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(COMMAND + ["serve", "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=environment())
        self.banner = self.proc.stdout.readline().decode()
        found = re.search(r"port (\d+)", self.banner)
        assert found, self.banner + self.proc.stderr.read().decode()
        self.port = int(found.group(1))

    def next_message_line(self):
        return self.proc.stdout.readline().decode()

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def pem(ca, tmp_path):
    cert = ca.issue_cert("localhost", "127.0.0.1")
    paths = {name: str(tmp_path / f"{name}.pem") for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    return paths


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit"])
def test_serve_with_tls_and_auth(pem, implicit):
    server = Serve("--tls-cert", pem["cert"], "--tls-key", pem["key"], "--user", "alice:test-pw",
                   *(["--tlsimport"] if implicit else []))
    try:
        assert ("implicit TLS" if implicit else "STARTTLS") in server.banner and "AUTH for 1 user" in server.banner
        send = ["-t", "--server", f"localhost:{server.port}", "--cafile", pem["ca"], "--user", "alice", "--trace",
                *(["--tlsimport"] if implicit else [])]
        result = run(send, SIMPLE, env={"SMTPSEND_PASSWORD": "test-pw"})
        assert result.returncode == 0, result.stderr
        assert (b"> STARTTLS" in result.stderr) != implicit and b"authenticated with" in result.stderr
        line = server.next_message_line()
        assert line.startswith("--- message from <a@example.com> to <b@example.com>")
        assert "authenticated as alice" in line
        wrong = run(send, SIMPLE, env={"SMTPSEND_PASSWORD": "not-it"})
        assert wrong.returncode == 77, wrong.stderr
        # without the CA the certificate is refused: TLS really is spoken
        untrusted = run([a for a in send if a not in ("--cafile", pem["ca"])], SIMPLE,
                        env={"SMTPSEND_PASSWORD": "test-pw"})
        assert untrusted.returncode == 77 and b"certificate" in untrusted.stderr.lower()
    finally:
        server.close()


def test_serve_keeps_client_escape_sequences_off_the_terminal():
    server = Serve()
    try:
        message = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: \x1b[2Jgone\r\n\r\nhi\x1b]0;x\x07\r\n"
        assert run(["-t", "--server", f"127.0.0.1:{server.port}"], message).returncode == 0
        lines = [server.next_message_line() for _ in range(6)]
    finally:
        server.close()
    shown = "".join(lines)
    assert "\x1b" not in shown and "\\x1b[2Jgone" in shown


@pytest.mark.parametrize("args,message", [
    (["--tls-key", "/nonexistent/key.pem"], b"need --tls-cert"),
    (["--tlsimport"], b"need --tls-cert"),
    (["--tls-implicit"], b"need --tls-cert"),
    (["--tls-cert", "/nonexistent/cert.pem"], b"cannot load"),
    (["--user", "alice"], b"NAME:PASSWORD"),
    (["--port", "70000"], b"port number"),
])
def test_serve_usage_errors(args, message):
    result = run(["serve", "--port", "0", *args])
    assert result.returncode == 64 and message in result.stderr, result.stderr
