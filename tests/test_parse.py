"""Parsing real-world messages: structure, bodies, defects, round trips, robustness."""

import base64
import email
import email.policy
import os
import pathlib
import quopri
import re
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

import mimecompose
from mimecompose import ParseError, initialize
from mimecompose import strategies as mst

CORPUS = sorted((pathlib.Path(__file__).parent / "corpus").glob("*.eml"))
NOT_CRLF = {"lf_only.eml", "mbox_from_line.eml"}


def walk(part):
    yield part
    props = part.getproperty()
    for child in props.get("parts", ()):
        yield from walk(child)


def email_walk(msg):
    yield msg
    if msg.get_content_type() == "message/delivery-status":
        return  # email splits delivery-status into pseudo-messages; we keep it a leaf
    if msg.is_multipart():
        for sub in msg.get_payload():
            yield from email_walk(sub)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_structure_matches_email_package(path):
    raw = path.read_bytes()
    ours = initialize(string=raw)
    theirs = email.message_from_bytes(raw, policy=email.policy.default)
    assert [p.getproperty("content") for p in walk(ours)] == \
        [m.get_content_type() for m in email_walk(theirs)]


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_leaf_bodies_match_email_package(path):
    raw = path.read_bytes()
    ours = [p for p in walk(initialize(string=raw)) if "size" in p.getproperty()]
    theirs = [m for m in email_walk(email.message_from_bytes(raw, policy=email.policy.default))
              if not m.is_multipart() and m.get_content_type() != "message/delivery-status"]
    theirs = [m for m in theirs if m.get_content_type() not in ("message/rfc822",)]
    ours = [p for p in ours if p.getproperty("content") != "message/delivery-status"]
    assert len(ours) == len(theirs)
    for mine, other in zip(ours, theirs):
        if other.get("Content-Transfer-Encoding", "").lower() in ("base64", "quoted-printable"):
            assert mine.getbody() == other.get_payload(decode=True)
        assert mine.getproperty("size") == len(mine.getbody())


@pytest.mark.parametrize("path", [p for p in CORPUS if p.name not in NOT_CRLF], ids=lambda p: p.name)
def test_unchanged_message_round_trips_byte_for_byte(path):
    raw = path.read_bytes()
    assert initialize(string=raw).buildmessage() == raw
    with initialize(file=str(path)) as part:
        assert part.buildmessage() == raw


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_output_is_always_crlf(path):
    part = initialize(string=path.read_bytes())
    part.setheader("X-Touched", "yes")
    out = part.buildmessage()
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", out) is None
    again = email.message_from_bytes(out, policy=email.policy.default)
    assert again["X-Touched"] == "yes"


def test_changing_a_nested_header_keeps_the_rest_byte_identical():
    raw = (CORPUS[0].parent / "outlook_mixed_attachment.eml").read_bytes()
    part = initialize(string=raw)
    attachment = part.getproperty("parts")[1]
    attachment.setheader("X-Scanned", "clean")
    out = part.buildmessage()
    assert out != raw
    assert out.replace(b"X-Scanned: clean\r\n", b"") == raw
    msg = email.message_from_bytes(out, policy=email.policy.default)
    att = list(msg.iter_attachments())[0]
    assert att["X-Scanned"] == "clean"
    assert att.get_filename() == "Q1 Zahlen März.pdf"


def test_lf_input_parses_and_serialises_as_crlf():
    raw = (CORPUS[0].parent / "lf_only.eml").read_bytes()
    part = initialize(string=raw)
    text, attachment = part.getproperty("parts")
    assert text.getbody() == b"disk usage 91%\n"
    assert attachment.getheader("Content-Disposition") == ["attachment; filename=df.txt"]
    assert part.buildmessage() == raw.replace(b"\n", b"\r\n")


def test_str_input_accepted():
    part = initialize(string="Subject: é\n\nbody é\n")
    assert part.getheader("Subject") == ["é"]
    assert part.getbody(decode=True) == "body é\n"


def test_body_excludes_the_line_break_before_the_boundary():
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nabc\r\n\r\n--x\r\n\r\nno newline\r\n--x--\r\n"
    first, second = initialize(string=raw).getproperty("parts")
    assert first.getbody() == b"abc\r\n"
    assert second.getbody() == b"no newline"


def test_preamble_and_epilogue_kept():
    part = initialize(string=(CORPUS[0].parent / "preamble_epilogue.eml").read_bytes())
    assert part.preamble == b"This is a multi-part message in MIME format.\r\nOld readers show this text."
    assert part.epilogue == b"This is the epilogue.\r\nIt is ignored by readers.\r\n"


