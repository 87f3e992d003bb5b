"""asendmessage: the same dialogue pumped by asyncio."""

import asyncio

import pytest

import mimecompose
import smtpsend
from smtpsend.testing import CaptureServer

from faults import FaultServer


def part(n=0, **extra):
    return mimecompose.compose(f"message {n}", header=[("From", "a@example.com"), ("To", "b@example.com"),
                                                        *extra.items()])


def test_same_result_and_envelope():
    with CaptureServer() as server:
        result = asyncio.run(smtpsend.asendmessage(part(Bcc="c@example.com"), servers=["localhost"],
                                                   ports=[server.port]))
        assert result == []
        got = server.messages[0]
        assert got.envelope.recipients == ["b@example.com", "c@example.com"] and b"Bcc" not in got.data


def test_hundreds_concurrently():
    async def main(port):
        return await asyncio.gather(*(smtpsend.asendmessage(part(n), servers=["localhost"], ports=[port])
                                      for n in range(300)))
    with CaptureServer() as server:
        assert asyncio.run(main(server.port)) == [[]] * 300
        bodies = sorted(m.part.getbody() for m in server.messages)
        # the final CRLF is added over BDAT as over DATA (one message, one set of bytes)
        assert bodies == sorted(f"message {n}\r\n".encode() for n in range(300))


def test_same_errors():
    refuse = {"RCPT b@example.com": (550, "5.1.1 no such user")}
    with CaptureServer(responses=refuse) as server:
        with pytest.raises(smtpsend.RecipientsRefused) as info:
            asyncio.run(smtpsend.asendmessage(part(), servers=["localhost"], ports=[server.port]))
        assert info.value.rejected[0].status == "5.1.1" and info.value.port == server.port


def test_tls_auth_and_injection(server_tls, client_tls):
    lines, events = [], []
    with CaptureServer(tls_context=server_tls, users={"u": "pw"}) as server:
        asyncio.run(smtpsend.asendmessage(part(), servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                                          username="u", password="pw", debug=lines.append, events=events.append))
        assert server.messages[0].authenticated_as == "u"
    assert "> STARTTLS" in lines and [e.data["mechanism"] for e in events if e.name == "auth"] == ["CRAM-MD5"]
    with FaultServer("starttls", "inject", tls_context=server_tls) as server:
        lines.clear()
        asyncio.run(smtpsend.asendmessage(part(), servers=["localhost"], ports=[server.port], ssl_context=client_tls,
                                          debug=lines.append, timeout=5))
        assert len(server.delivered) == 1 and not any("injected" in l for l in lines)


def test_cancelled_send_closes_its_connection():
    async def main(port):
        task = asyncio.create_task(smtpsend.asendmessage(part(), servers=["localhost"], ports=[port]))
        await asyncio.sleep(0.3)        # connected, waiting for a greeting that never comes
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    with FaultServer("greeting", "silence", hold=10) as server:
        asyncio.run(main(server.port))
        assert server.client_closed.wait(5)


def test_inside_a_running_loop_with_other_work():
    async def main(port):
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)
        t = asyncio.create_task(ticker())
        await smtpsend.asendmessage(mimecompose.compose("x" * 3_000_000, header=[
            ("From", "a@example.com"), ("To", "b@example.com")]), servers=["localhost"], ports=[port])
        t.cancel()
        return ticks
    with CaptureServer() as server:
        assert asyncio.run(main(server.port)) > 0   # the loop kept running while sending


def test_signature_matches_sendmessage():
    import inspect
    assert inspect.signature(smtpsend.asendmessage) == inspect.signature(smtpsend.sendmessage)
    with pytest.raises(TypeError):
        asyncio.run(smtpsend.asendmessage(part(), no_such_option=1))
