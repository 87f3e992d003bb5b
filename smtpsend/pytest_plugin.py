"""A pytest plugin for code that sends mail (registered by installing
smtpsend; or ``-p smtpsend.pytest_plugin``).

Fixtures:

- ``smtp_server``: a CaptureServer on a free loopback port for the test;
  ``smtp_server.host``, ``.port``, ``.messages`` (each with ``.envelope``,
  ``.data`` and ``.part``, a mimecompose Part).
- ``smtp_server_factory``: call it with CaptureServer's options
  (``extensions=``, ``users=``, ``responses=``, ``tls_context=``) for more
  servers; all are stopped after the test.
- ``smtp_messages``: the messages ``smtp_server`` received, parsed into Parts.

::

    def test_signup_sends_a_welcome(smtp_server):
        app.config["SMTP"] = (smtp_server.host, smtp_server.port)
        app.signup("ann@example.com")
        [mail] = smtp_server.messages
        assert mail.envelope.recipients == ["ann@example.com"]
        assert mail.part.getheader("Subject") == ["Welcome"]
"""

from __future__ import annotations

import pytest

from .testing import CaptureServer


@pytest.fixture
def smtp_server_factory():
    servers = []

    def make(**options) -> CaptureServer:
        server = CaptureServer(**options).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory) -> CaptureServer:
    return smtp_server_factory()


@pytest.fixture
def smtp_messages(smtp_server):
    """A live view: the Parts of the messages received so far."""

    class Messages:
        def __iter__(self):
            return iter([m.part for m in smtp_server.messages])

        def __len__(self):
            return len(smtp_server.messages)

        def __getitem__(self, index):
            return smtp_server.messages[index].part

    return Messages()