def test_digest_parts_default_to_message_rfc822():
    part = initialize(string=(CORPUS[0].parent / "digest.eml").read_bytes())
    digest = part.getproperty("parts")[1]
    first, second = digest.getproperty("parts")
    assert first.getproperty("content") == "message/rfc822"
    [inner] = second.getproperty("parts")
    assert inner.getheader("Subject") == ["Re: First topic"]
    assert inner.getbody(decode=True) == "Agreed — let's discuss.\n"


def test_encoded_headers_and_parameters_decoded():
    part = initialize(string=(CORPUS[0].parent / "encoded_words_mixed.eml").read_bytes())
    assert part.getheader("Subject") == ["café crème and €uro"]
    assert part.getheader("Comments") == ["(ab)"]
    assert part.getbody(decode=True) == "こんにちは\n".replace("\n", "\r\n")
    names = [a.friendly for a in mimecompose.parseaddress(part.getheader("To")[0])]
    assert names == ["こんにちは", "你好"]
    cont = initialize(string=(CORPUS[0].parent / "rfc2231_continuations.eml").read_bytes())
    attachment = cont.getproperty("parts")[1]
    assert attachment.getproperty("params")["name"] == "日本語のファイル.txt"
    assert attachment.getbody() == "日本語".encode()


def test_raw_8bit_headers_read_as_latin1():
    part = initialize(string=(CORPUS[0].parent / "raw_8bit_headers.eml").read_bytes())
    assert part.getheader("Subject") == ["Réunion de lundi"]
    assert part.getbody(decode=True).startswith("La réunion")


def test_mbox_from_line_is_not_a_header():
    part = initialize(string=(CORPUS[0].parent / "mbox_from_line.eml").read_bytes())
    assert part.unixfrom.startswith(b"From alice@example.com")
    assert part.getheader("Subject") == ["from an mbox"]
    assert not part.buildmessage().startswith(b"From alice")


@pytest.mark.parametrize("name,kind", [
    ("missing_end_boundary.eml", "missing-boundary-end"),
    ("header_no_colon.eml", "missing-header-body-separator"),
])
def test_defects_recorded_then_strict_raises(name, kind):
    raw = (CORPUS[0].parent / name).read_bytes()
    part = initialize(string=raw)
    kinds = [d.kind for p in walk(part) for d in p.defects]
    assert kind in kinds
    with pytest.raises(ParseError) as info:
        initialize(string=raw, strict=True)
    assert isinstance(info.value, ValueError)
    assert info.value.defect.kind == kind


def test_invalid_types_and_encodings_recorded():
    part = initialize(string=(CORPUS[0].parent / "invalid_content_types.eml").read_bytes())
    kinds = {d.kind for p in walk(part) for d in p.defects}
    # (x-uuencode is decoded, as readers do: not an unknown encoding)
    assert kinds == {"invalid-content-type", "missing-boundary"}
    odd = initialize(string=b"Content-Transfer-Encoding: x-rot13\r\n\r\nnopqrs\r\n")
    assert [d.kind for d in odd.defects] == ["unknown-transfer-encoding"]
    assert odd.getbody() == b"nopqrs\r\n"


def test_bad_base64_decoded_best_effort_with_defect():
    part = initialize(string=(CORPUS[0].parent / "bad_base64.eml").read_bytes())
    assert part.getbody().startswith(b"Hello, world!")
    assert any(d.kind == "body-decoding" for d in part.defects)


def test_clean_corpus_has_no_defects():
    for name in ("thunderbird_alternative.eml", "outlook_mixed_attachment.eml", "bounce_dsn.eml",
                 "signed.eml", "forwarded_rfc822.eml", "calendar_invite.eml"):
        part = initialize(string=(CORPUS[0].parent / name).read_bytes(), strict=True)
        assert part is not None


def test_transport_padding_and_headerless_parts():
    part = initialize(string=(CORPUS[0].parent / "transport_padding_empty_parts.eml").read_bytes())
    # "--pad" right after "--pad<TAB>" holds no part (there is no CRLF for one)
    first, bare = part.getproperty("parts")
    assert first.getbody() == b"padded delimiter above"
    assert bare.getheader() == [] and bare.getbody() == b"no header fields in this part"


