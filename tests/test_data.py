"""Message data (smtpsend._data): measured once, sent as measured, never
decoded to be sent, and the same octets over DATA and BDAT."""

import base64
import os
import tracemalloc

import pytest
from hypothesis import given, strategies as st

import mimecompose
import smtpsend
import smtpsend._data
from smtpsend._data import MessageChanged, MessageData, _has_binary, data_blocks
from smtpsend._envelope import Envelope
from smtpsend._reply import Reply
from smtpsend._driver import Read, Send
from smtpsend._session import Session
from smtpsend._sync import pump
from smtpsend.testing import CaptureServer


def unstuffed(wire: bytes) -> bytes:
    """What a server stores from DATA: the terminator removed, dots unstuffed."""
    assert wire.endswith(b".\r\n")
    body = wire[:-3]
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in body.split(b"\r\n"))


class Sink:
    """A driver that answers with fixed replies and keeps what is written
    (or, with ``keep=False``, only counts it)."""

    def __init__(self, *codes_and_texts, keep=True):
        self.replies = [Reply(code, tuple(text.split("\n"))) for code, text in codes_and_texts]
        self.written = bytearray()
        self.keep = keep
        self.count = 0

    def perform(self, action):
        if isinstance(action, Send):
            for block in [action.data] if isinstance(action.data, bytes) else action.data:
                self.count += len(block)
                if self.keep:
                    self.written += block
            return None
        assert isinstance(action, Read)
        out, self.replies = self.replies[:action.count], self.replies[action.count:]
        assert len(out) == action.count, "the client waits for more replies than the server has"
        return out


def chunking_server(keep=True):
    return Sink((220, "mx"), (250, "mx\nPIPELINING\nCHUNKING\n8BITMIME"), (250, "ok"), (250, "ok"),
                (250, "2.0.0 queued"), (221, "bye"), keep=keep)


def send(data, sink=None):
    sink = sink or chunking_server()
    session = Session(client="c.example", usetls=False)
    pump(session.run(Envelope("a@x.org", ["b@y.org"]), data, True), sink)
    return sink


# ---------------------------------------------------------------- one message, one set of bytes (issue 11, item 18)

@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=5))
def test_data_and_bdat_carry_the_same_octets(body, cuts):
    cuts = sorted(c for c in cuts if c <= len(body))
    chunks = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
    data = MessageData(lambda: iter(chunks))
    octets = b"".join(data.chunks())
    assert len(octets) == data.size                          # what BDAT announces
    assert unstuffed(b"".join(data_blocks(data.chunks()))) == octets   # what DATA delivers
    assert octets == b"" or octets.endswith(b"\r\n")


def test_a_message_without_a_final_line_break_gets_one():
    data = MessageData(lambda: iter([b"Subject: t\r\n\r\nno newline"]))
    octets = b"".join(data.chunks())
    assert octets == b"Subject: t\r\n\r\nno newline\r\n" and data.size == len(octets)


def test_binary_octets_are_kept_as_they_are():
    data = MessageData(lambda: iter([b"Subject: t\r\n\r\n\x00\r\x01\n"]), binary=True)
    assert b"".join(data.chunks()) == b"Subject: t\r\n\r\n\x00\r\x01\n"


# ---------------------------------------------------------------- what was measured is what is sent (issue 11, item 3)

class Changing:
    """A message source whose second serialisation differs from the first."""

    def __init__(self, first, second):
        self.versions = [first, second]

    def __call__(self):
        return iter(self.versions.pop(0) if len(self.versions) > 1 else self.versions[0])


BLOCKS = [b"Subject: t\r\n\r\n", b"a" * 70000 + b"\r\n", b"b" * 70000 + b"\r\n", b"c\r\n"]


@pytest.mark.parametrize("second", [
    BLOCKS + [b"MAIL FROM:<evil@x.org>\r\n"],                    # grew
    BLOCKS[:-1],                                                 # shrank
    BLOCKS[:-1] + [b"d\r\n"],                                    # same size, other octets
], ids=["grew", "shrank", "changed"])
def test_a_changed_message_is_stopped_before_its_end(monkeypatch, second):
    monkeypatch.setattr(smtpsend._data, "_KEEP", 1000)
    data = MessageData(Changing(BLOCKS, second))
    sent = []
    with pytest.raises(MessageChanged) as info:
        for chunk in data.chunks():
            sent.append(chunk)
    assert isinstance(info.value, ValueError)
    assert 0 < sum(map(len, sent)) < data.size       # short of the end: never a complete message


