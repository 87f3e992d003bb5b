"""The smtpsend command's configuration: the system-wide file, the user's
file, msmtp's ~/.msmtprc, file permissions, and where passwords come from
(one per server, never the first server's for all)."""

import io
import os

import pytest

import mimecompose
from smtpsend import _cliconfig, _cliexit
from smtpsend.testing import CaptureServer

from conftest import SENTINEL
from test_cli import run

NO_FROM = b"To: root@example.com\r\nSubject: cron output\r\n\r\nbackup done\r\n"
SIMPLE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\nbody\r\n"


def write(path, text, mode=0o600):
    path.write_text(text)
    path.chmod(mode)
    return str(path)


@pytest.fixture
def server():
    with CaptureServer() as s:
        yield s


@pytest.fixture
def cafile(ca, tmp_path):
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


# ------------------------------------------------------------------ the sender (cron, PHP)

def test_system_config_gives_cron_a_sender(server, tmp_path):
    system = write(tmp_path / "smtpsend.conf", f"defaults\nhost 127.0.0.1\nport {server.port}\n"
                                               "from cron@host.example.com\n", 0o644)
    result = run(["root@example.com"], NO_FROM, sysconfig=system)
    assert result.returncode == 0, result.stderr
    [got] = server.messages
    assert got.envelope.originator == "cron@host.example.com"
    assert got.part.getheader("From") == ["<cron@host.example.com>"]


def test_full_name_for_the_from_it_writes(server, tmp_path):
    system = write(tmp_path / "smtpsend.conf", f"host 127.0.0.1\nport {server.port}\nfrom cron@host.example.com\n"
                                               "from_full_name Cron Daemon\n", 0o644)
    assert run(["root@example.com"], NO_FROM, sysconfig=system).returncode == 0
    assert run(["-F", "Nightly Backup", "root@example.com"], NO_FROM, sysconfig=system).returncode == 0
    first, second = server.messages

    def written(message):
        [value] = message.part.getheader("From")
        [address] = mimecompose.parseaddress(value)
        return address.friendly, address.address
    assert written(first) == ("Cron Daemon", "cron@host.example.com")
    assert written(second) == ("Nightly Backup", "cron@host.example.com")
    # a message that has a From keeps it
    assert run(["-F", "Ignored", "root@example.com"], SIMPLE, sysconfig=system).returncode == 0
    assert server.messages[2].part.getheader("From") == ["a@example.com"]


def test_user_config_wins_key_by_key(server, tmp_path):
    system = write(tmp_path / "smtpsend.conf", f"host 127.0.0.1\nport {server.port}\nfrom cron@host.example.com\n",
                   0o644)
    user = write(tmp_path / "config", "from me@example.com\n")
    result = run(["root@example.com"], NO_FROM, sysconfig=system, config=user)
    assert result.returncode == 0, result.stderr
    assert server.messages[0].envelope.originator == "me@example.com"


def test_system_credentials_stay_with_the_system_host(tmp_path):
    with CaptureServer(users={"relay": SENTINEL}) as relay, CaptureServer() as mine:
        system = write(tmp_path / "smtpsend.conf", f"host 127.0.0.1\nport {relay.port}\nuser relay\n"
                                                   f"password {SENTINEL}\ntlspolicy insecure\n"
                                                   "from cron@host.example.com\n")
        user = write(tmp_path / "config", f"host localhost\nport {mine.port}\n")
        result = run(["root@example.com"], NO_FROM, sysconfig=system, config=user)
        assert result.returncode == 0, result.stderr
        assert relay.commands == []
        assert [c for c in mine.commands if c.startswith("AUTH")] == []
        assert mine.messages[0].envelope.originator == "cron@host.example.com"


def test_unreadable_system_config_is_skipped_with_a_warning(server, tmp_path):
    result = run(["-f", "a@example.com", "--server", f"127.0.0.1:{server.port}", "b@example.com"], SIMPLE,
                 sysconfig=str(tmp_path))          # a directory: cannot be read as a file
    assert result.returncode == 0, result.stderr
    assert b"warning: cannot read" in result.stderr


# ------------------------------------------------------------------ ~/.msmtprc

MSMTPRC = """# written for msmtp
defaults
\tauth\t\ton
\ttls\t\ton
\ttls_trust_file\t{cafile}
\tremove_bcc_headers on
\tsyslog LOG_MAIL
\tcolour blue

account\tbase
host\t\tlocalhost
port\t\t{port}
user\t\t"mail user"
passwordeval\t"printf '%s\\n' 'pass phrase'"

account work : base
from\t\t"work@example.com"

account default : work
"""


