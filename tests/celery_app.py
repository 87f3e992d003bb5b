"""The Celery app of tests/test_celery.py and tests/soak/celery_soak.py.

A worker runs it as ``celery -A celery_app worker`` (with tests/ on
PYTHONPATH); everything comes from the environment, so the test process
and the worker process configure the same app the same way:

- ``SMTPSEND_TEST_BROKER``: the Redis URL of the broker; the result
  backend is the next database of the same server;
- ``SMTPSEND_TEST_TRANSPORTS``: JSON, ``{name: smtpsend.Transport keyword
  arguments}`` (app.conf.smtpsend_transports);
- ``SMTPSEND_TEST_RETRY``: JSON, the retry policy (app.conf.smtpsend_retry);
- ``SMTPSEND_TEST_READY``: a port on 127.0.0.1 that the worker connects to
  once it is ready, so the test waits for that instead of guessing.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from celery import Celery, signals  # type: ignore[import-untyped]

import smtpsend.celery  # noqa: F401 - registers smtpsend.send with the app

BROKER = os.environ.get("SMTPSEND_TEST_BROKER", "redis://127.0.0.1:1/0")


def backend(broker: str) -> str:
    """The result backend's URL: database 1 of the broker's server."""
    return broker.rsplit("/", 1)[0] + "/1"


app = Celery("smtpsend_tests")
app.conf.update(
    broker_url=BROKER,
    result_backend=backend(BROKER),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    smtpsend_transports=json.loads(os.environ.get("SMTPSEND_TEST_TRANSPORTS", "{}")),
    smtpsend_retry=json.loads(os.environ.get("SMTPSEND_TEST_RETRY", "null")),
)


@signals.worker_ready.connect
def _tell_the_test(**_: Any) -> None:
    port = os.environ.get("SMTPSEND_TEST_READY")
    if port:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as sock:
            sock.sendall(b"ready\n")