def test_an_unchanged_large_message_is_sent_as_measured(monkeypatch):
    monkeypatch.setattr(smtpsend._data, "_KEEP", 1000)
    data = MessageData(Changing(BLOCKS, list(BLOCKS)))
    assert b"".join(data.chunks()) == b"".join(BLOCKS) and data.size == sum(map(len, BLOCKS))
    assert b"".join(data.chunks()) == b"".join(BLOCKS)     # again, for another server


def test_the_head_is_measured_once_for_monitors():
    data = MessageData(lambda: iter([b"Subject: t\r\n", b"X: y\r\n\r\nbody\r\n"]))
    assert data.head == b"Subject: t\r\nX: y\r\n\r\nbody\r\n"


# ---------------------------------------------------------------- never decode to send (issue 11, items 5 and 6)

def _parsed(attachment: bytes) -> mimecompose.Part:
    # a quoted-printable body with a long run of blanks (quadratic to decode
    # with a backtracking regex), a base64 attachment and a nested message
    qp = b"a" + b" " * 40000 + b"b=\r\n end\r\n"
    raw = (b"From: a@x.org\r\nTo: b@y.org\r\nSubject: parsed\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
           b"--B\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + qp +
           b"--B\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\ninner=3Dtext\r\n"
           b"--B\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(attachment).replace(b"\n", b"\r\n") + b"--B--\r\n")
    return mimecompose.initialize(string=raw)


def _no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a body was decoded to be sent")
    monkeypatch.setattr(mimecompose.Part, "getbody", refuse)
    monkeypatch.setattr(mimecompose._part, "decode_body", refuse)


def test_sending_a_parsed_message_decodes_no_body(monkeypatch):
    part = _parsed(os.urandom(3000))
    expected = part.buildmessage()
    _no_decoding(monkeypatch)
    data = MessageData.from_part(part)
    assert not data.binary
    written = bytes(send(data).written)
    assert expected in written


def test_sending_a_parsed_message_through_sendmessage_decodes_no_body(monkeypatch):
    part = _parsed(os.urandom(3000))
    _no_decoding(monkeypatch)
    with CaptureServer() as server:
        assert smtpsend.sendmessage(part, servers=["127.0.0.1"], ports=[server.port]) == []
    assert b"inner=3Dtext" in server.messages[0].data


def test_sending_a_parsed_attachment_holds_no_decoded_copy(tmp_path):
    attachment = os.urandom(3 << 20)
    path = tmp_path / "big.eml"
    path.write_bytes(_parsed(attachment).buildmessage())
    del attachment
    part = mimecompose.initialize(file=str(path))
    size = path.stat().st_size
    tracemalloc.start()
    try:
        data = MessageData.from_part(part)
        sink = send(data, chunking_server(keep=False))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the message (about 4 MiB: kept, or measured and serialised again) plus blocks in flight;
    # decoding the attachment to learn its size cost five times more
    assert sink.count > size and peak < size + (2 << 20), (peak, size)


def test_binary_parts_found_from_the_labels_alone(monkeypatch):
    raw = (b"Content-Type: multipart/mixed; boundary=A\r\n\r\n--A\r\n"
           b"Content-Type: multipart/alternative; boundary=C\r\n\r\n--C\r\n"
           b"Content-Type: application/x-thing\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\r\n"
           b"--C--\r\n--A--\r\n")
    binary, plain = mimecompose.initialize(string=raw), _parsed(b"x")
    _no_decoding(monkeypatch)
    assert _has_binary(binary) and not _has_binary(plain)
    built = mimecompose.initialize("multipart/mixed", parts=[
        mimecompose.initialize("text/plain", string="x"),
        mimecompose.initialize("application/octet-stream", string=b"\x00", encoding="binary")])
    assert _has_binary(built)


# ---------------------------------------------------------------- binary parts keep their octets (issue 11, item 17)

def _parsed_binary(body: bytes) -> mimecompose.Part:
    return mimecompose.initialize(string=b"From: a@x.org\r\nTo: b@y.org\r\nSubject: bin\r\n"
                                  b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
                                  b"Content-Transfer-Encoding: binary\r\n\r\n" + body)


@pytest.mark.parametrize("extensions", [["PIPELINING", "8BITMIME"], ["PIPELINING", "CHUNKING"], ["CHUNKING"]])
@pytest.mark.parametrize("body", [b"one\ntwo\rthree\r\n", b"ascii\r\nonly\r\n", b"\x00\xff\r\n"])
def test_a_parsed_binary_part_is_reencoded_for_a_server_without_binarymime(extensions, body):
    with CaptureServer(extensions=extensions) as server:
        smtpsend.sendmessage(_parsed_binary(body), servers=["127.0.0.1"], ports=[server.port])
    got = server.messages[0]
    assert got.data.isascii() and "BODY=BINARYMIME" not in got.esmtp_params
    assert got.part.getproperty("encoding") == "base64"
    assert got.part.getbody() == body         # never the octets rewritten under the label binary


def test_a_parsed_binary_part_goes_as_it_is_with_binarymime():
    body = b"\x00\x01\xff\r\nend\r\n"
    with CaptureServer(extensions=["PIPELINING", "CHUNKING", "BINARYMIME"]) as server:
        smtpsend.sendmessage(_parsed_binary(body), servers=["127.0.0.1"], ports=[server.port])
    got = server.messages[0]
    assert "BODY=BINARYMIME" in got.esmtp_params and got.via == "BDAT"
    assert got.part.getproperty("encoding") == "binary" and got.part.getbody() == body


def test_binary_without_a_7bit_form_is_refused_by_a_data_server():
    data = MessageData(lambda: iter([b"Subject: t\r\n\r\n\x00\n"]), binary=True)
    sink = Sink((220, "mx"), (250, "mx\nPIPELINING\n8BITMIME"), (221, "bye"))
    with pytest.raises(smtpsend.NotSupported):
        send(data, sink)
    assert b"MAIL" not in sink.written


def test_a_finalized_part_is_refused_before_anything_is_measured():
    # MessageData goes through Part.iterbytes, which refuses a finalized part
    # as buildmessage does (built parts were serialised regardless before)
    for part in (mimecompose.initialize("text/plain", string="x"),
                 mimecompose.initialize(string=b"Subject: s\r\n\r\nbody\r\n")):
        part.finalize()
        with pytest.raises(mimecompose.MimeError, match="finalized"):
            MessageData.from_part(part)


# ---------------------------------------------------------------- CRLF once, not three times (issue 16)

def _bare_break(octets):
    """True when ``octets`` has a CR or LF that is not part of a CRLF."""
    return not (octets.count(b"\r") == octets.count(b"\n") == octets.count(b"\r\n"))


_BODIES = [b"a\nb\rc\r\nd", b"\n.\r.\n", b"x\r", b"\r\n\r\r\n\n", "\u00e9\nx\r".encode(), b"\x00\n\r", b"plain"]
_TYPES = ["text/plain", "application/octet-stream", "message/rfc822", "image/png"]
_ENCODINGS = [None, "7bit", "8bit", "quoted-printable", "base64"]


def _parts():
    """Built leaves of every type and encoding over bodies with bare CR and
    LF, each also inside a multipart, and each message parsed back with LF,
    CR and CRLF line breaks."""
    for body in _BODIES:
        for ctype in _TYPES:
            for encoding in _ENCODINGS:
                try:
                    leaf = mimecompose.initialize(ctype, string=body, encoding=encoding)
                    yield leaf
                    outer = mimecompose.initialize("multipart/mixed", parts=[leaf])
                    yield outer
                    yield mimecompose.initialize("message/rfc822", parts=[leaf], header=[("Subject", "in")])
                    yield mimecompose.initialize("multipart/alternative", parts=[
                        mimecompose.initialize("multipart/related", parts=[leaf]),
                        mimecompose.initialize("message/rfc822", parts=[outer])])
                    octets = outer.buildmessage()
                except (mimecompose.MimeError, ValueError):
                    continue   # a combination the composer refuses
                for newline in (b"\n", b"\r", b"\r\n"):
                    try:
                        yield mimecompose.initialize(string=octets.replace(b"\r\n", newline))
                    except (mimecompose.MimeError, ValueError):
                        pass


def test_iterbytes_is_crlf_wherever_the_scan_says_so():
    # the claim MessageData relies on to skip normalising: for every part
    # that _scan() calls safe, every form iterbytes() writes is CRLF only
    safe = unsafe = 0
    for part in _parts():
        binary, crlf = smtpsend._data._scan(part)
        if binary:
            continue
        forms = [b"".join(part.iterbytes()), b"".join(part.iterbytes(add=[("X-A", "b")], omit={"bcc"}))]
        try:
            forms.append(b"".join(part.iterbytes(seven_bit=True)))
        except (mimecompose.MimeError, ValueError):
            pass
        if crlf:
            safe += 1
            assert not any(_bare_break(form) for form in forms), part.buildmessage()[:200]
        else:
            unsafe += 1
        # and whatever the scan says, what is sent is CRLF only
        data = MessageData.from_part(part)
        assert not _bare_break(b"".join(data.chunks()))
        assert not _bare_break(b"".join(data.seven_bit().chunks()))
        assert not _bare_break(b"".join(data_blocks(data.chunks())))
    assert safe > 200 and unsafe > 300, (safe, unsafe)


def test_parsed_messages_are_always_normalised(tmp_path):
    # raw bytes and email.message objects become parsed Parts: never taken
    # as CRLF, whatever their buffer or file holds by the time they are sent
    octets = b"From: a@x.org\r\nTo: b@y.org\r\n\r\nline\r\n.dot\r\n"
    path = tmp_path / "m.eml"
    path.write_bytes(octets)
    for part in (mimecompose.initialize(string=octets), mimecompose.initialize(file=str(path)),
                 smtpsend._envelope.as_part(octets),
                 mimecompose.initialize("multipart/mixed", parts=[mimecompose.initialize(string=octets)])):
        assert part.parsed or part.getproperty("parts")[0].parsed
        assert smtpsend._data._scan(part) == (False, False)


def test_a_built_octet_stream_with_bare_breaks_is_written_with_crlf():
    # RFC 2045 2.7/2.8: a 7bit/8bit body is lines, whatever its type: the
    # serialiser writes CRLF (it wrote the octets as given before), so
    # MessageData may take the built part as CRLF and still send no bare LF
    leaf = mimecompose.initialize("application/octet-stream", string=b"x\n.y\rz\n", encoding="7bit")
    assert not _bare_break(leaf.buildmessage())
    assert smtpsend._data._scan(leaf) == (False, True)
    wire = bytes(send(MessageData.from_part(leaf), Sink((220, "mx"), (250, "mx"), (250, "ok"), (250, "ok"),
                                                        (354, "go"), (250, "ok"), (221, "bye"))).written)
    assert b"\r\n\r\nx\r\n..y\r\nz\r\n.\r\n" in wire and not _bare_break(wire)


def test_a_preamble_with_a_bare_break_is_written_with_crlf():
    outer = mimecompose.initialize("multipart/mixed", parts=[mimecompose.initialize("text/plain", string="hi")])
    for preamble in (b"one\ntwo", b"one\rtwo", b"one\r\ntwo"):
        outer.preamble = outer.epilogue = preamble
        assert smtpsend._data._scan(outer) == (False, True)
        built = outer.buildmessage()
        assert b"one\r\ntwo" in built and not _bare_break(built)
        octets = b"".join(MessageData.from_part(outer).chunks())
        assert b"one\r\ntwo" in octets and not _bare_break(octets)


def test_a_safe_part_is_not_normalised_again(monkeypatch):
    # a base64 file attachment: no LineBreakNormalizer over the serialised
    # message, neither while measuring nor in the dot-stuffer
    part = mimecompose.initialize("multipart/mixed", parts=[
        mimecompose.initialize("text/plain", string="text\n.dot\n"),
        mimecompose.initialize("application/octet-stream", string=os.urandom(5000))])
    expected = b"".join(MessageData.from_part(part).chunks())
    fed = []

    class Counted(mimecompose.LineBreakNormalizer):   # only smtpsend._data's own normalisers
        def feed(self, data):
            fed.append(len(data))
            return super().feed(data)

    monkeypatch.setattr(smtpsend._data, "LineBreakNormalizer", Counted)
    data = MessageData.from_part(part)
    wire = b"".join(data_blocks(data.chunks()))
    assert fed == [] and unstuffed(wire) == expected and b"\r\n..dot\r\n" in wire


def test_raw_chunks_and_binary_data_are_normalised_by_data_blocks():
    # a plain iterable is normalised as before; so is binary MessageData
    # (never sent by DATA, but bare LF must not reach the wire if it were)
    assert b"".join(data_blocks([b"a\n.b\r", b"\nc"])) == b"a\r\n..b\r\nc\r\n.\r\n"
    binary = MessageData(lambda: iter([b"Subject: t\r\n\r\n\x00\n.x"]), binary=True)
    assert not isinstance(binary.chunks(), smtpsend._data.CRLFChunks)
    assert b"".join(data_blocks(binary.chunks())) == b"Subject: t\r\n\r\n\x00\r\n..x\r\n.\r\n"


@given(st.lists(st.sampled_from([b"\r\n", b".", b"..", b"a", b"\r\n.", b".\r\n"]), max_size=30),
       st.lists(st.integers(0, 60), max_size=6))
def test_normalised_dot_stuffing_matches_the_normalising_one(pieces, cuts):
    # the block-boundary cases: a "." that starts a chunk after a chunk that
    # ended a line, a CRLF split between chunks, the very first line
    octets = b"".join(pieces)
    cuts = sorted(c for c in cuts if c <= len(octets))
    chunks = [octets[a:b] for a, b in zip([0] + cuts, cuts + [len(octets)])]
    plain, fast = smtpsend._data.DotStuffer(), smtpsend._data.DotStuffer(normalised=True)
    slow_out = b"".join(plain.feed(c) for c in chunks) + plain.finish()
    fast_out = b"".join(fast.feed(c) for c in chunks) + fast.finish()
    assert fast_out == slow_out
    assert unstuffed(fast_out) == octets + (b"" if octets.endswith(b"\r\n") or not octets else b"\r\n")


def test_a_safe_part_still_gets_its_final_crlf():
    leaf = mimecompose.initialize("application/octet-stream", string=b"\x01\x02", encoding="base64")
    assert smtpsend._data._scan(leaf) == (False, True)
    assert not leaf.buildmessage().endswith(b"\n")
    data = MessageData.from_part(leaf)
    assert b"".join(data.chunks()).endswith(b"\r\n") and data.size == len(b"".join(data.chunks()))


def test_a_small_message_is_kept_as_one_chunk():
    data = MessageData(lambda: iter([b"Subject: t\r\n", b"X: y\r\n\r\n", b"body\r\n"]))
    assert list(data.chunks()) == [b"Subject: t\r\nX: y\r\n\r\nbody\r\n"]
    assert data.size == 26 and data.head == b"Subject: t\r\nX: y\r\n\r\nbody\r\n" and not data.eightbit


def test_a_message_over_keep_is_measured_whole(monkeypatch):
    # above _KEEP the chunks after the kept ones are still counted, checked
    # for 8-bit octets and folded into the CRC that the send is checked by
    monkeypatch.setattr(smtpsend._data, "_KEEP", 100)
    chunks = [b"Subject: t\r\n\r\n"] + [b"a" * 60 + b"\r\n"] * 5 + ["\u00e9\r\n".encode()]
    data = MessageData(lambda: iter(chunks))
    assert data._kept is None and data.eightbit and data.size == sum(map(len, chunks))
    assert b"".join(data.chunks()) == b"".join(chunks)


def test_plan_shares_the_plain_delivery_but_not_set_options():
    from smtpsend._failover import plan
    part = mimecompose.initialize(string="hi", header=[("From", "a@x.org"), ("To", "b@y.org")])
    plain = plan(part).options
    assert plan(part).options is plain and plain == smtpsend.Delivery()
    assert plan(part, atleastone=True).options == smtpsend.Delivery(atleastone=True)
    assert plan(part, atleastone=True, ret="HDRS").options == smtpsend.Delivery(atleastone=True, ret="HDRS")
    assert plan(part, priority=3).options.priority == 3 and plan(part).options is plain
    given = smtpsend.Delivery(envid="x")
    assert plan(part, delivery=given).options is given


def test_a_signature_with_a_bare_line_break_is_refused(monkeypatch):
    # chunks() promises CRLF only, so a DKIM-Signature value folded with a
    # bare LF (a signer gone wrong) is refused rather than sent
    class Folding(mimecompose.DKIMSigner):
        def __init__(self):
            pass

        def signature(self, chunks):
            return "v=1; a=rsa-sha256;\n b=x"
    with pytest.raises(smtpsend.UsageError, match="bare CR or LF"):
        MessageData(lambda: iter([b"Subject: t\r\n\r\nbody\r\n"]), dkim=[Folding()])
