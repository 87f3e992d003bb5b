"""Server URLs: smtpsend.parse_url, URLs in servers= (sendmessage, connect,
plan's targets), and a password in a URL that never shows."""

import asyncio
import inspect
import os
import tempfile

import pytest

import mimecompose
import smtpsend
from smtpsend import ServerURL, parse_url
from smtpsend._failover import plan
from smtpsend._secret import Secret
from smtpsend._session import Session
from smtpsend._url import QUERY_OPTIONS
from smtpsend.testing import CaptureServer

from conftest import SENTINEL, assert_no_secret, find_secret
from servers import Conversation, free_port


def part():
    return mimecompose.compose("x", header=[("From", "a@example.com"), ("To", "b@example.com")])


def planned(servers, **options):
    """plan() as sendmessage calls it (every default), for ``servers``."""
    bound = inspect.signature(smtpsend.sendmessage).bind(part(), servers=servers, **options)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop("ssl_context")
    return plan(**arguments)


# ---------------------------------------------------------------- parse_url


@pytest.mark.parametrize("url,host,port,tlsimport,tlspolicy,protocol,default", [
    ("smtp://mail.example.com", "mail.example.com", None, None, None, "smtp", None),
    ("SMTP://mail.example.com:2525/", "mail.example.com", 2525, None, None, "smtp", None),
    ("smtps://mail.example.com", "mail.example.com", None, True, None, "smtp", 465),
    ("smtp+starttls://mail.example.com:25", "mail.example.com", 25, False, "secure", "smtp", 587),
    ("lmtp://store.example.com", "store.example.com", None, None, None, "lmtp", 24),
    ("smtp://[::1]:2525", "::1", 2525, None, None, "smtp", None),
    ("smtps://[2001:db8::25]", "2001:db8::25", None, True, None, "smtp", 465),
    ("smtp://127.0.0.1:1", "127.0.0.1", 1, None, None, "smtp", None),
    ("smtp://mail.example.com:65535?tlspolicy=insecure", "mail.example.com", 65535, None, "insecure", "smtp", None),
])
def test_schemes(url, host, port, tlsimport, tlspolicy, protocol, default):
    parsed = parse_url(url)
    assert (parsed.host, parsed.port, parsed.tlsimport, parsed.tlspolicy, parsed.protocol) == (
        host, port, tlsimport, tlspolicy, protocol)
    assert parsed.default_port == default
    assert parsed.path is None and parsed.username is None and parsed.password is None


def test_server_entry_of_a_url():
    assert parse_url("smtp://[::1]:2525").server == "[::1]:2525"
    assert parse_url("smtps://mail.example.com").server == "mail.example.com"
    assert parse_url("smtp://mail.example.com:587").server == "mail.example.com:587"
    socket = parse_url("lmtp+unix:///run/dovecot/lmtp")
    assert (socket.host, socket.port, socket.path, socket.protocol) == ("", None, "/run/dovecot/lmtp", "lmtp")
    assert socket.server == "/run/dovecot/lmtp"
    assert parse_url("lmtp+unix:///var/spool/my%20socket").path == "/var/spool/my socket"


def test_userinfo_is_percent_decoded_and_the_password_is_a_secret():
    url = parse_url(f"smtps://ops%40example.com:{SENTINEL}%3A%2F%40%25@mail.example.com")
    assert url.username == "ops@example.com"
    assert isinstance(url.password, Secret) and url.password.reveal() == SENTINEL + ":/@%"
    assert url.host == "mail.example.com"
    assert SENTINEL not in repr(url) and SENTINEL not in str(url)
    assert str(url) == "smtps://ops%40example.com@mail.example.com"
    assert parse_url(str(url)) == url          # the password aside (it is not compared)
    made_url = url
    assert find_secret(made_url) == []
    assert parse_url("smtp://caf%C3%A9@h.example").username == "café"
    assert parse_url("smtp://user@h.example").password is None


