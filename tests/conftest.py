import logging
import os
import ssl
import sys

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.too_slow])


def _flag(name: str) -> bool:
    """An environment variable set to something other than "", 0, false, no."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


settings.load_profile("ci" if _flag("CI") else "default")

# A password used by the security tests; no log record of any test may contain it.
SENTINEL = "Sentinel-Pa55word-7c1e"


class _Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(autouse=True)
def no_secret_in_logs():
    """Every test: nothing logged through the smtpsend logger shows SENTINEL."""
    logger = logging.getLogger("smtpsend")
    recorder = _Recorder()
    logger.addHandler(recorder)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    yield recorder
    logger.removeHandler(recorder)
    logger.setLevel(old_level)
    leaked = [m for m in recorder.messages if SENTINEL in m]
    assert not leaked, f"secret in the smtpsend log: {leaked[:3]}"


@pytest.fixture(scope="session")
def ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca):
    """A server-side context with a certificate for localhost and 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_tls(ca):
    """A client context that trusts only the throwaway CA (verification on)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def rig_opt_in() -> tuple[bool, str]:
    """Whether this run may install and start Postfix and Dovecot: only in
    CI (CI=true) or when asked for (SMTPSEND_RIG=1), never just because the
    suite runs as root. Returns (allowed, why not)."""
    if _flag("CI") or _flag("SMTPSEND_RIG"):
        return True, ""
    return False, ("the real-server tests install and start Postfix and Dovecot: set SMTPSEND_RIG=1 "
                   "to let them (as root), or start a rig with 'python tests/rig/rig.py start' and "
                   "set MAILRIG_STATE to its directory")


@pytest.fixture(scope="session")
def rig():
    """The Postfix + Dovecot rig (tests/rig/rig.py), started once per session.

    Started only under CI=true or SMTPSEND_RIG=1 (skipped with the reason
    otherwise); skipped with a reason when it cannot run here (not root,
    packages missing); in CI it is mandatory and a failure fails the run.
    Set MAILRIG_STATE to the state directory of a rig already running to
    reuse it. A rig started here is stopped and its state directory
    removed at the end of the session.
    """
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "rig"))
    import rig as rigmod

    class Rig:
        ports = rigmod.PORTS
        users = rigmod.USERS

    state = os.environ.get("MAILRIG_STATE")
    started = False
    if not state:
        allowed, why = rig_opt_in()
        if not allowed:
            pytest.skip(why)
        ok, why = rigmod.available()
        if not ok:
            if _flag("CI"):
                pytest.fail(f"the Postfix/Dovecot rig is mandatory in CI: {why}")
            pytest.skip(f"real-server tests need the rig ({why}); run as root, or start it with "
                        "'python tests/rig/rig.py start' and set MAILRIG_STATE")
        try:
            state = rigmod.start()
        except Exception as exc:   # noqa: BLE001 - any failure to start is reported the same way
            if _flag("CI"):
                pytest.fail(f"the Postfix/Dovecot rig did not start: {exc}")
            pytest.skip(f"the Postfix/Dovecot rig did not start: {exc}")
        started = True
    r = Rig()
    r.state = state
    r.ca = os.path.join(state, "tls", "ca.pem")
    r.context = ssl.create_default_context(cafile=r.ca)
    r.queue_empty = lambda timeout=20: rigmod.queue_empty(state, timeout)
    r.purge_deferred = lambda: rigmod.purge_deferred(state)
    r.log = lambda name="postfix": open(os.path.join(state, "log", f"{name}.log"), encoding="utf-8",
                                        errors="replace").read()
    try:
        yield r
    finally:
        if started:
            rigmod.remove(state)
