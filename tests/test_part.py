"""Building parts: initialize, headers, properties, bodies, encodings, files."""

import base64
import email
import email.policy
import os

import pytest

import mimecompose
from mimecompose import MimeError, initialize


def reparse(part):
    return email.message_from_bytes(part.buildmessage(), policy=email.policy.default)


# ---------------------------------------------------------------- misuse (tcllib's refusals)

@pytest.mark.parametrize("kwargs,fragment", [
    (dict(canonical="text/plain"), "exactly one"),
    (dict(canonical="text/plain", string="a", file="x"), "exactly one"),
    (dict(canonical="text/plain", parts=[]), "do not mix"),
    (dict(canonical="multipart/mixed", parts=[], encoding="base64"), "do not mix"),
    (dict(canonical="text/plain", string="a", header=[("Content-Type", "text/html")]), "canonical"),
    (dict(canonical="text/plain", string="a", header=[("Content-Transfer-Encoding", "8bit")]), "encoding"),
    (dict(canonical="text/plain", string="a", encoding="x-uuencode"), "unknown encoding"),
    (dict(canonical="text/plain", string="a", params={"charset": "klingon"}), "charset"),
    (dict(canonical="text/plain", string="é", params={"charset": "us-ascii"}), "cannot be encoded"),
    (dict(canonical="text/plain", string="é", encoding="7bit"), "7bit"),
    (dict(canonical="text/plain", string="x" * 1200, encoding="8bit"), "998"),
    (dict(canonical="application/octet-stream", string=b"\0", encoding="8bit"), "NUL"),
    (dict(canonical="textplain", string="a"), "type/subtype"),
    (dict(canonical="multipart/mixed", string="a"), "needs parts"),
    (dict(canonical="message/rfc822", parts=[]), "exactly one"),
    (dict(canonical="text/plain", file="/nonexistent/file"), "not a readable file"),
    (dict(canonical="text/plain", string=b"\xff\xfe"), "charset"),
    (dict(canonical="text/plain", string=3), "str or bytes"),
    (dict(canonical="text/plain", string="a", disposition="sideways"), "disposition"),
    (dict(string="x", params={"a": "b"}), "needs canonical"),
])
def test_misuse_raises_value_error(kwargs, fragment):
    with pytest.raises(MimeError) as info:
        initialize(**kwargs)
    assert isinstance(info.value, ValueError)
    assert fragment in str(info.value)


def test_reserved_headers_refused_by_setheader():
    part = initialize("text/plain", string="a")
    for name in ("Content-Type", "content-transfer-encoding", "MIME-Version"):
        with pytest.raises(MimeError):
            part.setheader(name, "x")
    with pytest.raises(MimeError):
        part.setheader("X-A", "b", mode="upsert")


# ---------------------------------------------------------------- headers

def test_setheader_modes_and_previous_values():
    part = initialize("text/plain", string="a", header=[("To", "a@x.org")])
    assert part.setheader("To", "b@y.org", mode="append") == ["a@x.org"]
    assert part.getheader("To") == ["a@x.org", "b@y.org"]
    assert part.setheader("to", "c@z.org") == ["a@x.org", "b@y.org"]
    assert part.getheader("To") == ["c@z.org"]
    assert part.setheader("To", mode="delete") == ["c@z.org"]
    assert part.getheader("To") == []


def test_header_order_kept():
    part = initialize("text/plain", string="a", header=[("X-B", "1"), ("X-A", "2"), ("X-C", "3")])
    part.setheader("X-A", "new")
    names = [n for n, _ in part.getheader()]
    assert names[:3] == ["X-B", "X-A", "X-C"]
    assert part.getheader("Content-Type") == ["text/plain; charset=utf-8"]


def test_mime_version_only_on_the_root():
    inner = initialize("text/plain", string="a")
    outer = initialize("multipart/mixed", parts=[inner])
    data = outer.buildmessage()
    assert data.count(b"MIME-Version: 1.0") == 1
    assert data.startswith(b"MIME-Version: 1.0\r\n")


# ---------------------------------------------------------------- properties and bodies

