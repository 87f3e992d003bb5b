"""The envelope: a pure function of the header and the options."""

import email.generator
import email.message
import email.mime.text
import email.policy
import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mimecompose
import smtpsend
from mimecompose import strategies as mst
from smtpsend._envelope import prepare


def msg(**fields):
    part = mimecompose.initialize("text/plain", string="body")
    for name, value in fields.items():
        part.setheader(name.replace("_", "-"), value)
    return part


def test_from_and_recipients():
    env = smtpsend.envelope(msg(From="A <a@x.org>", To="b@y.org, C <c@z.org>", Cc="d@w.org", Bcc="e@v.org"))
    assert env == smtpsend.Envelope("a@x.org", ["b@y.org", "c@z.org", "d@w.org", "e@v.org"])


def test_sender_wins_over_from():
    env = smtpsend.envelope(msg(From="a@x.org, b@x.org", Sender="s@x.org", To="t@y.org"))
    assert env.originator == "s@x.org"


def test_two_from_without_sender_is_an_error():
    with pytest.raises(smtpsend.UsageError, match="too many mailboxes"):
        smtpsend.envelope(msg(From="a@x.org, b@x.org", To="t@y.org"))


def test_explicit_options_win():
    part = msg(From="a@x.org", To="b@y.org")
    env = smtpsend.envelope(part, originator="", recipients="x@q.org, Y <y@q.org>")
    assert env == smtpsend.Envelope("", ["x@q.org", "y@q.org"])
    env = smtpsend.envelope(part, recipients=["Team: m1@q.org, m2@q.org;", "x@q.org"])
    assert env.recipients == ["m1@q.org", "m2@q.org", "x@q.org"]


def test_groups_and_empty_groups():
    env = smtpsend.envelope(msg(From="a@x.org", To="Undisclosed recipients:;", Bcc="Team: m@q.org;"))
    assert env.recipients == ["m@q.org"]


def test_duplicates_removed_domain_case_insensitive():
    env = smtpsend.envelope(msg(From="a@x.org", To="b@Y.org, b@y.ORG", Cc="b@y.org, B@y.org"))
    assert env.recipients == ["b@Y.org", "B@y.org"]


def test_resent_block_takes_precedence():
    raw = (b"Resent-From: fwd@x.org\r\nResent-To: new@y.org\r\nResent-Bcc: hidden@y.org\r\n"
           b"Received: by relay\r\n"
           b"Resent-From: older@x.org\r\nResent-To: old-target@y.org\r\n"
           b"From: orig@x.org\r\nTo: orig-to@y.org\r\n\r\nbody\r\n")
    env, data = smtpsend.transmitted(raw)
    assert env == smtpsend.Envelope("fwd@x.org", ["new@y.org", "hidden@y.org"])
    assert b"hidden@y.org" not in data
    assert data.startswith(b"Resent-Date: ") and b"\r\nResent-Message-ID: " in data
    assert b"\r\nDate: " not in data   # the original is not re-stamped


def test_header_option_replaces_and_is_consulted():
    part = mimecompose.initialize("text/plain", string="body")
    env, data = smtpsend.transmitted(part, header=[("From", "h@x.org"), ("To", "t@y.org"), ("Subject", "S")])
    assert env == smtpsend.Envelope("h@x.org", ["t@y.org"])
    assert data.count(b"Subject: S\r\n") == 1
    part2 = msg(From="a@x.org", To="b@y.org", Subject="old")
    _, data = smtpsend.transmitted(part2, header=[("Subject", "new")])
    assert b"Subject: new" in data and b"old" not in data
    with pytest.raises(smtpsend.UsageError):
        smtpsend.transmitted(part2, header=[("Content-Type", "text/html")])
    with pytest.raises(ValueError):
        smtpsend.transmitted(part2, header=[("X-A", "a\r\nBcc: evil@x.org")])