def test_deep_nesting_is_bounded():
    depth = 200
    raw = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
    raw += b"\r\nleaf\r\n"
    part = initialize(string=raw)
    kinds = {d.kind for p in walk(part) for d in p.defects}
    assert "nesting-too-deep" in kinds


# ---------------------------------------------------------------- robustness

@given(st.binary(max_size=2000))
def test_any_bytes_parse_and_serialise(data):
    part = initialize(string=data)
    out = part.buildmessage()
    assert isinstance(out, bytes)
    email.message_from_bytes(data, policy=email.policy.default)  # the email package takes it too


@given(st.sampled_from(CORPUS), st.data())
def test_mutated_corpus_never_raises(path, data):
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "dup", "crlf"]))
        if action == "flip":
            raw[pos] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del raw[pos:pos + data.draw(st.integers(1, 200))]
        elif action == "dup":
            raw[pos:pos] = raw[pos:pos + data.draw(st.integers(1, 200))]
        else:
            raw[pos:pos] = b"\r\n"
        if not raw:
            raw = bytearray(b"x")
    part = initialize(string=bytes(raw))
    for p in walk(part):
        p.getheader()
        if "size" in p.getproperty():
            p.getbody(decode=True)
    part.buildmessage()


# ---------------------------------------------------------------- build -> parse

def _bodies_equal(ours: bytes, theirs: bytes, text: bool) -> bool:
    if text:
        norm = lambda b: re.sub(rb"\r\n|\r|\n", b"\n", b)
        return norm(ours) == norm(theirs)
    return ours == theirs


@given(mst.part_trees())
def test_built_trees_parse_back_in_the_email_package(part):
    data = part.buildmessage()
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", data) is None
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert not msg.defects
    built = list(walk(part))
    theirs = list(email_walk(msg))
    assert [p.getproperty("content") for p in built] == [m.get_content_type() for m in theirs]
    assert str(msg["Subject"] or "") == (part.getheader("Subject") or [""])[0].strip()
    for mine, other in zip(built, theirs):
        assert not other.defects
        if "size" not in mine.getproperty():
            continue
        text = mine.getproperty("content").startswith("text/")
        assert _bodies_equal(mine.getbody(), other.get_payload(decode=True), text)
        if mine.getheader("Content-Disposition"):
            assert other.get_filename() == mine.getproperty("params")["name"]
            disposition = mine.getheader("Content-Disposition")[0]
            assert other.get_content_disposition() == disposition.split(";")[0]


@given(mst.part_trees())
def test_built_trees_parse_back_in_mimecompose(part):
    data = part.buildmessage()
    again = initialize(string=data, strict=True)
    built, parsed = list(walk(part)), list(walk(again))
    assert [p.getproperty("content") for p in built] == [p.getproperty("content") for p in parsed]
    for mine, theirs in zip(built, parsed):
        props = mine.getproperty()
        assert props["params"] == theirs.getproperty("params")
        if "size" in props:
            text = props["content"].startswith("text/")
            assert _bodies_equal(mine.getbody(), theirs.getbody(), text)
    assert again.buildmessage() == data


# ---------------------------------------------------------------- bare CR (issue 11): shown == transmitted

def _crlf(raw: bytes) -> bytes:
    """What a sender transmits: every line break (CRLF, LF, bare CR) as CRLF."""
    return re.sub(rb"\r\n|\r|\n", b"\r\n", raw)


def _shape(part):
    """What a reader sees: the tree, and every field of every part."""
    return [(p.getproperty("content"), p.getheader(decode=False)) for p in walk(part)]


def test_bare_cr_in_the_header_splits_fields_as_the_wire_will():
    raw = b"Subject: hello\rFrom: ceo@bank.example\rBcc: spy@example.org\r\nTo: bob@example.com\r\n\r\nhi\r\n"
    part = initialize(string=raw)
    assert part.getheader("From") == ["ceo@bank.example"]
    assert part.getheader("Subject") == ["hello"]
    assert part.getheader("Bcc") == ["spy@example.org"]
    assert [d.kind for d in part.defects] == ["bare-cr"]
    sent = part.buildmessage()
    assert sent == _crlf(raw)
    assert _shape(initialize(string=sent)) == _shape(part)
    received = email.message_from_bytes(sent, policy=email.policy.default)
    assert [k for k, _v in received.items()] == [n for n, _v in part.getheader()]
    with pytest.raises(ParseError):
        initialize(string=raw, strict=True)


