"""smtpsend.Transport against Postfix (tests/rig): reuse over the
submission port with STARTTLS and AUTH, and the reliability run through a
proxy that drops connections at random points, every message counted in
the mailbox over POP3."""

from __future__ import annotations

import random
import socket
import threading
import uuid
from typing import Any, Callable, Optional

import pytest

import mimecompose
import smtpsend
from smtpsend import pop3

from test_transport import FULL, assert_each_once


def build(subject: str) -> mimecompose.Part:
    return mimecompose.compose(f"Body of {subject}\n", header=[
        ("From", "bob@example.test"), ("To", "alice@example.test"), ("Subject", subject),
        ("Message-ID", f"<{subject}@example.test>")])


def mailbox_subjects(rig: Any, prefix: str) -> list[str]:
    """The Subject of every message in alice's mailbox that starts with
    ``prefix`` (deleted as they are read), one entry per copy."""
    assert rig.queue_empty(60), "Postfix still has mail in its queue"
    found = []
    with pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context) as box:
        box.login("alice@example.test", rig.users["alice@example.test"][0])
        for n in box.list():
            for line in box.top(n, 0).split(b"\r\n"):
                if line.startswith(b"Subject: " + prefix.encode()):
                    found.append(line[9:].decode())
                    box.dele(n)
    return found


def test_one_submission_connection_carries_every_message(rig: Any) -> None:
    prefix = f"pool-{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    with smtpsend.Transport(servers=["localhost"], ports=[rig.ports["submission"]], ssl_context=rig.context,
                            username="alice@example.test", password=rig.users["alice@example.test"][0],
                            debug=lines.append) as transport:
        for n in range(10):
            assert transport.sendmessage(build(f"{prefix}-{n}")) == []
        stats = transport.stats
    assert (stats.connections_opened, stats.connections_reused, stats.messages_sent) == (1, 9, 10)
    assert lines.count("> STARTTLS") == 1 and sum(l.startswith("> AUTH") for l in lines) == 1
    assert sorted(mailbox_subjects(rig, prefix)) == sorted(f"{prefix}-{n}" for n in range(10))


def test_threads_share_the_pool(rig: Any) -> None:
    prefix = f"pool-{uuid.uuid4().hex[:8]}"
    errors: list[BaseException] = []
    with smtpsend.Transport(servers=["localhost"], ports=[rig.ports["submission"]], ssl_context=rig.context,
                            username="alice@example.test", password=rig.users["alice@example.test"][0],
                            max_connections=2) as transport:
        def work(k: int) -> None:
            for n in range(5):
                try:
                    transport.sendmessage(build(f"{prefix}-{k}-{n}"))
                except BaseException as exc:   # noqa: BLE001 - reported below
                    errors.append(exc)
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and transport.stats.connections_opened <= 2
    assert sorted(mailbox_subjects(rig, prefix)) == sorted(f"{prefix}-{k}-{n}" for k in range(4) for n in range(5))


class DroppingProxy:
    """127.0.0.1:port -> Postfix, dropping connections where ``decide(point)``
    says: "mail" (MAIL seen: drop before it reaches Postfix), "data" (the
    final "." or BDAT LAST seen: "drop" before it reaches Postfix, or "keep": pass it
    and drop before the reply comes back) and "idle" (after the reply to
    the message: drop the idle connection)."""

    def __init__(self, target: int, decide: Callable[[str], Optional[str]]) -> None:
        self.target = ("127.0.0.1", target)
        self.decide = decide
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port: int = self.sock.getsockname()[1]
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            state = {"after_dot": False, "keep": False}
            lock = threading.Lock()

            def drop(a: socket.socket = client, b: socket.socket = server) -> None:
                with lock:
                    self.dropped += 1
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

            threading.Thread(target=self._up, args=(client, server, state, drop), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state, drop), daemon=True).start()

    def _up(self, src: socket.socket, dst: socket.socket, state: dict[str, bool], drop: Callable[[], None]) -> None:
        try:
            while data := src.recv(65536):
                if b"MAIL FROM" in data and self.decide("mail") == "close":
                    return drop()
                if b"\r\n.\r\n" in data or b" LAST\r\n" in data:   # the end of DATA, or BDAT ... LAST
                    what = self.decide("data")
                    if what == "drop":
                        return drop()
                    state["keep"] = what == "keep"
                    state["after_dot"] = True
                dst.sendall(data)
        except OSError:
            pass
        drop()

    def _down(self, src: socket.socket, dst: socket.socket, state: dict[str, bool], drop: Callable[[], None]) -> None:
        try:
            while data := src.recv(65536):
                if state["after_dot"] and state["keep"]:
                    return drop()
                dst.sendall(data)
                if state["after_dot"]:
                    state["after_dot"] = False
                    if self.decide("idle") == "close":
                        return drop()
        except OSError:
            pass
        drop()