def test_properties_of_leaf_and_container():
    leaf = initialize("text/plain", string="hello wörld", params={"format": "flowed"})
    props = leaf.getproperty()
    assert props == {"content": "text/plain", "encoding": "quoted-printable",
                     "params": {"format": "flowed", "charset": "utf-8"}, "size": 12}
    box = initialize("multipart/alternative", parts=[leaf])
    assert box.getproperty("parts") == [leaf]
    assert box.getproperty("content") == "multipart/alternative"
    assert "boundary" in box.getproperty("params")
    with pytest.raises(MimeError, match="leaf"):
        leaf.getproperty("parts")
    with pytest.raises(MimeError):
        box.getproperty("size")
    with pytest.raises(MimeError):
        leaf.getproperty("colour")


def test_getbody_is_exactly_the_content():
    text = "line one\nline two\r\nno newline at end"
    leaf = initialize("text/plain", string=text, params={"charset": "iso-8859-1"})
    assert leaf.getbody() == text.encode("iso-8859-1")
    assert leaf.getbody(decode=True) == text
    assert leaf.getproperty("size") == len(leaf.getbody())
    blob = initialize("image/png", string=b"\x89PNG\r\n\x1a\n")
    assert blob.getbody(decode=True) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(MimeError):
        initialize("multipart/mixed", parts=[blob]).getbody()


def test_text_bytes_charset_settled():
    assert initialize("text/plain", string=b"abc").getproperty("params") == {"charset": "us-ascii"}
    assert initialize("text/plain", string="é".encode()).getproperty("params") == {"charset": "utf-8"}
    latin = initialize("text/plain", string=b"\xe9", params={"charset": "latin-1"})
    assert latin.getbody(decode=True) == "é"


@pytest.mark.parametrize("content,body,expected", [
    ("text/plain", "plain ascii\n", "7bit"),
    ("text/plain", "mostly ascii with ü\n", "quoted-printable"),
    ("text/plain", "Приветствую вас, друзья\n" * 3, "base64"),
    ("text/plain", "x" * 2000, "quoted-printable"),
    ("text/plain", "trailing space \n", "7bit"),
    ("application/json", b'{"a": 1}', "7bit"),
    ("application/json", b'{"a":\n1}', "base64"),  # a bare LF would not survive as 7bit
    ("application/octet-stream", bytes(range(256)), "base64"),
    ("image/png", b"\x89PNG", "base64"),
])
def test_encoding_choice(content, body, expected):
    part = initialize(content, string=body)
    assert part.getproperty("encoding") == expected
    msg = reparse(part)
    got = msg.get_payload(decode=True)
    want = body.encode() if isinstance(body, str) else body
    if content.startswith("text/"):
        want = want.replace(b"\n", b"\r\n")
        got = got.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert got == want


def test_forced_encoding():
    part = initialize("text/plain", string="é", encoding="base64")
    assert b"Content-Transfer-Encoding: base64" in part.buildmessage()
    part = initialize("text/plain", string="é", encoding="8bit")
    assert part.buildmessage().endswith("é".encode())


def test_transfer_encoding_written_once():
    data = initialize("text/plain", string="héllo").buildmessage()
    assert data.count(b"Content-Transfer-Encoding") == 1
    assert data.count(b"charset=") == 1


def test_text_line_breaks_become_crlf_on_the_wire():
    data = initialize("text/plain", string="a\nb\rc\r\nd").buildmessage()
    body = data.split(b"\r\n\r\n", 1)[1]
    assert body == b"a\r\nb\r\nc\r\nd"


def test_boundary_not_in_content_and_stable():
    leaf = initialize("text/plain", string="--=_ looks like a boundary\n")
    box = initialize("multipart/mixed", parts=[leaf])
    boundary = box.getproperty("params")["boundary"]
    assert boundary.encode() not in leaf.getbody()
    assert box.buildmessage() == box.buildmessage()


# ---------------------------------------------------------------- attachments and files