def test_missing_from_date_message_id_added_to_the_copy_only():
    part = mimecompose.initialize("text/plain", string="body", header=[("To", "b@y.org")])
    before = part.buildmessage()
    env, data = smtpsend.transmitted(part, originator="a@x.org")
    assert data.startswith(b"Date: ") and b"\r\nFrom: <a@x.org>\r\n" in data and b"\r\nMessage-ID: <" in data
    assert part.buildmessage() == before
    _, again = smtpsend.transmitted(part, originator="a@x.org")
    ids = [re.search(rb"Message-ID: (<[^>]+>)", d).group(1) for d in (data, again)]
    assert ids[0] != ids[1]   # each send gets a fresh Message-ID


def test_no_originator_or_recipients():
    with pytest.raises(smtpsend.UsageError, match="originator"):
        smtpsend.envelope(msg(To="b@y.org"))
    with pytest.raises(smtpsend.UsageError, match="recipients"):
        smtpsend.envelope(msg(From="a@x.org"))
    with pytest.raises(smtpsend.UsageError):
        smtpsend.envelope(msg(From="a@x.org", To="bob"))   # no domain: tcllib made it bob@host
    with pytest.raises(ValueError):
        smtpsend.envelope(msg(From="a@x.org"), recipients=["b@y.org>\r\nRCPT TO:<c@z.org"])


def test_email_message_and_bytes_accepted():
    m = email.message.EmailMessage()
    m["From"] = "Jörg <j@x.org>"
    m["To"] = "b@y.org"
    m["Bcc"] = "secret@y.org"
    m.set_content("hi")
    env, data = smtpsend.transmitted(m)
    assert env == smtpsend.Envelope("j@x.org", ["b@y.org", "secret@y.org"])
    assert b"secret" not in data
    with pytest.raises(smtpsend.UsageError):
        smtpsend.envelope(12)


def test_encoded_display_name_with_comma_does_not_split():
    raw = b"From: =?utf-8?q?Doe=2C_John?= <j@x.org>\r\nTo: b@y.org\r\n\r\nx"
    assert smtpsend.envelope(raw).originator == "j@x.org"


@given(mst.address_lists(), mst.address_lists(), mst.address_lists())
def test_every_address_reaches_the_envelope_once_and_bcc_is_never_sent(to, cc, bcc):
    part = mimecompose.initialize("text/plain", string="body", header=[
        ("From", "sender@example.com"), ("To", to[0]), ("Cc", cc[0]), ("Bcc", bcc[0])])
    expected = []
    seen = set()
    for addr in to[1] + cc[1] + bcc[1]:
        local, _, domain = addr.rpartition("@")
        if (local, domain.lower()) not in seen:
            seen.add((local, domain.lower()))
            expected.append(addr)
    if not expected:
        with pytest.raises(smtpsend.UsageError):
            smtpsend.transmitted(part)
        return
    env, data = smtpsend.transmitted(part)
    assert env.recipients == expected
    sent = mimecompose.initialize(string=data)
    assert sent.getheader("Bcc") == []
    shown = [a.address for name in ("To", "Cc") for v in sent.getheader(name, decode=False)
             for a in mimecompose.parseaddress(v) if a.address]
    assert shown == to[1] + cc[1]
    assert smtpsend.envelope(part) == env   # the same envelope every time


# ---------------------------------------------------------------- Bcc, on every path (issue 11, item 9)

_HIDDEN_FIELD = re.compile(rb"^(?:resent-)?bcc[ \t]*:", re.I | re.M)


def assert_no_bcc(data: bytes, hidden: list[str]) -> None:
    """No Bcc or Resent-Bcc field in the header of ``data`` (read the way a
    receiver reads it: at every CRLF, LF or CR), and no hidden address
    anywhere in it."""
    head = re.split(rb"\r\n\r\n|\n\n|\r\r", data, maxsplit=1)[0]
    lines = re.split(rb"\r\n|\n|\r", head)
    assert not [line for line in lines if _HIDDEN_FIELD.match(line)], data
    for address in hidden:
        assert address.encode() not in data.lower(), (address, data)


