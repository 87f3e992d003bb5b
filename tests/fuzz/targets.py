"""Fuzz targets: each takes bytes and may raise only the documented errors.

Shared by tests/test_fuzz.py (a bounded run in the normal suite) and
tests/fuzz/fuzz.py (a long run that reports how many inputs it tried).
"""

from __future__ import annotations

import socket

import mimecompose
import smtpsend
from mimecompose._codecs import decode_rfc2231, field_decode, word_decode
from mimecompose._codecs import Base64Encoder, QuotedPrintableEncoder, decode_body
from mimecompose._headers import parse_content_type, parse_field_block
from smtpsend import pop3
from smtpsend._extensions import Extensions
from smtpsend._reply import Reply, ReplyParser


def reply_parser(data: bytes) -> None:
    """Whole, then split in two: the same replies, or RemoteProtocolError."""
    try:
        whole = ReplyParser().feed(data)
    except smtpsend.RemoteProtocolError:
        return
    cut = len(data) // 2
    parser = ReplyParser()
    assert parser.feed(data[:cut]) + parser.feed(data[cut:]) == whole


def ehlo_parser(data: bytes) -> None:
    lines = tuple(data.decode("utf-8", "replace").split("\n")) or ("",)
    ext = Extensions.from_reply(Reply(250, lines))
    ext.size, ext.auth, "PIPELINING" in ext
    # every AUTH mechanism announced, upper-cased, once, in order of first mention
    auth = ext.auth
    assert len(auth) == len(set(auth)) and all(m == m.upper() and m for m in auth)


