"""A pytest plugin for code that sends mail (registered by installing
smtpsend; or ``-p smtpsend.pytest_plugin``).

Fixtures:

- ``smtp_server``: a CaptureServer on a free loopback port for the test;
  ``smtp_server.host``, ``.port``, ``.messages`` (each with ``.envelope``,
  ``.data`` and ``.part``, a mimecompose Part).
- ``smtp_server_factory``: call it with any of CaptureServer's options
  (``extensions=``, ``users=``, ``responses=``, ``tls_context=``,
  ``tlsimport=``, ``tokens=``, ``bare_lf=``, the bounds...) for more servers; all are
  stopped after the test.
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

from typing import Any, Callable, Iterator

import pytest

from .testing import CaptureServer


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., CaptureServer]]:
    """Make started CaptureServers; each is stopped after the test."""
    servers: list[CaptureServer] = []

    def make(**options: Any) -> CaptureServer:
        server = CaptureServer(**options).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., CaptureServer]) -> CaptureServer:
    """A CaptureServer with the default options, for this test."""
    return smtp_server_factory()


class Messages:
    """A live view of a server's messages as parsed Parts."""

    def __init__(self, server: CaptureServer) -> None:
        self._server = server

    def __iter__(self) -> Iterator[Any]:
        return iter([m.part for m in self._server.messages])

    def __len__(self) -> int:
        return len(self._server.messages)

    def __getitem__(self, index: int) -> Any:
        return self._server.messages[index].part


@pytest.fixture
def smtp_messages(smtp_server: CaptureServer) -> Messages:
    """A live view: the Parts of the messages received so far."""
    return Messages(smtp_server)