def _message_with(path: str, name: str, value: str) -> tuple[object, dict]:
    """A message whose Bcc-like field (``name: value``) comes in by ``path``
    (a Resent-Bcc with the Resent-From and Resent-To of its block);
    returns the message and the keyword arguments for transmitted()."""
    fields = [("From", "sender@example.com"), ("To", "shown@example.com")]
    extra = [(name, value)]
    if name.lower().startswith("resent-"):
        extra = [("Resent-From", "fwd@example.com"), ("Resent-To", "new@example.com")] + extra
    if path == "part":
        return mimecompose.initialize("text/plain", string="body\n", header=extra + fields), {}
    if path == "setheader":
        part = mimecompose.initialize("text/plain", string="body\n", header=fields)
        for n, v in extra:
            part.setheader(n, v, mode="append")
        return part, {}
    if path == "header=":
        return mimecompose.initialize("text/plain", string="body\n", header=fields), {"header": extra}
    if path == "header= mapping":
        return mimecompose.initialize("text/plain", string="body\n", header=fields), {"header": dict(extra)}
    if path == "compose":
        return mimecompose.compose("body\n", attachments=[("a.bin", b"\x00\x01")],
                                   header=dict(extra + fields)), {}
    if path.startswith("raw"):
        if path == "raw behind a bare CR":
            carrier = "Resent-Date: Tue, 1 Dec 2026 10:00:00 +0000" if len(extra) > 1 else "Subject: hello"
            resent = "".join(f"{n}: {v}\r\n" for n, v in extra[:-1])
            rest = "".join(f"{n}: {v}\r\n" for n, v in fields)
            return f"{resent}{carrier}\r{name}: {value}\r\n{rest}\r\nbody\r\n".encode(), {}
        newline = {"raw crlf": b"\r\n", "raw lf": b"\n", "raw cr": b"\r"}[path]
        lines = [f"{n}: {v}".encode() for n, v in extra[:-1] + fields]
        lines.insert(len(extra) - 1, f"{name}:".encode() + newline + f" {value}".encode())   # folded
        return newline.join(lines) + newline + newline + b"body" + newline, {}
    if path == "resent block":
        raw = (f"Resent-From: fwd@example.com\r\nResent-To: new@example.com\r\n{name}: {value}\r\n"
               "From: orig@example.com\r\nTo: shown@example.com\r\n\r\nbody\r\n")
        return raw.encode(), {}
    if path in ("email compat32", "email default"):
        message = email.message.Message() if path == "email compat32" else email.message.EmailMessage()
        for n, v in extra + fields:
            message[n] = v
        message.set_payload("body\n") if path == "email compat32" else message.set_content("body\n")
        return message, {}
    raise AssertionError(path)


PATHS = ["part", "setheader", "header=", "header= mapping", "compose", "raw crlf", "raw lf", "raw cr",
         "raw behind a bare CR", "resent block", "email compat32", "email default"]


@given(st.sampled_from(PATHS), st.sampled_from(["Bcc", "BCC", "bcc", "Resent-Bcc", "RESENT-BCC"]),
       st.lists(st.integers(0, 99), max_size=3), st.booleans())
def test_bcc_is_never_transmitted_whatever_the_path(path, name, numbers, group):
    hidden = [f"hidden{n}@example.net" for n in numbers]
    value = ", ".join(hidden)
    if group and hidden:
        value = f"Auditors: {value};"
    message, options = _message_with(path, name, value)
    env, data = smtpsend.transmitted(message, **options)
    assert_no_bcc(data, hidden)
    # where the field is the one the envelope is read from, its addresses
    # still get the message
    if name.lower().startswith("resent-") or path != "resent block":
        assert set(hidden) <= set(env.recipients)


