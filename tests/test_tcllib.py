"""The same scenarios sent with tcllib's smtp::sendmessage (through tclsh)
and with smtpsend, through Postfix; docs/tcllib.md records the differences
these tests pin down."""

import os
import shutil
import subprocess
import uuid

import pytest

import mimecompose
import smtpsend

from test_realserver import fetch, without_trace

SCRIPT = os.path.join(os.path.dirname(__file__), "tcllib_send.tcl")


@pytest.fixture(scope="module")
def tclsh():
    path = shutil.which("tclsh")
    probe = subprocess.run([path, "-"], input="package require smtp; package require mime",
                           capture_output=True, text=True) if path else None
    if not path or probe.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("tclsh with tcllib is mandatory in CI (apt-get install tcllib tcl-tls)")
        pytest.skip("tclsh with tcllib not installed (apt-get install tcllib tcl-tls)")
    return path


def tcl_send(tclsh, port, sender, to, bcc="", subject="", user="", password=""):
    out = subprocess.run([tclsh, SCRIPT, str(port), sender, to, bcc, subject, user, password],
                         capture_output=True, text=True, timeout=60)
    line = [l for l in out.stdout.splitlines() if l.startswith(("RESULT:", "ERROR:"))]
    assert line, out.stderr
    return line[0]


def ours(rig, port, to, bcc=None, subject="", **kwargs):
    header = [("From", "bob@example.test"), ("To", to), ("Subject", subject)]
    if bcc:
        header.append(("Bcc", bcc))
    part = mimecompose.initialize("text/plain", string="hello from smtpsend\n", header=header)
    return smtpsend.sendmessage(part, servers=["localhost"], ports=[port], ssl_context=rig.context, **kwargs)


def test_bcc(rig, tclsh):
    subject, mine = (f"tcl-bcc-{uuid.uuid4().hex[:8]}" for _ in range(2))
    assert tcl_send(tclsh, rig.ports["plain"], "bob@example.test", "alice@example.test",
                    bcc="carol@example.test", subject=subject) == "RESULT:"
    ours(rig, rig.ports["plain"], "alice@example.test", bcc="carol@example.test", subject=mine)
    # tcllib: the Bcc recipient gets a second message, "[Bcc] subject", a
    # multipart/digest wrapping the original
    [tcl_copy] = fetch(rig, subject, "carol@example.test")
    tcl_part = mimecompose.initialize(string=without_trace(tcl_copy))
    assert tcl_part.getproperty("content") == "multipart/digest"
    assert tcl_part.getheader("Subject") == [f"[Bcc] {subject}"]
    # smtpsend: the same message in the same transaction, Bcc header removed
    [our_copy] = fetch(rig, mine, "carol@example.test")
    our_part = mimecompose.initialize(string=without_trace(our_copy))
    assert our_part.getproperty("content") == "text/plain" and our_part.getheader("Bcc") == []
    assert our_part.getheader("Subject") == [mine]
    fetch(rig, subject, "alice@example.test")
    fetch(rig, mine, "alice@example.test")


def test_refused_recipient(rig, tclsh):
    subject = f"tcl-rcpt-{uuid.uuid4().hex[:8]}"
    result = tcl_send(tclsh, rig.ports["plain"], "bob@example.test", "alice@example.test, nobody@example.test",
                      subject=subject)
    # tcllib returns the refusals as a value: no error, and nothing was delivered
    assert result.startswith("RESULT:") and "nobody@example.test" in result and "550" in result
    assert fetch(rig, subject) == []
    # smtpsend raises: a message that was not delivered never looks like a success
    with pytest.raises(smtpsend.RecipientsRefused):
        ours(rig, rig.ports["plain"], "alice@example.test, nobody@example.test", subject=subject)


def test_credentials_without_tls(rig, tclsh):
    subject = f"tcl-auth-{uuid.uuid4().hex[:8]}"
    # tcllib sends the password over the unencrypted connection and delivers
    assert tcl_send(tclsh, rig.ports["plain"], "bob@example.test", "alice@example.test", subject=subject,
                    user="alice@example.test", password="alice-pw") == "RESULT:"
    assert len(fetch(rig, subject)) == 1
    # smtpsend refuses unless told tlspolicy="insecure"
    with pytest.raises(smtpsend.AllServersFailed) as info:
        ours(rig, rig.ports["plain"], "alice@example.test", subject=subject,
             username="alice@example.test", password="alice-pw")
    assert isinstance(info.value.attempts[0].error, smtpsend.TLSRequired)