def test_query_options():
    url = parse_url("smtp://h.example?tlspolicy=secure&timeout=10&mechanisms=scram-sha-256,PLAIN")
    assert url.tlspolicy == "secure" and url.timeout == 10.0
    assert url.mechanisms == ("SCRAM-SHA-256", "PLAIN")
    assert dict(url.options) == {"tlspolicy": "secure", "timeout": "10", "mechanisms": "scram-sha-256,PLAIN"}
    assert url.keywords() == {"tlspolicy": "secure", "timeout": 10.0, "mechanisms": ["SCRAM-SHA-256", "PLAIN"]}
    assert parse_url("lmtp://h.example").keywords() == {"protocol": "lmtp"}
    assert set(QUERY_OPTIONS) == {"tlspolicy", "timeout", "mechanisms"}


def test_urls_compare_and_hash_without_the_password():
    a, b = parse_url("smtp://u:one@h.example?timeout=5"), parse_url("smtp://u:two@h.example?timeout=5")
    assert a == b and hash(a) == hash(b)
    assert a != parse_url("smtp://v:one@h.example?timeout=5")


@pytest.mark.parametrize("url,says", [
    ("smtpx://h.example", "unknown URL scheme 'smtpx'"),
    ("smtp+tls://h.example", "unknown URL scheme"),
    ("1smtp://h.example", "malformed URL scheme"),
    ("\u212asmtp://h.example", "malformed URL scheme"),                # KELVIN SIGN lower-cases to k
    ("smtp://h.example?mechanisms=plaın", "SASL mechanism names"),      # dotless i upper-cases to I
    ("://h.example", "malformed URL scheme"),
    ("h.example:25", "needs a scheme"),
    ("smtp://h.example:0", "port is out of range"),
    ("smtp://h.example:65536", "port is out of range"),
    ("smtp://h.example:99999999999999999999", "port is out of range"),
    ("smtp://h.example:", "port must be a number"),
    ("smtp://h.example:2x", "port must be a number"),
    ("smtp://h.example:+25", "port must be a number"),
    ("smtp://h.example:\uff12\uff15", "port must be a number"),     # fullwidth digits are not a port
    ("smtp://h.example/inbox", "takes no path"),
    ("smtp://h.example//", "takes no path"),
    ("smtp://h.example#top", "no fragment"),
    ("smtp://", "names no host"),
    ("smtp://:25", "names no host"),
    ("smtp://user@", "names no host"),
    ("smtp://user@:25", "names no host"),
    ("smtp://@h.example", "user name is empty"),
    ("smtp://:pw@h.example", "user name is empty"),
    ("smtp://user:@h.example", "password is empty"),
    ("smtp://a@b@h.example", "%40"),
    ("smtp://u:p%zz@h.example", "percent-encoding in the URL's password"),
    ("smtp://u:p%4@h.example", "percent-encoding in the URL's password"),
    ("smtp://u%@h.example", "percent-encoding in the URL's user name"),
    ("smtp://u:%FF%FE@h.example", "password is not UTF-8"),
    ("smtp://u:p%0D%0AMAIL@h.example", "control character (CR, LF, NUL...) in the URL's password"),
    ("smtp://u%00x@h.example", "control character (CR, LF, NUL...) in the URL's user name"),
    ("smtp://h.example\r\nMAIL FROM:<x>", "control character"),
    ("smtp://h.ex\nample", "control character"),          # urlsplit would drop the LF and go on
    ("smtp://h.ex\tample", "control character"),
    ("smtp://h.example\0", "control character"),
    ("smtp://h.example\x7f", "control character"),
    ("smtp://h.example\x85", "control character"),                    # NEL, a C1 control
    ("smtp://h.exa\u2028mple", "control character"),
    ("smtp://u:p%C2%85@h.example", "control character (CR, LF, NUL...) in the URL's password"),
    ("smtp://h example", "blank"),
    ("smtp://h\udcff.example", "lone surrogate"),
    ("smtp://[::1", "without closing it"),
    ("smtp://[not:an:address]:25", "not an IPv6 address"),
    ("smtp://[127.0.0.1]", "not an IPv6 address"),
    ("smtp://[::1]x", "not ':port'"),
    ("smtp://[::1]:", "port must be a number"),
    ("smtp://::1:25", "more than one ':'"),
    ("smtp://h.example:25:26", "more than one ':'"),
    ("smtp://h_%41.example", "no host name has"),
    ("smtp://h<x>.example", "no host name has"),
    ("smtp://h.example?bogus=1", "unknown option"),
    ("smtp://h.example?password=x", "unknown option"),
    ("smtp://h.example?", "unknown option"),
    ("smtp://h.example?timeout=1&&tlspolicy=secure", "unknown option"),
    ("smtp://h.example?timeout", "needs a value"),
    ("smtp://h.example?timeout=", "needs a value"),
    ("smtp://h.example?timeout=0", "positive number of seconds"),
    ("smtp://h.example?timeout=nan", "positive number of seconds"),
    ("smtp://h.example?timeout=inf", "positive number of seconds"),
    ("smtp://h.example?timeout=ten", "positive number of seconds"),
    ("smtp://h.example?timeout=1&timeout=2", "given twice"),
    ("smtp://h.example?tlspolicy=maybe", "secure or insecure"),
    ("smtp://h.example?mechanisms=PL%0AAIN", "control character"),
    ("smtp://h.example?mechanisms=PLAIN;LOGIN", "SASL mechanism names"),
    ("smtp+starttls://h.example?tlspolicy=insecure", "requires TLS"),
    ("lmtp+unix://h.example/run/lmtp", "names no host"),
    ("lmtp+unix://", "absolute path"),
    ("lmtp+unix:///", "absolute path"),
    ("lmtp+unix:///run/l%00mtp", "absolute path"),
    ("lmtp+unix:///run/lmtp?tlspolicy=secure", "no tlspolicy"),
    ("smtp://h.example:25" + "9" * 8200, "longer than"),
])
def test_bad_urls_name_the_part(url, says):
    with pytest.raises(smtpsend.UsageError) as info:
        parse_url(url)
    assert says in str(info.value)


