"""The public surface: complete, sorted __all__, and the names users rely on."""

import inspect

import mimecompose
import smtpsend


def test_all_sorted_and_complete():
    for module in (mimecompose, smtpsend):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            assert hasattr(module, name), name
        public = {n for n, v in vars(module).items() if not n.startswith("_")
                  and not inspect.ismodule(v)}
        assert public - {"__version__"} <= set(module.__all__) | {"testing", "strategies"}


def test_sendmessage_signature():
    params = inspect.signature(smtpsend.sendmessage).parameters
    for name in ("servers", "ports", "client", "originator", "recipients", "header", "atleastone", "queue",
                 "usetls", "tlsimport", "tlspolicy", "ssl_context", "username", "password", "maxsecs",
                 "timeout", "debug"):
        assert name in params, name


def test_error_hierarchy():
    assert issubclass(smtpsend.UsageError, ValueError)
    assert issubclass(mimecompose.MimeError, ValueError)
    assert issubclass(smtpsend.TransportError, ConnectionError)
    assert issubclass(smtpsend.Timeout, TimeoutError)
    for name in ("SenderRefused", "RecipientsRefused", "DataRefused", "MessageTooBig", "AllServersFailed",
                 "NotSupported", "DeliveryUncertain", "AuthenticationError", "TLSError"):
        error = getattr(smtpsend, name)
        assert issubclass(error, smtpsend.SMTPError)
        assert not issubclass(error, OSError) or issubclass(error, smtpsend.TransportError)


# ---------------------------------------------------------------- argument shapes (issue 13)

import email.message  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from smtpsend.testing import CaptureServer  # noqa: E402

PAIRS = [("From", "a@example.com"), ("To", "b@example.com"), ("Subject", "Grüße")]


@pytest.fixture(scope="module")
def capture():
    with CaptureServer() as server:
        yield server


def _fields(part):
    return [(n, v) for n, v in part.getheader() if n.lower() != "content-type"]


def test_header_mapping_is_its_items_everywhere(capture):
    mapping = dict(PAIRS)
    assert _fields(mimecompose.initialize("text/plain", string="x", header=mapping)) == PAIRS
    assert _fields(mimecompose.initialize(string=b"\r\nx", header=mapping)) == PAIRS
    assert _fields(mimecompose.compose("x", header=mapping)) == PAIRS
    bare = mimecompose.initialize("text/plain", string="x")
    assert smtpsend.envelope(bare, header=mapping) == smtpsend.envelope(bare, header=PAIRS)
    fixed = {**mapping, "Date": "Tue, 01 Dec 2026 10:00:00 +0000", "Message-ID": "<m@example.com>"}
    assert smtpsend.transmitted(bare, header=fixed) == smtpsend.transmitted(bare, header=list(fixed.items()))
    before = len(capture.messages)
    smtpsend.sendmessage(bare, servers="localhost", ports=capture.port, header=fixed)
    with smtpsend.connect("localhost", port=capture.port) as client:
        client.sendmessage(bare, header=fixed)
    first, second = capture.messages[before:]
    assert first.data == second.data
    assert b"\r\nT: o" not in first.data and b"\r\nSubject: =?" in first.data


@pytest.mark.parametrize("bad", ["To: b@example.com", b"To: b@example.com", ["To"], [("To",)],
                                 [("To", b"b@example.com")], [("To", 5)], 42])
def test_header_of_the_wrong_shape_is_a_type_error_everywhere(bad, capture):
    part = mimecompose.initialize("text/plain", string="x", header=PAIRS)
    calls = [
        lambda: mimecompose.initialize("text/plain", string="x", header=bad),
        lambda: mimecompose.initialize(string=b"\r\nx", header=bad),
        lambda: mimecompose.compose("x", header=bad),
        lambda: smtpsend.envelope(part, header=bad),
        lambda: smtpsend.transmitted(part, header=bad),
        lambda: smtpsend.sendmessage(part, servers=["localhost"], ports=[capture.port], header=bad),
    ]
    before = len(capture.messages)
    for call in calls:
        with pytest.raises(TypeError):
            call()
    with smtpsend.connect("localhost", port=capture.port) as client:
        with pytest.raises(TypeError):
            client.sendmessage(part, header=bad)
    assert len(capture.messages) == before


def test_a_single_attachment_is_one_attachment(tmp_path):
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4")
    for single in (str(report), report, mimecompose.initialize("application/pdf", file=str(report)),
                   ("report.pdf", b"%PDF-1.4"), ("report.pdf", b"%PDF-1.4", "application/pdf")):
        text, attachment = mimecompose.compose("see attached", attachments=single).getproperty("parts")
        assert attachment.getbody() == b"%PDF-1.4"
        assert attachment.getproperty("content") == "application/pdf"
    with pytest.raises(TypeError):
        mimecompose.compose("x", attachments=b"%PDF-1.4")
    with pytest.raises(TypeError):
        mimecompose.compose("x", attachments=[b"report.pdf"])
    with pytest.raises(TypeError):
        mimecompose.compose("x", attachments=3)


