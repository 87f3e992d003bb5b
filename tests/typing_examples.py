"""The public API used as the docs use it -- for the type checkers only.

tests/test_typing.py runs ``mypy --strict`` and ``pyright`` on this file:
every call below must type-check against the published signatures, and
each annotated result says what the docs promise it returns. Nothing here
is ever run (the name does not match ``test_*.py``, and every example is
inside a function that nothing calls): the servers named are never
contacted.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from typing import Optional

import mimecompose
import smtpsend
from mimecompose import Address, DKIMSigner, MimeError, Part
from smtpsend import pop3
from smtpsend.testing import Captured, CaptureServer


def build() -> Part:
    """mimecompose: initialize, compose, the header and body accessors."""
    part: Part = mimecompose.initialize("text/plain", string="Disk almost full",
                                        header=[("From", "ops@example.com"), ("To", "admin@example.com"),
                                                ("Subject", "alert")])
    previous: list[str] = part.setheader("X-Priority", "1", mode="append")
    subjects: list[str] = part.getheader("Subject")
    everything: list[tuple[str, str]] = part.getheader()
    raw: bytes = part.getbody()
    text: bytes | str = part.getbody(decode=True)
    wire: bytes = part.buildmessage()
    print(previous, subjects, everything, raw, text, wire)

    multipart: Part = mimecompose.initialize("multipart/mixed", parts=[part],
                                             header={"Subject": "two parts"})
    mail: Part = mimecompose.compose(text="Hello", html="<p>Hello</p>",
                                     attachments=[("report.csv", b"a,b\n1,2\n", "text/csv")],
                                     header=[("From", "a@example.com"), ("To", "b@example.com")])
    print(multipart, mail)
    return mail


def addresses_and_dates() -> None:
    """parseaddress, formataddress, parsedatetime, formatdate."""
    found: list[Address] = mimecompose.parseaddress('"Doe, John" <john@example.com>, jane@example.org')
    for address in found:
        error: Optional[str] = address.error
        print(address.address, address.local, address.domain, address.friendly, address.proper, error)
    shown: str = mimecompose.formataddress("John Doe", "john@example.com")
    when: datetime.datetime = mimecompose.parsedatetime("Mon, 23 Nov 2026 04:10:05 +0000")
    stamp: str = mimecompose.formatdate(when)
    print(shown, stamp)
    try:
        mimecompose.parsedatetime("not a date")
    except mimecompose.ParseError as exc:
        print(exc)
    except MimeError as exc:
        print(exc)


def sign(part: Part) -> bytes:
    """DKIMSigner built with keywords, signing a Part or bytes."""
    signer = DKIMSigner(domain="example.com", selector="mail", key=b"-----BEGIN PRIVATE KEY-----...",
                        algorithm="ed25519-sha256", headers=["From", "To", "Subject"],
                        expires=datetime.timedelta(days=7))
    field: str = signer.signature(part)
    signed: bytes = signer.sign(part.buildmessage())
    print(field)
    rsa_signer = DKIMSigner(domain="example.com", selector="r2026", key="dkim-rsa.pem")
    smtpsend.sendmessage(part, servers=["mail.example.com"], dkim=[rsa_signer, signer])
    with smtpsend.connect("mail.example.com", dkim=rsa_signer) as c:
        c.sendmessage(part, dkim=signer)
        c.sendmessages([part], dkim=[])
    return signed


def send(part: Part) -> None:
    """sendmessage with keywords, and the errors' attributes."""
    context = ssl.create_default_context()
    try:
        rejected: list[smtpsend.Rejected] = smtpsend.sendmessage(
            part, servers=["mail.example.com", "backup.example.com"], ports=[587, 25],
            username="ops", password="...", tlspolicy="secure", ssl_context=context,
            recipients=["admin@example.com"], originator="ops@example.com",
            header=[("X-Mailer", "typing-examples")], atleastone=True, maxsecs=60, debug=True)
    except smtpsend.RecipientsRefused as exc:
        refused: list[smtpsend.Rejected] = exc.rejected
        print(refused, exc.reply, exc.command)
        return
    except smtpsend.AllServersFailed as exc:
        for attempt in exc.attempts:
            print(attempt.server, attempt.port, attempt.stage, attempt.error)
        return
    except smtpsend.ReplyError as exc:
        reply: smtpsend.Reply = exc.reply
        print(reply.code, reply.lines, reply.text, reply.status, reply.is_permanent)
        return
    except smtpsend.SMTPError as exc:
        server: Optional[str] = exc.server
        port: Optional[int] = exc.port
        stage: Optional[str] = exc.stage
        print(server, port, stage, exc.is_transient, exc.is_permanent)
        return
    except smtpsend.UsageError as exc:
        print(exc)
        return
    for r in rejected:
        code: int = r.code
        print(r.address, code, r.text, r.status)

    def policy(code: int, message: str) -> str:
        return "insecure" if code == 0 else "secure"

    smtpsend.sendmessage(part, servers="mail.example.com", tlsimport=True, tlspolicy=policy,
                         debug=print, notify=["failure", "delay"], ret="hdrs")