def test_every_message_delivered_once_or_reported_through_a_dropping_proxy(rig: Any) -> None:
    per_thread = 250 if FULL else 15
    prefix = f"chaos-{uuid.uuid4().hex[:8]}"
    rng = random.Random(15)
    lock = threading.Lock()

    def decide(point: str) -> Optional[str]:
        with lock:
            roll = rng.random()
        if point == "idle":
            return "close" if roll < 0.15 else None
        if point == "mail":
            return "close" if roll < 0.05 else None
        return "drop" if roll < 0.04 else "keep" if roll < 0.08 else None

    proxy = DroppingProxy(rig.ports["plain"], decide)
    sent: list[str] = []
    uncertain: list[str] = []
    failed: list[str] = []
    try:
        with smtpsend.Transport(servers=["127.0.0.1"], ports=[proxy.port], max_connections=3,
                                timeout=30) as transport:
            def work(k: int) -> None:
                for n in range(per_thread):
                    subject = f"{prefix}-{k}-{n}"
                    try:
                        transport.sendmessage(build(subject))
                    except smtpsend.DeliveryUncertain:
                        uncertain.append(subject)
                    except smtpsend.SMTPError:
                        failed.append(subject)
                    else:
                        sent.append(subject)
            threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            stats = transport.stats
    finally:
        proxy.close()
    received = mailbox_subjects(rig, prefix)
    assert len(sent) + len(uncertain) + len(failed) == 8 * per_thread
    assert_each_once(received, sent, uncertain)
    assert proxy.dropped > 0 and stats.messages_sent == len(sent)


def test_django_send_mail_through_postfix(rig: Any) -> None:
    """Django's send_mail, EmailMultiAlternatives (with an attachment and a
    Bcc) and get_connection() through smtpsend.django.EmailBackend, over
    Postfix's submission port with STARTTLS and AUTH: every message arrives,
    over one connection, and no Bcc field is delivered."""
    pytest.importorskip("django")
    from django.conf import settings
    if not settings.configured:
        settings.configure(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
    from django.core import mail
    from django.test import override_settings

    import smtpsend.django

    prefix = f"django-{uuid.uuid4().hex[:8]}"
    with override_settings(EMAIL_BACKEND="smtpsend.django.EmailBackend", EMAIL_HOST="localhost",
                           EMAIL_PORT=rig.ports["submission"], EMAIL_USE_TLS=True,
                           EMAIL_HOST_USER="alice@example.test",
                           EMAIL_HOST_PASSWORD=rig.users["alice@example.test"][0],
                           SMTPSEND={"ssl_context": rig.context}):
        try:
            assert mail.send_mail(f"{prefix}-plain", "Hello from Django\n", "alice@example.test",
                                  ["alice@example.test"]) == 1
            with mail.get_connection() as connection:
                rich = mail.EmailMultiAlternatives(f"{prefix}-rich", "text\n", "alice@example.test",
                                                   ["alice@example.test"], bcc=["bob@example.test"],
                                                   connection=connection)
                rich.attach_alternative("<p>html</p>", "text/html")
                rich.attach("Bericht März.txt", "Inhalt\n", "text/plain")
                assert rich.send() == 1
                assert connection.send_messages([mail.EmailMessage(f"{prefix}-{n}", "x\n", "alice@example.test",
                                                                   ["alice@example.test"]) for n in range(3)]) == 3
                stats = connection.transport.stats
            assert stats.connections_opened == 1 and stats.messages_sent == 5
        finally:
            smtpsend.django.close_transports()
    subjects = mailbox_subjects(rig, prefix)
    assert sorted(subjects) == sorted([f"{prefix}-plain", f"{prefix}-rich"] + [f"{prefix}-{n}" for n in range(3)])
    copies = []
    with pop3.connect("localhost", port=rig.ports["pop3"], ssl_context=rig.context) as box:
        box.login("bob@example.test", rig.users["bob@example.test"][0])
        for n in box.list():
            message = box.retr_bytes(n)
            if f"Subject: {prefix}-rich".encode() in message:
                copies.append(message)
                box.dele(n)
    assert len(copies) == 1                       # the Bcc recipient got it...
    head = copies[0].split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head              # ...and no Bcc field says so
