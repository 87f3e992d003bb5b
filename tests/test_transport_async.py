"""smtpsend.AsyncTransport: Transport's rules for the tasks of one event loop."""

from __future__ import annotations

import asyncio
import ssl
import sys
import threading
from collections import Counter
from typing import Any, Optional

import pytest

import smtpsend
from smtpsend.testing import CaptureServer

from conftest import SENTINEL, assert_no_secret
from servers import ScriptedServer
from test_transport import FULL, ChaosServer, Clock, assert_each_once, part, random_faults


def atransport(server: Any, **options: Any) -> smtpsend.AsyncTransport:
    return smtpsend.AsyncTransport(servers=[server.host], ports=[server.port], **options)


def test_loaded_lazily_and_exported() -> None:
    assert "AsyncTransport" in smtpsend.__all__ and "AsyncTransport" in dir(smtpsend)
    assert smtpsend.AsyncTransport.__module__ == "smtpsend._atransport"
    assert "smtpsend._atransport" in sys.modules


def test_reuse_with_tls_and_auth(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    async def main(port: int) -> smtpsend.TransportStats:
        async with smtpsend.AsyncTransport(servers=["localhost"], ports=[port], ssl_context=client_tls,
                                           username="u", password=SENTINEL) as t:
            for n in range(4):
                assert await t.sendmessage(part(n)) == []
            assert_no_secret(t)
            return t.stats
    with CaptureServer(tls_context=server_tls, users={"u": SENTINEL}) as server:
        stats = asyncio.run(main(server.port))
        assert (stats.connections_opened, stats.connections_reused, stats.messages_sent) == (1, 3, 4)
        assert [c for c in server.commands if c.startswith("AUTH")] == ["AUTH ..."]
        assert server.commands[-1] == "QUIT"


def test_a_thousand_concurrent_tasks_over_eight_connections() -> None:
    async def main(server: ChaosServer) -> smtpsend.TransportStats:
        async with atransport(server, max_connections=8, max_messages=None) as t:
            results = await asyncio.gather(*(t.sendmessage(part(n)) for n in range(1000)))
            assert results == [[]] * 1000
            return t.stats
    with ChaosServer() as server:
        stats = asyncio.run(main(server))
        assert server.peak <= 8 and stats.connections_opened <= 8 and stats.messages_sent == 1000
        assert sorted(server.subjects) == sorted(f"m-{n}" for n in range(1000))


@pytest.mark.parametrize("fault", ["close", "421"])
def test_a_reused_connection_lost_at_its_first_command_is_replaced(fault: str) -> None:
    def chaos(point: str, conn: int, tx: int) -> Optional[str]:
        return fault if point == "mail" and tx >= 1 else None

    async def main(server: ChaosServer) -> smtpsend.TransportStats:
        async with atransport(server) as t:
            for n in range(3):
                assert await t.sendmessage(part(n)) == []
            return t.stats
    with ChaosServer(fault=chaos) as server:
        stats = asyncio.run(main(server))
        assert server.subjects == ["m-0", "m-1", "m-2"] and stats.connections_replaced == 2


def test_idle_close_max_messages_and_idle_timeout() -> None:
    clock = Clock()

    async def main(server: ChaosServer) -> None:
        async with atransport(server, max_messages=2, idle_timeout=60.0) as t:
            t._pool.clock = clock
            await t.sendmessage(part(1))
            await t.sendmessage(part(2))                   # its 2nd message: QUIT
            assert server.quits == 1
            await t.sendmessage(part(3))
            clock.now += 61
            await t.sendmessage(part(4))                   # the idle one is too old: QUIT, a new one
            assert server.quits == 2 and t.stats.connections_opened == 3
    with ChaosServer() as server:
        asyncio.run(main(server))
        assert server.connections == 3 and server.quits == 3


def test_a_failure_after_the_data_is_delivery_uncertain() -> None:
    def chaos(point: str, conn: int, tx: int) -> Optional[str]:
        return "keep" if point == "data" and tx == 1 else None

    async def main(server: ChaosServer, backup: ChaosServer) -> None:
        async with smtpsend.AsyncTransport(servers=[server.host, backup.host],
                                           ports=[server.port, backup.port]) as t:
            await t.sendmessage(part(0))
            with pytest.raises(smtpsend.DeliveryUncertain):
                await t.sendmessage(part(1))
    with ChaosServer(fault=chaos) as server, ChaosServer() as backup:
        asyncio.run(main(server, backup))
        assert server.subjects == ["m-0", "m-1"] and backup.messages == []


def test_failover_and_all_servers_failed() -> None:
    async def main(down: ScriptedServer, up: ChaosServer) -> None:
        async with smtpsend.AsyncTransport(servers=["127.0.0.1", "127.0.0.1"], ports=[down.port, up.port]) as t:
            assert await t.sendmessage(part(1)) == []
        async with smtpsend.AsyncTransport(servers=["127.0.0.1"], ports=[down.port]) as t:
            with pytest.raises(smtpsend.AllServersFailed):
                await t.sendmessage(part(2))
    with ScriptedServer() as down, ChaosServer() as up:
        asyncio.run(main(down, up))
        assert up.subjects == ["m-1"] and down.connections == 2


def test_a_task_waits_for_a_free_connection_at_most_timeout() -> None:
    hold = threading.Event()

    async def main(server: ChaosServer) -> None:
        async with atransport(server, max_connections=1, timeout=0.5) as t:
            first = asyncio.ensure_future(t.sendmessage(part(1)))
            await asyncio.get_running_loop().run_in_executor(None, server.reached.wait, 10)
            with pytest.raises(smtpsend.Timeout, match="exhausted"):
                await t.sendmessage(part(2))
            hold.set()
            await first
    with ChaosServer(hold=hold) as server:
        asyncio.run(main(server))
        assert server.subjects == ["m-1"]


def test_a_cancelled_send_closes_its_connection_and_frees_its_place() -> None:
    hold = threading.Event()

    async def main(server: ChaosServer) -> smtpsend.TransportStats:
        async with atransport(server, max_connections=1) as t:
            first = asyncio.ensure_future(t.sendmessage(part(1)))
            await asyncio.get_running_loop().run_in_executor(None, server.reached.wait, 10)
            first.cancel()                                 # while it waits for the reply to MAIL
            with pytest.raises(asyncio.CancelledError):
                await first
            hold.set()
            assert await t.sendmessage(part(2)) == []
            return t.stats
    with ChaosServer(hold=hold, hold_at="mail") as server:
        stats = asyncio.run(main(server))
        assert stats.connections_opened == 2 and stats.connections_reused == 0
        assert server.subjects == ["m-2"]


def test_after_aclose_sendmessage_raises_usage_error() -> None:
    async def main(server: ChaosServer) -> None:
        t = atransport(server)
        await t.sendmessage(part())
        await t.aclose()
        with pytest.raises(smtpsend.UsageError):
            await t.sendmessage(part())
    with ChaosServer() as server:
        asyncio.run(main(server))
        assert server.quits == 1 and server.connections == 1


def test_rate_limit_waits_between_messages() -> None:
    async def main(server: ChaosServer) -> list[float]:
        waits: list[float] = []

        async def record(seconds: float) -> None:
            waits.append(seconds)
        async with atransport(server, rate_limit=5) as t:
            assert t._settings.rate is not None
            t._settings.rate.clock = Clock()
            t._sleep = record
            for n in range(3):
                await t.sendmessage(part(n))
        return waits
    with ChaosServer() as server:
        assert asyncio.run(main(server)) == pytest.approx([0.2, 0.4])


def test_every_message_is_delivered_once_or_its_task_gets_an_error() -> None:
    """Transport's reliability run, for tasks: 8 tasks at a time through
    one AsyncTransport to a server dropping connections at random points."""
    per_task = 250 if FULL else 40
    outcomes: Counter[str] = Counter()
    sent: list[str] = []
    uncertain: list[str] = []

    async def main(server: ChaosServer) -> smtpsend.TransportStats:
        async with atransport(server, max_connections=3, timeout=10) as t:
            async def work(k: int) -> None:
                for n in range(per_task):
                    subject = f"m-{k}-{n}"
                    try:
                        await t.sendmessage(part(f"{k}-{n}"))
                    except smtpsend.DeliveryUncertain:
                        outcomes["uncertain"] += 1
                        uncertain.append(subject)
                    except smtpsend.SMTPError:
                        outcomes["failed"] += 1
                    else:
                        outcomes["sent"] += 1
                        sent.append(subject)
            await asyncio.gather(*(work(k) for k in range(8)))
            return t.stats
    with ChaosServer(fault=random_faults(16)) as server:
        stats = asyncio.run(main(server))
        received = server.subjects
    assert sum(outcomes.values()) == 8 * per_task
    assert_each_once(received, sent, uncertain)
    assert stats.messages_sent == len(sent) and stats.connections_replaced > 0


def test_a_cancellation_arriving_as_a_step_completes_is_not_lost() -> None:
    """The drivers' bounded wait (smtpsend._async.within): a task
    cancelled in the same loop iteration as the step it awaits completes
    is cancelled -- asyncio.wait_for on Python 3.11 returned the step's
    result instead, and a cancelled send carried on with its message."""
    from smtpsend._async import within

    async def main() -> None:
        step: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(within(step, 10))
        await asyncio.sleep(0)                             # the task now waits for the step
        step.set_result(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(main())


def test_connections_of_an_ended_event_loop_are_never_used() -> None:
    """An AsyncTransport used by one asyncio.run after another: the first
    loop's connections cannot be driven from the second -- a new one is
    opened -- and aclose() in a third touches neither."""
    with ChaosServer() as server:
        t = atransport(server)
        asyncio.run(t.sendmessage(part(1)))
        asyncio.run(t.sendmessage(part(2)))
        asyncio.run(t.aclose())
        assert server.subjects == ["m-1", "m-2"] and server.connections == 2
        assert t.stats.connections_reused == 0 and t.closed


def test_a_task_cancelled_while_waiting_for_a_place_loses_no_place() -> None:
    hold = threading.Event()

    async def main(server: ChaosServer) -> None:
        async with atransport(server, max_connections=1, timeout=5) as t:
            first = asyncio.ensure_future(t.sendmessage(part(1)))
            await asyncio.get_running_loop().run_in_executor(None, server.reached.wait, 10)
            waiting = [asyncio.ensure_future(t.sendmessage(part(n))) for n in (2, 3)]
            await asyncio.sleep(0)                           # both are queued for the one place
            waiting[0].cancel()
            hold.set()
            assert await first == [] and await waiting[1] == []
            with pytest.raises(asyncio.CancelledError):
                await waiting[0]
            assert await t.sendmessage(part(4)) == []
            assert t.stats.waits == 2
    with ChaosServer(hold=hold) as server:
        asyncio.run(main(server))
        assert server.subjects == ["m-1", "m-3", "m-4"]
