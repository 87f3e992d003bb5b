"""The fault matrix: every stage x every fault, against docs/reliability.md,
with the blocking driver and with the asyncio one (one logic, two pumps)."""

import asyncio
import pathlib

import pytest

import mimecompose
import smtpsend

from faults import FaultServer

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
OUR_STAGE = {"tls": "starttls", "message": "data", "final": "data"}


def load_table():
    """The cells of the SMTP matrix: the table whose header starts "| stage"."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("| stage"))
    header, rows = lines[start], []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    faults = [c.strip() for c in header.strip("|").split("|")][1:]
    cells = []
    for row in rows:
        values = [c.strip() for c in row.strip("|").split("|")]
        stage, outcomes = values[0], values[1:]
        for fault, outcome in zip(faults, outcomes):
            if outcome != "--":
                cells.append((stage, fault, outcome))
    return cells


CELLS = load_table()


def test_table_is_complete():
    stages = {s for s, _, _ in CELLS}
    assert stages == {"greeting", "ehlo", "starttls", "tls", "auth", "mail", "rcpt", "data", "message", "final",
                      "quit"}
    assert len(CELLS) >= 75


def _send(driver, part, port, options):
    if driver == "sync":
        return smtpsend.sendmessage(part, servers=["localhost"], ports=[port], **options)
    return asyncio.run(smtpsend.asendmessage(part, servers=["localhost"], ports=[port], **options))


@pytest.mark.parametrize("driver", ["sync", "async"])
@pytest.mark.parametrize("stage,fault,outcome", CELLS, ids=[f"{s}-{f}" for s, f, _ in CELLS])
def test_fault(stage, fault, outcome, driver, server_tls, client_tls):
    users = {"user": "pw"} if stage == "auth" else {}
    body = "x" * 8_000_000 if stage == "message" else "short message"
    part = mimecompose.compose(body, header=[("From", "a@example.com"), ("To", "b@example.com")])
    options = dict(ssl_context=client_tls, timeout=1, maxsecs=1)
    if users:
        options.update(username="user", password="pw")
    with FaultServer(stage, fault, tls_context=server_tls, users=users, hold=10) as server:
        kind, _, name = outcome.partition(": ")
        if kind == "delivered":
            assert _send(driver, part, server.port, options) == []
            assert len(server.delivered) == 1
        else:
            with pytest.raises(smtpsend.SMTPError) as info:
                _send(driver, part, server.port, options)
            error = info.value
            if kind == "next":
                assert isinstance(error, smtpsend.AllServersFailed)
                [attempt] = error.attempts
                assert attempt.stage == OUR_STAGE.get(stage, stage)
                error = attempt.error
                assert isinstance(error, getattr(smtpsend, name)), repr(error)
            elif kind == "raised":
                assert isinstance(error, getattr(smtpsend, name)), repr(error)
            else:
                assert outcome == "uncertain" and isinstance(error, smtpsend.DeliveryUncertain), repr(error)
            assert isinstance(error, smtpsend.SMTPError)
            assert error.server == "localhost" and error.port == server.port
            assert error.stage == OUR_STAGE.get(stage, stage)
            assert server.delivered == [] or kind == "uncertain"
        # the client closed its end in every case
        assert server.client_closed.wait(5)
