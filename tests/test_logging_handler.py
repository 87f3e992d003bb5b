"""smtpsend.logging.SMTPHandler against the capture server: built like the
standard library's (dictConfig too), records batched into one message,
the hourly cap (with a clock of the test's), a full queue, emit() that never
waits on the network, flush and close, errors through handleError, and
credentials that never show."""

import logging
import logging.handlers
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

import smtpsend
import smtpsend.logging
from smtpsend.logging import SMTPHandler
from smtpsend.testing import CaptureServer

from conftest import SENTINEL, assert_no_secret


class Recording(SMTPHandler):
    """Keeps the errors handleError is given instead of printing them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.errors = []

    def handleError(self, record):
        self.errors.append((record.getMessage(), sys.exc_info()[1]))


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def server():
    with CaptureServer() as capture:
        yield capture


@pytest.fixture
def made():
    """Handlers a test makes, closed when it ends."""
    handlers = []
    yield handlers
    for handler in handlers:
        handler.close()


def handler_for(server, made, cls=Recording, **options):
    options.setdefault("buffer_seconds", 3600)
    handler = cls(("127.0.0.1", server.port), "app@example.com", ["ops@example.com"], "app: errors", **options)
    made.append(handler)
    return handler


def record(message, level=logging.ERROR, *args):
    return logging.LogRecord("app", level, __file__, 1, message, args, None)


def body(captured):
    """The text of a received message, with the line breaks of Python text."""
    return captured.part.getbody(decode=True).replace("\r\n", "\n")


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the same handler as the standard library's

def test_the_module_uses_the_standard_logging():
    assert smtpsend.logging.logging is sys.modules["logging"]
    assert issubclass(SMTPHandler, logging.handlers.SMTPHandler)


def test_mailhost_and_toaddrs_take_the_standard_forms(made):
    one = SMTPHandler("mail.example.com", "a@example.com", "ops@example.com", "s")
    two = SMTPHandler(["mail.example.com", 2525], "a@example.com", ["x@example.com", "y@example.com"], "s")
    made += [one, two]
    assert (one.mailhost, one.mailport, one.toaddrs) == ("mail.example.com", None, ["ops@example.com"])
    assert (two.mailhost, two.mailport, two.toaddrs) == ("mail.example.com", 2525, ["x@example.com", "y@example.com"])
    with pytest.raises(ValueError):
        SMTPHandler(("mail.example.com", 25, 3), "a@example.com", "b@example.com", "s")
    with pytest.raises(ValueError):
        SMTPHandler("mail.example.com", "a@example.com", [], "s")


SCRIPT = textwrap.dedent("""
    import logging, logging.config, sys
    logging.config.dictConfig({
        "version": 1,
        "handlers": {"mail": {
            "class": "smtpsend.logging.SMTPHandler", "level": "ERROR",
            "mailhost": ["127.0.0.1", int(sys.argv[1])], "fromaddr": "app@example.com",
            "toaddrs": ["ops@example.com", "dev@example.com"], "subject": "app failed",
            "buffer_seconds": 3600, "max_per_hour": 5, "transport": {"max_connections": 1}}},
        "root": {"handlers": ["mail"], "level": "INFO"},
    })
    handler = logging.getLogger().handlers[0]
    print(type(handler).__module__, type(handler).__name__, handler.mailhost, handler.mailport,
          handler.buffer_seconds, handler.max_per_hour)
    logging.getLogger("app").info("not mailed: below the handler's level")
    logging.getLogger("app").error("disk full on %s", "db1")
    # no flush, no close: logging.shutdown() at interpreter exit mails it