def test_bcc_given_by_header_option_is_not_transmitted():
    part = msg(From="a@x.org", To="b@y.org")
    env, data = smtpsend.transmitted(part, header=[("Bcc", "secret@y.org")])
    assert env.recipients == ["b@y.org", "secret@y.org"]
    assert b"secret" not in data and b"Bcc" not in data
    env, data = smtpsend.transmitted(part, header=[("Resent-From", "f@x.org"), ("Resent-To", "n@y.org"),
                                                   ("Resent-Bcc", "")])
    assert b"Resent-Bcc" not in data               # not even an empty one
    assert env == smtpsend.Envelope("f@x.org", ["n@y.org"])


@pytest.fixture(scope="module")
def capture():
    from smtpsend.testing import CaptureServer
    with CaptureServer() as server:
        yield server


@settings(max_examples=15)
@given(st.sampled_from(["sendmessage", "sendmessage header=", "Client.sendmessage", "Client.sendmessages",
                        "Client.data", "bytes"]),
       st.sampled_from(["Bcc", "bcc", "Resent-Bcc"]))
def test_bcc_is_never_on_the_wire(capture, way, name):
    hidden = "hidden-wire@example.net"
    fields = [("From", "sender@example.com"), ("To", "shown@example.com")]
    extra = [(name, hidden)]
    if name.startswith("Resent-"):
        extra = [("Resent-From", "fwd@example.com"), ("Resent-To", "new@example.com")] + extra
    part = mimecompose.initialize("text/plain", string="body\n",
                                  header=fields + ([] if way == "sendmessage header=" else extra))
    before = len(capture.messages)
    where = dict(servers=["localhost"], ports=[capture.port])
    if way == "sendmessage":
        smtpsend.sendmessage(part, **where)
    elif way == "sendmessage header=":
        smtpsend.sendmessage(part, header=extra, **where)
    elif way == "bytes":
        smtpsend.sendmessage(part.buildmessage(), **where)
    else:
        with smtpsend.connect("localhost", port=capture.port) as client:
            if way == "Client.sendmessage":
                client.sendmessage(part)
            elif way == "Client.sendmessages":
                assert client.sendmessages([part]) == [[]]
            else:
                assert client.mail("sender@example.com").code == 250
                assert client.rcpt("shown@example.com").code == 250
                assert client.data(part).code == 250
    [received] = capture.messages[before:]
    assert_no_bcc(received.data, [hidden])
    if way != "Client.data":
        assert hidden in received.envelope.recipients


# ---------------------------------------------------------------- email.message input (issue 13, 11 item 17)

@pytest.mark.parametrize("value", ["hi\r\nBcc: evil@example.com", "hi\nBcc: evil@example.com",
                                   "hi\rBcc: evil@example.com"])
def test_email_message_with_injected_header_is_a_usage_error(value):
    message = email.message.Message()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Subject"] = value
    message.set_payload("x")
    try:
        env, data = smtpsend.transmitted(message)
    except smtpsend.UsageError:
        return
    # a variant the email package serialises: whatever it wrote, no second field
    assert_no_bcc(data, ["evil@example.com"])


def test_email_message_crlf_header_raises_usage_error_not_header_parse_error():
    message = email.message.Message()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Subject"] = "hi\r\nBcc: evil@example.com"
    message.set_payload("x")
    with pytest.raises(smtpsend.UsageError, match="embedded header"):
        smtpsend.transmitted(message)
    with pytest.raises(ValueError):
        smtpsend.envelope(message)


class DjangoLike(email.mime.text.MIMEText):
    """Mimics Django's SafeMIMEText/SafeMIMEMultipart: ``as_bytes`` takes
    ``unixfrom`` and ``linesep``, but no ``policy``."""

    def as_bytes(self, unixfrom=False, linesep="\n"):
        buffer = io.BytesIO()
        email.generator.BytesGenerator(buffer, mangle_from_=False).flatten(self, unixfrom=unixfrom,
                                                                          linesep=linesep)
        return buffer.getvalue()