def address_parser(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for addr in mimecompose.parseaddress(text):
        assert isinstance(addr.address, str)
        if addr.error is None and addr.address and addr.phrase == "" and not addr.comment and not addr.route:
            again = mimecompose.parseaddress(mimecompose.formataddress("", addr.address))
            assert again[0].address == addr.address


def date_parser(data: bytes) -> None:
    """A Date value: an aware datetime or ValueError, never anything else;
    what formatdate writes reads back as the same instant and offset, and
    -0000 (UNKNOWN_ZONE) stays -0000."""
    try:
        when = mimecompose.parsedatetime(data.decode("utf-8", "replace"))
    except ValueError:
        return
    assert when.utcoffset() is not None
    again = mimecompose.parsedatetime(mimecompose.formatdate(when))
    assert again == when and again.utcoffset() == when.utcoffset()
    assert (again.tzname() == "-0000") == (when.tzname() == "-0000")


def header_parser(data: bytes) -> None:
    fields, used, _problem = parse_field_block(data)
    assert 0 <= used <= len(data)
    for field in fields:
        field_decode(field.value)
        if field.lname == "content-type":
            main, pairs, _ok = parse_content_type(field.value)
            decode_rfc2231(pairs)


def encoded_words(data: bytes) -> None:
    text = data.decode("latin-1")
    field_decode(text)
    try:
        word_decode(text)
    except mimecompose.MimeError:
        pass


def _mime_shape(part) -> list:
    """The tree and every field of every part, as a reader sees them."""
    shape, stack = [], [part]
    while stack:
        p = stack.pop()
        props = p.getproperty()
        shape.append((props["content"], p.getheader(decode=False)))
        stack.extend(reversed(props.get("parts", ())))
        if "size" in props:
            p.getbody(decode=True)
    return shape


def mime_parser(data: bytes) -> None:
    """Any bytes parse; the transmitted form (CRLF-normalised buildmessage:
    what the receiver gets) parses to the same fields and parts, and the
    parser's work stays linear in the size."""
    import re
    part = mimecompose.initialize(string=data)
    # 4 per octet, and at most 5 per octet of the 3x the size that encoded
    # message/rfc822 parts may decode in all (mimecompose._parse)
    assert part._parsed.work <= 19 * len(data) + 64
    shape = _mime_shape(part)
    sent = part.buildmessage()
    assert not re.search(rb"\r(?!\n)|(?<!\r)\n", sent)
    assert _mime_shape(mimecompose.initialize(string=sent)) == shape


def pop3_responses(data: bytes) -> None:
    """A POP3 server that sends ``data`` as its whole side of the conversation.
    What the client keeps stays within its bounds: no line over max_line,
    no response over max_octets, no listing costing more than max_octets
    (ENTRY_COST per entry), the read buffer within max_line plus one read."""
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(data[:60000])
        theirs.shutdown(socket.SHUT_WR)
        box = pop3.POP3(ours, "localhost", timeout=2, ssl_context=None, logfile=None)
        box.max_octets = 1 << 12
        box.max_line = 200
        try:
            box._greet()
            box.stat()
            listing = box.list()
            assert len(listing) * pop3.ENTRY_COST <= box.max_octets
            message = box.retr_bytes(1)
            assert len(message) <= box.max_octets
            assert all(len(line) < box.max_line for line in message.split(b"\n"))
        except (smtpsend.SMTPError, pop3.POP3Error):
            pass
        assert len(box._buffer) <= box.max_line + 65536
    finally:
        ours.close()
        theirs.close()


def content_type_params(data: bytes) -> None:
    """A Content-Type value: parameters, comments, RFC 2231 sections. Never
    raises; what is wrong is a bounded list of problems."""
    problems: list[str] = []
    main, pairs, _ok = parse_content_type(data.decode("utf-8", "surrogateescape"), problems)
    params = decode_rfc2231(pairs, problems)
    assert main == main.lower() and all(isinstance(v, str) for v in params.values())
    assert len(problems) <= 20


def body_decoding(data: bytes) -> None:
    """Every transfer decoding takes any body; our own encodings read back exactly."""
    for encoding in ("base64", "quoted-printable", "x-uuencode", "7bit"):
        out, problem = decode_body(data, encoding)
        assert isinstance(out, bytes) and (problem is None or isinstance(problem, str))
    for encoder, encoding in ((Base64Encoder(), "base64"), (QuotedPrintableEncoder(text=False), "quoted-printable")):
        assert decode_body(encoder.feed(data) + encoder.flush(), encoding) == (data, None)


def transmitted_message(data: bytes) -> None:
    """Any bytes as a message to send: a clean UsageError (no originator, no
    recipients, a malformed address), or bytes with no Bcc/Resent-Bcc field
    (read at every CR, LF or CRLF, as a receiver may) and, outside binary
    parts, no bare CR or LF."""
    import re
    try:
        _env, out = smtpsend.transmitted(data)
    except smtpsend.UsageError:
        return
    head = re.split(rb"\r\n\r\n", out, maxsplit=1)[0]
    assert not re.search(rb"(?:^|[\r\n])(?:resent-)?bcc[ \t]*:", head, re.I), out
    if b"binary" not in data.lower():
        assert not re.search(rb"\r(?!\n)|(?<!\r)\n", out), out


def sasl_challenges(data: bytes) -> None:
    """Every SASL mechanism answers any server challenges with bytes or
    SASLFailure; the session's AUTH loop, given the same challenges as
    replies, raises only SMTPError (never IndexError, ValueError...)."""
    import base64
    from smtpsend._sasl import MECHANISMS, SASLFailure
    from smtpsend._driver import Read, Send, StartTLS, TLSInfo
    from smtpsend._session import Session
    lines = data.split(b"\n")[:16]
    for cls in MECHANISMS:
        extra = {"cnonce": "fuzz"} if cls.name.startswith(("SCRAM", "DIGEST")) else {}
        mech = cls("user", "pencil", "tok", "mx.example", b"\x07" * 12, **extra)
        try:
            mech.start()
            for line in lines:   # "r=" + our nonce reaches SCRAM's deeper checks
                assert isinstance(mech.respond(line.replace(b"r=", b"r=fuzz", 1)), bytes)
            mech.finish()
        except SASLFailure:
            pass
    codes = [334, 334, 334, 334, 235, 421, 454, 501, 504, 535, 538, 334]
    replies = [Reply(220, ("mx",)), Reply(250, ("mx", "AUTH " + " ".join(m.name for m in MECHANISMS)))]
    for line in lines:
        code = codes[line[0] % len(codes)] if line else 334
        raw = line[:1] == b"~"   # a challenge that is not base64
        text = base64.b64encode(line[1:]).decode() if code == 334 and not raw else \
            line[1:].decode("utf-8", "replace").replace("\r", " ")
        replies.append(Reply(code, (text,)))
    session = Session(client="c.example", implicit_tls=True, username="user", password="pencil", token="tok")
    dialogue = session.open()
    value: object = None
    try:
        while True:
            action = dialogue.send(value)
            if isinstance(action, StartTLS):
                value = TLSInfo("TLSv1.2", "x", b"\x07" * 12, {})
            elif isinstance(action, Read):
                value = [replies.pop(0) if replies else Reply(535, ("5.7.8 no",)) for _ in range(action.count)]
            else:
                assert isinstance(action, Send)
                value = None
    except StopIteration:
        pass
    except smtpsend.SMTPError:
        pass


def pop3_sasl(data: bytes) -> None:
    """POP3's AUTH driving the shared SASL login loop (smtpsend._sasl) over
    any server side: continuations made of the data's lines (base64 or
    not), +OK, -ERR, -ERR [AUTH], with a token callable that asks for a
    refresh. Only the documented errors come out (POP3Error, SMTPError)."""
    import base64
    from smtpsend._sasl import MECHANISMS
    answers = [b"+ ", b"+ ", b"+ ", b"+OK", b"-ERR no", b"-ERR [AUTH] refused", b"+ ~"]
    out = [b"+OK ready\r\n", b"+OK\r\nSASL " + " ".join(m.name for m in MECHANISMS).encode() + b"\r\n.\r\n"]
    for line in data.split(b"\n")[:24]:
        kind = answers[line[0] % len(answers)] if line else b"+ "
        if kind == b"+ ":
            out.append(b"+ " + base64.b64encode(line[1:].replace(b"r=", b"r=fuzz", 1)) + b"\r\n")
        elif kind == b"+ ~":
            out.append(b"+ " + line[1:].replace(b"\r", b" ") + b"\r\n")
        else:
            out.append(kind + b"\r\n")
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(b"".join(out)[:60000])
        theirs.shutdown(socket.SHUT_WR)
        box = pop3.POP3(ours, "localhost", timeout=2, ssl_context=None, logfile=None)
        box._cleartext_allowed = True
        try:
            box._greet()
            box.auth("user", "pencil", token=lambda user, refresh: "tok2" if refresh else "tok")
        except (smtpsend.SMTPError, pop3.POP3Error):
            pass
    finally:
        ours.close()
        theirs.close()


def cli_config(data: bytes) -> None:
    """The smtpsend command's configuration files (msmtp syntax): any text
    parses, and every account resolves, or raises CLIError with status 78.
    Like load_config, it never parses more than MAX_CONFIG octets."""
    from smtpsend import _cliconfig, _cliexit
    try:
        text = data[:_cliconfig.MAX_CONFIG].decode("utf-8", "replace")
        config = _cliconfig.parse_config(text, "fuzz", lambda message: None)
        for settings in config.accounts.values():
            _cliconfig.resolve_account(settings, lambda message: None)
    except _cliexit.CLIError as exc:
        assert exc.code == _cliexit.EX_CONFIG and str(exc).startswith("fuzz:"), exc


def pipelined_replies(data: bytes) -> None:
    """Any bytes as the replies to a pipelined MAIL, RCPT, RCPT, BDAT LAST,
    QUIT group (then the server closes), whole and one byte at a time: the
    same outcome, an SMTPError or "delivered" -- and "delivered" only when
    the replies line up with the commands (no 421, a 2xx to MAIL and to the
    data, a 221 or nothing to QUIT)."""
    from smtpsend._data import MessageData
    from smtpsend._envelope import Envelope
    from smtpsend._reply import ReplyBuffer
    from smtpsend._driver import Read, Send
    from smtpsend._esmtp import Delivery
    from smtpsend._session import Session

    def outcome(bytewise: bool) -> object:
        buffer = ReplyBuffer()
        buffer.feed(b"220 mx\r\n250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
        session = Session(client="c.example", usetls=False)
        dialogue = session.run(Envelope("a@x.org", ["b@y.org", "c@y.org"]),
                               MessageData(lambda: iter([b"Subject: t\r\n\r\nx\r\n"])), Delivery(atleastone=True))
        value: object = None
        error: BaseException | None = None
        fed = False
        try:
            while True:
                action = dialogue.throw(error) if error is not None else dialogue.send(value)
                value, error = None, None
                if isinstance(action, Read):
                    if not buffer.have(action.count) and not fed:
                        fed = True
                        try:
                            for chunk in ([data[i:i + 1] for i in range(len(data))] if bytewise else [data]):
                                buffer.feed(chunk)
                        except smtpsend.RemoteProtocolError as exc:
                            error = exc
                            continue
                    if buffer.have(action.count):
                        value = buffer.take(action.count)
                    else:
                        error = smtpsend.TransportError("connection closed by the server")
                else:
                    assert isinstance(action, Send)
        except StopIteration as stop:
            return stop.value
        except smtpsend.SMTPError as exc:
            return type(exc)

    whole, bytewise = outcome(False), outcome(True)
    assert whole == bytewise or smtpsend.RemoteProtocolError in (whole, bytewise), (whole, bytewise)
    if whole == []:
        replies = ReplyParser().feed(data)
        codes = [r.code for r in replies]
        assert len(codes) >= 4 and 421 not in codes[:4] and codes[0] // 100 == 2 and codes[3] // 100 == 2, codes
        assert replies[3].status is None or replies[3].status.subject != 1, replies
        assert len(codes) == 4 or codes[4] in (221, 421), codes


_DKIM_SIGNERS: list = []


def dkim_signature(data: bytes) -> None:
    """Any message gets a DKIM signature, or MimeError when it has no From;
    the signed message is CRLF throughout and ends with CRLF; the body hash
    and the signed field list are the same however the message is cut into
    chunks."""
    import re
    if not _DKIM_SIGNERS:
        from cryptography.hazmat.primitives.asymmetric import ed25519
        _DKIM_SIGNERS.append(mimecompose.DKIMSigner(domain="example.com", selector="s", algorithm="ed25519-sha256",
                                                    key=ed25519.Ed25519PrivateKey.generate()))
    signer = _DKIM_SIGNERS[0]
    try:
        signed = signer.sign(data)
    except mimecompose.MimeError:
        return
    assert signed.startswith(b"DKIM-Signature: v=1; ") and signed.endswith(b"\r\n")
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", signed) is None

    def tags(value: str) -> tuple[str, str]:
        found = dict(t.split("=", 1) for t in re.sub(r"\s+", "", value).split(";") if t)
        return found["bh"], found["h"]

    cut = len(data) // 3
    assert tags(signer.signature(data)) == tags(signer.signature(iter([data[:cut], data[cut:]])))


def server_url(data: bytes) -> None:
    """Any text as a server URL: a ServerURL or UsageError, never anything
    else; a URL parsed reads back to itself from its str(), and nothing
    parsed holds a control character."""
    text = data.decode("utf-8", "surrogateescape")
    try:
        url = smtpsend.parse_url(text)
    except smtpsend.UsageError:
        return
    assert smtpsend.parse_url(str(url)) == url
    parts = [url.host, url.path or "", url.username or "", *url.options.values()]
    assert not any(c < " " or "\x7f" <= c <= "\x9f" for part in parts for c in part)


TARGETS = {f.__name__: f for f in (server_url, reply_parser, ehlo_parser, address_parser, date_parser, header_parser, encoded_words,
                                   mime_parser, pop3_responses, content_type_params, body_decoding,
                                   transmitted_message, sasl_challenges, cli_config, pipelined_replies,
                                   dkim_signature, pop3_sasl)}