def test_msmtprc_is_read_when_there_is_no_smtpsend_config(server_tls, cafile, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with CaptureServer(users={"mail user": "pass phrase"}, tls_context=server_tls) as s:
        write(home / ".msmtprc", MSMTPRC.format(cafile=cafile, port=s.port))
        result = run(["b@example.com"], SIMPLE, home=str(home))
        assert result.returncode == 0, result.stderr
        [got] = s.messages
        assert got.authenticated_as == "mail user" and got.envelope.originator == "work@example.com"
    err = result.stderr.decode()
    assert "unknown key 'colour'" in err and ".msmtprc:8" in err       # named, with its line
    assert "'syslog' is not supported" in err
    assert "remove_bcc_headers" not in err                              # what smtpsend does anyway


def test_msmtprc_flag_and_accounts(server, tmp_path):
    rc = write(tmp_path / "msmtp.conf", f"account a\nhost 127.0.0.1\nport {server.port}\nfrom a@example.com\n"
                                        "account b : a\nfrom b@example.com\n")
    assert run(["--msmtprc", rc, "-a", "b", "x@example.com"], NO_FROM).returncode == 0
    assert server.messages[0].envelope.originator == "b@example.com"
    assert run(["--msmtprc", rc, "-a", "c", "x@example.com"], NO_FROM).returncode == 64
    assert run(["--msmtprc", str(tmp_path / "none"), "x@example.com"], NO_FROM).returncode == 64


def test_msmtprc_readable_by_others_is_a_warning_writable_is_refused(server, tmp_path):
    rc = tmp_path / "msmtp.conf"
    text = f"host 127.0.0.1\nport {server.port}\nfrom a@example.com\npassword {SENTINEL}\n"
    write(rc, text, 0o644)
    result = run(["--msmtprc", str(rc), "x@example.com"], NO_FROM)
    assert result.returncode == 0, result.stderr
    assert b"others can read it (chmod 600" in result.stderr
    rc.chmod(0o666)
    result = run(["--msmtprc", str(rc), "x@example.com"], NO_FROM)
    assert result.returncode == 78 and b"others can write to it" in result.stderr
    assert SENTINEL.encode() not in result.stderr
    assert len(server.messages) == 1


def test_smtpsend_config_readable_by_others_is_refused(server, tmp_path):
    config = write(tmp_path / "config", f"host 127.0.0.1\nport {server.port}\nuser u\n"
                                        "passwordeval printf pw\n", 0o640)
    result = run(["-f", "a@example.com", "x@example.com"], NO_FROM, config=config)
    assert result.returncode == 78 and b"chmod 600" in result.stderr
    assert server.commands == []
    # without a password, the same mode is fine
    config = write(tmp_path / "config", f"host 127.0.0.1\nport {server.port}\n", 0o644)
    assert run(["-f", "a@example.com", "x@example.com"], NO_FROM, config=config).returncode == 0


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving a file away needs root")
def test_config_of_another_user_is_refused(tmp_path):
    config = write(tmp_path / "config", "host 127.0.0.1\nuser u\npasswordeval printf pw\n")
    os.chown(config, 65534, 65534)
    result = run(["-f", "a@example.com", "x@example.com"], NO_FROM, config=config)
    assert result.returncode == 78 and b"belongs to another user" in result.stderr


def test_refused_and_malformed_keys(tmp_path):
    proxy = write(tmp_path / "proxy", "host 127.0.0.1\nproxy_host 127.0.0.2\n")
    result = run(["-f", "a@example.com", "x@example.com"], NO_FROM, config=proxy)
    assert result.returncode == 78 and b"proxy_host" in result.stderr
    for text, what in (("timeout nan\n", b"timeout"), ("tls maybe\n", b"tls must be on or off"),
                       ("from not an address\n", b"from must be one address"),
                       ("account a : b\n", b"not defined above"), ("account a\naccount a\n", b"defined twice")):
        config = write(tmp_path / "config", text)
        result = run(["-f", "a@example.com", "x@example.com"], NO_FROM, config=config)
        assert result.returncode == 78 and what in result.stderr, (text, result.stderr)
        assert b"config:" in result.stderr             # the file and line are named


def test_logfile(server, tmp_path):
    log = tmp_path / "smtpsend.log"
    config = write(tmp_path / "config", f"host 127.0.0.1\nport {server.port}\nfrom a@example.com\n"
                                        f"logfile {log}\n")
    assert run(["x@example.com", "y@example.com"], NO_FROM, config=config).returncode == 0
    assert run(["--server", "127.0.0.1:1", "x@example.com"], NO_FROM, config=config).returncode == 69
    ok, failed = log.read_text().splitlines()
    assert "from=a@example.com recipients=2 exitcode=0 sent" in ok
    assert "servers=127.0.0.1:1" in failed and "exitcode=69 failed" in failed


# ------------------------------------------------------------------ parsing, in-process

def test_quoted_values_and_tabs():
    config = _cliconfig.parse_config('account\tx\n  user\t"a \\"quoted\\" \\\\ name"\npasswordeval "pass show mail"\n'
                              'host mail.example.com  \n', "f", print)
    x = config.accounts["x"]
    assert x["user"][0] == 'a "quoted" \\ name' and x["passwordeval"][0] == "pass show mail"
    assert x["host"] == ("mail.example.com", "f:4") and config.holds_secret
    with pytest.raises(_cliexit.CLIError) as info:
        _cliconfig.parse_config('user "open\n', "f", print)
    assert info.value.code == 78 and "f:1" in str(info.value)


def test_parsing_is_linear():
    # quadratic work on these would take minutes; linear work finishes at once
    value = "x" * 900_000
    config = _cliconfig.parse_config(f'user "{value}"\n', "f", print)
    assert config.accounts["default"]["user"][0] == value
    lines = "".join(f"account a{i}\nhost h{i}.example.com\n" for i in range(20_000))
    assert len(_cliconfig.parse_config(lines, "f", print).accounts) == 20_000


def test_unknown_keys_in_our_own_file_are_named(server, tmp_path):
    config = write(tmp_path / "config", f"host 127.0.0.1\nport {server.port}\nform a@example.com\n")
    result = run(["-f", "a@example.com", "x@example.com"], NO_FROM, config=config)
    assert result.returncode == 0 and b"config:3: unknown key 'form'" in result.stderr


# ------------------------------------------------------------------ passwords

def test_netrc_password_is_looked_up_per_server(tmp_path):
    """The first server's ~/.netrc password must not go to the failover server."""
    home = tmp_path / "home"
    home.mkdir()
    write(home / ".netrc", f"machine 127.0.0.1 login u password first-{SENTINEL}\n"
                           f"machine localhost login u password second-{SENTINEL}\n")
    with CaptureServer(users={"u": f"first-{SENTINEL}"}, responses={"MAIL": (451, "4.3.0 later")}) as first, \
            CaptureServer(users={"u": f"second-{SENTINEL}"}) as second:
        result = run(["-f", "a@example.com", "--user", "u", "--tlspolicy", "insecure",
                      "--server", f"127.0.0.1:{first.port}", "--server", f"localhost:{second.port}",
                      "x@example.com"], NO_FROM, home=str(home))
        assert result.returncode == 0, result.stderr
        assert second.messages[0].authenticated_as == "u"
        assert SENTINEL.encode() not in result.stderr


def test_server_without_a_netrc_password_gets_no_credentials(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    write(home / ".netrc", f"machine 127.0.0.1 login u password {SENTINEL}\ndefault login u password {SENTINEL}\n")
    with CaptureServer(users={"u": SENTINEL}, responses={"MAIL": (451, "4.3.0 later")}) as first, \
            CaptureServer(users={"u": SENTINEL}) as second:
        result = run(["-f", "a@example.com", "--user", "u", "--tlspolicy", "insecure",
                      "--server", f"127.0.0.1:{first.port}", "--server", f"localhost:{second.port}",
                      "x@example.com"], NO_FROM, home=str(home))
        assert second.commands == []          # never contacted: no password of its own
        assert [c for c in first.commands if c.startswith("AUTH")]
    assert result.returncode == 69
    assert b"no password for u at localhost" in result.stderr and SENTINEL.encode() not in result.stderr


@pytest.mark.parametrize("output", [b"pw\\r\\n", b"pw\\n", b"pw"])
def test_password_command_output_loses_one_line_break(output, tmp_path):
    with CaptureServer(users={"u": "pw"}) as s:
        result = run(["-t", "--server", f"127.0.0.1:{s.port}", "--user", "u", "--tlspolicy", "insecure",
                      "--password-command", f"printf '{output.decode()}'"], SIMPLE)
        assert result.returncode == 0, result.stderr
        assert s.messages[0].authenticated_as == "u"


@pytest.mark.parametrize("output,message", [(b"pw\\n\\n", b"more than one line"), (b"", b"printed no password"),
                                            (b"\\377\\n", b"not UTF-8")])
def test_password_command_output_must_be_one_line_of_text(output, message):
    result = run(["-t", "--server", "127.0.0.1:1", "--user", "u", "--password-command",
                  f"printf '{output.decode()}'"], SIMPLE)
    assert result.returncode == 77 and message in result.stderr, result.stderr


def test_password_command_timeout_from_the_config(tmp_path):
    config = write(tmp_path / "config", "host 127.0.0.1\nport 1\nuser u\npasswordeval exec sleep 30\n"
                                        "password_timeout 0.2\n")
    result = run(["-t"], SIMPLE, config=config)
    assert result.returncode == 77 and b"did not finish within 0.2 seconds" in result.stderr


def test_password_command_needs_a_user():
    result = run(["-t", "--server", "127.0.0.1:1", "--password-command", "printf pw"], SIMPLE)
    assert result.returncode == 64 and b"needs a user name" in result.stderr


def test_warnings_are_capped():
    err = io.StringIO()
    _cliconfig.parse_config("".join(f"key{i} value\n" for i in range(200)), "f", _cliexit.warner(err))
    lines = err.getvalue().splitlines()
    assert len(lines) == _cliexit.MAX_WARNINGS + 1
    assert lines[0] == "smtpsend: warning: f:1: unknown key 'key0' (ignored)"
    assert lines[-1] == "smtpsend: warning: further warnings are not shown"