def test_parse_url_takes_a_str():
    with pytest.raises(TypeError):
        parse_url(b"smtp://h.example")


@pytest.mark.parametrize("template", [
    "smtp://u:{s}@h.example:99999",          # bad port after a good password
    "smtp://u:{s}@h.example/inbox",          # a path
    "smtp://u:{s}@h.example?bogus={s}",      # an unknown option, holding the secret too
    "smtp://u:{s}%zz@h.example",             # bad percent-encoding in the password
    "smtp://u:{s}%0d%0a@h.example",          # CR LF, encoded, in the password
    "smtp://u:{s}\r\n@h.example",            # CR LF as they are
    "smtp://u:{s}\udcff@h.example",          # a lone surrogate
    "smtp://u:{s}/x@h.example",              # an unencoded '/' in the password: the rest reads as a path
    "smtp://u:{s}#x@h.example",              # an unencoded '#'
    "smtp://u:{s}?x@h.example",              # an unencoded '?'
    "smtp://u@x:{s}@h.example",              # two '@'
    "smtp://u:{s}@[::1",                     # a bracket left open
    "smtp://u:{s}@h.example?timeout={s}",    # a bad option value
    "{s}://h.example",                       # the secret where the scheme goes (not a scheme)
    "smtpx://u:{s}@h.example",               # an unknown scheme
    "smtp://{s}:25:26",                      # the password where the host goes
    "smtp://h.example:{s}",                  # ... or the port
])
def test_errors_never_show_the_password(template):
    secret = SENTINEL.replace("-", "") if template.startswith("{s}") else SENTINEL
    with pytest.raises(smtpsend.UsageError) as info:
        parse_url(template.format(s=secret))
    assert_no_secret(info.value, secret)
    assert info.value.__context__ is None      # no exception holding the URL rides along


def test_parsing_is_linear():
    """The parser is a few linear passes; the URL's length is capped, and
    the worst shapes up to the cap finish (each would take a quadratic
    parser millions of steps, which a cap of 8192 keeps in bounds too)."""
    escapes = "%41" * 2700                                   # 8100 characters of percent-escapes
    assert parse_url(f"smtp://u:{escapes}@h.example").password.reveal() == "A" * 2700
    labels = ".".join(["a"] * 4000)
    assert parse_url(f"smtp://{labels}:25").host == labels
    with pytest.raises(smtpsend.UsageError, match="unknown option"):
        parse_url("smtp://h.example?" + "&" * 8000)
    with pytest.raises(smtpsend.UsageError, match="longer than"):
        parse_url("smtp://u:" + "%41" * 400_000 + "@h.example")     # 1.2 MB: refused before any pass over it