def test_attachment_names(tmp_path):
    path = tmp_path / "Bericht März.pdf"
    path.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 10)
    part = initialize("application/pdf", file=str(path), disposition="attachment")
    box = initialize("multipart/mixed", parts=[initialize("text/plain", string="see"), part])
    msg = reparse(box)
    att = list(msg.iter_attachments())[0]
    assert att.get_filename() == "Bericht März.pdf"
    assert att.get_content() == path.read_bytes()
    raw = box.buildmessage()
    assert b"filename*=utf-8''Bericht%20M%C3%A4rz.pdf" in raw
    assert b'name="=?UTF-8?' in raw


def test_filename_alone_implies_attachment():
    part = initialize("text/csv", string="a,b\n", filename="data.csv")
    assert part.getheader("Content-Disposition") == ['attachment; filename="data.csv"']


def test_file_read_lazily(tmp_path):
    path = tmp_path / "later.txt"
    path.write_text("first\n")
    part = initialize("text/plain", file=str(path))
    path.write_text("second version\n")
    assert part.getbody() == b"second version\n"
    assert part.buildmessage().endswith(b"second version\r\n")
    assert part.getproperty("size") == len(b"second version\n")


def test_message_rfc822_nesting():
    inner = initialize("text/plain", string="inner body", header=[("Subject", "Inner")])
    outer = initialize("message/rfc822", parts=[inner])
    box = initialize("multipart/mixed", parts=[initialize("text/plain", string="fwd"), outer])
    msg = reparse(box)
    forwarded = msg.get_payload()[1]
    assert forwarded.get_content_type() == "message/rfc822"
    assert forwarded.get_payload()[0]["Subject"] == "Inner"
    assert outer.getbody().endswith(b"inner body")
    parsed = mimecompose.initialize(string=box.buildmessage())
    nested = parsed.getproperty("parts")[1]
    [message] = nested.getproperty("parts")
    assert message.getheader("Subject") == ["Inner"]


def test_finalize_and_context_manager(tmp_path):
    path = tmp_path / "m.eml"
    path.write_bytes(b"Subject: s\r\n\r\nbody\r\n")
    with initialize(file=str(path)) as part:
        assert part.getbody() == b"body\r\n"
    with pytest.raises(MimeError):
        part.getbody()
    with pytest.raises(MimeError):
        part.buildmessage()


def test_copymessage_streams(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(300_000))
    part = initialize("application/octet-stream", file=str(path))
    out = tmp_path / "out.eml"
    with open(out, "wb") as fh:
        written = part.copymessage(fh)
    assert written == out.stat().st_size
    msg = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert msg.get_payload(decode=True) == path.read_bytes()
    assert all(len(line) <= 78 for line in out.read_bytes().split(b"\r\n"))


def test_compose_shapes(tmp_path):
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG fake")
    part = mimecompose.compose("text", "<img src='cid:logo'>", inline={"logo": str(logo)},
                               attachments=[("a.txt", b"attached"), str(logo)],
                               header=[("Subject", "S")])
    shape = [p.get_content_type() for p in reparse(part).walk()]
    assert shape == ["multipart/mixed", "multipart/alternative", "text/plain", "multipart/related",
                     "text/html", "image/png", "text/plain", "image/png"]
    assert part.getheader("Subject") == ["S"]
    with pytest.raises(MimeError):
        mimecompose.compose()
    with pytest.raises(MimeError):
        mimecompose.compose("t", inline={"x": str(logo)})


def test_base64_lines_are_76():
    data = initialize("application/octet-stream", string=os.urandom(1000)).buildmessage()
    body = data.split(b"\r\n\r\n", 1)[1]
    lines = body.split(b"\r\n")
    assert all(len(line) == 76 for line in lines[:-1])
    assert base64.b64decode(b"".join(lines)) is not None


@pytest.mark.parametrize("boundary", ["bad\x01", "grüße", "x" * 71, "ends in space ", "", 'q"uote'])
def test_a_boundary_rfc2046_does_not_allow_is_refused(boundary):
    text = mimecompose.initialize("text/plain", string="x")
    with pytest.raises(MimeError):
        mimecompose.initialize("multipart/mixed", parts=[text], params={"boundary": boundary})