def test_bare_cr_before_a_boundary_is_a_delimiter_as_the_wire_will():
    raw = (b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\r\nnothing to see\r--B\r"
           b"Content-Type: application/x-hidden\r\rpayload\r\n--B--\r\n")
    part = initialize(string=raw)
    first, hidden = part.getproperty("parts")
    assert first.getbody() == b"nothing to see"
    assert hidden.getproperty("content") == "application/x-hidden"
    assert hidden.getbody() == b"payload"
    sent = part.buildmessage()
    assert sent == _crlf(raw)
    assert _shape(initialize(string=sent)) == _shape(part)
    theirs = email.message_from_bytes(sent, policy=email.policy.default)
    assert [m.get_content_type() for m in theirs.walk()] == [p.getproperty("content") for p in walk(part)]


def test_bare_cr_folding_and_changed_parts():
    raw = b"Subject: a\r b\rX-A: 1\r\rbody\rline\r"
    part = initialize(string=raw)
    assert part.getheader("Subject") == ["a b"] and part.getheader("X-A") == ["1"]
    part.setheader("X-B", "2")
    out = part.buildmessage()
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", out) is None
    assert out == b"Subject: a\r\n b\r\nX-A: 1\r\nX-B: 2\r\n\r\nbody\r\nline\r\n"


_LINES = st.sampled_from([
    b"Subject: hi", b"From: a@example.com", b"Bcc: z@example.org", b" folded", b"", b"text",
    b"From someone", b"Content-Type: multipart/mixed; boundary=B", b"Content-Type: message/rfc822",
    b"Content-Type: text/plain", b"--B", b"--B--", b"--C", b"Content-Type: multipart/mixed; boundary=C",
])


@given(st.lists(st.tuples(_LINES, st.sampled_from([b"\r\n", b"\n", b"\r"])), max_size=30))
def test_what_is_parsed_is_what_is_transmitted(lines):
    raw = b"".join(line + eol for line, eol in lines)
    part = initialize(string=raw)
    sent = part.buildmessage()
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", sent) is None
    assert sent == _crlf(raw[len(part.unixfrom or b""):])   # (an mbox envelope line is not sent)
    assert _shape(initialize(string=sent)) == _shape(part)
    assert _shape(initialize(string=_crlf(raw))) == _shape(part)


# ---------------------------------------------------------------- stray lines in a header block (issue 12)

@pytest.mark.parametrize("raw", [
    b" \r\nFrom: a@example.com\r\nSubject: kept\r\n\r\nbody\r\n",            # white space only, first
    b"\t\r\nFrom: a@example.com\r\nSubject: kept\r\n\r\nbody\r\n",
    b"  continued\r\nFrom: a@example.com\r\nSubject: kept\r\n\r\nbody\r\n",   # continuation before any field
    b"From: a@example.com\r\nFrom b@example.com Mon Mar  2 10:00:00 2026\r\nSubject: kept\r\n\r\nbody\r\n",
    b"From: a@example.com\nFrom b@example.com Mon Mar  2 10:00:00 2026\nSubject: kept\n\nbody\n",
])
def test_stray_header_lines_are_skipped_with_a_defect(raw):
    part = initialize(string=raw)
    assert part.getheader("From") == ["a@example.com"]
    assert part.getheader("Subject") == ["kept"]
    assert part.getbody().rstrip() == b"body"
    assert [d.kind for d in part.defects] == ["stray-header-line"]
    assert part.buildmessage() == _crlf(raw)
    theirs = email.message_from_bytes(raw, policy=email.policy.default)
    assert theirs["Subject"] == "kept"     # the email package reads them the same way
    with pytest.raises(ParseError):
        initialize(string=raw, strict=True)


def test_white_space_line_inside_a_field_is_obsolete_folding():
    part = initialize(string=b"Subject: one\r\n \r\n two\r\nTo: b@example.com\r\n\r\nbody")
    assert part.getheader("Subject") == ["one  two"]
    assert part.getheader("To") == ["b@example.com"]
    assert [d.kind for d in part.defects] == ["stray-header-line"]


def test_apple_mail_forward_with_an_envelope_line_in_the_enclosed_message():
    raw = (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=f\r\n\r\n--f\r\n"
           b"Content-Type: text/plain\r\n\r\nSee below.\r\n--f\r\nContent-Type: message/rfc822\r\n\r\n"
           b"From old@example.net Sun Mar  1 09:00:00 2026\r\nFrom: old@example.net\r\n"
           b"Subject: the original\r\n\r\noriginal text\r\n--f--\r\n")
    part = initialize(string=raw)
    [inner] = part.getproperty("parts")[1].getproperty("parts")
    assert inner.getheader("Subject") == ["the original"]
    assert inner.getheader("From") == ["old@example.net"]
    assert inner.getbody() == b"original text"
    assert [d.kind for d in inner.defects] == ["stray-header-line"]
    assert part.buildmessage() == raw


