"""Parsing real-world messages: structure, bodies, defects, round trips, robustness."""

import email
import email.policy
import pathlib
import re

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
    assert kinds == {"invalid-content-type", "missing-boundary", "unknown-transfer-encoding"}


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
