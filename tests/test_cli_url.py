"""The smtpsend command configured from the environment, for containers:
$SMTPSEND_URL (a server URL, its password included), the other SMTPSEND_*
variables, and their precedence (command line > environment >
configuration files)."""

import pytest

from smtpsend import _cliconfig
from smtpsend.testing import CaptureServer

from conftest import SENTINEL
from test_cli import run
from test_cli_config import SIMPLE, write

NO_FROM = b"To: root@example.com\r\nSubject: cron output\r\n\r\nbackup done\r\n"


@pytest.fixture
def server():
    with CaptureServer(users={"alice": SENTINEL, "bob": "bob-pw"}) as s:
        yield s


def leaks(result):
    return SENTINEL.encode() in result.stdout + result.stderr


def test_smtpsend_url_with_credentials(server, tmp_path):
    log = tmp_path / "smtpsend.log"
    config = write(tmp_path / "config", f"logfile {log}\n")
    url = f"smtp://alice:{SENTINEL}@127.0.0.1:{server.port}?tlspolicy=insecure"
    result = run(["-t", "--trace"], SIMPLE, env={"SMTPSEND_URL": url}, config=config)
    assert result.returncode == 0, result.stderr
    [got] = server.messages
    assert got.authenticated_as == "alice"
    assert not leaks(result)
    line = log.read_text()
    assert SENTINEL not in line and f"servers=smtp://alice@127.0.0.1:{server.port}?tlspolicy=insecure" in line


def test_smtpsend_url_replaces_the_configured_server_and_its_credentials(server, tmp_path):
    config = write(tmp_path / "config", "host 127.0.0.1\nport 1\nuser carol\npassword carols-pw\n"
                                        "tlspolicy secure\nfrom config@example.com\n")
    result = run(["root@example.com"], NO_FROM, env={"SMTPSEND_URL": f"smtp://127.0.0.1:{server.port}"},
                 config=config)
    assert result.returncode == 0, result.stderr
    [got] = server.messages
    assert got.authenticated_as is None                 # carol's password was for the other host
    assert got.envelope.originator == "config@example.com"   # what is not about the server stays


def test_failover_across_urls_in_smtpsend_url(server):
    urls = f"smtps://alice:{SENTINEL}@127.0.0.1:1  smtp://bob:bob-pw@127.0.0.1:{server.port}?tlspolicy=insecure"
    result = run(["-t"], SIMPLE, env={"SMTPSEND_URL": urls})
    assert result.returncode == 0, result.stderr
    assert server.messages[0].authenticated_as == "bob"
    assert not leaks(result)


def test_every_url_failing_names_each_server_never_the_password(server):
    urls = (f"smtp://alice:wrong{SENTINEL}@127.0.0.1:{server.port}?tlspolicy=insecure "
            f"smtp://alice:{SENTINEL}@127.0.0.1:{server.port}?tlspolicy=secure")
    result = run(["-t"], SIMPLE, env={"SMTPSEND_URL": urls})
    assert result.returncode == 77, result.stderr
    assert result.stderr.count(f"127.0.0.1 port {server.port}".encode()) == 2
    assert not leaks(result)


def test_a_url_user_gets_the_password_from_the_environment(server):
    result = run(["-t"], SIMPLE, env={"SMTPSEND_URL": f"smtp://alice@127.0.0.1:{server.port}?tlspolicy=insecure",
                                      "SMTPSEND_PASSWORD": SENTINEL})
    assert result.returncode == 0, result.stderr
    assert server.messages[0].authenticated_as == "alice"


def test_server_flag_takes_a_url_and_wins_over_the_environment(server):
    result = run(["-t", "--server", f"smtp://bob@127.0.0.1:{server.port}?tlspolicy=insecure"], SIMPLE,
                 env={"SMTPSEND_URL": "smtp://127.0.0.1:1", "SMTPSEND_PASSWORD": "bob-pw"})
    assert result.returncode == 0, result.stderr
    assert server.messages[0].authenticated_as == "bob"


def test_no_password_in_a_server_flag():
    result = run(["-t", "--server", f"smtp://alice:{SENTINEL}@127.0.0.1:1"], SIMPLE)
    assert result.returncode == 64
    assert b"visible to every user" in result.stderr and b"SMTPSEND_URL" in result.stderr
    assert not leaks(result)


@pytest.mark.parametrize("url,says", [
    (f"smtp://alice:{SENTINEL}@127.0.0.1:99999", b"port is out of range"),
    (f"smtpz://alice:{SENTINEL}@127.0.0.1", b"unknown URL scheme 'smtpz'"),
    (f"smtp://alice:{SENTINEL}/x@127.0.0.1", b"takes no path"),
    (f"smtp://alice:{SENTINEL}%zz@127.0.0.1", b"percent-encoding in the URL's password"),
    (f"smtp://127.0.0.1?password={SENTINEL}", b"unknown option"),
])
def test_a_bad_smtpsend_url_names_the_part(url, says):
    result = run(["-t"], SIMPLE, env={"SMTPSEND_URL": url})
    assert result.returncode == 64
    assert b"$SMTPSEND_URL, URL 1: " in result.stderr and says in result.stderr
    assert not leaks(result)
    flag = run(["-t", "--server", url], SIMPLE)
    assert flag.returncode == 64 and says in flag.stderr and not leaks(flag)


