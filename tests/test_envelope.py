"""The envelope: a pure function of the header and the options."""

import email.message
import email.policy
import re

import pytest
from hypothesis import given

import mimecompose
import smtpsend
from mimecompose import strategies as mst


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