def test_str_round_trips_the_query_and_the_socket_path():
    url = parse_url("lmtp+unix:///var/run/my%20lmtp?timeout=2.5")
    assert str(url) == "lmtp+unix:///var/run/my%20lmtp?timeout=2.5"
    assert parse_url(str(url)) == url
    again = parse_url("smtp+starttls://u%20v@[::1]:587?mechanisms=PLAIN%2CLOGIN")
    assert parse_url(str(again)) == again


def test_exported():
    assert smtpsend.parse_url is parse_url and smtpsend.ServerURL is ServerURL
    assert "parse_url" in smtpsend.__all__ and "ServerURL" in smtpsend.__all__


# ---------------------------------------------------------------- URLs in servers=

def test_each_target_carries_its_own_scheme():
    checked = planned(["smtps://a.example", "smtp+starttls://b.example", "smtp://c.example:2525", "d.example",
                       "smtp://e.example:465", "lmtp://f.example"])
    got = [(t.host, t.port, t.implicit_tls, dict(t.options)) for t in checked.targets]
    assert got == [("a.example", 465, True, {}),
                   ("b.example", 587, False, {"tlspolicy": "secure"}),
                   ("c.example", 2525, False, {}),
                   ("d.example", 25, False, {}),
                   ("e.example", 465, True, {}),          # smtp://host:465 is host:465: implicit TLS by port
                   ("f.example", 24, False, {"protocol": "lmtp"})]
    # the first thing each connection does: TLS at once for smtps only
    firsts = []
    for target in checked.targets[:3]:
        session = Session(host=target.host, implicit_tls=target.implicit_tls, **checked.target_options(target))
        firsts.append(type(next(session.open())).__name__)
    assert firsts == ["StartTLS", "Read", "Read"]


def test_a_unix_socket_url_is_a_socket_entry():
    [target] = planned(["lmtp+unix:///run/dovecot/lmtp"]).targets
    assert (target.host, target.port, dict(target.options)) == ("/run/dovecot/lmtp", 0, {"protocol": "lmtp"})


def test_ports_go_with_urls_that_name_none():
    checked = planned(["smtps://a.example", "smtp://b.example:2525", "smtp://c.example"], ports=[4650, 1, None])
    assert [(t.host, t.port) for t in checked.targets] == [("a.example", 4650), ("b.example", 2525),
                                                          ("c.example", 25)]


def test_url_credentials_and_options_apply_to_their_server_only():
    checked = planned([f"smtp://alice:{SENTINEL}@a.example?timeout=7&mechanisms=PLAIN", "b.example"],
                      maxsecs=60)
    a, b = checked.targets
    assert a.options["username"] == "alice" and a.options["password"].reveal() == SENTINEL
    assert a.options["mechanisms"] == ["PLAIN"] and a.connect_timeout == 7
    assert a.options["timeouts"].command == 7 and a.options["timeouts"].final == checked.session_options[
        "timeouts"].final
    assert dict(b.options) == {} and b.connect_timeout is None
    assert checked.session_options["username"] is None and checked.session_options["password"] is None


def test_a_url_user_takes_password_from_the_call():
    checked = planned(["smtp://alice@a.example"], password=SENTINEL)
    [target] = checked.targets
    assert target.options["username"] == "alice" and target.options["password"].reveal() == SENTINEL