class BareBytes(email.mime.text.MIMEText):
    """A subclass whose as_bytes takes no arguments at all."""

    def as_bytes(self):
        return email.mime.text.MIMEText.as_bytes(self)


@pytest.mark.parametrize("cls", [DjangoLike, BareBytes])
def test_email_message_subclass_without_policy_argument(cls):
    message = cls("From the start\nline two\n", "plain", "utf-8")
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Bcc"] = "hidden@example.com"
    message["Subject"] = "Grüße"
    env, data = smtpsend.transmitted(message)
    assert env == smtpsend.Envelope("a@example.com", ["b@example.com", "hidden@example.com"])
    assert_no_bcc(data, ["hidden@example.com"])
    sent = mimecompose.initialize(string=data)
    assert sent.getheader("Subject") == ["Grüße"]
    assert sent.getbody(decode=True) == "From the start\nline two\n"   # not mangled to ">From"


def test_real_django_message():
    pytest.importorskip("django")
    from django.conf import settings as django_settings
    if not django_settings.configured:
        django_settings.configure(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
    from django.core.mail import EmailMultiAlternatives
    mail = EmailMultiAlternatives("Grüße", "From the start\n", "a@example.com", ["b@example.com"],
                                  bcc=["hidden@example.com"])
    mail.attach_alternative("<p>hi</p>", "text/html")
    message = mail.message()
    assert isinstance(message, email.message.Message)
    env, data = smtpsend.transmitted(message)
    assert env == smtpsend.Envelope("a@example.com", ["b@example.com"])   # Django keeps Bcc out itself
    sent = mimecompose.initialize(string=data)
    assert sent.getheader("Subject") == ["Grüße"]
    plain, html = sent.getproperty("parts")
    assert plain.getbody(decode=True).startswith("From the start")
    assert html.getbody(decode=True) == "<p>hi</p>"


# ---------------------------------------------------------------- transmitted() is CRLF (issue 11, item 17)

_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def _leaf_with_line_breaks(data: bytes, ctype: str, encoding: str):
    return mimecompose.initialize(ctype, string=data, encoding=encoding,
                                  header=[("From", "a@example.com"), ("To", "b@example.com")])


@given(st.binary(max_size=200).map(lambda b: b.replace(b"\x00", b"")),
       st.sampled_from(["application/octet-stream", "text/plain"]), st.sampled_from(["8bit", None]))
def test_transmitted_has_no_bare_cr_or_lf_in_built_parts(data, ctype, encoding):
    if ctype == "text/plain":
        data = data.decode("latin-1").encode("utf-8")
    try:
        part = _leaf_with_line_breaks(data, ctype, encoding)
    except mimecompose.MimeError:
        return   # content the forced encoding cannot carry: refused, nothing to send
    _, out = smtpsend.transmitted(part)
    assert not _BARE.search(out), out


@given(st.lists(st.sampled_from([b"Subject: hi", b"X-A: 1", b" folded", b"body line", b"", b".", b"caf\xc3\xa9"]),
                max_size=12),
       st.lists(st.sampled_from([b"\r\n", b"\n", b"\r"]), min_size=1, max_size=12))
def test_transmitted_has_no_bare_cr_or_lf_in_parsed_messages(lines, breaks):
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nX-Start: s\r\n"
    for n, line in enumerate(lines):
        raw += line + breaks[n % len(breaks)]
    _, out = smtpsend.transmitted(raw)
    assert not _BARE.search(out), out


@given(mst.part_trees())
def test_transmitted_part_trees_are_crlf_and_what_is_sent(part):
    part.setheader("From", "a@example.com")
    try:
        _, out = smtpsend.transmitted(part)
    except smtpsend.UsageError:
        return   # no recipients in the generated To
    assert not _BARE.search(out)


def test_transmitted_is_what_the_server_receives(capture):
    part = _leaf_with_line_breaks(b"one\ntwo\rthree\r\n.dot\n", "application/octet-stream", "8bit")
    before = len(capture.messages)
    _, expected = smtpsend.transmitted(part, header=[("Message-ID", "<fixed@example.com>"),
                                                     ("Date", "Tue, 01 Dec 2026 10:00:00 +0000")])
    smtpsend.sendmessage(part, servers=["localhost"], ports=[capture.port],
                         header=[("Message-ID", "<fixed@example.com>"), ("Date", "Tue, 01 Dec 2026 10:00:00 +0000")])
    [received] = capture.messages[before:]
    assert received.data.rstrip(b"\r\n") == expected.rstrip(b"\r\n")
    assert not _BARE.search(expected)


# ---------------------------------------------------------------- envelope() is pure (issue 11, item 18)

def test_envelope_needs_no_from_when_originator_is_given():
    part = msg(To="b@y.org")
    assert smtpsend.envelope(part, originator="", recipients=["x@q.org"]) == smtpsend.Envelope("", ["x@q.org"])
    assert smtpsend.envelope(part, originator="") == smtpsend.Envelope("", ["b@y.org"])
    raw = b"To: b@y.org\r\nSubject: no From\r\n\r\nbody\r\n"
    assert smtpsend.envelope(raw, originator="").originator == ""


def test_transmitting_without_from_still_needs_one(capture):
    part = msg(To="b@y.org")
    with pytest.raises(smtpsend.UsageError, match="needs a From"):
        smtpsend.transmitted(part, originator="")
    before = len(capture.messages)
    with pytest.raises(smtpsend.UsageError, match="needs a From"):
        smtpsend.sendmessage(part, originator="", servers=["localhost"], ports=[capture.port])
    assert len(capture.messages) == before
    # with an originator to write one from, the copy gets From: <originator>
    _, data = smtpsend.transmitted(part, originator="a@x.org")
    assert b"\r\nFrom: <a@x.org>\r\n" in data


# ---------------------------------------------------------------- through mimecompose's public API (issue 14)

FIXED = [("Date", "Tue, 01 Dec 2026 10:00:00 +0000"), ("Message-ID", "<m@example.com>")]


def _mime_versions(data):
    return [line for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if line.lower().startswith(b"mime-version")]


@pytest.mark.parametrize("raw,expected", [
    (b"From: a@x.org\r\nTo: b@y.org\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n",
     [b"MIME-Version: 1.0"]),                                       # parsed, MIME without the version: added
    (b"From: a@x.org\r\nTo: b@y.org\r\nMIME-Version: 1.0 (theirs)\r\nContent-Type: text/plain\r\n\r\nbody\r\n",
     [b"MIME-Version: 1.0 (theirs)"]),                              # parsed, has one: kept, not doubled
    (b"From: a@x.org\r\nTo: b@y.org\r\n\r\nplain RFC 5322 text\r\n", []),   # parsed, not MIME: none added
])
def test_transmitted_mime_version_of_a_parsed_message(raw, expected):
    _env, data = smtpsend.transmitted(raw, header=FIXED)
    assert _mime_versions(data) == expected


def test_transmitted_mime_version_of_a_built_message_is_the_serialisers_one():
    _env, data = smtpsend.transmitted(msg(From="a@x.org", To="b@y.org"), header=FIXED)
    assert _mime_versions(data) == [b"MIME-Version: 1.0"]


def test_envelope_reads_the_fields_not_the_content(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("x")
    part = mimecompose.initialize("text/plain", file=str(path), header=[("From", "a@x.org"), ("To", "b@y.org")])
    path.unlink()
    assert smtpsend.envelope(part) == smtpsend.Envelope("a@x.org", ["b@y.org"])
    prepared = prepare(part)     # what sendmessage does first: still no content read
    assert prepared.envelope == smtpsend.Envelope("a@x.org", ["b@y.org"])
    assert [name for name, _ in prepared.add] == ["Date", "Message-ID"]