def test_a_given_boundary_is_used_and_parses_back():
    text = mimecompose.initialize("text/plain", string="x")
    box = mimecompose.initialize("multipart/mixed", parts=[text], params={"boundary": "a'()+_,-./:=? z"})
    data = box.buildmessage()
    assert b"\r\n--a'()+_,-./:=? z--\r\n" in data
    [again] = mimecompose.initialize(string=data, strict=True).getproperty("parts")
    assert again.getbody() == b"x"


# ---------------------------------------------------------------- the entry points smtpsend uses (issue 14)

def _wire_header(data):
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_fields_of_a_built_part_are_the_ones_given_without_the_content_fields(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x")
    part = initialize("text/plain", file=str(path), filename="Bericht März.txt",
                      header=[("Subject", "Grüße"), ("To", "a@example.com")])
    path.unlink()    # fields() never reads the content: the file is not needed
    assert [name for name, _ in part.fields()] == ["Content-Disposition", "Subject", "To"]
    assert part.fields()[1] == ("Subject", "Grüße")
    text = initialize("text/plain", string="x", header=[("Subject", "S")])
    assert [n for n, _ in text.getheader()] == ["Subject", "Content-Type"]
    assert text.fields() == [("Subject", "S")]
    part.setheader("Subject", "Hallo")
    part.setheader("Cc", "b@example.com", mode="append")
    assert part.fields()[1:] == [("Subject", "Hallo"), ("To", "a@example.com"), ("Cc", "b@example.com")]
    assert part.parsed is False


def test_fields_of_a_parsed_part_are_every_field_read_decoded_or_as_written():
    raw = (b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain;\r\n charset=utf-8\r\n"
           b"To: a@example.com\r\n\r\nbody\r\n")
    part = initialize(string=raw)
    assert part.parsed is True
    assert part.fields() == [("Subject", "Grüße"), ("Content-Type", "text/plain; charset=utf-8"),
                             ("To", "a@example.com")]
    assert part.fields(decode=False)[0] == ("Subject", "=?utf-8?q?Gr=C3=BC=C3=9Fe?=")
    assert part.fields() == part.getheader()


def test_parsed_is_per_part():
    inner = b"Subject: inner\r\n\r\nhello\r\n"
    wrapper = initialize("message/rfc822", string=inner)
    assert wrapper.parsed is False
    assert wrapper.getproperty("parts")[0].parsed is True


def test_iterbytes_adds_and_omits_fields_of_the_written_copy_only():
    part = initialize("text/plain", string="Grüße\n",
                      header=[("From", "a@example.com"), ("Bcc", "hidden@example.com"), ("Subject", "S")])
    before = part.buildmessage()
    data = b"".join(part.iterbytes(add={"Date": "Tue, 01 Dec 2026 10:00:00 +0000", "X-Tag": "Grüße"},
                                   omit=["BCC", "subject"]))
    header = _wire_header(data)
    assert header[0] == b"Date: Tue, 01 Dec 2026 10:00:00 +0000"
    assert header[1].startswith(b"X-Tag: =?") and initialize(string=data).getheader("X-Tag") == ["Grüße"]
    assert b"From: a@example.com" in header and b"MIME-Version: 1.0" in header
    assert not any(line.lower().startswith((b"bcc:", b"subject:")) for line in header)
    assert data.split(b"\r\n\r\n", 1)[1] == before.split(b"\r\n\r\n", 1)[1]
    assert part.buildmessage() == before     # the part is unchanged
    assert b"".join(part.iterbytes(omit="Bcc")).count(b"Bcc") == 0   # one name alone


def test_iterbytes_add_mime_version_stands_in_for_the_built_one():
    part = initialize("text/plain", string="x")
    header = _wire_header(b"".join(part.iterbytes(add=[("MIME-Version", "1.0 (built)")])))
    assert [line for line in header if line.lower().startswith(b"mime-version")] == [b"MIME-Version: 1.0 (built)"]


def test_iterbytes_of_an_unchanged_parsed_message_with_options_rewrites_only_the_header():
    raw = b"From: a@example.com\nBcc: x@example.com\nContent-Type: text/plain\n\nline\n"
    part = initialize(string=raw)
    assert b"".join(part.iterbytes()) == raw.replace(b"\n", b"\r\n")
    data = b"".join(part.iterbytes(add=[("Date", "now")], omit={"bcc"}))
    assert data == b"Date: now\r\nFrom: a@example.com\r\nContent-Type: text/plain\r\n\r\nline\r\n"


def test_iterbytes_seven_bit_reencodes_8bit_content():
    part = initialize("multipart/mixed", parts=[
        initialize("text/plain", string="Grüße " * 30, encoding="8bit"),
        initialize("application/octet-stream", string=b"\x00\xff" * 10, encoding="binary")])
    data = b"".join(part.iterbytes(seven_bit=True))
    assert data.isascii()
    assert b"Content-Transfer-Encoding: quoted-printable" in data and b"Content-Transfer-Encoding: base64" in data
    again = initialize(string=data, strict=True)
    text, blob = again.getproperty("parts")
    assert text.getbody(decode=True) == "Grüße " * 30 and blob.getbody() == b"\x00\xff" * 10
    assert not b"".join(part.iterbytes()).isascii()


@pytest.mark.parametrize("kwargs,error", [
    (dict(add=[("Content-Type", "text/html")]), MimeError),
    (dict(add=[("content-transfer-encoding", "8bit")]), MimeError),
    (dict(add=[("Content-MD5", "x")]), MimeError),
    (dict(omit=["Content-Type"]), MimeError),
    (dict(omit="content-transfer-encoding"), MimeError),
    (dict(add=[("Bad Name", "x")]), MimeError),
    (dict(add=[("X-Evil\r\nBcc", "x")]), mimecompose.HeaderInjectionError),
    (dict(add=[("Subject", "a\r\nBcc: victim@example.com")]), mimecompose.HeaderInjectionError),
    (dict(add=[("Subject", "a\x00")]), mimecompose.HeaderInjectionError),
    (dict(add="Subject: x"), TypeError),
    (dict(add=[("Subject",)]), TypeError),
    (dict(omit=[b"bcc"]), TypeError),
    (dict(omit=[3]), TypeError),
])
def test_iterbytes_refuses_bad_options_before_writing_anything(kwargs, error):
    part = initialize("text/plain", string="x", header=[("Subject", "S")])
    with pytest.raises(error):
        part.iterbytes(**kwargs)


def test_iterbytes_of_a_finalized_part_is_refused():
    part = initialize(string=b"Subject: s\r\n\r\nbody\r\n")
    part.finalize()
    with pytest.raises(MimeError, match="finalized"):
        part.iterbytes(add=[("Date", "now")])


@pytest.mark.parametrize("name,value,error", [
    ("Subject", "fine", None),
    ("X-Grüße", "x", MimeError),
    ("Two Words", "x", MimeError),
    ("Colon:", "x", MimeError),
    ("", "x", MimeError),
    ("X-A\r\nBcc", "x", mimecompose.HeaderInjectionError),
    ("Subject", "a\nb", mimecompose.HeaderInjectionError),
    ("Subject", "a\rb", mimecompose.HeaderInjectionError),
    ("Subject", "a\x00", mimecompose.HeaderInjectionError),
    ("Subject", 3, MimeError),
])
def test_checkheader_refuses_what_setheader_refuses(name, value, error):
    part = initialize("text/plain", string="x")
    if error is None:
        mimecompose.checkheader(name, value)
        part.setheader(name, value)
        return
    with pytest.raises(error):
        mimecompose.checkheader(name, value)
    with pytest.raises(error):
        part.setheader(name, value)


def test_line_break_normalizer_is_public_and_streams():
    lines = mimecompose.LineBreakNormalizer()
    out = b"".join([lines.feed(b"a\r"), lines.feed(b"\nb\n"), lines.feed(b"c\r"), lines.feed(b"d\r"),
                    lines.flush()])
    assert out == b"a\r\nb\r\nc\r\nd\r\n"
    assert mimecompose.LineBreakNormalizer(b"\n").feed(b"x\r\ny\rz") == b"x\ny\nz"