@pytest.mark.parametrize("servers,options,says", [
    (["smtp://alice:pw@a.example"], dict(username="bob", password="x"), "user name in the URL and username="),
    (["smtp://alice:pw@a.example"], dict(username="alice"), "user name in the URL and username="),
    (["smtp://alice:pw@a.example"], dict(password="pw"), "password in the URL and password="),
    (["smtps://a.example"], dict(tlsimport=False), "tlsimport=False contradicts the URL's scheme smtps://"),
    (["smtp+starttls://a.example"], dict(tlsimport=True), "tlsimport=True contradicts the URL's scheme smtp+"),
    (["smtps://a.example"], dict(usetls=False), "usetls=False contradicts the URL's scheme smtps://"),
    (["smtp+starttls://a.example"], dict(usetls=False), "usetls=False contradicts"),
    (["smtp://a.example?tlspolicy=secure"], dict(usetls=False), "usetls=False contradicts"),
    (["smtp+starttls://a.example"], dict(tlspolicy="insecure"), "tlspolicy= contradicts the URL's scheme"),
    (["smtp+starttls://a.example"], dict(tlspolicy=lambda code, text: "insecure"), "tlspolicy= contradicts"),
    (["smtp://a.example?tlspolicy=insecure"], dict(tlspolicy="secure"), "the URL's tlspolicy option"),
    (["smtp://a.example?timeout=5"], dict(timeout=6), "timeout= contradicts"),
    (["smtp://a.example?mechanisms=PLAIN"], dict(mechanisms="LOGIN"), "mechanisms= contradicts"),
    (["smtp://a.example"], dict(protocol="lmtp"), "protocol='lmtp' contradicts"),
    (["lmtp://a.example:25"], {}, "port 25"),
    (["smtp://alice@a.example", "b.example"], dict(password="pw"), "needs username="),
    (["smtp://a.example:99999"], {}, "port is out of range"),
])
def test_contradictions_are_usage_errors(servers, options, says):
    with pytest.raises(smtpsend.UsageError) as info:
        planned(servers, **options)
    assert says in str(info.value)


def test_settings_given_both_ways_that_agree_are_fine():
    checked = planned(["smtps://a.example?timeout=5&mechanisms=plain", "smtp+starttls://b.example"],
                      tlsimport=None, timeout=5, mechanisms=["PLAIN"], tlspolicy="secure")
    assert [t.implicit_tls for t in checked.targets] == [True, False]


def test_a_bad_url_in_servers_never_shows_its_password():
    with pytest.raises(smtpsend.UsageError) as info:
        smtpsend.sendmessage(part(), servers=[f"smtp://u:{SENTINEL}@h.example:0"])
    assert_no_secret(info.value)
    with pytest.raises(smtpsend.UsageError) as info:
        smtpsend.connect(f"smtp://u:{SENTINEL}@h.example/x")
    assert_no_secret(info.value)


# ---------------------------------------------------------------- end to end, over loopback

@pytest.fixture
def server():
    with CaptureServer(users={"alice": SENTINEL, "bob": "bob-pw"}) as s:
        yield s


def test_sendmessage_to_a_url_with_credentials(server):
    lines = []
    events = []
    rejected = smtpsend.sendmessage(part(), servers=[f"smtp://alice:{SENTINEL}@127.0.0.1:{server.port}"
                                                     "?tlspolicy=insecure&timeout=20"],
                                    debug=lines.append, events=events.append)
    assert rejected == []
    [got] = server.messages
    assert got.authenticated_as == "alice"
    assert_no_secret(lines, what="the transcript")
    assert_no_secret(events, what="the events")


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_failover_across_urls_with_their_own_credentials(server, driver):
    closed = free_port()
    servers = [f"smtps://alice:{SENTINEL}@127.0.0.1:{closed}",                           # nothing listens
               f"smtp://alice:wrong-{SENTINEL}@127.0.0.1:{server.port}?tlspolicy=insecure",   # refused
               f"smtp://bob:bob-pw@127.0.0.1:{server.port}?tlspolicy=insecure"]           # takes it
    if driver == "sync":
        smtpsend.sendmessage(part(), servers=servers)
    else:
        asyncio.run(smtpsend.asendmessage(part(), servers=servers))
    [got] = server.messages
    assert got.authenticated_as == "bob"


def test_all_urls_failing_shows_no_password(server):
    with pytest.raises(smtpsend.AllServersFailed) as info:
        smtpsend.sendmessage(part(), servers=[
            f"smtp://alice:wrong-{SENTINEL}@127.0.0.1:{server.port}?tlspolicy=insecure",
            f"smtp://alice:{SENTINEL}@127.0.0.1:{server.port}"])      # no TLS: the password is not sent
    stages = [(a.server, a.port, a.stage) for a in info.value.attempts]
    assert stages == [("127.0.0.1", server.port, "auth"), ("127.0.0.1", server.port, "ehlo")]
    assert_no_secret(info.value)
    assert_no_secret(info.value, "wrong-" + SENTINEL)
    assert server.messages == []