@pytest.mark.parametrize("args,env,says", [
    ([], {"SMTPSEND_URL": "smtp://127.0.0.1:1", "SMTPSEND_SERVER": "127.0.0.1:1"}, b"exclude each other"),
    ([], {"SMTPSEND_SERVER": "smtp://127.0.0.1:1"}, b"goes in $SMTPSEND_URL"),
    ([], {"SMTPSEND_SERVER": "127.0.0.1:99999"}, b"$SMTPSEND_SERVER must be"),
    ([], {"SMTPSEND_SERVER": f"alice:{SENTINEL}@127.0.0.1"}, b"$SMTPSEND_SERVER holds an '@'"),
    (["--server", f"alice:{SENTINEL}@127.0.0.1"], {}, b"write the server as a URL"),
    ([], {"SMTPSEND_TLSPOLICY": "maybe"}, b"$SMTPSEND_TLSPOLICY must be secure or insecure"),
    ([], {"SMTPSEND_TIMEOUT": "soon"}, b"$SMTPSEND_TIMEOUT must be"),
    ([], {"SMTPSEND_CLIENT": "two words"}, b"$SMTPSEND_CLIENT must be"),
    ([], {"SMTPSEND_FROM": "not an address"}, b"$SMTPSEND_FROM must be one address"),
    (["--tlspolicy", "insecure"], {"SMTPSEND_URL": "smtp+starttls://127.0.0.1:1"},
     b"tlspolicy= contradicts the URL's scheme smtp+starttls://"),
    (["--no-tls"], {"SMTPSEND_URL": "smtps://127.0.0.1:1"}, b"usetls=False contradicts"),
    ([], {"SMTPSEND_URL": "smtp://127.0.0.1:1?timeout=5", "SMTPSEND_TIMEOUT": "6"}, b"timeout= contradicts"),
    (["--user", "carol"], {"SMTPSEND_URL": "smtp://alice:pw@127.0.0.1:1"}, b"exclude each other"),
    ([], {"SMTPSEND_URL": "smtp://alice:pw@127.0.0.1:1", "SMTPSEND_USER": "carol"}, b"exclude each other"),
])
def test_bad_or_contradicting_environment_is_a_usage_error(args, env, says):
    result = run(["-t", *args], SIMPLE, env=env)
    assert result.returncode == 64, result.stderr
    assert says in result.stderr
    assert not leaks(result)


def test_environment_beats_the_configuration_and_flags_beat_both(tmp_path):
    config = write(tmp_path / "config", "from config@example.com\n")
    dry = run(["--dry-run", "root@example.com"], NO_FROM, env={"SMTPSEND_FROM": "env@example.com"}, config=config)
    assert dry.returncode == 0 and dry.stdout.startswith(b"MAIL FROM:<env@example.com>\n")
    flag = run(["--dry-run", "-f", "flag@example.com", "root@example.com"], NO_FROM,
               env={"SMTPSEND_FROM": "env@example.com"}, config=config)
    assert flag.stdout.startswith(b"MAIL FROM:<flag@example.com>\n")
    alone = run(["--dry-run", "root@example.com"], NO_FROM, config=config)
    assert alone.stdout.startswith(b"MAIL FROM:<config@example.com>\n")


def test_tlspolicy_client_and_timeout_from_the_environment(server, tmp_path):
    config = write(tmp_path / "config", "tlspolicy insecure\n")
    secure = run(["-t", "--server", f"127.0.0.1:{server.port}"], SIMPLE,
                 env={"SMTPSEND_TLSPOLICY": "secure"}, config=config)
    assert secure.returncode == 77, secure.stderr          # the capture server has no TLS
    assert server.messages == []
    sent = run(["-t", "--server", f"127.0.0.1:{server.port}", "--tlspolicy", "insecure"], SIMPLE,
               env={"SMTPSEND_TLSPOLICY": "secure", "SMTPSEND_CLIENT": "box.example", "SMTPSEND_TIMEOUT": "30"})
    assert sent.returncode == 0, sent.stderr
    assert "EHLO box.example" in server.commands


def test_smtpsend_server_replaces_the_configured_host_and_its_credentials(server, tmp_path):
    config = write(tmp_path / "config", "host 127.0.0.1\nport 1\nuser carol\npassword carols-pw\n")
    result = run(["-t"], SIMPLE, env={"SMTPSEND_SERVER": f"127.0.0.1:{server.port}"}, config=config)
    assert result.returncode == 0, result.stderr
    assert server.messages[0].authenticated_as is None


def test_the_documented_variables_are_the_ones_read():
    page = open(_cliconfig.__file__.replace("smtpsend/_cliconfig.py", "docs/cli.md"), encoding="utf-8").read()
    for name in _cliconfig.ENVIRONMENT:
        assert f"`{name}`" in page, name


def test_an_lmtp_socket_url_in_the_environment():
    import os
    import tempfile
    from servers import Conversation
    from test_lmtp import RAW, _conversation
    with tempfile.TemporaryDirectory(prefix="lmtp-") as directory:
        path = os.path.join(directory, "lmtp")
        with Conversation(_conversation(b"250 2.0.0 saved\r\n250 2.0.0 saved\r\n221 bye\r\n"), unix=path):
            result = run(["-t"], RAW, env={"SMTPSEND_URL": f"lmtp+unix://{path}"})
    assert result.returncode == 0, result.stderr