""")


def test_dictconfig_builds_it_and_interpreter_exit_flushes(server):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(server.port)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["smtpsend.logging", "SMTPHandler", "127.0.0.1", str(server.port), "3600.0", "5"]
    [received] = server.messages
    assert received.envelope.recipients == ["ops@example.com", "dev@example.com"]
    assert received.part.getheader("Subject") == ["app failed"]
    assert body(received) == "disk full on db1\n"


# ---------------------------------------------------------------- batching

def test_the_records_of_an_interval_go_as_one_message(server, made):
    handler = handler_for(server, made)
    for n in range(3):
        handler.handle(record("failure %d", logging.ERROR, n))
    assert handler.pending == 3 and server.messages == []   # held for buffer_seconds
    handler.flush()
    assert handler.pending == 0
    [received] = server.messages
    text = body(received)
    assert text.index("failure 0") < text.index("failure 1") < text.index("failure 2")
    assert received.part.getheader("Subject") == ["app: errors (and 2 more)"]
    assert received.envelope.originator == "app@example.com"


def test_a_due_batch_goes_without_flush(made):
    arrived = threading.Event()
    with CaptureServer(on_message=lambda captured: arrived.set()) as server:
        handler = handler_for(server, made, buffer_seconds=0)
        handler.handle(record("now"))
        assert arrived.wait(30)
    assert body(server.messages[0]) == "now\n"


def test_a_subject_from_the_record_is_one_line(server, made):
    class PerRecord(Recording):
        def getSubject(self, record):
            return f"{record.levelname}: {record.getMessage()}"

    handler = handler_for(server, made, cls=PerRecord)
    handler.handle(record("first line\r\nBcc: victim@example.com"))
    handler.flush()
    [received] = server.messages
    assert received.part.getheader("Subject") == ["ERROR: first line Bcc: victim@example.com"]
    assert received.envelope.recipients == ["ops@example.com"] and handler.errors == []


# ---------------------------------------------------------------- never a mail storm

def test_the_hourly_cap_counts_and_reports_what_it_held_back(server, made):
    clock = Clock()
    handler = handler_for(server, made, max_per_hour=2, clock=clock)
    for text in ("one", "two"):
        handler.handle(record(text))
        handler.flush()
    handler.handle(record("three", logging.ERROR))
    handler.handle(record("four", logging.WARNING))
    handler.handle(record("five", logging.ERROR))
    handler.flush()
    assert [body(m) for m in server.messages] == ["one\n", "two\n"]       # the cap: two an hour
    assert handler.dropped == 3 and handler.pending == 0
    clock.now += 1800
    handler.flush()
    assert len(server.messages) == 2                                      # still within the hour
    clock.now += 1801
    handler.flush()                                                       # the hour is over: the report
    assert len(server.messages) == 3
    report = server.messages[2]
    assert "3 records were not mailed" in body(report) and "(ERROR: 2, WARNING: 1)" in body(report)
    assert report.part.getheader("Subject") == ["app: errors (records not mailed)"]
    assert handler.dropped == 0
    handler.handle(record("six"))
    handler.flush()
    handler.handle(record("seven"))
    handler.flush()
    assert [body(m) for m in server.messages[3:]] == ["six\n"]
    assert handler.dropped == 1


def test_a_storm_of_records_is_bounded_by_the_queue(server, made):
    handler = handler_for(server, made, capacity=5)
    for n in range(10_000):
        handler.handle(record("storm %d", logging.ERROR, n))
    assert (handler.pending, handler.dropped) == (5, 9_995)
    handler.flush()
    [received] = server.messages
    text = body(received)
    assert text.startswith("9995 records were dropped") and "capacity=5" in text
    assert "storm 4" in text and "storm 5" not in text
    assert handler.dropped == 0


# ---------------------------------------------------------------- the logging call never waits

def test_emit_does_not_wait_for_a_server_that_never_answers(made):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    connected = threading.Event()
    held = []

    def accept():
        try:
            held.append(listener.accept()[0])   # and never say anything
            connected.set()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    handler = Recording(("127.0.0.1", listener.getsockname()[1]), "app@example.com", "ops@example.com", "s",
                        timeout=120, buffer_seconds=0, flush_timeout=30)
    made.append(handler)
    handler.handle(record("first"))
    assert connected.wait(30)                # the sending thread now waits for a greeting
    for n in range(10):
        handler.handle(record("queued %d", logging.ERROR, n))
    assert handler.pending == 10             # each call returned; nothing was lost
    handler.flush_timeout = 0.2
    handler.flush()                          # returns after flush_timeout, the send still waiting:
    assert handler.errors == [] and handler.pending == 10   # had it waited, the send would have failed
    handler.flush_timeout = 30
    for sock in held + [listener]:           # the server goes away: the sends fail
        sock.close()
    handler.close()
    assert handler.errors and all(isinstance(error, smtpsend.SMTPError) for _, error in handler.errors)
    assert handler.errors[0][0] == "could not mail 1 log records"


def test_a_failure_goes_to_handle_error_and_never_raises(made):
    handler = Recording(("127.0.0.1", closed_port()), "app@example.com", "ops@example.com", "s",
                        buffer_seconds=3600)
    made.append(handler)
    logger = logging.getLogger("test_logging_handler.failure")
    logger.addHandler(handler)
    try:
        logger.error("lost")                 # returns; the failure is reported, not raised
        handler.flush()
    finally:
        logger.removeHandler(handler)
    [(text, error)] = handler.errors
    assert isinstance(error, smtpsend.AllServersFailed) and handler.pending == 0


def test_what_smtpsend_logs_while_sending_is_not_mailed_again(server, made):
    with smtpsend.Transport(servers=["127.0.0.1"], ports=[server.port], usetls=False) as transport:
        handler = SMTPHandler("unused.example", "app@example.com", "ops@example.com", "s", transport=transport,
                              buffer_seconds=3600, flush_timeout=120)
        made.append(handler)
        handler.setLevel(logging.INFO)
        logger = logging.getLogger("smtpsend")    # smtpsend logs INFO for each message it sends
        logger.addHandler(handler)
        try:
            logging.getLogger("smtpsend.app").info("hello")
            handler.acquire()                     # as logging.shutdown() flushes: the handler's lock held
            try:
                handler.flush()
                # the send finished: its "sent ..." record did not wait for the lock held here
                assert transport.stats.messages_sent == 1
            finally:
                handler.release()
            assert handler.pending == 0           # nor was that record queued: no loop
        finally:
            logger.removeHandler(handler)
    assert [body(m) for m in server.messages] == ["hello\n"]


def test_close_mails_what_is_pending(server, made):
    handler = handler_for(server, made)
    handler.handle(record("last words"))
    handler.close()
    assert [body(m) for m in server.messages] == ["last words\n"]
    handler.handle(record("after close"))    # ignored, no error
    handler.close()
    assert handler.pending == 0 and len(server.messages) == 1 and handler.errors == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_mails_only_its_own_records(server, made):
    handler = handler_for(server, made)
    handler.handle(record("the parent's"))
    pid = os.fork()
    if pid == 0:   # the child: its own queue, thread and connection
        code = 1
        try:
            handler.handle(record("the child's"))
            handler.flush()
            code = 0 if handler.pending == 0 and not handler.errors else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    handler.flush()
    assert [body(m) for m in server.messages] == ["the child's\n", "the parent's\n"]


# ---------------------------------------------------------------- TLS and credentials

def test_secure_is_starttls_with_credentials_that_never_show(server_tls, client_tls, made):
    with CaptureServer(tls_context=server_tls, users={"app": SENTINEL}) as server:
        handler = Recording(("localhost", server.port), "app@example.com", ["ops@example.com"], "s",
                            credentials=("app", SENTINEL), secure=(), buffer_seconds=3600,
                            transport={"ssl_context": client_tls})
        made.append(handler)
        handler.handle(record("over TLS"))
        handler.flush()
        assert handler.errors == []
    assert "STARTTLS" in [c.upper() for c in server.commands]
    assert server.messages[0].authenticated_as == "app"
    assert not hasattr(handler, "password") and handler.username == "app"
    assert SENTINEL not in repr(handler)
    assert_no_secret(handler)


def test_secure_requires_tls(server, made):
    handler = handler_for(server, made, secure=())
    handler.handle(record("x"))
    handler.flush()
    [(_, error)] = handler.errors
    assert isinstance(error, smtpsend.AllServersFailed)
    assert isinstance(error.attempts[0].error, smtpsend.TLSRequired)
    assert server.messages == []


def test_a_transport_of_the_application_is_used_and_left_open(server, made):
    with smtpsend.Transport(servers=["127.0.0.1"], ports=[server.port], usetls=False) as transport:
        handler = SMTPHandler("unused.example", "app@example.com", "ops@example.com", "s", transport=transport)
        handler.handle(record("shared"))
        handler.close()
        assert not transport.closed
        assert transport.stats.messages_sent == 1
    assert body(server.messages[0]) == "shared\n"


@pytest.mark.parametrize("secure,message", [
    (("missing-key.pem",), r"^secure=: cannot load the client certificate 'missing-key\.pem' \(key "
                           r"'missing-key\.pem'\): No such file"),
    (("key.pem", "cert.pem", "extra"), r"^secure is \(\), \(keyfile,\) or \(keyfile, certfile\)$"),
])
def test_a_secure_tuple_that_cannot_be_used_is_a_value_error_naming_the_file(tmp_path, monkeypatch, secure, message):
    """ssl's own error for a missing file names no file; the handler's does,
    at construction, before any record is logged."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        SMTPHandler("localhost", "app@example.com", ["ops@example.com"], "errors", secure=secure)


def test_a_secure_path_given_as_a_string_is_refused_not_taken_apart():
    with pytest.raises(TypeError, match=r"secure is a tuple"):
        SMTPHandler("localhost", "app@example.com", ["ops@example.com"], "errors", secure="client.pem")