def test_connect_takes_a_url(server):
    with smtpsend.connect(f"smtp://alice:{SENTINEL}@127.0.0.1:{server.port}?tlspolicy=insecure") as smtp:
        assert smtp.port == server.port and smtp.host == "127.0.0.1"
        smtp.sendmessage(part())
        assert_no_secret(smtp)
    assert server.messages[0].authenticated_as == "alice"
    with pytest.raises(smtpsend.UsageError, match="username="):
        smtpsend.connect(f"smtp://alice:{SENTINEL}@127.0.0.1:{server.port}", username="alice")
    reply = smtpsend.verify("b@example.com", server=f"smtp://127.0.0.1:{server.port}")
    assert reply.code == 252


def test_a_parsed_url_is_a_servers_entry_too(server):
    url = parse_url(f"smtp://alice:{SENTINEL}@127.0.0.1:{server.port}?tlspolicy=insecure")
    smtpsend.sendmessage(part(), servers=url)                       # one ServerURL: one server
    smtpsend.sendmessage(part(), servers=[url, "127.0.0.1:1"])
    with smtpsend.connect(url) as smtp:
        smtp.noop()
    assert [m.authenticated_as for m in server.messages] == ["alice", "alice"]


def test_a_transport_keeps_no_url_password_in_plain_text(server):
    transport = smtpsend.Transport(servers=[f"smtp://alice:{SENTINEL}@127.0.0.1:{server.port}?tlspolicy=insecure"])
    try:
        transport.sendmessage(part())
        transport.sendmessage(part())
        assert repr(transport) == (f"<smtpsend.Transport servers=['smtp://alice@127.0.0.1:{server.port}"
                                   "?tlspolicy=insecure'] max_connections=4>")
        assert_no_secret(transport)
    finally:
        transport.close()
    assert [m.authenticated_as for m in server.messages] == ["alice", "alice"]


# ---------------------------------------------------------------- LMTP URLs, end to end (tests/test_lmtp.py's server)

def test_lmtp_urls_over_a_unix_socket_and_tcp():
    from test_lmtp import PART, _conversation
    saved = b"250 2.0.0 saved\r\n250 2.0.0 saved\r\n221 bye\r\n"
    with tempfile.TemporaryDirectory(prefix="lmtp-") as directory:      # short: a socket path has a limit
        path = os.path.join(directory, "lmtp")
        with Conversation(_conversation(saved), unix=path):            # no STARTTLS over a local socket
            assert smtpsend.sendmessage(PART, servers=[f"lmtp+unix://{path}"]) == []
    with Conversation(_conversation(saved)) as server:
        assert smtpsend.sendmessage(PART, servers=[f"lmtp://127.0.0.1:{server.port}"], usetls=False,
                                    client="localhost") == []


@pytest.mark.parametrize("entry", [f"alice:{SENTINEL}@h.example", f"smtp:/alice:{SENTINEL}@h.example:25",
                                   f"alice@h.example:{SENTINEL}"])
def test_credentials_without_a_scheme_are_refused_unshown(entry):
    """An '@' in a plain entry is a user (and maybe a password) whose URL
    lost its scheme: refused before anything else reads it (host:port
    parsing would quote it in its error)."""
    for call in (lambda: smtpsend.sendmessage(part(), servers=["127.0.0.1:1", entry]),
                 lambda: smtpsend.connect(entry)):
        with pytest.raises(smtpsend.UsageError, match="write it as a URL") as info:
            call()
        assert_no_secret(info.value)


def test_a_server_url_made_by_hand_is_checked():
    assert ServerURL("smtps", "mail.example.com").default_port == 465
    with pytest.raises(smtpsend.UsageError, match="unknown URL scheme"):
        ServerURL("smtpx", "mail.example.com")
    with pytest.raises(smtpsend.UsageError, match="control character"):
        ServerURL("smtp", "mail.example.com\r\nRSET")
    with pytest.raises(smtpsend.UsageError, match="control character"):
        ServerURL("smtp", "mail.example.com", username="u\nv")