def test_single_string_recipients_servers_ports(capture):
    part = mimecompose.compose("x", header=dict(PAIRS))
    before = len(capture.messages)
    smtpsend.sendmessage(part, servers="localhost", ports=str(capture.port), recipients="c@example.com")
    smtpsend.sendmessage(part, servers=["localhost"], ports=[str(capture.port)],
                         recipients=["c@example.com, d@example.com"])
    first, second = capture.messages[before:]
    assert first.envelope.recipients == ["c@example.com"]
    assert second.envelope.recipients == ["c@example.com", "d@example.com"]
    for bad in (dict(servers=b"localhost"), dict(servers=[b"localhost"]), dict(recipients=b"c@example.com"),
                dict(recipients=[b"c@example.com"]), dict(ports=b"25"), dict(servers=5)):
        with pytest.raises(TypeError):
            smtpsend.sendmessage(part, **{"servers": ["localhost"], "ports": [capture.port], **bad})
    with pytest.raises(TypeError):
        smtpsend.envelope(part, recipients=b"c@example.com")
    assert len(capture.messages) == before + 2


# ---------------------------------------------------------------- delivery= (issue 13)

def test_delivery_is_accepted_by_every_send(capture):
    part = mimecompose.compose("x", header=dict(PAIRS))
    delivery = smtpsend.Delivery(ret="HDRS", envid="run-7", notify="FAILURE")
    before = len(capture.messages)
    smtpsend.sendmessage(part, servers=["localhost"], ports=[capture.port], delivery=delivery)
    with smtpsend.connect("localhost", port=capture.port) as client:
        client.sendmessage(part, delivery=delivery)
    import asyncio
    asyncio.run(smtpsend.asendmessage(part, servers=["localhost"], ports=[capture.port], delivery=delivery))
    smtpsend.sendmessage(part, servers=["localhost"], ports=[capture.port], ret="HDRS", envid="run-7",
                         notify="FAILURE")
    got = capture.messages[before:]
    assert len(got) == 4
    for message in got:
        assert message.esmtp_params[-2:] == ["RET=HDRS", "ENVID=run-7"]
        assert message.rcpt_params["b@example.com"] == ["NOTIFY=FAILURE"]


def test_delivery_excludes_the_individual_options(capture):
    part = mimecompose.compose("x", header=dict(PAIRS))
    delivery = smtpsend.Delivery(notify="FAILURE")
    before = len(capture.messages)
    for clash in (dict(ret="FULL"), dict(notify="SUCCESS"), dict(atleastone=True), dict(priority=1)):
        with pytest.raises(smtpsend.UsageError, match="exclude each other"):
            smtpsend.sendmessage(part, servers=["localhost"], ports=[capture.port], delivery=delivery, **clash)
        with smtpsend.connect("localhost", port=capture.port) as client:
            with pytest.raises(smtpsend.UsageError, match="exclude each other"):
                client.sendmessage(part, delivery=delivery, **clash)
    with pytest.raises(TypeError):
        smtpsend.sendmessage(part, servers=["localhost"], ports=[capture.port], delivery={"notify": "FAILURE"})
    assert len(capture.messages) == before
    # options left at their defaults beside delivery= are no clash
    smtpsend.sendmessage(part, servers=["localhost"], ports=[capture.port], delivery=delivery, ret=None)
    assert len(capture.messages) == before + 1


# ---------------------------------------------------------------- the package (issue 13)

def test_import_smtpsend_does_not_import_asyncio():
    code = ("import sys, smtpsend; assert 'asyncio' not in sys.modules, 'asyncio imported'; "
            "smtpsend.sendmessage, smtpsend.connect, smtpsend.Delivery; "
            "assert 'asyncio' not in sys.modules; "
            "f = smtpsend.asendmessage; assert 'asyncio' in sys.modules; "
            "assert 'asendmessage' in dir(smtpsend); from smtpsend import asendmessage; "
            "assert asendmessage is f")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"})
    assert result.returncode == 0, result.stderr


def test_version_is_one_object():
    assert smtpsend.__version__ is mimecompose.__version__
    assert isinstance(mimecompose.__version__, str) and mimecompose.__version__[0].isdigit()
    from importlib import metadata
    try:
        installed = metadata.version("mimecompose-smtpsend")
    except metadata.PackageNotFoundError:
        pytest.skip("the package is not installed (run from the tree)")
    assert installed == mimecompose.__version__


def test_packages_are_typed():
    for module in (mimecompose, smtpsend):
        assert os.path.isfile(os.path.join(os.path.dirname(module.__file__), "py.typed"))


def test_email_message_subclasses_accepted():
    class Custom(email.message.EmailMessage):
        pass

    message = Custom()
    for name, value in PAIRS:
        message[name] = value
    message.set_content("hi")
    assert smtpsend.envelope(message) == smtpsend.Envelope("a@example.com", ["b@example.com"])