def urls(part: Part) -> None:
    """Server URLs: in servers=, in connect(), and parse_url()."""
    smtpsend.sendmessage(part, servers=["smtps://ops%40example.com:app-password@mail.example.com?timeout=10",
                                        "smtp+starttls://backup.example.com", "fallback.example.com:2525"])
    parsed: smtpsend.ServerURL = smtpsend.parse_url("smtps://ops@mail.example.com:465?tlspolicy=secure")
    host: str = parsed.host
    port: Optional[int] = parsed.port
    default_port: Optional[int] = parsed.default_port
    tlsimport: Optional[bool] = parsed.tlsimport
    username: Optional[str] = parsed.username
    entry: str = parsed.server
    print(host, port, default_port, tlsimport, username, entry, parsed.password, parsed.keywords(), str(parsed))
    with smtpsend.connect("smtps://ops@mail.example.com", password="...") as c:
        seed: smtpsend.Reply = c.send("ops@example.com")
        turned: smtpsend.Reply = c.turn(i_know_turn_is_obsolete=True)
        print(seed, turned)


async def send_async(part: Part) -> list[smtpsend.Rejected]:
    """asendmessage takes the same keywords as sendmessage."""
    first = smtpsend.asendmessage(part, servers=["mail.example.com"], ports=[587], username="ops",
                                  password="...", timeout=30.0)
    second = smtpsend.asendmessage(part, servers="backup.example.com", usetls=False)
    results: list[list[smtpsend.Rejected]] = list(await asyncio.gather(first, second))
    return results[0]


def pooled(parts: list[Part]) -> None:
    """Transport: a pool shared by threads; its stats (docs/transport.md)."""
    with smtpsend.Transport(servers=["mail.example.com"], ports=[587], username="app", password="...",
                            max_connections=4, max_messages=100, idle_timeout=60.0, rate_limit=5.0) as transport:
        for part in parts:
            rejected: list[smtpsend.Rejected] = transport.sendmessage(part, atleastone=True, notify="FAILURE")
            print(rejected)
        stats: smtpsend.TransportStats = transport.stats
        opened: int = stats.connections_opened
        reused: int = stats.connections_reused
        print(opened, reused, stats.messages_sent, stats.connections_replaced)


async def pooled_async(parts: list[Part]) -> int:
    """AsyncTransport: the same for the tasks of one event loop."""
    async with smtpsend.AsyncTransport(servers=["mail.example.com"], max_connections=8) as transport:
        results: list[list[smtpsend.Rejected]] = list(
            await asyncio.gather(*(transport.sendmessage(part) for part in parts)))
        print(results)
        stats: smtpsend.TransportStats = transport.stats
    await transport.aclose()
    return stats.messages_sent


def client(parts: list[Part]) -> None:
    """connect() and Client: several messages over one connection."""
    with smtpsend.connect("mail.example.com", port=587, username="ops", password="...",
                          timeout=30.0) as c:
        extensions: smtpsend.Extensions = c.ehlo()
        size: Optional[int] = extensions.size
        print("PIPELINING" in extensions, extensions.params("AUTH"), size)
        rejected: list[smtpsend.Rejected] = c.sendmessage(parts[0], recipients="admin@example.com")
        outcomes: list[smtpsend.Outcome] = c.sendmessages(parts[1:], window=8)
        reply: smtpsend.Reply = c.noop()
        print(rejected, outcomes, reply)
    verified: smtpsend.Reply = smtpsend.verify("postmaster", server="mail.example.com")
    print(verified)


def envelopes(part: Part) -> None:
    """envelope() and transmitted()."""
    env: smtpsend.Envelope = smtpsend.envelope(part)
    originator: str = env.originator
    recipients: list[str] = env.recipients
    other, data = smtpsend.transmitted(part, originator="ops@example.com", recipients=["a@example.com"])
    octets: bytes = data
    print(originator, recipients, other.recipients, octets)


def capture(part: Part) -> None:
    """testing.CaptureServer, as the testing docs use it."""
    with CaptureServer(users={"ops": "secret"}) as server:
        smtpsend.sendmessage(part, servers=[server.host], ports=[server.port], username="ops",
                             password="secret", tlspolicy="insecure")
        [message] = server.messages
        captured: Captured = message
        data: bytes = captured.data
        print(captured.envelope.recipients, data, captured.part)


def pop(host: str) -> None:
    """pop3.connect and the mailbox commands."""
    box: pop3.POP3 = pop3.connect(host, port=995, tlsimport=True, timeout=30.0)
    greeting: str = box.login("ops", "...")
    count, octets = box.stat()
    sizes: dict[int, int] = box.list()
    message: Part = box.retr(1)
    data: bytes = box.retr_bytes(1)
    with open("message.eml", "wb") as out:
        written: int = box.retr_to(1, out)
    print(greeting, count + octets, sizes, message, data, written)
    box.quit()


def oauth(part: Part) -> None:
    """token= as a callable token(username, refresh), asked once per connection."""
    def token(username: str, refresh: bool) -> str:
        return "new-token" if refresh else "cached-token"
    smtpsend.sendmessage(part, servers=["smtp.example.com"], username="ops@example.com", token=token)
    with smtpsend.connect("smtp.example.com", port=587, username="ops@example.com", token=token) as smtp:
        smtp.sendmessage(part)
    with CaptureServer(tokens={"ops": "t0k"}, tlsimport=False) as server:
        print(server.port)


if __name__ == "__main__":
    raise SystemExit("typing_examples.py is for type checkers only: it is never run")