@pytest.mark.parametrize("raw,body", [
    (b"\r\nno header at all\r\n", b"no header at all\r\n"),
    (b" indented first line of a body\r\nsecond line\r\n", b" indented first line of a body\r\nsecond line\r\n"),
    (b"From: a@example.com\r\nFrom here on it is the body\r\nof the message\r\n",
     b"From here on it is the body\r\nof the message\r\n"),
    (b"From: a@example.com\r\nThis line is not a header\r\nSubject: lost\r\n\r\nbody\r\n",
     b"This line is not a header\r\nSubject: lost\r\n\r\nbody\r\n"),
])
def test_stray_lines_that_no_field_follows_stay_in_the_body(raw, body):
    part = initialize(string=raw)
    assert part.getbody() == body
    assert part.buildmessage() == raw


# ---------------------------------------------------------------- bodies and structure (issue 12)

def test_delimiter_then_close_delimiter_is_one_empty_part():
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b--\r\n"
    part = initialize(string=raw, strict=True)
    [empty] = part.getproperty("parts")
    assert empty.getheader() == [] and empty.getbody() == b""
    assert part.buildmessage() == raw
    after = initialize(string=b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\na\r\n--b\r\n--b--\r\n")
    assert [p.getbody() for p in after.getproperty("parts")] == [b"a", b""]


@pytest.mark.parametrize("cte,encode", [
    ("base64", lambda b: base64.encodebytes(b).replace(b"\n", b"\r\n")),
    ("quoted-printable", lambda b: quopri.encodestring(b)),   # ("boundary=3Di")
])
def test_encoded_message_rfc822_is_decoded_then_parsed(cte, encode):
    inner = (b"From: old@example.net\r\nSubject: inside\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n"
             b"--i\r\n\r\nfirst\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>second</p>\r\n--i--\r\n")
    raw = (b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n\r\nforwarded:\r\n--o\r\n"
           b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: " + cte.encode() + b"\r\n\r\n"
           + encode(inner) + b"\r\n--o--\r\n")
    part = initialize(string=raw)
    wrapper = part.getproperty("parts")[1]
    assert [d.kind for d in wrapper.defects] == ["encoded-message"]
    [message] = wrapper.getproperty("parts")
    assert message.getheader("Subject") == ["inside"]
    assert [p.getbody() for p in message.getproperty("parts")] == [b"first", b"<p>second</p>"]
    assert wrapper.getbody() == inner
    assert part.buildmessage() == raw
    # changed, it is written back with the encoding its header names
    message.setheader("X-Seen", "yes")
    again = initialize(string=part.buildmessage())
    [changed] = again.getproperty("parts")[1].getproperty("parts")
    assert changed.getheader("X-Seen") == ["yes"] and changed.getheader("Subject") == ["inside"]
    assert [p.getbody() for p in changed.getproperty("parts")] == [b"first", b"<p>second</p>"]


def test_empty_boundary_splits_on_dashes():
    raw = b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\n\r\none\r\n--\r\n\r\ntwo\r\n----\r\n'
    part = initialize(string=raw)
    assert [p.getbody() for p in part.getproperty("parts")] == [b"one", b"two"]
    assert [d.kind for d in part.defects] == ["empty-boundary"]
    assert part.buildmessage() == raw


def test_message_global_is_a_container():
    raw = b"Content-Type: message/global\r\n\r\nSubject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nx\r\n"
    part = initialize(string=raw)
    [inner] = part.getproperty("parts")
    assert inner.getheader("Subject") == ["grüße"]
    inner.setheader("X-Changed", "1")
    assert initialize(string=part.buildmessage()).getproperty("parts")[0].getheader("X-Changed") == ["1"]


def test_changed_multipart_from_lf_input_keeps_crlf_preamble_and_epilogue():
    raw = b"Content-Type: multipart/mixed; boundary=b\n\npre\namble\n--b\n\nx\n--b--\nepi\nlogue\n"
    part = initialize(string=raw)
    part.setheader("X-Changed", "1")
    out = part.buildmessage()
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", out) is None
    again = initialize(string=out)
    assert again.preamble == b"pre\r\namble" and again.epilogue == b"epi\r\nlogue\r\n"


# ---------------------------------------------------------------- nesting: linear work (issue 11)

def _nested(depth: int, filler: bytes) -> bytes:
    raw = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
    raw += b"\r\n" + filler
    return raw + b"".join(b"\r\n--b%d--" % i for i in reversed(range(depth))) + b"\r\n"


@pytest.mark.parametrize("filler", [b"x" * 70 + b"\r\n", b"--not a boundary\r\n", b"-- \r\n"])
def test_nesting_depth_does_not_multiply_the_work(filler):
    flat = _nested(1, filler * 20000)
    deep = _nested(63, filler * 20000)
    works = []
    for raw in (flat, deep):
        part = initialize(string=raw)
        works.append(part._parsed.work)
        assert part._parsed.work <= 4 * len(raw)
    parts = list(walk(initialize(string=deep)))
    assert len(parts) == 64 and not any(p.defects for p in parts)
    assert works[1] <= 1.1 * works[0]


def test_encoded_messages_inside_encoded_messages_are_bounded():
    message = b"Subject: core\r\n\r\n" + b"x" * 70 + b"\r\n"
    for level in range(30):
        message = (b"Subject: level %d\r\nContent-Type: message/rfc822\r\n"
                   b"Content-Transfer-Encoding: base64\r\n\r\n" % level
                   + base64.encodebytes(message).replace(b"\n", b"\r\n"))
    part = initialize(string=message)
    assert part._parsed.work <= 19 * len(message)
    depth, inner = 0, part
    while "parts" in inner.getproperty():
        [inner] = inner.getproperty("parts")
        depth += 1
    assert 2 <= depth < 30                  # the first levels are decoded, the rest left leaves
    assert inner.defects[-1].kind == "encoded-message" and "leaf" in inner.defects[-1].detail
    assert part.buildmessage() == message


def test_many_delimiter_like_lines_at_depth_finish():
    # 63 open multiparts and a megabyte of lines that each start like a delimiter
    raw = _nested(63, b"--b1x\r\n" * 150000)
    part = initialize(string=raw)
    assert part._parsed.work <= 4 * len(raw)


# ---------------------------------------------------------------- a file that changes after parsing (issue 11)

_TRUNCATE = r'''
import sys, mimecompose
path = sys.argv[1]
part = mimecompose.initialize(file=path)
attachment = part.getproperty("parts")[1]
with open(path, "r+b") as fh:
    fh.truncate(int(sys.argv[2]))
for step in (attachment.getbody, part.buildmessage, lambda: b"".join(part.iterbytes())):
    try:
        step()
        print("content")
    except mimecompose.MimeError as exc:
        print("MimeError", "changed" in str(exc))
'''


@pytest.mark.parametrize("keep", [0, 100, 70000])
def test_truncated_file_is_a_clean_error_not_sigbus(tmp_path, keep):
    path = tmp_path / "big.eml"
    body = base64.encodebytes(bytes(range(256)) * 4096)
    path.write_bytes(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\ntext\r\n--b\r\n"
                     b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                     + body + b"--b--\r\n")
    proc = subprocess.run([sys.executable, "-c", _TRUNCATE, str(path), str(keep)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr          # SIGBUS would be -7
    assert proc.stdout.split("\n")[:3] == ["MimeError True"] * 3


def test_file_bodies_are_read_from_the_file_when_asked(tmp_path):
    path = tmp_path / "m.eml"
    raw = b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\n"
    path.write_bytes(raw)
    with initialize(file=str(path)) as part:
        assert part._parsed._data is None        # nothing but the fields kept in memory
        assert [p.getbody() for p in part.getproperty("parts")] == [b"one", b"two"]
        with open(path, "ab") as fh:
            fh.write(b"more")                      # grown: changed
        with pytest.raises(mimecompose.MimeError):
            part.getproperty("parts")[0].getbody()
    with pytest.raises(mimecompose.MimeError):
        part.buildmessage()                        # finalized


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="needs /dev/fd")
def test_a_pipe_is_read_once_and_kept():
    read_end, write_end = os.pipe()
    os.write(write_end, b"Subject: piped\r\n\r\nbody\r\n")
    os.close(write_end)
    try:
        part = initialize(file=f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
    assert part.getheader("Subject") == ["piped"] and part.getbody() == b"body\r\n"
