"""Logging, the urllib3/httpx way: the "smtpsend" logger (silent until the
application configures logging) gets INFO per message sent, WARNING for a
backup server, a 7-bit downgrade and a refused recipient, and DEBUG the
redacted transcript whenever it is enabled for DEBUG."""

import logging
import subprocess
import sys

import pytest

import mimecompose
import smtpsend
from smtpsend._options import tracer as _tracer
from smtpsend.testing import CaptureServer

from conftest import SENTINEL
from servers import free_port

LOGGER = "smtpsend"


def part(body="hello", to="b@example.com"):
    return mimecompose.compose(body, header=[("From", "a@example.com"), ("To", to)])


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.NOTSET)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def at(self, level):
        return [r.getMessage() for r in self.records if r.levelno == level]


@pytest.fixture
def records():
    """A handler on the smtpsend logger, which is left at WARNING: only what
    smtpsend logs regardless of DEBUG, unless a test lowers the level."""
    logger = logging.getLogger(LOGGER)
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_info_for_every_message_sent(records):
    with CaptureServer() as server:
        smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port],
                             recipients=["b@example.com", "c@example.com"])
        [message] = server.messages
    [info] = records.at(logging.INFO)
    msgid = message.part.getheader("Message-ID")[0]
    assert msgid in info and "2 recipient(s)" in info and f"localhost port {server.port}" in info
    assert info.rstrip().endswith(" s")   # the time it took
    assert not records.at(logging.DEBUG)     # nothing of the transcript at INFO


def test_info_for_a_message_sent_over_connect(records):
    with CaptureServer() as server:
        with smtpsend.connect("localhost", port=server.port) as smtp:
            smtp.sendmessage(part())
            smtp.sendmessage(part())
    assert len(records.at(logging.INFO)) == 2


def test_warning_when_a_backup_server_took_the_message(records):
    closed = free_port()
    with CaptureServer() as server:
        smtpsend.sendmessage(part(), servers=["127.0.0.1", "localhost"], ports=[closed, server.port])
    [warning] = records.at(logging.WARNING)
    assert "backup server localhost" in warning and f"127.0.0.1 port {closed} (connect)" in warning


def test_warning_for_a_refused_recipient(records):
    with CaptureServer(responses={"RCPT bad@example.com": (550, "5.1.1 no such user")}) as server:
        rejected = smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port],
                                        recipients=["b@example.com", "bad@example.com"], atleastone=True)
    assert [r.address for r in rejected] == ["bad@example.com"]
    [warning] = records.at(logging.WARNING)
    assert "bad@example.com" in warning and "550" in warning
    assert "1 refused" in records.at(logging.INFO)[0]


def test_warning_for_a_7bit_downgrade(records):
    eightbit = mimecompose.initialize("text/plain", string="Grüße aus Köln", encoding="8bit",
                                      params={"charset": "utf-8"},
                                      header=[("From", "a@example.com"), ("To", "b@example.com")])
    with CaptureServer(extensions=["PIPELINING"]) as server:   # no 8BITMIME
        smtpsend.sendmessage(eightbit, servers=["localhost"], ports=[server.port])
        assert b"quoted-printable" in server.messages[0].data
    [warning] = records.at(logging.WARNING)
    assert "8BITMIME" in warning and "localhost" in warning


def test_the_transcript_whenever_the_logger_is_enabled_for_debug(records):
    logging.getLogger(LOGGER).setLevel(logging.DEBUG)
    lines = []
    with CaptureServer(users={"user": SENTINEL}) as server:
        smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port], username="user",
                             password=SENTINEL, tlspolicy="insecure", mechanisms=["PLAIN"], debug=lines.append)
    debug = records.at(logging.DEBUG)
    assert any(m.startswith("> MAIL FROM:<a@example.com>") for m in debug)
    assert any(m.startswith("* connecting to") for m in debug)        # smtpsend's notes, too
    assert "> AUTH PLAIN ***" in debug
    assert all(line[:2] in ("> ", "< ") for line in lines) and lines  # the callable: protocol lines only
    assert not any(SENTINEL in m for m in debug + lines)


def test_debug_true_forces_the_transcript_past_a_quieter_logger(records):
    logging.getLogger(LOGGER).setLevel(logging.WARNING)
    with CaptureServer() as server:
        smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port])
        assert not records.records
        smtpsend.sendmessage(part(), servers=["localhost"], ports=[server.port], debug=True)
    assert any(m.startswith("> MAIL FROM") for m in records.at(logging.DEBUG))
    assert not records.at(logging.INFO)   # the logger's level still holds for the rest


def test_nothing_is_built_when_nothing_wants_the_transcript(records):
    logging.getLogger(LOGGER).setLevel(logging.INFO)
    assert _tracer(False) == (None, False)
    callback = [].append
    assert _tracer(callback) == (callback, False)
    logging.getLogger(LOGGER).setLevel(logging.DEBUG)
    trace, notes = _tracer(False)
    assert trace is not None and notes


def test_silent_without_logging_configured():
    # the NullHandler: no "No handlers could be found" and no lastResort output on stderr
    code = (
        "import mimecompose, smtpsend\n"
        "from smtpsend.testing import CaptureServer\n"
        "p = mimecompose.compose('x', header=[('From', 'a@example.com'), ('To', 'b@example.com')])\n"
        "with CaptureServer(responses={'RCPT bad@example.com': (550, '5.1.1 no')}) as s:\n"
        "    smtpsend.sendmessage(p, servers=['localhost'], ports=[s.port],\n"
        "                         recipients=['b@example.com', 'bad@example.com'], atleastone=True)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
